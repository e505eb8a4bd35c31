"""`sins validate` and `sins calibrate` end to end (in-process), their files, and phantom truth as the
manual side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.cli import main
from pipeline.config import load_sins_config
from pipeline.schema import (
    CaseResult,
    InputInfo,
    LevelResult,
    Measurements,
    Software,
    case_to_dict,
    summarise,
    write_json_atomic,
    write_levels_csv,
)
from pipeline.scoring import lesion_type, score_level
from pipeline.validation.calibrate import CalibrationGrid, calibrate_rows
from pipeline.validation.phantom_truth import manual_from_truth_dir, write_manual_csv
from pipeline.validation.read_auto import read_auto_levels
from pipeline.validation.read_manual import read_manual_csv

CFG = load_sins_config()
LEVELS = ("T3", "T8", "T12", "L2", "L4")
#: Thresholds a site's raters apply instead of the defaults (each on the default calibration grid).
SHIFTED = {
    "collapse": {"onset_fraction": 0.3},
    "alignment": {"translation_mm": 4.5, "deformity_deg": 14.0},
    "lesion": {"mixed_minor_fraction": 0.3},
    "posterolateral": {"min_side_volume_ml": 0.16},
}


def random_case(case_id: str, rng: np.random.Generator, cfg, n_levels: int = 3) -> CaseResult:
    levels = []
    for lv in sorted(rng.choice(LEVELS, n_levels, replace=False), key=LEVELS.index):
        lytic = float(rng.uniform(0, 1))
        m = Measurements(
            collapse_fraction=float(rng.uniform(0, 0.45)),
            body_involvement=float(rng.uniform(0, 0.45)),
            lytic_fraction=lytic,
            blastic_fraction=1 - lytic,
            lesion_type=lesion_type(lytic, 1 - lytic, cfg),
            translation_ap_mm=float(rng.uniform(0, 7)),
            translation_lr_mm=0.0,
            kyphosis_deg=float(rng.uniform(0, 22)),
            scoliosis_deg=0.0,
            posterolateral_left=float(rng.uniform(0, 0.35)),
            posterolateral_right=float(rng.uniform(0, 0.35)),
        )
        levels.append(LevelResult(str(lv), True, True, m, score_level(str(lv), m, cfg, "occasional")))
    levels = tuple(levels)
    software = Software("0", None, None, cfg.hash)
    return CaseResult(case_id, software, InputInfo((1, 1, 1), (1.0,) * 3, "RAS"), levels, summarise(levels))


def rounded(case: CaseResult) -> CaseResult:
    """The case as levels.csv stores it (measurements to 4 decimals)."""
    import dataclasses

    levels = tuple(
        dataclasses.replace(
            lv,
            measurements=Measurements(
                **{k: round(v, 4) if isinstance(v, float) else v for k, v in vars(lv.measurements).items()}
            ),
        )
        for lv in case.levels
    )
    return dataclasses.replace(case, levels=levels)


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A run folder (per-case levels.csv scored with the defaults) and the site's truth folder and
    manual CSV (the same measurements scored with SHIFTED thresholds)."""
    overlay = tmp_path / "shifted.yaml"
    overlay.write_text(yaml.safe_dump(SHIFTED))
    shifted = load_sins_config(overlay)
    rng = np.random.default_rng(11)
    run, truth = tmp_path / "run", tmp_path / "truth"
    for i in range(40):
        auto = rounded(random_case(f"case{i:02d}", rng, CFG))
        write_levels_csv([auto], run / auto.case_id / "levels.csv")
        rescored = tuple(_rescored(lv, shifted) for lv in auto.levels)
        doc = case_to_dict(CaseResult(auto.case_id, auto.software, auto.input, rescored, summarise(rescored)))
        write_json_atomic(doc, truth / auto.case_id / "truth.json")
    manual = write_manual_csv(manual_from_truth_dir(truth), tmp_path / "manual.csv")
    return run, truth, manual


def _rescored(lv: LevelResult, cfg) -> LevelResult:
    m = lv.measurements
    m = Measurements(**{**vars(m), "lesion_type": lesion_type(m.lytic_fraction, m.blastic_fraction, cfg)})
    return LevelResult(lv.level, True, True, m, score_level(lv.level, m, cfg, "occasional"))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- validate
def test_validate_writes_json_and_html(capsys: pytest.CaptureFixture[str], tmp_path: Path, site) -> None:
    run, _, manual = site
    out = tmp_path / "report"
    code, stdout, err = run_cli(capsys, "validate", "--auto", run, "--manual", manual, "--out", out, "--bootstrap", 200)
    assert (code, err) == (0, "")
    assert "tool vs truth: 120 levels in 40 cases, 0 unmatched" in stdout
    doc = json.loads((out / "validation.json").read_text())
    assert doc["primary"] == "truth" and doc["n_boot"] == 200
    level = doc["comparisons"][0]["level"]
    assert {i["item"] for i in level["items"]} == {
        "location", "pain", "bone_lesion", "alignment", "collapse", "posterolateral"
    }  # fmt: skip
    assert level["items"][0]["exact_agreement"]["value"] == 1  # location comes from the level name
    assert level["total"]["icc_2_1"]["method"].startswith("F distribution")
    assert level["referral"]["threshold"] == 7 and level["unstable"]["threshold"] == 13
    html = (out / "validation.html").read_text()
    assert html.count("data:image/png;base64,") >= 9 and "Fourney" in html and "Bland-Altman" in html
    assert sorted(p.name for p in out.iterdir()) == ["validation.html", "validation.json"]  # no temporary files


def test_validate_against_phantom_truth_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path, site) -> None:
    """The truth folder as the manual side; written out as a manual CSV that reads back the same."""
    run, truth, _ = site
    csv_path = tmp_path / "from_truth.csv"
    code, stdout, _ = run_cli(
        capsys, "validate", "--auto", run, "--manual", truth, "--out", tmp_path / "r", "--write-manual", csv_path
    )
    assert code == 0 and f"manual side written to {csv_path}" in stdout
    back = [(r.case_id, r.level, r.rater, r.points) for r in read_manual_csv(csv_path)]
    assert back == [(r.case_id, r.level, r.rater, r.points) for r in manual_from_truth_dir(truth)]


def test_validate_bad_manual_is_one_line_naming_the_row(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, site
) -> None:
    run, _, manual = site
    bad = tmp_path / "bad.csv"
    cells = manual.read_text().splitlines()
    cells[3] = ",".join([*cells[3].split(",")[:3], "2", *cells[3].split(",")[4:]])  # pain 2
    bad.write_text("\n".join(cells) + "\n")
    code, out, err = run_cli(capsys, "validate", "--auto", run, "--manual", bad, "--out", tmp_path / "r")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("sins: error: ") and "bad.csv row 4: pain = '2'" in err
    code, _, err = run_cli(capsys, "validate", "--auto", tmp_path / "nothing", "--manual", bad, "--out", tmp_path / "r")
    assert code == 2 and "no such file or folder" in err


# ----------------------------------------------------------------------------- calibrate
def test_calibration_recovers_shifted_thresholds(site) -> None:
    run, _, manual = site
    result = calibrate_rows(read_auto_levels(run), read_manual_csv(manual), CFG, k=4, n_boot=200)
    grid = CalibrationGrid()
    step = {name: np.diff(getattr(grid, name)).min() for name in vars(result.fitted)}
    expected = {
        "onset_fraction": 0.3,
        "translation_mm": 4.5,
        "deformity_deg": 14.0,
        "mixed_minor_fraction": 0.3,
        "min_side_volume_ml": 0.16,
    }
    for name, value in expected.items():
        assert abs(getattr(result.fitted, name) - value) <= step[name] + 1e-9, name
    before = {a.item: a.exact_agreement.value for a in result.held_out_before.items}
    after = {a.item: a.exact_agreement.value for a in result.held_out_after.items}
    for item in ("bone_lesion", "alignment", "collapse", "posterolateral"):
        assert after[item] > before[item], item
    assert len(result.folds) == 4 and sum(f.n_test_levels for f in result.folds) == result.n_levels == 120


def test_calibrate_cli_writes_an_overlay_the_config_loader_accepts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, site
) -> None:
    run, _, manual = site
    out = tmp_path / "configs" / "site.yaml"
    code, stdout, err = run_cli(capsys, "calibrate", "--auto-dir", run, "--manual", manual, "--out", out, "--folds", 3)
    assert (code, err) == (0, ""), err
    assert "held out, before" in stdout and "held out, after" in stdout
    cfg = load_sins_config(out)
    assert cfg.collapse.onset_fraction != CFG.collapse.onset_fraction
    assert cfg.category == CFG.category  # only the calibrated keys change
    report = json.loads((tmp_path / "configs" / "site.calibration.json").read_text())
    assert report["held_out_summary"]["after"]["levels"] == 120
    code, _, err = run_cli(capsys, "calibrate", "--auto-dir", run, "--manual", manual, "--out", tmp_path / "x.txt")
    assert code == 2 and "give a .yaml file name" in err
