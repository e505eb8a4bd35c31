"""The report's figures (matplotlib, Agg canvas, no global pyplot state): PNG bytes out.

- `overview_png`: curved mid-sagittal and coronal planes in a bone window, vertebra outlines and
  level names, lesions coloured by type (projected through the volume), and the SINS of each lesion
  level beside the spine.
- `level_png`: one lesion level in its own frame: the sagittal plane with the three heights drawn
  where they were measured, the axial plane with the mid-sagittal line and each posterolateral side
  marked with its lesion volume.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..anatomy import LESION_COLOURS, VERSE_IDS, VERSE_NAMES, Lesion
from ..schema import CaseResult, LevelResult
from ..spine.geometry import BodyGeometry
from .labels import level_colour
from .views import BodyPlanes, Plane

CATEGORY_COLOURS: dict[str | None, str] = {
    "unstable": "#c0392b",
    "potentially unstable": "#d68910",
    "stable": "#1e8449",
    None: "#555555",
}
_OUTLINE = [patheffects.withStroke(linewidth=2.2, foreground="black")]
_DPI = 100


def _rgb(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    return (colour[0] / 255, colour[1] / 255, colour[2] / 255)


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, facecolor="white")
    return buf.getvalue()


def _lesion_rgba(plane: Plane, alpha: float = 0.6) -> np.ndarray:
    rgba = np.zeros((*plane.grey.shape, 4), np.float32)
    for mask, lesion in ((plane.lytic, Lesion.LYTIC), (plane.blastic, Lesion.BLASTIC)):
        rgba[mask, :3] = _rgb(LESION_COLOURS[lesion])
        rgba[mask, 3] = alpha
    return rgba


def _draw_plane(ax, plane: Plane, outline_ids: list[int]) -> None:
    ax.imshow(plane.grey, cmap="gray", vmin=0, vmax=1, extent=plane.extent, origin="upper", interpolation="bilinear")
    if plane.lytic.any() or plane.blastic.any():
        ax.imshow(_lesion_rgba(plane), extent=plane.extent, origin="upper", interpolation="nearest")
    for sid in outline_ids:
        mask = plane.seg == sid
        if mask.any() and mask.shape[0] > 1 and mask.shape[1] > 1:
            colour = _rgb(level_colour(VERSE_NAMES[sid]))
            ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.0, extent=plane.extent,
                       origin="upper")  # fmt: skip
    ax.set_xlim(plane.extent[0], plane.extent[1])
    ax.set_ylim(plane.extent[2], plane.extent[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _corner_labels(ax, left: str, right: str) -> None:
    kw = {"transform": ax.transAxes, "color": "white", "fontsize": 9, "fontweight": "bold", "path_effects": _OUTLINE}
    ax.text(0.02, 0.5, left, ha="left", va="center", **kw)
    ax.text(0.98, 0.5, right, ha="right", va="center", **kw)
    ax.text(0.02, 0.98, "S", ha="left", va="top", **kw)
    ax.text(0.02, 0.02, "I", ha="left", va="bottom", **kw)


def sins_text(lv: LevelResult) -> str:
    """One-line SINS of a lesion level ('T12: SINS 18, unstable')."""
    s = lv.sins
    if s is None:
        return f"{lv.level}: no SINS"
    total = f"SINS {s.total}" if s.total is not None else f"SINS {s.total_min}-{s.total_max} (pain not given)"
    return f"{lv.level}: {total}, {s.category or 'category open'}"


def _items_text(lv: LevelResult) -> str:
    s = lv.sins
    if s is None:
        return ""

    def p(v: int | None) -> str:
        return "?" if v is None else str(v)

    return (
        f"loc {p(s.location)} · pain {p(s.pain)} · lesion {p(s.bone_lesion)}\n"
        f"align {p(s.alignment)} · collapse {p(s.collapse)} · PL {p(s.posterolateral)}"
    )


def crop_window(plane: Plane, margin_mm: float = 25.0) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) in mm around the labelled and lesion pixels of a plane (whole plane if none)."""
    mask = (plane.seg > 0) | plane.lytic | plane.blastic
    left, right, bottom, top = plane.extent
    if not mask.any():
        return left, right, bottom, top
    rows, cols = np.nonzero(mask)
    n_rows, n_cols = mask.shape
    dx, dy = (right - left) / n_cols, (top - bottom) / n_rows
    x0, x1 = left + cols.min() * dx - margin_mm, left + (cols.max() + 1) * dx + margin_mm
    y1, y0 = top - rows.min() * dy + margin_mm, top - (rows.max() + 1) * dy - margin_mm
    return max(x0, left), min(x1, right), max(y0, bottom), min(y1, top)


def overview_png(
    case: CaseResult,
    sagittal: Plane,
    coronal: Plane,
    level_points: dict[str, tuple[tuple[float, float], tuple[float, float]]],
) -> bytes:
    """The overview figure. `level_points`: level -> ((x, y) on the sagittal, (x, y) on the coronal)."""
    win_s, win_c = crop_window(sagittal), crop_window(coronal)
    y0, y1 = min(win_s[2], win_c[2]), max(win_s[3], win_c[3])
    win_s, win_c = (win_s[0], win_s[1], y0, y1), (win_c[0], win_c[1], y0, y1)
    widths = [win_s[1] - win_s[0], win_c[1] - win_c[0]]
    img_h = 7.0
    img_w = img_h * sum(widths) / max(y1 - y0, 1.0)
    text_w = 2.6
    fig_w = min(max(img_w + text_w + 0.4, 6.5), 18.0)
    fig = Figure(figsize=(fig_w, img_h + 1.0))
    axes = fig.subplots(1, 2, gridspec_kw={"wspace": 0.04, "width_ratios": widths})
    fig.subplots_adjust(
        left=0.01, right=1.0 - text_w / fig_w, top=1.0 - 0.55 / (img_h + 1.0), bottom=0.45 / (img_h + 1.0)
    )
    ids = sorted(VERSE_IDS[lv] for lv in level_points)
    _draw_plane(axes[0], sagittal, ids)
    _draw_plane(axes[1], coronal, ids)
    for ax, win in ((axes[0], win_s), (axes[1], win_c)):
        ax.set_xlim(win[0], win[1])
        ax.set_ylim(win[2], win[3])
    _corner_labels(axes[0], "A", "P")
    _corner_labels(axes[1], "R", "L")
    axes[0].set_title("sagittal (along the bodies)", fontsize=9)
    axes[1].set_title("coronal (along the bodies)", fontsize=9)
    for level, ((sx, sy), (cx, cy)) in level_points.items():
        colour = _rgb(level_colour(level))
        for ax, x, y in ((axes[0], sx, sy), (axes[1], cx, cy)):
            ax.text(x, y, level, color=colour, fontsize=8, fontweight="bold", ha="center", va="center",
                    path_effects=_OUTLINE, clip_on=True)  # fmt: skip
    by_level = {lv.level: lv for lv in case.levels}
    for level in case.summary.lesion_levels:
        lv = by_level[level]
        if level not in level_points or lv.sins is None:
            continue
        (_, _), (cx, cy) = level_points[level]
        colour = CATEGORY_COLOURS.get(lv.sins.category, CATEGORY_COLOURS[None])
        axes[1].annotate(
            f"{sins_text(lv)}\n{_items_text(lv)}",
            xy=(cx, cy),
            xytext=(1.04, cy),
            textcoords=axes[1].get_yaxis_transform(),
            fontsize=7.5,
            va="center",
            ha="left",
            color=colour,
            bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": colour, "lw": 1.2},
            arrowprops={"arrowstyle": "-", "color": colour, "lw": 1.0},
            annotation_clip=False,
        )
    handles = [
        Patch(color=_rgb(LESION_COLOURS[Lesion.LYTIC]), label="lytic lesion"),
        Patch(color=_rgb(LESION_COLOURS[Lesion.BLASTIC]), label="blastic lesion"),
    ]
    fig.legend(handles=handles, loc="lower right", ncol=1, fontsize=8, frameon=False, bbox_to_anchor=(1.0, 0.0))
    s = case.summary
    if s.lesion_levels:
        worst = by_level[s.max_level] if s.max_level else None
        head = f"{case.case_id}: lesions at {', '.join(s.lesion_levels)}"
        if worst is not None:
            head += f"; most unstable {sins_text(worst)}"
    else:
        head = f"{case.case_id}: no lesion level found ({len(case.levels)} vertebrae)"
    fig.suptitle(head, fontsize=10.5, x=0.01, ha="left")
    fig.text(0.01, 0.01, "bone window; lesions projected through the volume; outlines on the plane", fontsize=7,
             color="#444444", va="bottom")  # fmt: skip
    return _png(fig)


def level_png(lv: LevelResult, geo: BodyGeometry, planes: BodyPlanes) -> bytes:
    """The zoomed figure of one lesion level (see module docstring)."""
    fig = Figure(figsize=(9.0, 4.9))
    axes = fig.subplots(1, 2, gridspec_kw={"wspace": 0.05})
    fig.subplots_adjust(left=0.01, right=0.99, top=0.86, bottom=0.02)
    sid = VERSE_IDS[lv.level]
    _draw_plane(axes[0], planes.sagittal, [sid])
    _draw_plane(axes[1], planes.axial, [sid])
    m = lv.measurements
    kw = {"fontsize": 8, "color": "white", "path_effects": _OUTLINE}
    axes[0].text(0.02, 0.98, "A", transform=axes[0].transAxes, ha="left", va="top", **kw)
    axes[0].text(0.98, 0.98, "P", transform=axes[0].transAxes, ha="right", va="top", **kw)
    heights = (m.height_anterior_mm, m.height_middle_mm, m.height_posterior_mm)
    for name, (v, lo, hi), h in zip(("A", "M", "P"), planes.height_lines, heights, strict=False):
        axes[0].plot([v, v], [lo, hi], color="#00e5ff", lw=1.8, solid_capstyle="butt")
        axes[0].plot([v - 2.5, v + 2.5], [lo, lo], color="#00e5ff", lw=1.2)
        axes[0].plot([v - 2.5, v + 2.5], [hi, hi], color="#00e5ff", lw=1.2)
        if h is not None:
            axes[0].text(v, hi + 2.0, f"{name} {h:.1f}", ha="center", va="bottom", **kw)
    ref = m.reference_height_mm
    cf = m.collapse_fraction
    sub = "heights (mm) in the body's frame"
    if ref is not None and cf is not None:
        sub = f"heights (mm); reference {ref:.1f} mm; collapse {cf:.2f}"
    axes[0].set_title(f"sagittal: {sub}", fontsize=8.5)

    ax = axes[1]
    ax.axvline(planes.mid_u, color="#ffeb3b", lw=0.8, ls="--")
    ax.text(0.02, 0.98, "R", transform=ax.transAxes, ha="left", va="top", **kw)
    ax.text(0.98, 0.98, "L", transform=ax.transAxes, ha="right", va="top", **kw)
    s = lv.sins
    sides = {"right": m.posterolateral_right, "left": m.posterolateral_left}
    counted = _counted_sides(s.posterolateral if s else None, sides)
    for side, x, ha in (("right", 0.02, "left"), ("left", 0.98, "right")):
        ml = sides[side]
        mark = "involved" if side in counted else "not counted"
        colour = "#c0392b" if side in counted else "#1e8449"
        text = f"{side}: {ml:.2f} mL\n{mark}" if ml is not None else f"{side}: n/a"
        ax.text(x, 0.03, text, transform=ax.transAxes, ha=ha, va="bottom", fontsize=8, color="white",
                bbox={"boxstyle": "round,pad=0.25", "fc": colour, "ec": "none", "alpha": 0.85})  # fmt: skip
    ax.set_title("axial through the body centre: posterolateral sides", fontsize=8.5)
    colour = CATEGORY_COLOURS.get(s.category if s else None, CATEGORY_COLOURS[None])
    fig.suptitle(sins_text(lv) + (f"   [{' '.join(lv.flags)}]" if lv.flags else ""), fontsize=10.5, color=colour)
    return _png(fig)


def _counted_sides(points: int | None, sides: dict[str, float | None]) -> set[str]:
    """Which sides the posterolateral item counted (3: both, 1: the larger, 0/None: none)."""
    if points == 3:
        return {"left", "right"}
    if points == 1:
        return {max(sides, key=lambda k: sides[k] or 0.0)}
    return set()
