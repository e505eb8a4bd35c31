"""A shipped model: `models/<name>/model.pt` (a state dict) and `metadata.json` (MONAI-bundle-style card).

The card holds `channel_def`, the network, the voxel spacing and intensity handling the network
expects, how it was trained, its measured metrics and the sha256 of the weights. Loading checks the
hash and reads the weights with `weights_only=True`; a missing or corrupt model is a `ModelError`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import CONFIG_DIR
from ..errors import ModelError
from .classes import CHANNELS
from .network import NetworkSpec, build_network

CARD_FORMAT = "opensins-model/1"
WEIGHTS = "model.pt"
CARD = "metadata.json"
#: The model `sins analyze` uses when none is named.
DEFAULT_MODEL_DIR = CONFIG_DIR.parent / "models" / "opensins_spine"


@dataclass(frozen=True)
class Intensity:
    """HU window mapped to [0, 1] (clipped) before the network."""

    hu_min: float = -1000.0
    hu_max: float = 2000.0


@dataclass(frozen=True)
class ModelCard:
    name: str
    network: NetworkSpec
    spacing_mm: float  # fine segmentation grid (isotropic)
    coarse_spacing_mm: float  # localisation grid
    patch: tuple[int, int, int]
    intensity: Intensity
    sha256: str
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "format": CARD_FORMAT,
            "name": self.name,
            "channel_def": {str(k): v for k, v in CHANNELS.items()},
            "network": self.network.to_dict(),
            "spacing_mm": [self.spacing_mm] * 3,
            "coarse_spacing_mm": [self.coarse_spacing_mm] * 3,
            "patch": list(self.patch),
            "intensity": {
                "hu_min": self.intensity.hu_min,
                "hu_max": self.intensity.hu_max,
                "clip": True,
                "scale": "(HU - hu_min) / (hu_max - hu_min)",
            },
            "orientation": "RAS (the canonical grid of pipeline.volume)",
            "weights": WEIGHTS,
            "sha256": self.sha256,
            "training": self.training,
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class LoadedModel:
    card: ModelCard
    net: torch.nn.Module
    device: torch.device


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_card(model_dir: str | Path) -> ModelCard:
    """The card of a model folder (no weights loaded)."""
    path = Path(model_dir) / CARD
    if not path.is_file():
        raise ModelError(f"no model at {Path(model_dir)}: {CARD} missing (train one with `sins train`)")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("format") != CARD_FORMAT:
            raise ModelError(f"{path}: not an OpenSINS model card (format {d.get('format')!r})")
        if {int(k): v for k, v in d["channel_def"].items()} != CHANNELS:
            raise ModelError(f"{path}: its channels differ from this version's {list(CHANNELS.values())}")
        return ModelCard(
            name=d["name"],
            network=NetworkSpec.from_dict(d["network"]),
            spacing_mm=float(d["spacing_mm"][0]),
            coarse_spacing_mm=float(d["coarse_spacing_mm"][0]),
            patch=tuple(int(x) for x in d["patch"]),  # type: ignore[arg-type]
            intensity=Intensity(float(d["intensity"]["hu_min"]), float(d["intensity"]["hu_max"])),
            sha256=d["sha256"],
            training=d.get("training", {}),
            metrics=d.get("metrics", {}),
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: unreadable model card ({e})") from None


def write_model(net: torch.nn.Module, card: ModelCard, model_dir: str | Path) -> ModelCard:
    """Save weights and card (the card's sha256 is that of the weights written)."""
    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{WEIGHTS}.tmp"
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, tmp)
    tmp.replace(out / WEIGHTS)
    card = ModelCard(**{**card.__dict__, "sha256": file_sha256(out / WEIGHTS)})
    tmp_card = out / f".{CARD}.tmp"
    tmp_card.write_text(json.dumps(card.to_dict(), indent=1) + "\n", encoding="utf-8")
    tmp_card.replace(out / CARD)
    return card


def load_model(model_dir: str | Path, device: torch.device) -> LoadedModel:
    """Card, hash check, weights (`weights_only=True`), network in eval mode on `device`."""
    card = read_card(model_dir)
    weights = Path(model_dir) / WEIGHTS
    if not weights.is_file():
        raise ModelError(f"no model weights at {weights}")
    digest = file_sha256(weights)
    if digest != card.sha256:
        raise ModelError(f"{weights}: sha256 {digest[:12]}... does not match the model card ({card.sha256[:12]}...)")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net = build_network(card.network)
        net.load_state_dict(state)
    except Exception as e:  # a torch unpickling or shape error: the file is not this model
        raise ModelError(f"{weights}: cannot load the weights ({type(e).__name__}: {e})") from None
    net.eval().to(device)
    return LoadedModel(card, net, device)
