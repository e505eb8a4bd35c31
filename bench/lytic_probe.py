"""Does the network see a lytic lesion in real bone as it does in phantom bone of the same density?

The network alone (its fine pass over the spine box, softmax probabilities, no lesion rules): a 30 HU sphere
of 10 mm radius clipped to one vertebral body, centred at 0.15 (against the posterior wall) or 0.5 of the body's
depth from its back (as `bench/real_insertion.py`, 0.6 mm partial volume), put into

- real bodies: `ts_abdomen_3mm` L1 and L3 (training scan, 3 mm voxels, osteopenic) and the held-out
  `ts_dicom_thoracolumbar` T12 (from its DICOM folder);
- a lesion-free body of a phantom (seed 4242, lumbar, 1 mm): as drawn, and with its bone thinned towards soft
  tissue until the body's median is that of `ts_abdomen_3mm` L3 (as the training recipe's bone-density
  augmentation does).

For each: the body's median HU, the sphere's mean lytic probability and the share of its voxels whose likeliest
class is lytic.

    python bench/lytic_probe.py --out bench/results/lytic_probe.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from real_insertion import KINDS, PARTIAL_VOLUME_MM, REAL, ts_abdomen, ts_dicom

from pipeline import __version__
from pipeline.anatomy import VERSE_IDS, Anatomy
from pipeline.config import load_sins_config
from pipeline.model import infer
from pipeline.model.card import DEFAULT_MODEL_DIR, Intensity, LoadedModel, load_model
from pipeline.model.classes import CHANNELS, LYTIC_CHANNEL
from pipeline.model.real import sphere_in_body, with_lesion
from pipeline.model.train import thin_bone
from pipeline.phantom import generate, random_spec
from pipeline.volume import Volume, to_canonical

RADIUS_MM = 10.0
FROM_BACK = (0.15, 0.5)
PHANTOM_SEED = 4242
SOFT_TISSUE_HU = 40.0  # what `model.train.thin_bone` pulls bone towards


def probabilities(ct: Volume, model: LoadedModel) -> np.ndarray:
    """Softmax probabilities (C, X, Y, Z) of the fine pass on the CT's grid (background outside the spine box)."""
    image = torch.from_numpy(infer.normalise(ct.array, model.card.intensity))[None]
    crop = infer.spine_crop(image, ct.spacing, model)
    sub = image[(slice(None), *crop)]
    fine = infer.zoom_to(sub, infer.grid_shape(tuple(sub.shape[1:]), ct.spacing, model.card.spacing_mm))
    p = infer.zoom_to(infer._predict(model, fine), tuple(sub.shape[1:])).numpy()
    out = np.zeros((p.shape[0], *ct.shape), np.float32)
    out[0] = 1.0
    out[(slice(None), *crop)] = p
    return out


def probe(name: str, ct: Volume, body: np.ndarray, model: LoadedModel) -> list[dict]:
    spacing = np.asarray(ct.spacing, float)
    rows = []
    for from_back in FROM_BACK:
        lesion = sphere_in_body(body, spacing, RADIUS_MM, from_back)
        image = with_lesion(ct.array, lesion, KINDS["lytic"], spacing, PARTIAL_VOLUME_MM)
        p = probabilities(ct.with_array(image), model)
        likeliest = p.argmax(0)[lesion]
        classes, counts = np.unique(likeliest, return_counts=True)
        rows.append(
            {
                "body": name,
                "body_median_hu": round(float(np.median(ct.array[body])), 1),
                "from_back": from_back,
                "inserted_ml": round(float(lesion.sum() * np.prod(spacing)) / 1000.0, 3),
                "mean_lytic_probability": round(float(p[LYTIC_CHANNEL][lesion].mean()), 3),
                "lytic_share": round(float(np.mean(likeliest == LYTIC_CHANNEL)), 3),
                "likeliest": {CHANNELS[int(c)]: int(n) for c, n in zip(classes, counts, strict=True)},
            }
        )
    return rows


def thinned(ct: Volume, anatomy: np.ndarray, body: np.ndarray, median_hu: float, intensity: Intensity) -> Volume:
    """The phantom's bone thinned as the training recipe's bone-density augmentation does (`thin_bone`), by the
    factor that brings the body's median to `median_hu`."""
    now = float(np.median(ct.array[body]))
    factor = (median_hu - SOFT_TISSUE_HU) / (now - SOFT_TISSUE_HU)
    x = thin_bone(infer.normalise(ct.array, intensity), anatomy, factor, intensity)
    return ct.with_array(x * (intensity.hu_max - intensity.hu_min) + intensity.hu_min)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--out", default="bench/results/lytic_probe.json")
    args = ap.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"real data not present at {REAL}")
    model = load_model(args.model, torch.device("cpu"))
    t0 = time.perf_counter()
    rows = []
    abdomen = ts_abdomen()
    for level in ("L1", "L3"):
        rows += probe(f"ts_abdomen_3mm {level}", abdomen.ct, abdomen.bodies[level], model)
    dicom = ts_dicom()
    rows += probe("ts_dicom_thoracolumbar T12", dicom.ct, dicom.bodies["T12"], model)
    case = generate(random_spec(PHANTOM_SEED, fov="lumbar", spacing=(1.0, 1.0, 1.0)), load_sins_config())
    ct, anatomy = to_canonical(case.ct), to_canonical(case.anatomy).array
    instances, lesions = to_canonical(case.instances).array, to_canonical(case.lesions).array
    free = next(lv for lv in ("L1", "L3", "L4") if not lesions[instances == VERSE_IDS[lv]].any())
    body = (anatomy == Anatomy.VERTEBRAL_BODY) & (instances == VERSE_IDS[free])
    rows += probe(f"phantom_{PHANTOM_SEED:05d} {free}", ct, body, model)
    target = float(np.median(abdomen.ct.array[abdomen.bodies["L3"]]))
    thin = thinned(ct, anatomy, body, target, model.card.intensity)
    rows += probe(f"phantom_{PHANTOM_SEED:05d} {free} thinned", thin, body, model)
    doc = {
        "command": "python bench/lytic_probe.py",
        "version": __version__,
        "model_sha256": model.card.sha256,
        "lesion_hu": KINDS["lytic"],
        "radius_mm": RADIUS_MM,
        "wall_s": round(time.perf_counter() - t0, 1),
        "machine": platform.platform(),
        "rows": rows,
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    for r in rows:
        print(
            f"{r['body']:<34} {r['body_median_hu']:6.0f} HU  from back {r['from_back']:.2f}: "
            f"lytic p {r['mean_lytic_probability']:.3f}, share {r['lytic_share']:.2f}"
        )


if __name__ == "__main__":
    main()
