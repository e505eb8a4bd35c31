"""Sagittal and coronal views of phantoms beside a real CT, at one bone window (PNG for notes).

python bench/figures.py --real ../shared/data/real/ts_abdomen_3mm/ct.nii.gz --out bench/results/phantoms_vs_real.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipeline.io import load_ct
from pipeline.phantom import PhantomSpec, generate, random_spec
from pipeline.volume import Volume, to_canonical

WINDOW = (-400, 1000)  # bone-ish window shared by every panel (HU)


def _views(vol: Volume, centre_ijk: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    can = to_canonical(vol)
    i, j, _ = np.rint(centre_ijk).astype(int)
    return can.array[i, :, :].T, can.array[:, j, :].T, can.spacing


def _spine_centre(vol: Volume) -> np.ndarray:
    """Index of the spine in the canonical grid: centre of mass of bone-bright voxels (> 250 HU)
    near the left-right middle."""
    can = to_canonical(vol).array
    bone = can > 250
    bone[: can.shape[0] // 3] = False
    bone[2 * can.shape[0] // 3 :] = False
    idx = np.argwhere(bone)
    return idx.mean(axis=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", default="../shared/data/real/ts_abdomen_3mm/ct.nii.gz")
    ap.add_argument("--out", default="bench/results/phantoms_vs_real.png")
    args = ap.parse_args()
    panels = []
    real = load_ct(args.real)
    panels.append(("real ts_abdomen_3mm", real))
    ph1 = generate(
        PhantomSpec(
            seed=21,
            top="T10",
            bottom="S1",
            spacing=(1.5, 1.5, 1.5),
            inplane_fov_mm=(380, 300),
            habitus=1.1,
            contrast=True,
            noise_hu=18,
        )
    ).ct
    panels.append(("phantom: lumbar-pelvis, contrast", ph1))
    ph2 = generate(random_spec(7, fov="thoracolumbar", spacing=(0.9, 0.9, 2.5), n_lesion_levels=2)).ct
    panels.append(("phantom: thoracolumbar, 2 lesion levels", ph2))
    fig, axes = plt.subplots(2, len(panels), figsize=(5 * len(panels), 10))
    for col, (title, vol) in enumerate(panels):
        centre = _spine_centre(vol)
        sag, cor, sp = _views(vol, centre)
        axes[0, col].imshow(sag, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], origin="lower", aspect=sp[2] / sp[1])
        axes[1, col].imshow(
            cor[:, ::-1], cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], origin="lower", aspect=sp[2] / sp[0]
        )
        axes[0, col].set_title(f"{title}\nsagittal (anterior right)")
        axes[1, col].set_title("coronal (radiological: patient right on the left)")
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"window {WINDOW[0]}..{WINDOW[1]} HU")
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=60)
    print(out)


if __name__ == "__main__":
    main()
