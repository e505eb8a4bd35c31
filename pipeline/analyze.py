"""One case end to end: CT and label maps in, `CaseResult` and its files out (DESIGN.md §3-§4).

    case = analyze_case(AnalyzeRequest(ct="ct.nii.gz", labels="anatomy.nii.gz", lesions="lesions.nii.gz"))
    write_outputs(case, "out/")

Without `labels`, the shipped network segments the CT (`pipeline.model`); a label map given with
`labels` enters at "vertebra instances and level names" instead (DESIGN.md §3).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import __version__
from .anatomy import VERSE_IDS, Lesion
from .clinical import ClinicalInfo, LevelOverride, clinical_for, clinical_notes, read_clinical_csv
from .config import SinsConfig, load_sins_config
from .errors import InputError
from .io import load_ct, load_label_map, save_volume
from .schema import CaseResult, InputInfo, LevelResult, Software, summarise, write_case_json, write_levels_csv
from .scoring import near_threshold_flags, score_level
from .spine.labels import (
    LABEL_FORMATS,
    SpineLabels,
    check_anatomy_ids,
    crop_volume,
    embed_labels,
    labels_from_ids,
    labels_from_opensins,
    spine_box,
    widen_box,
)
from .spine.measure import SpineMeasurement, measure_spine
from .spine.naming import Naming, name_levels, separate_c1_ring
from .spine.vertebrae import drop_below_sacrum, extract_vertebrae
from .volume import Volume, from_canonical, to_canonical

if TYPE_CHECKING:
    from .model.card import LoadedModel

#: Ids of lesions in `segmentation.nii.gz` (vertebrae carry their VerSe level id, 1-28).
SEGMENTATION_LESION_IDS: dict[int, int] = {Lesion.LYTIC: 101, Lesion.BLASTIC: 102}


@dataclass(frozen=True)
class AnalyzeRequest:
    """What `sins analyze` was asked to do."""

    ct: str | Path
    labels: str | Path | None = None
    label_format: str = "opensins"
    lesions: str | Path | None = None
    case_id: str | None = None
    pain: str | None = None
    clinical_csv: str | Path | None = None
    config: str | Path | None = None
    override: LevelOverride | None = None
    device: str = "auto"
    model: str | Path | None = None  # model folder (default models/opensins_spine)
    clinical: ClinicalInfo | None = None  # given directly (batch manifests): replaces clinical_csv for this case


@dataclass(frozen=True)
class CaseInputs:
    """What a case reads from disk (`load_inputs`): the CT and the label maps given with it, on the
    CT's own grid. `sins batch` reads the next case's inputs while the current one is analysed."""

    ct: Volume
    labels: Volume | None = None
    lesions: Volume | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Analysis:
    """A scored case and what produced it (kept for the files and reports)."""

    case: CaseResult
    ct: Volume  # as read (input grid)
    labels: SpineLabels  # canonical grid
    instance_levels: dict[int, str] = field(default_factory=dict)
    measurement: SpineMeasurement | None = None


def case_id_from_path(path: str | Path) -> str:
    """A case id from a file or folder name (extensions dropped, unsafe characters replaced)."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name in ("", ".", ".."):
        name = Path(path).resolve().name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "case"


def score_case(
    case_id: str,
    naming: Naming,
    measured: SpineMeasurement,
    clinical: ClinicalInfo,
    cfg: SinsConfig,
    input_info: InputInfo,
    notes: tuple[str, ...] = (),
) -> CaseResult:
    """Turn measurements into the scored `CaseResult` (clinician items merged)."""
    levels = []
    for lm in measured.levels:
        sins = None
        flags: tuple[str, ...] = ()
        if lm.lesion:
            pain, location = clinical.pain_for(lm.level), clinical.location_for(lm.level)
            sins = score_level(lm.level, lm.measurements, cfg, pain=pain, location=location)
            flags = near_threshold_flags(lm.measurements, cfg)
            if not lm.complete:
                flags = (*flags, "incomplete:vertebra cut by the field of view")
        levels.append(LevelResult(lm.level, lm.complete, lm.lesion, lm.measurements, sins, flags))
    lesion_levels = [lv.level for lv in levels if lv.lesion]
    all_notes = (*notes, *naming.notes, *measured.notes, *clinical_notes(clinical, lesion_levels))
    return CaseResult(
        case_id=case_id,
        software=Software(version=__version__, model=None, model_sha256=None, config_sha256=cfg.hash),
        input=input_info,
        levels=tuple(levels),
        summary=summarise(levels),
        anchors=naming.anchors,
        notes=tuple(all_notes),
        extra={"curve_scale": measured.curve_scale},
    )


@dataclass(frozen=True)
class Scored:
    """What `analyze_labels` found: the scored case, how levels were named and measured, and the
    labels with their instance -> level map (a C1 ring found above C2 becomes its own instance)."""

    case: CaseResult
    naming: Naming
    measured: SpineMeasurement
    labels: SpineLabels
    instance_levels: dict[int, str]


def analyze_labels(
    labels: SpineLabels,
    cfg: SinsConfig,
    case_id: str,
    input_info: InputInfo,
    clinical: ClinicalInfo | None = None,
    override: LevelOverride | None = None,
) -> Scored:
    """Vertebrae, names, measurements and scores from label maps already on the canonical grid."""
    clinical = clinical or ClinicalInfo(case_id)
    verts = extract_vertebrae(labels, cfg)
    labels, verts = drop_below_sacrum(labels, verts, cfg)
    naming = name_levels(verts, cfg, override or clinical.override)
    ring = separate_c1_ring(labels, verts, naming, cfg)
    if ring is not None:
        labels = ring
        verts = extract_vertebrae(labels, cfg)
        naming = Naming(("C1", *naming.levels), naming.anchors, naming.notes)
    measured = measure_spine(verts, naming.levels, cfg)
    case = score_case(case_id, naming, measured, clinical, cfg, input_info, labels.notes)
    return Scored(case, naming, measured, labels, dict(zip((v.id for v in verts), naming.levels, strict=True)))


def load_inputs(req: AnalyzeRequest) -> CaseInputs:
    """Read and check the CT and the label maps of a request (no analysis)."""
    if req.label_format not in LABEL_FORMATS:
        raise InputError(f"unknown label format {req.label_format!r}; expected one of {', '.join(LABEL_FORMATS)}")
    t0 = time.perf_counter()
    ct = load_ct(req.ct)
    if req.lesions is not None and req.labels is None:
        raise InputError("--lesions needs --labels (the network finds lesions itself)")
    labels = lesions = None
    if req.labels is not None:
        labels = load_label_map(req.labels, reference=ct)
        lesions = load_label_map(req.lesions, reference=ct) if req.lesions else None
    return CaseInputs(ct, labels, lesions, time.perf_counter() - t0)


def analyze_case(req: AnalyzeRequest, inputs: CaseInputs | None = None, model: LoadedModel | None = None) -> Analysis:
    """Load, check, analyse one case (nothing is written).

    `inputs`: the case's files already read by `load_inputs` (else they are read here); `model`: a
    loaded network to use instead of loading `req.model` (batch workers load it once).
    """
    if req.label_format not in LABEL_FORMATS:
        raise InputError(f"unknown label format {req.label_format!r}; expected one of {', '.join(LABEL_FORMATS)}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    cfg = load_sins_config(req.config)
    case_id = req.case_id or case_id_from_path(req.ct)
    pre_notes: tuple[str, ...] = ()
    if req.clinical is not None:
        clinical = clinical_for({case_id: req.clinical}, case_id, req.pain)
    else:
        table = read_clinical_csv(req.clinical_csv) if req.clinical_csv else {}
        clinical = clinical_for(table, case_id, req.pain)
        if req.clinical_csv and case_id not in table:
            pre_notes = (f"clinical CSV has no row for case '{case_id}': pain unknown unless --pain is given",)
    t_prep = time.perf_counter() - t0
    if inputs is None:
        inputs = load_inputs(req)
    ct = inputs.ct
    can = to_canonical(ct)
    timings["load"] = t_prep + inputs.seconds
    model_card = None
    if inputs.labels is None:
        from .model.infer import segment

        if model is None:
            from .model.card import DEFAULT_MODEL_DIR, load_model
            from .model.network import resolve_device

            t1 = time.perf_counter()
            model = load_model(req.model or DEFAULT_MODEL_DIR, resolve_device(req.device))
            timings["load_model"] = time.perf_counter() - t1
        model_card = model.card
        seg = segment(can, model, cfg.lesion)
        timings.update(seg.timings_s)
        pre_notes = (*pre_notes, *seg.notes)
        label_vol, lesion_vol = can.with_array(seg.anatomy), can.with_array(seg.lesions)
        fmt, source = "opensins", f"network {model_card.name}"
    else:
        label_vol = to_canonical(inputs.labels)
        lesion_vol = to_canonical(inputs.lesions) if inputs.lesions is not None else None
        fmt, source = req.label_format, Path(str(req.labels)).name
        if fmt == "opensins":
            check_anatomy_ids(label_vol)  # a user's map, whole, before the crop (the network's ids are valid)
    t1 = time.perf_counter()
    box = spine_box(label_vol.array, fmt, can.spacing, cfg.instances.crop_margin_mm)
    if box is not None and fmt == "opensins":  # room for the ribs the CT is searched for (`spine.ribs`)
        box = widen_box(box, can.shape, can.spacing, cfg.localise.rib_lateral_mm, cfg.localise.rib_back_mm)
    if box is not None:  # the analysis runs on the spine's box, then goes back onto the whole grid
        ref = crop_volume(can, box)
        label_vol = crop_volume(label_vol, box)
        lesion_vol = crop_volume(lesion_vol, box) if lesion_vol is not None else None
    else:
        ref = can
    if fmt == "opensins":
        # ids checked above; the network's bodies are cut at discs and completed from the CT, a user's kept as drawn
        labels = labels_from_opensins(
            label_vol, lesion_vol, cfg, reference=ref, check_ids=False, from_network=inputs.labels is None
        )
    else:
        labels = labels_from_ids(label_vol, fmt, lesion_vol, cfg, reference=ref)
    info = InputInfo(shape=ct.shape, spacing_mm=ct.spacing, orientation=ct.orientation, source=ct.source)
    scored = analyze_labels(labels, cfg, case_id, info, clinical, req.override)
    labels = scored.labels if box is None else embed_labels(scored.labels, box, can.shape, can.affine)
    case = scored.case
    timings["measure"] = time.perf_counter() - t1
    extra = dict(case.extra)
    extra["labels"] = {"source": fmt, "file": source}
    extra["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    if model_card is not None:
        software = Software(case.software.version, model_card.name, model_card.sha256, case.software.config_sha256)
        case = CaseResult(**{**case.__dict__, "software": software})
    case = CaseResult(**{**case.__dict__, "extra": extra, "notes": (*pre_notes, *ct.notes, *case.notes)})
    return Analysis(case, ct, labels, scored.instance_levels, scored.measured)


def segmentation_map(analysis: Analysis) -> np.ndarray:
    """Vertebrae by VerSe level id, lesions as 101 lytic / 102 blastic, on the canonical grid."""
    lab = analysis.labels
    lut = np.zeros(int(lab.instances.max()) + 1, np.uint8)
    for inst, level in analysis.instance_levels.items():
        lut[inst] = VERSE_IDS.get(level, 0)
    seg = lut[lab.instances]
    for lesion, sid in SEGMENTATION_LESION_IDS.items():
        seg[lab.lesions == lesion] = sid
    return seg


def write_outputs(
    analysis: Analysis,
    out_dir: str | Path,
    *,
    dicom_series: str | Path | None = None,
    keep_identifiers: bool = False,
) -> list[Path]:
    """Write the case's files into `out_dir` (DESIGN.md §4, issue #5).

    segmentation.nii.gz (input grid) with its label table (segmentation_labels.json, an ITK-SNAP
    label description and a 3D Slicer colour table), levels.csv, overview.png, level_<L>.png,
    report.html and, last, sins.json. With `dicom_series` (the DICOM folder the CT was read from):
    also segmentation.seg.dcm and sins.sr.dcm referencing it; patient and study identifiers are
    copied into them only with `keep_identifiers` (no other file ever holds any).
    """
    from .report import label_table, write_label_files, write_report

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    if dicom_series is not None:
        from .report.dicom import check_dicom_request

        check_dicom_request(dicom_series)  # before any file is written
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ct = analysis.ct
    seg_can = segmentation_map(analysis)
    seg = from_canonical(seg_can, to_canonical(ct), ct)
    written = [save_volume(ct.with_array(seg), out / "segmentation.nii.gz", np.uint8)]
    written += write_label_files(label_table(list(analysis.instance_levels.values()), SEGMENTATION_LESION_IDS), out)
    written.append(write_levels_csv([analysis.case], out / "levels.csv"))
    case = analysis.case
    if dicom_series is not None:
        from .report import write_dicom_outputs

        dcm = write_dicom_outputs(analysis, dicom_series, out, keep_identifiers=keep_identifiers, seg_input_grid=seg)
        written += [dcm.seg, dcm.sr]
        case = CaseResult(**{**case.__dict__, "notes": (*case.notes, *dcm.notes)})
    analysis = Analysis(case, analysis.ct, analysis.labels, analysis.instance_levels, analysis.measurement)
    written += write_report(analysis, out, seg_canonical=seg_can)
    extra = dict(case.extra)
    extra["timings_s"] = {**extra.get("timings_s", {}), "write": round(time.perf_counter() - t0, 3)}
    case = CaseResult(**{**case.__dict__, "extra": extra})
    written.append(write_case_json(case, out / "sins.json"))  # last: its presence marks a finished case
    return written
