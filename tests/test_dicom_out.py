"""DICOM SEG and SR for a DICOM input (`sins analyze --dicom-out`), and privacy (issue #5).

Real data: the 20-slice thoracolumbar series with its TotalSegmentator map (skipped when absent).
Its files carry empty SOP/series/study UIDs in the dataset (an anonymiser's doing): the SEG must
still reference every source image (file meta UIDs). A copy with made-up patient data and proper
UIDs checks that the series UID is referenced exactly and that no identifying value reaches any
output file unless --keep-identifiers.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom", reason="the opensins[dicom] extra (pydicom) is not installed")
hd = pytest.importorskip("highdicom", reason="the opensins[dicom] extra (highdicom) is not installed")

from pipeline.cli import main  # noqa: E402

SERIES = "ts_dicom_thoracolumbar"
#: Made-up identifying values written into the copied series (each must never reach an output).
IDENTIFIERS = {
    "PatientName": "Quixote^Dulcinea^Maria",
    "PatientID": "PID77310492",
    "PatientBirthDate": "19430517",
    "OtherPatientIDs": "OTHER5521093",
    "AccessionNumber": "ACC88213377",
    "InstitutionName": "Hospital of Nowhere Vale",
    "ReferringPhysicianName": "Zarathustra^Bob",
    "StudyID": "STUDY0048821",
    "PatientAddress": "17 Quince Lane Smallton",
}
#: Substrings searched for (also the parts of the person names on their own).
NEEDLES = [*IDENTIFIERS.values(), "Quixote", "Dulcinea", "Zarathustra", "1943-05-17", "Nowhere Vale"]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _run(tmp: Path, series: Path, labels: Path, *extra: object) -> Path:
    out = tmp / "out"
    argv = ["analyze", series, "--labels", labels, "--label-format", "totalseg", "--out", out, "--dicom-out", *extra]
    assert main([str(a) for a in argv]) == 0
    return out


def test_seg_and_sr_reference_the_real_series_and_match_sins_json(real_data: Path, tmp_path: Path) -> None:
    folder = real_data / SERIES
    out = _run(tmp_path, folder / "dicom", folder / "segmentation_totalseg.nii.gz", "--pain", "none")
    doc = json.loads((out / "sins.json").read_text())
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in _files(folder / "dicom")]
    source_sops = {str(d.file_meta.MediaStorageSOPInstanceUID) for d in sources}

    seg = hd.seg.segread(out / "segmentation.seg.dcm")
    ref = seg.ReferencedSeriesSequence[0]
    assert {str(r.ReferencedSOPInstanceUID) for r in ref.ReferencedInstanceSequence} == source_sops
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    labels = {int(d.SegmentNumber): str(d.SegmentLabel) for d in seg.SegmentSequence}
    assert sorted(labels.values()) == sorted(lv["level"] for lv in doc["levels"])
    codes = {str(d.SegmentLabel): str(d.SegmentedPropertyTypeCodeSequence[0].CodeValue) for d in seg.SegmentSequence}
    assert codes == {"T11": "12989004", "T12": "23215003"}  # SNOMED CT T11 / T12 vertebra
    # the series is not resampled: every segment has as many pixels as its label in segmentation.nii.gz
    nii = np.asarray(nib.load(out / "segmentation.nii.gz").dataobj)
    names = json.loads((out / "segmentation_labels.json").read_text())["labels"]
    for number, label in labels.items():
        (sid,) = [int(k) for k, v in names.items() if v == label]
        mask = seg.get_volume(segment_numbers=[number], combine_segments=False).array
        assert int(mask.sum()) == int((nii == sid).sum())

    sr = hd.sr.srread(out / "sins.sr.dcm")
    assert str(sr.ContentTemplateSequence[0].TemplateIdentifier) == "1500"
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert {str(r.ReferencedSOPInstanceUID) for r in evidence.ReferencedSOPSequence} == source_sops
    heights = _sr_values(sr, "HT-ANT")
    expected = {lv["level"]: lv["measurements"]["height_anterior_mm"] for lv in doc["levels"]}
    assert heights == {k: pytest.approx(v, abs=1e-3) for k, v in expected.items() if v is not None}
    assert any("has no SeriesInstanceUID" in n for n in doc["notes"])  # the derived UID is said


def _sr_values(sr, code_value: str) -> dict[str, float]:
    """Level (tracking identifier) -> value of the numeric item `code_value` in each measurement group."""
    out: dict[str, float] = {}
    for group in sr.ContentSequence:
        if group.ConceptNameCodeSequence[0].CodeValue != "126010":  # Imaging Measurements
            continue
        for mg in group.ContentSequence:
            level, value = None, None
            for item in mg.ContentSequence:
                name = item.ConceptNameCodeSequence[0].CodeValue
                if name == "112039":  # Tracking Identifier
                    level = str(item.TextValue)
                if name == code_value and item.ValueType == "NUM":
                    value = float(item.MeasuredValueSequence[0].NumericValue)
            if level is not None and value is not None:
                out[level] = value
    return out


@pytest.fixture
def identified_series(real_data: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    """The real series copied with made-up patient data and proper UIDs, and a lesion map (lytic T12)."""
    folder = real_data / SERIES
    series = tmp_path / "series"
    series.mkdir()
    study_uid, series_uid = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    for n, src in enumerate(_files(folder / "dicom")):
        ds = pydicom.dcmread(src)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        for keyword, value in IDENTIFIERS.items():
            setattr(ds, keyword, value)
        ds.save_as(series / f"slice{n:03d}.dcm")
    img = nib.load(folder / "segmentation_totalseg.nii.gz")
    lesion = (np.asarray(img.dataobj) == 32).astype(np.uint8)  # TotalSegmentator T12: all lytic
    lesions = tmp_path / "lesions.nii.gz"
    nib.save(nib.Nifti1Image(lesion, img.affine), lesions)
    return series, lesions, series_uid


def _search(folder: Path) -> dict[str, list[str]]:
    """Which needles occur in which output file (gzip files searched decompressed)."""
    found: dict[str, list[str]] = {}
    for path in _files(folder):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        for needle in NEEDLES:
            if needle.encode() in data or needle.replace("^", " ").encode() in data:
                found.setdefault(path.name, []).append(needle)
    return found


def test_no_identifier_reaches_any_output(
    identified_series: tuple[Path, Path, str], real_data: Path, tmp_path: Path
) -> None:
    series, lesions, series_uid = identified_series
    labels = real_data / SERIES / "segmentation_totalseg.nii.gz"
    out = _run(tmp_path, series, labels, "--lesions", lesions, "--pain", "mechanical")
    assert {"report.html", "overview.png", "segmentation.seg.dcm", "sins.sr.dcm"} <= {p.name for p in out.iterdir()}
    assert _search(out) == {}
    seg = pydicom.dcmread(out / "segmentation.seg.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
    assert str(seg.PatientID) == "series" and not seg.PatientBirthDate  # the case id from the folder name
    labels_in_seg = {str(d.SegmentLabel) for d in seg.SegmentSequence}
    assert "lytic lesion" in labels_in_seg
    doc = json.loads((out / "sins.json").read_text())
    sr = hd.sr.srread(out / "sins.sr.dcm")
    totals = _sr_values(sr, "SINS-TOTAL-MAX")
    expected = {lv["level"]: lv["sins"]["total_max"] for lv in doc["levels"] if lv["sins"]}
    assert expected and totals == expected

    kept = _run(tmp_path / "kept", series, labels, "--lesions", lesions, "--keep-identifiers")
    found = _search(kept)  # the search does find them when asked to keep them, in the DICOM files only
    assert set(found) == {"segmentation.seg.dcm", "sins.sr.dcm"}
    assert IDENTIFIERS["PatientID"] in found["segmentation.seg.dcm"]


def test_dicom_out_needs_a_dicom_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[1] / "sample_cases" / "unstable_T12_lytic_collapse"
    argv = [
        "analyze",
        sample / "ct.nii.gz",
        "--labels",
        sample / "anatomy.nii.gz",
        "--out",
        tmp_path / "o",
        "--dicom-out",
    ]
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "sins: error: --dicom-out needs a DICOM series folder as input, got ct.nii.gz"
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # nothing half-written
    shutil.rmtree(tmp_path / "o", ignore_errors=True)
