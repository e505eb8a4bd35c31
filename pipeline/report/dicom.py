"""DICOM SEG and SR (TID 1500) that reference the source CT series (extra `opensins[dicom]`).

- `segmentation.seg.dcm`: one segment per vertebra level (SNOMED CT code of the vertebra) and per
  lesion type (SNOMED CT "Lesion", labelled lytic / blastic), on the source slices: the
  segmentation is sampled (nearest neighbour) at every pixel of every source slice, so it lies on
  the series as stored, also when the loader resampled a tilted or unevenly spaced series.
- `sins.sr.dcm`: Comprehensive 3D SR, TID 1500 measurement report: one measurement group per
  level (tracking identifier = level name, finding site = the vertebra), with the measurements of
  `sins.json` and, for lesion levels, the six SINS items, the total (or its range) and the category.
  SINS has no standard codes: items and OpenSINS measurements use the private scheme `99OPENSINS`.

Privacy: unless `keep_identifiers`, the source headers are reduced to an allow-list (UIDs and
geometry) before highdicom sees them, with PatientName and PatientID set to the case id; so no
name, ID, birth date, accession number, study date or institution reaches the files.

The source files are found again by scanning the series folder with pydicom and matching the
series the loader chose (`Volume.meta`: SeriesInstanceUID, FrameOfReferenceUID, SOPInstanceUIDs).
Files whose SOP/series UIDs are empty in the dataset fall back to the file meta
(MediaStorageSOPInstanceUID); an empty Study/SeriesInstanceUID is replaced by a UID derived from
the SOP instance UIDs (said in the notes of the returned result).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__
from ..anatomy import LESION_COLOURS, VERSE_NAMES, Lesion
from ..errors import InputError
from ..schema import LevelResult
from ..volume import LPS_TO_RAS, to_canonical
from .labels import level_colour

if TYPE_CHECKING:
    import pydicom

    from ..analyze import Analysis

#: Private coding scheme of OpenSINS concepts (SINS items and measurements have no standard codes).
SCHEME = "99OPENSINS"

#: Attributes kept from a source header when identifiers are not kept (UIDs, geometry, pixel format).
ALLOWED_SOURCE_ATTRIBUTES: tuple[str, ...] = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "Modality",
    "ImageType",
    "SeriesNumber",
    "InstanceNumber",
    "Rows",
    "Columns",
    "PixelSpacing",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "SliceThickness",
    "SpacingBetweenSlices",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
)
#: Type 2 patient/study attributes written empty when identifiers are not kept.
EMPTY_TYPE2: tuple[str, ...] = (
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "AccessionNumber",
    "StudyID",
)


def _require() -> None:
    try:
        import highdicom  # noqa: F401
        import pydicom  # noqa: F401
    except ImportError:
        raise InputError(
            "--dicom-out needs the DICOM extra: pip install 'opensins[dicom]' (pydicom and highdicom)"
        ) from None


def check_dicom_request(series_folder: str | Path) -> None:
    """Raise `InputError` when DICOM outputs cannot be written (extra missing, input not a folder)."""
    _require()
    if not Path(series_folder).is_dir():
        raise InputError(f"--dicom-out needs a DICOM series folder as input, got {Path(series_folder).name}")


@dataclass(frozen=True)
class SourceSeries:
    """The headers of the source slices (no pixels), sorted along the slice normal."""

    headers: tuple[pydicom.Dataset, ...]
    notes: tuple[str, ...] = ()


def _uid(ds: pydicom.Dataset, keyword: str, meta_keyword: str) -> str:
    value = str(ds.get(keyword, "") or "")
    if not value and hasattr(ds, "file_meta"):
        value = str(ds.file_meta.get(meta_keyword, "") or "")
    return value


def read_source_series(folder: str | Path, meta: dict[str, str]) -> SourceSeries:
    """Headers of the series the loader chose (see module docstring)."""
    _require()
    import pydicom
    from pydicom.uid import generate_uid

    from ..io.dicom import is_dicom_file

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--dicom-out needs a DICOM series folder as input, got {folder.name}")
    wanted_sops = set(filter(None, meta.get("SOPInstanceUIDs", "").split("\\")))
    series_uid = meta.get("SeriesInstanceUID", "")
    frame_uid = meta.get("FrameOfReferenceUID", "")
    headers = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and is_dicom_file(p)):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError):  # not a readable DICOM file: skip it
            continue
        if "ImagePositionPatient" not in ds or int(ds.get("NumberOfFrames", 1) or 1) != 1:
            continue
        ds.SOPInstanceUID = _uid(ds, "SOPInstanceUID", "MediaStorageSOPInstanceUID")
        ds.SOPClassUID = _uid(ds, "SOPClassUID", "MediaStorageSOPClassUID")
        same_series = str(ds.get("SeriesInstanceUID", "") or "") == series_uid and (
            not frame_uid or str(ds.get("FrameOfReferenceUID", "") or "") == frame_uid
        )
        if ds.SOPInstanceUID in wanted_sops if wanted_sops else same_series:
            headers.append(ds)
    if not headers:
        raise InputError(f"{folder.name}: the source DICOM series cannot be found again for --dicom-out")
    iop = np.array(headers[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    headers.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    notes = []
    sops = [d.SOPInstanceUID for d in headers]
    for keyword, what in (("StudyInstanceUID", "study"), ("SeriesInstanceUID", "series")):
        if not all(str(d.get(keyword, "") or "") for d in headers):
            derived = generate_uid(entropy_srcs=[f"opensins-{what}", *sops])
            for d in headers:
                if not str(d.get(keyword, "") or ""):
                    setattr(d, keyword, derived)
            notes.append(f"source {what} has no {keyword}: the DICOM outputs use {derived}, derived from its images")
    if not frame_uid and not headers[0].get("FrameOfReferenceUID"):
        derived = generate_uid(entropy_srcs=["opensins-frame", *sops])
        for d in headers:
            d.FrameOfReferenceUID = derived
    return SourceSeries(tuple(headers), tuple(notes))


def deidentified(ds: pydicom.Dataset, case_id: str) -> pydicom.Dataset:
    """A copy of a source header with only `ALLOWED_SOURCE_ATTRIBUTES`, patient name and ID set to
    the case id and the type 2 patient/study attributes empty."""
    import pydicom
    from pydicom.dataset import FileMetaDataset

    out = pydicom.Dataset()
    for keyword in ALLOWED_SOURCE_ATTRIBUTES:
        if keyword in ds:
            out.add(ds[keyword])
    out.PatientName = f"{case_id}^"  # a family name only (a single-component person name)
    out.PatientID = case_id
    for keyword in EMPTY_TYPE2:
        setattr(out, keyword, "")
    out.file_meta = FileMetaDataset()
    out.file_meta.MediaStorageSOPClassUID = out.SOPClassUID
    out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    out.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    return out


def frames_on_source(labels: np.ndarray, affine: np.ndarray, headers: tuple[pydicom.Dataset, ...]) -> np.ndarray:
    """(frames, rows, columns): `labels` (index grid with RAS `affine`) sampled nearest-neighbour
    at every pixel of every source slice."""
    inv = np.linalg.inv(affine)
    out = []
    for ds in headers:
        rows, cols = int(ds.Rows), int(ds.Columns)
        iop = np.array(ds.ImageOrientationPatient, float)
        row_dir, col_dir = iop[:3], iop[3:]  # along a row (column index grows), along a column
        ps = np.array(ds.PixelSpacing, float)  # (between rows, between columns)
        origin = np.array(ds.ImagePositionPatient, float)
        yy, xx = np.mgrid[0:rows, 0:cols]
        lps = origin + xx[..., None] * ps[1] * row_dir + yy[..., None] * ps[0] * col_dir
        ras = lps @ LPS_TO_RAS.T
        ijk = np.rint(ras @ inv[:3, :3].T + inv[:3, 3]).astype(int)
        inside = np.all((ijk >= 0) & (ijk < np.array(labels.shape)), axis=-1)
        frame = np.zeros((rows, cols), labels.dtype)
        idx = ijk[inside]
        frame[inside] = labels[idx[:, 0], idx[:, 1], idx[:, 2]]
        out.append(frame)
    return np.stack(out)


def _vertebra_code(level: str):
    from pydicom.sr.codedict import codes

    if level == "S1":
        return codes.SCT.Sacrum
    name = f"{level}Vertebra"
    return getattr(codes.SCT, name) if level not in ("T13", "L6") else codes.SCT.Vertebra


def _lab(colour: tuple[int, int, int]):
    import highdicom as hd

    try:
        return hd.color.CIELabColor.from_rgb(*colour) if hasattr(hd.color.CIELabColor, "from_rgb") else None
    except (ValueError, TypeError):  # no display colour rather than no SEG
        return None


def _segments(present: list[int], lesion_ids: dict[int, int]):
    """(segment descriptions, label id -> segment number) for the label ids present."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algo = hd.AlgorithmIdentificationSequence(
        name="OpenSINS", family=codes.cid7162.ArtificialIntelligence, version=__version__
    )
    lesion_of = {sid: lesion for lesion, sid in lesion_ids.items()}
    descs, numbers = [], {}
    for n, sid in enumerate(present, start=1):
        numbers[sid] = n
        if sid in lesion_of:
            lesion = Lesion(lesion_of[sid])
            label = f"{lesion.name.lower()} lesion"
            kw = {
                "segmented_property_category": codes.SCT.MorphologicallyAbnormalStructure,
                "segmented_property_type": codes.SCT.Lesion,
                "anatomic_regions": [codes.SCT.Spine],
            }
            colour = LESION_COLOURS[lesion]
        else:
            level = VERSE_NAMES[sid]
            label = level
            kw = {
                "segmented_property_category": codes.SCT.AnatomicalStructure,
                "segmented_property_type": _vertebra_code(level),
            }
            colour = level_colour(level)
        lab = _lab(colour)
        descs.append(
            hd.seg.SegmentDescription(
                segment_number=n,
                segment_label=label,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algo,
                tracking_uid=hd.UID(),
                tracking_id=label,
                **({"display_color": lab} if lab is not None else {}),
                **kw,
            )
        )
    return descs, numbers


def _code(value: str, meaning: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning)


_UNITS = {
    "mm": ("mm", "millimeter"),
    "1": ("1", "no units"),
    "deg": ("deg", "degree"),
    "ml": ("ml", "milliliter"),
    "points": ("{points}", "points"),
}
#: sins.json measurement -> (code value, meaning, unit)
MEASUREMENT_CODES: dict[str, tuple[str, str, str]] = {
    "height_anterior_mm": ("HT-ANT", "Anterior vertebral body height", "mm"),
    "height_middle_mm": ("HT-MID", "Middle vertebral body height", "mm"),
    "height_posterior_mm": ("HT-POST", "Posterior vertebral body height", "mm"),
    "reference_height_mm": ("HT-REF", "Reference vertebral body height", "mm"),
    "collapse_fraction": ("COLLAPSE", "Vertebral body collapse fraction", "1"),
    "body_involvement": ("BODY-INV", "Vertebral body involvement fraction", "1"),
    "lytic_fraction": ("LYTIC-FR", "Lytic fraction of lesion", "1"),
    "blastic_fraction": ("BLASTIC-FR", "Blastic fraction of lesion", "1"),
    "translation_ap_mm": ("TRANS-AP", "Anteroposterior translation", "mm"),
    "translation_lr_mm": ("TRANS-LR", "Lateral translation", "mm"),
    "kyphosis_deg": ("KYPHOSIS", "Segmental kyphosis departure", "deg"),
    "scoliosis_deg": ("SCOLIOSIS", "Segmental scoliosis departure", "deg"),
    "posterolateral_left": ("PL-LEFT", "Lesion volume in left posterior elements", "ml"),
    "posterolateral_right": ("PL-RIGHT", "Lesion volume in right posterior elements", "ml"),
}
#: sins.json SINS item -> (code value, meaning)
SINS_CODES: dict[str, tuple[str, str]] = {
    "location": ("SINS-LOC", "SINS location"),
    "pain": ("SINS-PAIN", "SINS pain"),
    "bone_lesion": ("SINS-BONE", "SINS bone lesion"),
    "alignment": ("SINS-ALIGN", "SINS spinal alignment"),
    "collapse": ("SINS-COLLAPSE", "SINS vertebral body collapse"),
    "posterolateral": ("SINS-PL", "SINS posterolateral involvement"),
    "total": ("SINS-TOTAL", "SINS total"),
    "total_min": ("SINS-TOTAL-MIN", "SINS total, lowest possible"),
    "total_max": ("SINS-TOTAL-MAX", "SINS total, highest possible"),
}
CATEGORY_CODES: dict[str, tuple[str, str]] = {
    "stable": ("SINS-STABLE", "Stable"),
    "potentially unstable": ("SINS-POT-UNST", "Potentially unstable"),
    "unstable": ("SINS-UNSTABLE", "Unstable"),
}


def _level_group(lv: LevelResult):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    def unit(key: str):
        value, meaning = _UNITS[key]
        return hd.sr.CodedConcept(value=value, scheme_designator="UCUM", meaning=meaning)

    measurements = []
    for name, (value, meaning, u) in MEASUREMENT_CODES.items():
        x = getattr(lv.measurements, name)
        if x is not None:
            measurements.append(hd.sr.Measurement(name=_code(value, meaning), value=float(x), unit=unit(u)))
    qualitative = []
    if lv.sins is not None:
        for name, (value, meaning) in SINS_CODES.items():
            x = getattr(lv.sins, name)
            if x is not None:
                measurements.append(hd.sr.Measurement(name=_code(value, meaning), value=float(x), unit=unit("points")))
        if lv.sins.category is not None:
            cv, cm = CATEGORY_CODES[lv.sins.category]
            qualitative.append(
                hd.sr.QualitativeEvaluation(name=_code("SINS-CAT", "SINS category"), value=_code(cv, cm))
            )
    if lv.measurements.lesion_type is not None:
        t = lv.measurements.lesion_type
        qualitative.append(
            hd.sr.QualitativeEvaluation(
                name=_code("LESION-TYPE", "Bone lesion type"), value=_code(t.upper(), f"{t.capitalize()} lesion")
            )
        )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=lv.level),
        finding_type=codes.SCT.Lesion if lv.lesion else codes.SCT.Vertebra,
        finding_sites=[hd.sr.FindingSite(_vertebra_code(lv.level))],
        measurements=measurements or None,
        qualitative_evaluations=qualitative or None,
    )


def _save(ds: pydicom.Dataset, path: Path) -> Path:
    import pydicom

    tmp = path.with_name(f".{path.name}.tmp")
    pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class DicomOutputs:
    seg: Path
    sr: Path
    notes: tuple[str, ...]


def write_dicom_outputs(
    analysis: Analysis,
    series_folder: str | Path,
    out_dir: str | Path,
    keep_identifiers: bool = False,
    seg_input_grid: np.ndarray | None = None,
) -> DicomOutputs:
    """Write `segmentation.seg.dcm` and `sins.sr.dcm` into `out_dir` (see module docstring)."""
    _require()
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from ..analyze import SEGMENTATION_LESION_IDS, segmentation_map
    from ..volume import from_canonical

    source = read_source_series(series_folder, analysis.ct.meta)
    case = analysis.case
    headers = source.headers if keep_identifiers else tuple(deidentified(d, case.case_id) for d in source.headers)
    ct = analysis.ct
    if seg_input_grid is None:
        seg_input_grid = from_canonical(segmentation_map(analysis), to_canonical(ct), ct)
    frames = frames_on_source(seg_input_grid, ct.affine, headers)
    present = [int(v) for v in np.unique(frames) if v != 0]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not present:
        raise InputError(f"{case.case_id}: nothing segmented on the source slices: no DICOM SEG written")
    descs, numbers = _segments(present, SEGMENTATION_LESION_IDS)
    lut = np.zeros(int(frames.max()) + 1, np.uint16)
    for sid, n in numbers.items():
        lut[sid] = n
    common = {"manufacturer": "OpenSINS", "instance_number": 1}
    seg = hd.seg.Segmentation(
        source_images=list(headers),
        pixel_array=lut[frames],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descs,
        series_instance_uid=hd.UID(),
        series_number=9901,
        sop_instance_uid=hd.UID(),
        manufacturer_model_name="OpenSINS",
        software_versions=__version__,
        device_serial_number="none",
        series_description="OpenSINS vertebrae and lesions",
        content_label="OPENSINS",
        content_description="Vertebrae by level and bone lesions by type (OpenSINS)",
        **common,
    )
    seg_path = _save(seg, out / "segmentation.seg.dcm")

    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="OpenSINS", manufacturer_name="OpenSINS", model_name=f"OpenSINS {__version__}"
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[_level_group(lv) for lv in case.levels],
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(headers),
        content=report[0],
        series_instance_uid=hd.UID(),
        series_number=9902,
        sop_instance_uid=hd.UID(),
        series_description="OpenSINS SINS measurement report",
        is_complete=True,
        **common,
    )
    sr_path = _save(sr, out / "sins.sr.dcm")
    return DicomOutputs(seg_path, sr_path, source.notes)
