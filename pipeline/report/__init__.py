"""Reports people read and files their tools open (issue #5).

    from pipeline.report import write_report, write_label_files, label_table
    write_report(analysis, "out/")          # overview.png, level_<L>.png, report.html
    write_dicom_outputs(analysis, "dicom_folder/", "out/")   # needs opensins[dicom]

Nothing here reads patient identifiers: the figures and the page are drawn from the `Analysis`
(pixels, labels, measurements and the non-identifying `Volume.meta`); the DICOM writers
(`report.dicom`) copy patient and study attributes only when asked to keep identifiers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..schema import write_bytes_atomic
from ..spine.labels import centroids
from ..volume import to_canonical
from .labels import Label, label_table, write_label_files

if TYPE_CHECKING:
    from ..analyze import Analysis

__all__ = ["Label", "label_table", "level_points", "write_dicom_outputs", "write_label_files", "write_report"]


def level_points(analysis: Analysis, shape, spacing) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    """Where each level's name goes on the overview planes: its body centre (or, without a body
    frame, its centroid), as (sagittal xy, coronal xy) in mm."""
    from .views import coronal_xy, sagittal_xy

    lab = analysis.labels
    inv = np.linalg.inv(lab.affine)
    centres: dict[str, np.ndarray] = {}
    if analysis.measurement is not None:
        for lm in analysis.measurement.levels:
            if lm.geometry is not None:
                centres[lm.level] = lm.geometry.centre @ inv[:3, :3].T + inv[:3, 3]
    missing = {inst: lv for inst, lv in analysis.instance_levels.items() if lv not in centres}
    if missing:
        ids = sorted(missing)
        for inst, com in zip(ids, centroids(lab.instances, ids), strict=True):
            if not np.isnan(com[0]):
                centres[missing[inst]] = np.asarray(com)
    return {lv: (sagittal_xy(c, shape, spacing), coronal_xy(c, shape, spacing)) for lv, c in centres.items()}


def write_report(analysis: Analysis, out_dir: str | Path, seg_canonical: np.ndarray | None = None) -> list[Path]:
    """Write `overview.png`, one `level_<L>.png` per lesion level and `report.html` into `out_dir`.

    `seg_canonical`: the segmentation map on the canonical grid (computed when not given).
    """
    from ..analyze import segmentation_map
    from .figures import level_png, overview_png
    from .html import report_html
    from .views import body_planes, body_track, spine_reformats

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lab = analysis.labels
    ct = to_canonical(analysis.ct).array
    seg = segmentation_map(analysis) if seg_canonical is None else seg_canonical
    spacing = lab.spacing
    track = body_track(lab.anatomy, lab.instances, spacing)
    sag, cor = spine_reformats(ct, seg, lab.lesions, track, spacing)
    overview = overview_png(analysis.case, sag, cor, level_points(analysis, ct.shape, spacing))
    figures: dict[str, bytes] = {}
    geos = {lm.level: lm.geometry for lm in analysis.measurement.levels} if analysis.measurement else {}
    for lv in analysis.case.levels:
        geo = geos.get(lv.level)
        if not lv.lesion or geo is None:
            continue
        half = float(np.clip(1.8 * geo.depth, 30.0, 60.0))
        planes = body_planes(geo, ct, seg, lab.lesions, lab.affine, half_mm=half)
        figures[lv.level] = level_png(lv, geo, planes)
    written = [write_bytes_atomic(overview, out / "overview.png")]
    written += [write_bytes_atomic(png, out / f"level_{level}.png") for level, png in figures.items()]
    page = report_html(analysis.case, overview, figures, analysis.ct.meta)
    written.append(write_bytes_atomic(page.encode("utf-8"), out / "report.html"))
    return written


def write_dicom_outputs(analysis: Analysis, series_folder: str | Path, out_dir: str | Path, **kwargs):
    """DICOM SEG and SR referencing the source series (`report.dicom.write_dicom_outputs`; needs
    the `opensins[dicom]` extra)."""
    from .dicom import write_dicom_outputs as _write

    return _write(analysis, series_folder, out_dir, **kwargs)
