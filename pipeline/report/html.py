"""`report.html`: one self-contained page per case (no network; images embedded as base64 PNG).

What the page shows, top to bottom: the summary, the overview figure, one section per lesion level
(its zoomed figure and the table of the six items with the measurement behind each, where each
came from and the flags), every vertebra's measurements, the notes, and the provenance (input,
software, model, configuration). A print stylesheet keeps each level on one page.
"""

from __future__ import annotations

import base64
import platform
from html import escape

from ..anatomy import location_region
from ..schema import CaseResult, LevelResult, Measurements
from ..scoring import location_points
from .figures import CATEGORY_COLOURS, sins_text

PAIN_NAMES = {3: "mechanical", 1: "occasional, non-mechanical", 0: "pain-free"}

_CSS = """
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; margin: 1.5em auto; max-width: 1100px;
       color: #111; line-height: 1.35; padding: 0 1em; }
h1 { font-size: 1.45em; margin: 0 0 .2em 0; }
h2 { font-size: 1.2em; border-bottom: 2px solid #ccc; padding-bottom: .15em; margin-top: 1.4em; }
h3 { font-size: 1.05em; margin: .6em 0 .3em 0; }
table { border-collapse: collapse; margin: .4em 0 .8em 0; font-size: .9em; }
th, td { border: 1px solid #bbb; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
.badge { display: inline-block; padding: .1em .5em; border-radius: .3em; color: #fff; font-weight: bold; }
.summary { font-size: 1.1em; margin: .3em 0 .8em 0; }
.muted { color: #555; font-size: .85em; }
.flag { color: #8e2b00; font-weight: bold; }
.level { margin-bottom: 1.2em; }
@page { size: A4; margin: 12mm; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 9.5pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .level, figure, table { break-inside: avoid; page-break-inside: avoid; }
  h2 { break-after: avoid; page-break-after: avoid; }
  .overview { break-after: page; page-break-after: always; }
}
"""


def _fmt(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def _badge(category: str | None) -> str:
    colour = CATEGORY_COLOURS.get(category, CATEGORY_COLOURS[None])
    return f'<span class="badge" style="background:{colour}">{escape(category or "category open")}</span>'


def item_rows(lv: LevelResult) -> list[tuple[str, str, str, str]]:
    """(item, points, measurement behind it, source) for the six SINS items and the total."""
    s = lv.sins
    m: Measurements = lv.measurements
    if s is None:
        return []

    def pts(v: int | None) -> str:
        return "n/a" if v is None else str(v)

    derived_loc = location_points(location_region(lv.level))
    if s.location == derived_loc:
        loc_src = "derived from the level name"
        loc_msr = f"{lv.level}: {location_region(lv.level)}"
    else:
        loc_src = "given by the clinician (overrides the level name)"
        loc_msr = f"{lv.level} would be {location_region(lv.level)} ({derived_loc} points)"
    if s.pain is None:
        pain_msr, pain_src = "not given", "clinician (missing: the total is a range)"
    else:
        pain_msr, pain_src = PAIN_NAMES.get(s.pain, str(s.pain)), "given by the clinician"
    lesion_msr = (
        f"{m.lesion_type or 'n/a'} (lytic {_fmt(m.lytic_fraction, 2)}, blastic {_fmt(m.blastic_fraction, 2)} "
        "of the lesion voxels)"
    )
    align_msr = (
        f"translation AP {_fmt(m.translation_ap_mm, 1, ' mm')}, LR {_fmt(m.translation_lr_mm, 1, ' mm')} "
        f"(on the level below); kyphosis {_fmt(m.kyphosis_deg, 1, '°')}, scoliosis {_fmt(m.scoliosis_deg, 1, '°')} "
        "(departure from the expected curve)"
    )
    collapse_msr = (
        f"heights A/M/P {_fmt(m.height_anterior_mm)} / {_fmt(m.height_middle_mm)} / "
        f"{_fmt(m.height_posterior_mm)} mm vs reference {_fmt(m.reference_height_mm, 1, ' mm')}: "
        f"collapse {_fmt(m.collapse_fraction, 2)}; body involved {_fmt(m.body_involvement, 2)}"
    )
    pl_msr = (
        f"lesion in the posterior elements: left {_fmt(m.posterolateral_left, 2, ' mL')}, "
        f"right {_fmt(m.posterolateral_right, 2, ' mL')}"
    )
    total = str(s.total) if s.total is not None else f"{s.total_min}-{s.total_max}"
    return [
        ("Location", pts(s.location), loc_msr, loc_src),
        ("Pain", pts(s.pain), pain_msr, pain_src),
        ("Bone lesion", pts(s.bone_lesion), lesion_msr, "image"),
        ("Spinal alignment", pts(s.alignment), align_msr, "image"),
        ("Vertebral body collapse", pts(s.collapse), collapse_msr, "image"),
        ("Posterolateral involvement", pts(s.posterolateral), pl_msr, "image"),
        ("Total", total, s.category or "category open (range spans two categories)", ""),
    ]


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], num_cols: tuple[int, ...] = ()) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = []
        for n, cell in enumerate(row):
            cls = ' class="num"' if n in num_cols else ""
            cells.append(f"<td{cls}>{escape(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _total(lv: LevelResult) -> str:
    if lv.sins is None:
        return ""
    return str(lv.sins.total) if lv.sins.total is not None else f"{lv.sins.total_min}-{lv.sins.total_max}"


def _levels_table(case: CaseResult) -> str:
    rows = []
    for lv in case.levels:
        m = lv.measurements
        rows.append(
            (
                lv.level,
                "yes" if lv.complete else "no (cut)",
                "yes" if lv.lesion else "",
                _fmt(m.height_anterior_mm),
                _fmt(m.height_middle_mm),
                _fmt(m.height_posterior_mm),
                _fmt(m.reference_height_mm),
                _fmt(m.collapse_fraction, 2),
                _fmt(m.translation_ap_mm),
                _fmt(m.kyphosis_deg),
                _total(lv),
            )
        )
    head = ("level", "complete", "lesion", "A mm", "M mm", "P mm", "ref mm", "collapse", "transl. AP mm",
            "kyphosis °", "SINS")  # fmt: skip
    return _table(head, rows, num_cols=tuple(range(3, 11)))


def provenance_rows(case: CaseResult, meta: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Input, software, model and configuration facts (nothing that identifies the patient)."""
    inp, sw = case.input, case.software
    labels = case.extra.get("labels", {})
    rows = [
        ("case id", case.case_id),
        ("input", inp.source or "n/a"),
        (
            "grid",
            f"{' x '.join(map(str, inp.shape))} voxels, spacing "
            f"{' x '.join(f'{s:.3g}' for s in inp.spacing_mm)} mm, orientation {inp.orientation}",
        ),
        ("label map", f"{labels.get('file', 'n/a')} ({labels.get('source', 'n/a')})" if labels else "network output"),
        ("level naming anchors", "; ".join(case.anchors) or "n/a"),
        ("software", f"OpenSINS {sw.version} (schema {case.schema_version}), Python {platform.python_version()}"),
        ("model", f"{sw.model} sha256 {sw.model_sha256}" if sw.model else "none (label maps given)"),
        ("configuration sha256", sw.config_sha256),
    ]
    for key in ("Modality", "Manufacturer", "SliceThickness", "ConvolutionKernel", "SeriesInstanceUID"):
        if meta and meta.get(key):
            rows.append((f"DICOM {key}", meta[key]))
    return rows


def report_html(
    case: CaseResult,
    overview: bytes,
    level_figures: dict[str, bytes],
    meta: dict[str, str] | None = None,
) -> str:
    """The whole page (see module docstring)."""
    s = case.summary
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>OpenSINS report: {escape(case.case_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Spinal Instability Neoplastic Score: {escape(case.case_id)}</h1>",
    ]
    by_level = {lv.level: lv for lv in case.levels}
    if s.lesion_levels:
        worst = by_level.get(s.max_level or "")
        text = f"Lesion levels: {', '.join(s.lesion_levels)}."
        if worst is not None:
            text += f" Most unstable: {sins_text(worst)}"
        parts.append(f'<p class="summary">{escape(text)} {_badge(s.category)}</p>')
    else:
        parts.append(f'<p class="summary">No lesion level found among {len(case.levels)} vertebrae.</p>')
    parts.append(
        '<p class="muted">SINS (Fisher et al., Spine 2010): 0-6 stable, 7-12 potentially unstable, 13-18 unstable. '
        "Image items are measured by OpenSINS; pain (and a location override) come from the clinician. "
        "A research tool: check every finding on the images.</p>"
    )
    parts.append('<div class="overview">' + _img(overview, "overview: sagittal and coronal views") + "</div>")
    for level in s.lesion_levels:
        lv = by_level[level]
        parts.append('<div class="level">')
        parts.append(f"<h2>{escape(sins_text(lv))} {_badge(lv.sins.category if lv.sins else None)}</h2>")
        if level in level_figures:
            parts.append(_img(level_figures[level], f"{level}: zoomed sagittal and axial views"))
        parts.append(_table(("item", "points", "measurement behind it", "source"), item_rows(lv), num_cols=(1,)))
        if lv.flags:
            flags = ", ".join(escape(f) for f in lv.flags)
            parts.append(f'<p>Flags: <span class="flag">{flags}</span> (a value near a threshold or a cut '
                         "vertebra: check it on the images)</p>")  # fmt: skip
        else:
            parts.append('<p class="muted">No flags.</p>')
        parts.append("</div>")
    parts.append("<h2>All vertebrae</h2>")
    parts.append(_levels_table(case))
    if case.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in case.notes) + "</ul>")
    parts.append("<h2>Input, software, model and configuration</h2>")
    parts.append(_table(("what", "value"), [tuple(r) for r in provenance_rows(case, meta)]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
