"""The segmentation network (MONAI UNet) built from a model card's `network` entry."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.networks.nets import UNet

from ..errors import ModelError
from .classes import N_CHANNELS


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture of a 3-D UNet: one CT channel in, `N_CHANNELS` out."""

    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 2

    def to_dict(self) -> dict:
        return {"type": "monai.networks.nets.UNet", "channels": list(self.channels), "strides": list(self.strides),
                "num_res_units": self.num_res_units, "in_channels": 1, "out_channels": N_CHANNELS}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> NetworkSpec:
        if d.get("type") != "monai.networks.nets.UNet" or d.get("out_channels") != N_CHANNELS:
            kind, n = d.get("type"), d.get("out_channels")
            raise ModelError(f"model card describes an unknown network {kind!r} with {n} channels")
        return cls(tuple(d["channels"]), tuple(d["strides"]), int(d["num_res_units"]))


def build_network(spec: NetworkSpec) -> torch.nn.Module:
    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=N_CHANNELS,
        channels=spec.channels,
        strides=spec.strides,
        num_res_units=spec.num_res_units,
    )


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks the first GPU when there is one, else the CPU; `cpu`, `cuda`, `cuda:N` as asked."""
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ModelError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"--device {name}: no CUDA GPU is available on this machine (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ModelError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) here")
    elif device.type != "cpu":
        raise ModelError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device
