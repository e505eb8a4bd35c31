"""Sagittal and coronal pictures of a level map on a real CT, with the reference centroids: what a reader
checks before believing a level figure (bench/real_levels.py).

The sagittal view is curved: each axial slice is cut at the x of the spine there (and the coronal at its
y), so a scoliotic or kyphotic spine stays in view.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage

from pipeline.anatomy import VERSE_NAMES
from pipeline.volume import Volume, to_canonical


def _spine_track(seg: np.ndarray, axis: int, fallback: float) -> np.ndarray:
    """Per axial slice, the mean index along `axis` (0: x, 1: y) of the labelled vertebrae, smoothed."""
    fg = (seg > 0) & (seg < 100)
    counts = fg.sum(axis=(0, 1)).astype(float)
    coords = np.arange(seg.shape[axis])[:, None] if axis == 0 else np.arange(seg.shape[axis])[None, :]
    sums = np.array([(fg[..., k] * coords).sum() for k in range(seg.shape[2])], float)
    track = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    good = np.flatnonzero(~np.isnan(track))
    if not good.size:
        return np.full(seg.shape[2], fallback)
    track = np.interp(np.arange(seg.shape[2]), good, track[good])
    return ndimage.gaussian_filter1d(track, 3.0)


def draw_levels(ct: Volume, seg: np.ndarray, affine: np.ndarray, refs: list[dict], rows: list[dict], path: Path,
                title: str = "") -> None:  # fmt: skip
    """Write a PNG: curved sagittal and coronal CT (bone window) with the vertebra ids of `seg` (canonical
    grid, VerSe ids) as colours and names, and each reference centroid marked green (right) or red."""
    can = to_canonical(ct)
    hu = can.array
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    pts = np.array([np.linalg.solve(affine[:3, :3], np.asarray(r["centroid_ras_mm"]) - affine[:3, 3]) for r in refs])
    xs = _spine_track(seg, 0, float(np.median(pts[:, 0]))).round().astype(int).clip(0, seg.shape[0] - 1)
    ys = _spine_track(seg, 1, float(np.median(pts[:, 1]))).round().astype(int).clip(0, seg.shape[1] - 1)
    ks = np.arange(seg.shape[2])
    sag_img, sag_lab = hu[xs, :, ks], seg[xs, :, ks]  # (z, y)
    cor_img, cor_lab = hu[:, ys, ks], seg[:, ys, ks]  # (x, z) -> transposed below
    cor_img, cor_lab = cor_img.T, cor_lab.T
    cmap = plt.get_cmap("tab20")
    fig, axes = plt.subplots(1, 2, figsize=(11, 9))
    views = (
        (axes[0], sag_img, sag_lab, spacing[2] / spacing[1], 1, "sagittal (A right)"),
        (axes[1], cor_img, cor_lab, spacing[2] / spacing[0], 0, "coronal (patient left = image left)"),
    )
    for ax, img, lab, aspect, col, label in views:
        ax.imshow(np.clip(img, -250, 1100), cmap="gray", origin="lower", aspect=aspect)
        rgba = np.zeros((*lab.shape, 4))
        vert = (lab > 0) & (lab < 100)
        rgba[vert] = cmap(((lab[vert] * 7) % 20) / 20.0)  # neighbouring ids far apart in the palette
        rgba[vert, 3] = 0.45
        rgba[lab >= 100] = (1.0, 0.0, 0.0, 0.7)
        ax.imshow(rgba, origin="lower", aspect=aspect)
        for vid in np.unique(lab[vert]):
            zz, cc = np.nonzero(lab == vid)
            ax.text(cc.max() + 3, zz.mean(), VERSE_NAMES.get(int(vid), "?"), color="yellow", fontsize=7, va="center")
        for p, r in zip(pts, rows, strict=True):
            colour = "lime" if r["right"] else ("red" if r["complete"] else "orange")
            ax.plot(p[col], p[2], "+", color=colour, ms=7, mew=1.5)
            ax.text(p[col] - 4, p[2], r["level"], color=colour, fontsize=7, ha="right", va="center")
        span = pts[:, col]
        half = 70.0 / spacing[col]
        ax.set_xlim(span.min() - half, span.max() + half)
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title}: output labels (colours, names right of them); reference centroids + "
                 "(green right, red wrong, orange cut)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
