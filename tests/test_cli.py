"""The `sins` command line: exit codes and messages (DESIGN.md §4), run in-process through `main`.

Contract: 0 success; 2 bad input or usage, with exactly one line on stderr ("sins: error: ...") and
no traceback.
One test runs the installed `sins` executable to check the contract at the process level.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from io_fixtures import ct_array, truncate, write_nifti

from pipeline.cli import main
from pipeline.io import load_ct

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CTS = sorted((REPO / "sample_cases").glob("*/ct.nii.gz"))
CASE_FILES = ("ct.nii.gz", "anatomy.nii.gz", "instances.nii.gz", "lesions.nii.gz", "truth.json")
#: Small, fast phantoms: a short field of view on a coarse grid.
FAST = ["--fov", "lumbar", "--spacing", "3", "--quiet"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `sins argv...` in-process; return (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The stderr of a failed command: exactly one line, 'sins: error: ...', no traceback."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sins: error: "), err
    return lines[0]


def expect_usage_error(capsys: pytest.CaptureFixture[str], *argv: str, match: str) -> str:
    code, out, err = run_cli(capsys, *argv)
    line = one_error_line(err)
    assert code == 2, (code, err)
    assert re.search(match, line), line
    assert out == ""
    return line


# ---------------------------------------------------------------- help and version
@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["phantom", "--help"], ["check", "-h"], ["--version"]])
def test_help_and_version_exit_zero(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out, err = capsys.readouterr()
    assert err == ""
    if argv == ["--version"]:
        assert out.startswith("opensins ")
    else:
        assert out.startswith("usage: sins")


# ---------------------------------------------------------------- argparse usage errors
@pytest.mark.parametrize(
    ("argv", "match"),
    [
        ([], "the following arguments are required: command"),
        (["frob"], "invalid choice: 'frob'"),
        (["check"], "check: the following arguments are required: input"),
        (["analyze", "ct.nii.gz"], "analyze: the following arguments are required: --out"),
        (["phantom"], "phantom: the following arguments are required: --out"),
        (["validate", "--auto", "a"], "the following arguments are required: --manual, --out"),
        (["batch", "x"], "batch: the following arguments are required: --out"),
        (["phantom", "--out", "o", "--n", "abc"], "argument --n: invalid int value: 'abc'"),
        (["analyze", "x", "--out", "o", "--pain", "severe"], "argument --pain: invalid choice: 'severe'"),
        (["check", "a", "b"], "unrecognized arguments: b"),
        (["phantom", "--out", "o", "--fov", "skull"], "argument --fov: invalid choice: 'skull'"),
    ],
)
def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], match: str) -> None:
    expect_usage_error(capsys, *argv, match=match)


# ---------------------------------------------------------------- batch (the rest in test_batch.py)
def test_batch_needs_inputs_or_a_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    expect_usage_error(capsys, "batch", "--out", "D", match="give either inputs")


def test_train_needs_an_output_folder(capsys: pytest.CaptureFixture[str]) -> None:
    expect_usage_error(capsys, "train", match="--out")


def test_keyboard_interrupt_exits_130(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("pipeline.cli._cmd_check", interrupted)
    code, _, err = run_cli(capsys, "check", "x.nii.gz")
    assert code == 130
    assert err == "sins: interrupted\n"


# ---------------------------------------------------------------- check
@pytest.mark.parametrize("ct", SAMPLE_CTS, ids=lambda p: p.parent.name)
def test_check_sample_prints_geometry(capsys: pytest.CaptureFixture[str], ct: Path) -> None:
    code, out, err = run_cli(capsys, "check", ct)
    assert code == 0, err
    assert err == ""
    vol = load_ct(ct)
    first = out.splitlines()[0]
    pattern = (
        r"ct\.nii\.gz: (\d+)x(\d+)x(\d+) voxels, spacing ([\d.]+), ([\d.]+), ([\d.]+) mm, "
        r"orientation ([LRAPIS]{3}) \(canonical RAS\), HU (-?\d+)\.\.(-?\d+)"
    )
    m = re.fullmatch(pattern, first)
    assert m, first
    assert tuple(int(v) for v in m.groups()[:3]) == vol.shape
    assert np.allclose([float(v) for v in m.groups()[3:6]], vol.spacing, rtol=5e-3)
    assert m.group(7) == vol.orientation
    assert int(m.group(8)) < -500 < 300 < int(m.group(9))  # air and bone: a real CT in HU
    assert all(line.startswith("note: ") for line in out.splitlines()[1:])


def test_samples_are_bundled() -> None:
    assert len(SAMPLE_CTS) >= 3


def _two_d(tmp: Path) -> Path:
    return write_nifti(tmp / "slice.nii.gz", np.resize(ct_array(), (24, 20)).astype(np.int16))


def _four_d(tmp: Path) -> Path:
    return write_nifti(tmp / "time.nii.gz", np.resize(ct_array(), (24, 20, 16, 3)).astype(np.int16))


def _mr_like(tmp: Path) -> Path:
    return write_nifti(tmp / "mr.nii.gz", ((ct_array().astype(float) + 1000) * 0.7).astype(np.int16))


def _eight_bit(tmp: Path) -> Path:
    eight = np.clip((ct_array().astype(float) + 1000) / 8, 0, 255).astype(np.uint8)
    eight[0, 0, 0], eight[1, 1, 1] = 0, 255
    return write_nifti(tmp / "ct8.nii.gz", eight)


def _constant(tmp: Path) -> Path:
    return write_nifti(tmp / "zeros.nii.gz", np.zeros((24, 20, 16), np.int16))


def _truncated(tmp: Path) -> Path:
    return truncate(write_nifti(tmp / "ct.nii.gz", ct_array()))


def _missing(tmp: Path) -> Path:
    return tmp / "nope.nii.gz"


def _unsupported(tmp: Path) -> Path:
    path = tmp / "ct.png"
    path.write_bytes(b"\x89PNG....")
    return path


def _empty_folder(tmp: Path) -> Path:
    path = tmp / "series"
    path.mkdir()
    return path


BAD_INPUTS: list[tuple[Callable[[Path], Path], str]] = [
    (_two_d, r"slice\.nii\.gz: .*image is 2D"),
    (_four_d, r"time\.nii\.gz: .*image is 4D"),
    (_mr_like, r"mr\.nii\.gz: .*do not look like Hounsfield units"),
    (_eight_bit, r"ct8\.nii\.gz: .*export the CT in HU"),
    (_constant, r"zeros\.nii\.gz: .*image is constant"),
    (_truncated, r"ct\.nii\.gz: cannot read it as a NIfTI file"),
    (_missing, r"nope\.nii\.gz: no such file or folder"),
    (_unsupported, r"ct\.png: unsupported file type"),
    (_empty_folder, r"series: no DICOM images found"),
]


@pytest.mark.parametrize(("build", "match"), BAD_INPUTS, ids=[b.__name__[1:] for b, _ in BAD_INPUTS])
def test_check_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, build: Callable[[Path], Path], match: str
) -> None:
    expect_usage_error(capsys, "check", build(tmp_path), match=match)


def test_check_current_folder_names_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(_empty_folder(tmp_path))
    line = expect_usage_error(capsys, "check", ".", match="no DICOM images found")
    assert not line.startswith("sins: error: :"), line


# ---------------------------------------------------------------- analyze
SAMPLE = REPO / "sample_cases" / "unstable_T12_lytic_collapse"


def _analyze_args(out: Path, *extra: object) -> list[object]:
    return [
        "analyze", SAMPLE / "ct.nii.gz", "--labels", SAMPLE / "anatomy.nii.gz",
        "--lesions", SAMPLE / "lesions.nii.gz", "--out", out, *extra,
    ]  # fmt: skip


def test_analyze_sample_with_labels_writes_the_case(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import json

    out = tmp_path / "out"
    case_id = SAMPLE.name  # the id the clinical CSV uses
    code, stdout, err = run_cli(
        capsys, *_analyze_args(out, "--clinical", SAMPLE / "clinical.csv", "--case-id", case_id)
    )
    assert code == 0, err
    assert "T12: SINS 18 unstable" in stdout
    files = sorted(p.name for p in out.iterdir())
    assert {"levels.csv", "segmentation.nii.gz", "segmentation_labels.json", "sins.json", "report.html"} <= set(files)
    doc = json.loads((out / "sins.json").read_text())
    assert doc["case_id"] == case_id
    assert doc["summary"] == {"lesion_levels": ["T12"], "max_total": 18, "max_level": "T12", "category": "unstable"}
    assert doc["software"]["config_sha256"] and doc["software"]["model"] is None
    truth = json.loads((SAMPLE / "truth.json").read_text())
    assert [lv["level"] for lv in doc["levels"]] == [lv["level"] for lv in truth["levels"]]
    header = (out / "levels.csv").read_text().splitlines()[0]
    assert header.startswith("case_id,level,complete,lesion,height_anterior_mm")
    import nibabel as nib

    img, ct = nib.load(out / "segmentation.nii.gz"), nib.load(SAMPLE / "ct.nii.gz")
    assert img.shape == ct.shape and np.allclose(img.affine, ct.affine, atol=1e-4)
    assert {19, 101} <= set(np.unique(np.asarray(img.dataobj)).tolist())  # T12 (VerSe id) and a lytic lesion


def test_analyze_without_pain_gives_a_range(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, stdout, err = run_cli(capsys, *_analyze_args(tmp_path / "out", "--clinical", SAMPLE / "clinical.csv"))
    assert code == 0, err
    assert "T12: SINS 15-18 (pain unknown) unstable" in stdout  # the range decides the category
    doc = (tmp_path / "out" / "sins.json").read_text()
    assert '"case_id": "ct"' in doc  # from the file name, never from a header
    assert "clinical CSV has no row for case 'ct'" in doc


def test_analyze_pain_flag_and_level_override(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, stdout, err = run_cli(capsys, *_analyze_args(tmp_path / "out", "--pain", "none", "--level-offset", "1"))
    assert code == 0, err
    assert "L1: SINS 15 unstable" in stdout  # T12 renamed L1 (still junctional), pain-free
    assert "clinician override" in stdout


def test_analyze_with_a_missing_model_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["analyze", SAMPLE / "ct.nii.gz", "--out", out, "--model", tmp_path / "nowhere"]
    expect_usage_error(capsys, *args, match="no model at .*metadata.json missing")
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--level-offset", "9"], "level override"),
        (["--lowest-level", "Q4"], "unknown"),
    ],
)
def test_analyze_bad_options(capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], match: str) -> None:
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, *_analyze_args(out, *extra))
    line = one_error_line(err)
    assert code in (2, 3) and re.search(match, line), line
    assert not (out / "sins.json").exists()


def test_analyze_bad_clinical_csv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    csv = tmp_path / "clinical.csv"
    csv.write_text("case_id,level,pain\nct,,severe\n")
    line = expect_usage_error(capsys, *_analyze_args(tmp_path / "out", "--clinical", csv), match="row 2")
    assert "severe" in line


def test_analyze_label_map_on_another_grid(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    other = REPO / "sample_cases" / "stable_L3_blastic" / "anatomy.nii.gz"
    args = ["analyze", SAMPLE / "ct.nii.gz", "--labels", other, "--out", tmp_path / "out"]
    expect_usage_error(capsys, *args, match="grid|shape")


def test_analyze_unknown_label_ids(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import nibabel as nib

    ct = nib.load(SAMPLE / "ct.nii.gz")
    bad = np.asarray(nib.load(SAMPLE / "anatomy.nii.gz").dataobj).astype(np.uint8)
    bad[0, 0, 0] = 42
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(bad, ct.affine), path)
    args = ["analyze", SAMPLE / "ct.nii.gz", "--labels", path, "--out", tmp_path / "out"]
    expect_usage_error(capsys, *args, match="unknown label ids")


def test_analyze_empty_label_map_is_a_case_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import nibabel as nib

    ct = nib.load(SAMPLE / "ct.nii.gz")
    path = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(ct.shape, np.uint8), ct.affine), path)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "analyze", SAMPLE / "ct.nii.gz", "--labels", path, "--out", out)
    assert code == 3
    assert "no vertebra" in one_error_line(err)
    assert not (out / "sins.json").exists()


@pytest.mark.parametrize(("build", "match"), [BAD_INPUTS[2], BAD_INPUTS[6]], ids=["mr_like", "missing"])
def test_analyze_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, build: Callable[[Path], Path], match: str
) -> None:
    expect_usage_error(capsys, "analyze", build(tmp_path), "--out", tmp_path / "out", match=match)


# ---------------------------------------------------------------- phantom
def test_phantom_writes_cases_reproducibly(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    start = time.perf_counter()
    code, out, err = run_cli(capsys, "phantom", "--out", tmp_path / "a", "--n", 2, "--seed", 5, *FAST)
    elapsed = time.perf_counter() - start
    assert code == 0, err
    assert err == "" and out == ""  # --quiet: no progress bar; --n 2: no path printed
    assert elapsed < 20, f"two small phantoms took {elapsed:.1f} s"
    cases = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert cases == ["phantom_00005", "phantom_00006"]
    for case in cases:
        for name in CASE_FILES:
            assert (tmp_path / "a" / case / name).is_file(), f"{case}/{name} missing"
    ct = load_ct(tmp_path / "a" / "phantom_00005" / "ct.nii.gz")
    assert np.allclose(ct.spacing, 3.0)

    # the same seed again (alone, so the path is printed) gives the same truth, byte for byte
    code, out, err = run_cli(capsys, "phantom", "--out", tmp_path / "b", "--seed", 5, *FAST)
    assert code == 0, err
    assert out.strip() == str(tmp_path / "b" / "phantom_00005")
    first = (tmp_path / "a" / "phantom_00005" / "truth.json").read_bytes()
    assert (tmp_path / "b" / "phantom_00005" / "truth.json").read_bytes() == first
    again = load_ct(tmp_path / "b" / "phantom_00005" / "ct.nii.gz")
    assert np.array_equal(again.array, ct.array) and np.allclose(again.affine, ct.affine)
    assert (tmp_path / "a" / "phantom_00006" / "truth.json").read_bytes() != first


def test_phantom_orientation_is_written(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "phantom", "--out", tmp_path, "--seed", 1, "--orientation", "pir", *FAST)
    assert code == 0, err
    ct = load_ct(Path(out.strip()) / "ct.nii.gz")
    assert ct.orientation == "PIR"


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--n", "0"], r"^sins: error: --n must be at least 1$"),
        (["--spacing", "1", "2"], r"--spacing takes one value \(isotropic\) or three"),
        (["--spacing", "0.01"], r"--spacing must lie between 0\.3 and 5 mm"),
        (["--spacing", "1", "1", "6"], r"--spacing must lie between 0\.3 and 5 mm"),
        (["--orientation", "XYZ"], r"--orientation 'XYZ': give three axis codes"),
        (["--orientation", "RRS"], r"--orientation 'RRS': give three axis codes"),
        (["--orientation", "RASL"], r"--orientation 'RASL': give three axis codes"),
    ],
)
def test_phantom_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], match: str) -> None:
    expect_usage_error(capsys, "phantom", "--out", tmp_path / "out", *extra, match=match)
    assert not (tmp_path / "out").exists()


def test_phantom_negative_seed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    expect_usage_error(capsys, "phantom", "--out", tmp_path, "--seed", "-1", *FAST, match="--seed")


def test_phantom_out_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    expect_usage_error(capsys, "phantom", "--out", tmp_path / "afile", *FAST, match="afile")


# ---------------------------------------------------------------- the installed executable
def test_installed_sins_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    exe = shutil.which("sins") or str(Path(sys.executable).parent / "sins")
    if not Path(exe).is_file():
        pytest.skip("the `sins` console script is not installed")
    bad = _truncated(tmp_path)
    proc = subprocess.run([exe, "check", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), proc.stderr
    assert proc.stderr.startswith("sins: error: ct.nii.gz: cannot read it as a NIfTI file"), proc.stderr
