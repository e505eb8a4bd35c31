"""Validation against manual SINS (issue #7): statistics against published worked examples and the
reference libraries, the readers' error messages, matching that never drops a row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa

from pipeline.config import load_sins_config
from pipeline.errors import InputError
from pipeline.schema import (
    CaseResult,
    InputInfo,
    LevelResult,
    Measurements,
    Software,
    summarise,
    write_levels_csv,
)
from pipeline.scoring import ITEM_MAX, score_level
from pipeline.validation.agreement import icc_table, kappa_from_confusion, kappa_score, total_agreement
from pipeline.validation.estimates import CaseBootstrap, wilson
from pipeline.validation.matching import consensus, match
from pipeline.validation.raters import fleiss_from_counts, rater_agreement
from pipeline.validation.read_auto import read_auto_levels
from pipeline.validation.read_manual import read_manual_csv
from pipeline.validation.records import ITEM_POINTS, ITEMS, ManualLevel, Points
from pipeline.validation.run import ValidationSettings, validate_rows

CFG = load_sins_config()
HEADER = "case_id,level,location,pain,bone_lesion,alignment,collapse,posterolateral,total"
SETTINGS = ValidationSettings(n_boot=200, seed=0)


# ----------------------------------------------------------------------------- helpers
def measurements(collapse: float = 0.0, lytic: float = 1.0, t_ap: float = 0.0, kyph: float = 0.0, pl=(0.0, 0.0)):
    return Measurements(
        collapse_fraction=collapse,
        body_involvement=0.3,
        lytic_fraction=lytic,
        blastic_fraction=1 - lytic,
        lesion_type="lytic" if lytic > 0.8 else ("blastic" if lytic < 0.2 else "mixed"),
        translation_ap_mm=t_ap,
        translation_lr_mm=0.0,
        kyphosis_deg=kyph,
        scoliosis_deg=0.0,
        posterolateral_left=pl[0],
        posterolateral_right=pl[1],
    )


def case(case_id: str, levels: dict[str, Measurements | None], pain: str | None = "occasional") -> CaseResult:
    """A tool result: levels with measurements are lesion levels scored with the default thresholds."""
    out = tuple(
        LevelResult(lv, True, m is not None, m or Measurements(), score_level(lv, m, CFG, pain) if m else None)
        for lv, m in levels.items()
    )
    return CaseResult(
        case_id, Software("0", None, None, CFG.hash), InputInfo((1, 1, 1), (1.0, 1.0, 1.0), "RAS"), out, summarise(out)
    )


def manual_of(result: CaseResult, rater: str = "r1") -> list[ManualLevel]:
    """Manual rows that agree exactly with the tool."""
    rows = []
    for lv in result.levels:
        if lv.sins is not None:
            s = lv.sins
            p = Points(s.location, s.pain, s.bone_lesion, s.alignment, s.collapse, s.posterolateral, s.total)
            rows.append(ManualLevel(result.case_id, lv.level, rater, p, "test"))
    return rows


def write(tmp_path: Path, text: str, name: str = "manual.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def varied_cases(n: int = 8) -> list[CaseResult]:
    """Cases whose levels cover several points of every item."""
    rng = np.random.default_rng(3)
    levels = ("T4", "T12", "L2", "L5")
    out = []
    for i in range(n):
        chosen = {}
        for lv in levels[: 1 + i % 3]:
            chosen[lv] = measurements(
                collapse=float(rng.choice([0.0, 0.3, 0.6])),
                lytic=float(rng.choice([0.0, 0.5, 1.0])),
                t_ap=float(rng.choice([0.0, 5.0])),
                kyph=float(rng.choice([0.0, 15.0])),
                pl=tuple(float(x) for x in rng.choice([0.0, 0.5], size=2)),
            )
        out.append(case(f"c{i:02d}", chosen, pain=["none", "occasional", "mechanical"][i % 3]))
    return out


def auto_rows(tmp_path: Path, cases: list[CaseResult]):
    return read_auto_levels(write_levels_csv(cases, tmp_path / "levels.csv"))


# ----------------------------------------------------------------------------- published worked examples
def test_cohen_kappa_worked_example() -> None:
    """Wikipedia 'Cohen's kappa' example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> kappa 0.4."""
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert kappa_score(a, b, (0, 1), None) == pytest.approx(0.4, abs=5e-4)


def test_icc_shrout_fleiss_worked_example() -> None:
    """Shrout & Fleiss (Psychol Bull 1979) Table 2, 6 targets x 4 judges: ICC(2,1) 0.29, ICC(3,1) 0.71;
    with the F intervals of McGraw & Wong (R psych::ICC prints 0.290 [0.019, 0.76], 0.715 [0.342, 0.95])."""
    table = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    icc2, icc3 = icc_table(table)
    assert icc2.value == pytest.approx(0.290, abs=5e-4)
    assert icc3.value == pytest.approx(0.715, abs=5e-4)
    assert (icc2.low, icc2.high) == pytest.approx((0.019, 0.761), abs=5e-4)
    assert (icc3.low, icc3.high) == pytest.approx((0.342, 0.946), abs=5e-4)


def test_icc_equals_anova_formula() -> None:
    """ICC(2,1) and ICC(3,1) from the two-way ANOVA mean squares (Shrout & Fleiss 1979)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 19, size=(30, 1)) + rng.integers(-2, 3, size=(30, 2))
    n, k = x.shape
    grand = x.mean()
    msr = k * ((x.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    sse = ((x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + grand) ** 2).sum()
    mse = sse / ((n - 1) * (k - 1))
    icc2, icc3 = icc_table(x)
    assert icc2.value == pytest.approx((msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n), abs=1e-9)
    assert icc3.value == pytest.approx((msr - mse) / (msr + (k - 1) * mse), abs=1e-9)


def test_fleiss_kappa_worked_example() -> None:
    """Fleiss (1971) as worked in Wikipedia 'Fleiss' kappa': 10 subjects, 14 raters, 5 categories -> 0.210."""
    table = np.array(
        [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
         [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    )  # fmt: skip
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)
    k = 14
    per_case = np.concatenate([[len(table), (((table**2).sum(axis=1) - k) / (k * (k - 1))).sum(), k], table.sum(0)])
    assert fleiss_from_counts(per_case) == pytest.approx(0.210, abs=5e-4)


def test_wilson_interval_newcombe_example() -> None:
    """Newcombe (Stat Med 1998) example: 81/263 -> Wilson 0.2553 to 0.3662."""
    e = wilson(81, 263)
    assert (e.low, e.high) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson(0, 0).value is None


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_bootstrap_kappa_formula_equals_scikit_learn(weights: str | None) -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        a, b = rng.integers(0, 4, 60), rng.integers(0, 4, 60)
        conf = np.zeros((4, 4))
        np.add.at(conf, (a, b), 1)
        expected = cohen_kappa_score(a, b, labels=[0, 1, 2, 3], weights=weights)
        assert kappa_from_confusion(conf, weights) == pytest.approx(expected, abs=1e-12)


def test_bland_altman_from_formula_and_bootstrap_is_reproducible() -> None:
    ref = [5, 7, 9, 3, 12, 8, 6, 10]
    tool = [6, 7, 8, 3, 13, 10, 6, 9]
    groups = ["a", "a", "b", "c", "c", "d", "e", "f"]
    d = np.subtract(tool, ref)
    t1 = total_agreement(ref, tool, CaseBootstrap(groups, 300, 5))
    t2 = total_agreement(ref, tool, CaseBootstrap(groups, 300, 5))
    assert t1.bias.value == pytest.approx(d.mean())
    assert t1.sd_diff == pytest.approx(d.std(ddof=1))
    assert t1.loa_low.value == pytest.approx(d.mean() - 1.96 * d.std(ddof=1))
    assert t1.loa_high.value == pytest.approx(d.mean() + 1.96 * d.std(ddof=1))
    assert t1.mean_abs_diff.value == pytest.approx(np.abs(d).mean())
    assert t1 == t2  # fixed seed
    assert t1.bias.low <= t1.bias.value <= t1.bias.high


# ----------------------------------------------------------------------------- whole comparisons
def test_perfect_match_gives_kappa_one_and_zero_bias(tmp_path: Path) -> None:
    cases = varied_cases()
    manual = [r for c in cases for r in manual_of(c)]
    result = validate_rows(auto_rows(tmp_path, cases), manual, CFG, SETTINGS)
    c = result.primary
    assert not c.unmatched and not c.unscored
    assert c.level.n_pairs == len(manual)
    for a in c.level.items:
        assert a.exact_agreement.value == 1
        assert a.kappa.linear.value == pytest.approx(1) and a.kappa.quadratic.value == pytest.approx(1)
        assert np.trace(np.array(a.confusion)) == a.n
    t = c.level.total
    assert t.bias.value == 0 and t.loa_low.value == 0 and t.loa_high.value == 0 and t.mean_abs_diff.value == 0
    assert t.icc_2_1.value == pytest.approx(1) and t.icc_3_1.value == pytest.approx(1)
    assert c.level.categories.accuracy.value == 1
    assert c.case.same_level.value == 1 and c.case.total.bias.value == 0


def test_disagreement_is_counted_where_it_is(tmp_path: Path) -> None:
    """One rater scores collapse one point higher on every level: bias +1 on the total, the confusion
    matrix off the diagonal by one column, every other item perfect."""
    cases = varied_cases()
    manual = []
    for r in (r for c in cases for r in manual_of(c)):
        p = r.points
        collapse = {0: 1, 1: 2, 2: 3, 3: 3}[p.collapse]
        shift = collapse - p.collapse
        points = Points(**{**vars(p), "collapse": collapse, "total": p.total + shift})
        manual.append(ManualLevel(r.case_id, r.level, r.rater, points, "t"))
    c = validate_rows(auto_rows(tmp_path, cases), manual, CFG, SETTINGS).primary
    items = {a.item: a for a in c.level.items}
    assert items["collapse"].exact_agreement.value < 1
    assert all(items[i].exact_agreement.value == 1 for i in ITEMS if i != "collapse")
    diffs = [m.manual.total - m.auto.total for m in c.pairs]
    assert c.level.total.bias.value == pytest.approx(-np.mean(diffs))
    conf = np.array(items["collapse"].confusion)  # rows manual, columns tool
    assert conf.sum() == len(manual) and np.trace(conf) == sum(d == 0 for d in diffs)


def test_unmatched_and_unscored_rows_are_listed(tmp_path: Path) -> None:
    cases = [
        case("c1", {"T11": None, "T12": measurements(0.3), "L1": measurements(0.0)}),
        case("c2", {"L3": measurements(0.6)}, pain=None),
    ]
    auto = auto_rows(tmp_path, cases)
    manual = [r for r in manual_of(cases[0]) if r.level == "T12"]
    p = Points(1, 3, 2, 0, 0, 0, 6)
    manual += [
        ManualLevel("c1", "T11", "r1", Points(3, 3, 2, 0, 0, 0, 8), "row T11"),  # tool: no lesion there
        ManualLevel("c1", "T5", "r1", p, "row T5"),  # not in the tool's field of view
        ManualLevel("c9", "T5", "r1", p, "row c9"),  # case the tool never saw
        ManualLevel("c2", "L3", "r1", Points(2, 1, 2, 0, 3, 0, 8), "row c2"),
    ]
    m = match(auto, manual, "r1")
    reasons = {(u.case_id, u.level, u.side): u.reason for u in m.unmatched}
    assert reasons[("c1", "T11", "manual")] == "the tool found no lesion at this level"
    assert reasons[("c1", "T5", "manual")].startswith("level not found by the tool")
    assert reasons[("c9", "T5", "manual")] == "case not in the tool's levels.csv"
    assert reasons[("c1", "L1", "auto")] == "lesion level not scored by the rater"
    assert len(m.pairs) == 2
    c2 = next(p for p in m.pairs if p.case_id == "c2")
    assert c2.pain_from_manual and c2.auto.total == 2 + 1 + 2 + 0 + 3 + 0  # the tool's items + the rater's pain
    assert [(u.case_id, u.missing) for u in m.unscored] == [("c2", ("pain",))]
    worst = {c.case_id: (c.auto_level, c.manual_level) for c in m.case_pairs}
    assert worst == {"c1": ("T12", "T11"), "c2": ("L3", "L3")}  # each side's own most unstable level


def test_several_raters_consensus_and_their_own_agreement(tmp_path: Path) -> None:
    cases = varied_cases(10)
    r1 = [r for c in cases for r in manual_of(c, "r1")]
    r2 = [r for c in cases for r in manual_of(c, "r2")]
    r3 = []
    for i, r in enumerate(r for c in cases for r in manual_of(c, "r3")):
        p = r.points
        pain = 3 if i % 4 == 0 else p.pain  # r3 disagrees on pain now and then
        points = Points(**{**vars(p), "pain": pain, "total": p.total - p.pain + pain})
        r3.append(ManualLevel(r.case_id, r.level, "r3", points, "t"))
    manual = r1 + r2 + r3
    result = validate_rows(auto_rows(tmp_path, cases), manual, CFG, SETTINGS)
    assert [c.reference for c in result.comparisons] == ["r1", "r2", "r3", "consensus"]
    assert result.primary.level.total.bias.value == 0  # the median follows the two who agree with the tool
    ra = result.rater_agreement
    assert ra is not None and ra.raters == ("r1", "r2", "r3") and ra.n_levels == len(r1)
    fleiss = {f.item: f.kappa.value for f in ra.fleiss}
    assert fleiss["collapse"] == pytest.approx(1) and fleiss["pain"] < 1
    rows = [[r.points.pain for r in (a, b, c)] for a, b, c in zip(r1, r2, r3, strict=True)]
    labels = {v: i for i, v in enumerate(ITEM_POINTS["pain"])}
    table = np.array([[sum(labels[v] == j for v in row) for j in range(3)] for row in rows])
    assert fleiss["pain"] == pytest.approx(fleiss_kappa(table), abs=1e-12)
    assert rater_agreement(manual, ("r1", "r2"), 200, 0).icc_2_1.value == pytest.approx(1)


def test_consensus_is_a_valid_score() -> None:
    rows = [ManualLevel("c", "L1", r, Points(3, pain, 2, 0, 0, 0, 5 + pain), "t") for r, pain in (("a", 0), ("b", 3))]
    (c,) = consensus(rows)
    assert c.points.pain in ITEM_POINTS["pain"] and c.points.total == 5 + c.points.pain


# ----------------------------------------------------------------------------- readers
def test_item_points_agree_with_the_scorer() -> None:
    assert {k: max(v) for k, v in ITEM_POINTS.items()} == ITEM_MAX


def test_manual_csv_blank_means_not_assessed(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER},rater\nc1,l1,3,,2,0,2,1,,amy\nc1,T12,3,1,2,0,2,1,,amy\n")
    a, b = read_manual_csv(path)
    assert a.level == "L1" and a.rater == "amy" and a.points.pain is None and a.points.total is None
    assert b.points.total == 9  # derived from complete items


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("c1,L7,3,1,2,0,2,1,9", r"row 2: unknown level 'L7'"),
        ("c1,L1,3,2,2,0,2,1,10", r"row 2: pain = '2' is not a pain score; expected one of 0/1/3"),
        ("c1,L1,3,1,2,3,2,1,12", r"row 2: alignment = '3' .* 0/2/4"),
        ("c1,L1,4,1,2,0,2,1,10", r"row 2: location = '4' .* 0/1/2/3"),
        ("c1,L1,3,1,3,0,2,1,10", r"row 2: bone_lesion = '3' .* 0/1/2"),
        ("c1,L1,3,1,2,0,4,1,11", r"row 2: collapse = '4'"),
        ("c1,L1,3,1,2,0,2,2,10", r"row 2: posterolateral = '2' .* 0/1/3"),
        ("c1,L1,3,1,2,0,2,1,10", r"row 2: total = 10 differs from the sum of the items \(9\)"),
        ("c1,L1,3,,2,0,2,1,19", r"row 2: total = '19' is outside 0-18"),
        ("c1,L1,3,1,2,0,2,x,9", r"row 2: posterolateral = 'x' is not a number"),
        ("c1,L1,3,1,2,0,2,1.5,9", r"row 2: posterolateral = '1.5' is not a whole number"),
        (",L1,3,1,2,0,2,1,9", r"row 2: blank case_id"),
    ],
)
def test_bad_manual_rows_name_the_row(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, f"{HEADER}\n{row}\n")
    with pytest.raises(InputError, match=message) as info:
        read_manual_csv(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bad_manual_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing column\(s\) collapse, total"):
        read_manual_csv(write(tmp_path, "case_id,level,location,pain,bone_lesion,alignment,posterolateral\n"))
    with pytest.raises(InputError, match=r"row 3: case c1 level L1 rater manual already scored at .* row 2"):
        read_manual_csv(write(tmp_path, f"{HEADER}\nc1,L1,3,1,2,0,2,1,9\nc1,L1,3,1,2,0,2,1,9\n"))
    with pytest.raises(InputError, match="no rows under the header"):
        read_manual_csv(write(tmp_path, f"{HEADER}\n"))
    with pytest.raises(InputError, match="cannot read"):
        read_manual_csv(tmp_path / "absent.csv")


def test_levels_csv_round_trip(tmp_path: Path) -> None:
    cases = varied_cases(3)
    rows = auto_rows(tmp_path, cases)
    lesion = [r for r in rows if r.sins is not None]
    expected = [lv for c in cases for lv in c.levels if lv.sins is not None]
    assert [r.sins for r in lesion] == [lv.sins for lv in expected]
    assert lesion[0].measurements.collapse_fraction == expected[0].measurements.collapse_fraction
    bad = write(tmp_path, (tmp_path / "levels.csv").read_text().replace(",T4,", ",T99,", 1), "bad.csv")
    with pytest.raises(InputError, match=r"bad.csv row 2: unknown level 'T99'"):
        read_auto_levels(bad)
