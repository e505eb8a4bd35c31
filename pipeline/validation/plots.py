"""PNG figures for the validation report (matplotlib, no pyplot state): Bland-Altman and confusion heatmaps."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .agreement import TotalAgreement


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def bland_altman_png(total: TotalAgreement, title: str) -> bytes:
    """Difference (tool - reference) against the mean of the two totals; marker area ~ number of levels."""
    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.add_subplot()
    ref = np.asarray(total.reference, dtype=float)
    tool = np.asarray(total.tool, dtype=float)
    points = Counter(zip((ref + tool) / 2, tool - ref, strict=True))
    if points:
        xy = np.array(list(points))
        sizes = np.array(list(points.values()), dtype=float)
        ax.scatter(xy[:, 0], xy[:, 1], s=18 * sizes, alpha=0.6, color="#1f77b4", edgecolor="none")
    for est, style, label in (
        (total.bias, "-", "bias"),
        (total.loa_low, "--", "limits of agreement"),
        (total.loa_high, "--", None),
    ):
        if est.value is not None:
            ax.axhline(est.value, color="#d62728", linestyle=style, linewidth=1, label=label)
    ax.axhline(0, color="0.6", linewidth=0.6)
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, -2.0), max(high, 2.0))
    ax.set_xlabel("mean of tool and reference total")
    ax.set_ylabel("tool - reference")
    ax.set_title(title, fontsize=10)
    if total.n:
        ax.legend(fontsize=8, loc="best")
    return _png(fig)


def confusion_png(matrix: Sequence[Sequence[int]], labels: Sequence[object], title: str) -> bytes:
    """Heatmap with counts; rows reference, columns tool."""
    m = np.asarray(matrix, dtype=float)
    side = 1.1 + 0.45 * len(labels)
    fig = Figure(figsize=(side + 0.6, side))
    ax = fig.add_subplot()
    ax.imshow(m, cmap="Blues", vmin=0, vmax=max(float(m.max()), 1.0))
    ticks = range(len(labels))
    names = [str(x) for x in labels]
    ax.set_xticks(ticks, names, fontsize=8, rotation=30 if max(map(len, names)) > 3 else 0)
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set_xlabel("tool", fontsize=8)
    ax.set_ylabel("reference", fontsize=8)
    ax.set_title(title, fontsize=9)
    high = m.max() / 2
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            colour = "white" if m[i, j] > high else "black"
            ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=8, color=colour)
    return _png(fig)
