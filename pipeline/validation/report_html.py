"""The self-contained `validation.html` report (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
from html import escape

from .agreement import BinaryAgreement, CategoryAgreement, TotalAgreement
from .comparison import Comparison
from .estimates import Estimate
from .plots import bland_altman_png, confusion_png
from .published import AUTOMATED_BEST, HUMAN_BAR, PublishedFigure
from .raters import RaterAgreement
from .run import ValidationResult

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.figs img{margin:.3em;vertical-align:top}.note{color:#666;font-size:.9em}
"""


def _fmt(e: Estimate | None, percent: bool = False) -> str:
    if e is None or e.value is None:
        return "n/a"
    scale, digits = (100, 1) if percent else (1, 3)

    def f(x: float) -> str:
        return f"{x * scale:.{digits}f}"

    ci = f" [{f(e.low)}, {f(e.high)}]" if e.low is not None and e.high is not None else ""
    return f"{f(e.value)}{ci}"


def _range(f: PublishedFigure) -> str:
    return f"{f.low:.2f}" if f.low == f.high else f"{f.low:.2f}-{f.high:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _bar_table(c: Comparison, raters: RaterAgreement | None) -> str:
    items = {a.item: a for a in c.level.items}
    fleiss = {f.item: f for f in raters.fleiss} if raters else {}
    rows = []
    for fig in (*HUMAN_BAR, *AUTOMATED_BEST):
        if fig.what in items:
            tool = _fmt(items[fig.what].kappa.unweighted)
            here = _fmt(fleiss[fig.what].kappa) if fig.what in fleiss else ""
        elif fig.what == "total":
            tool, here = _fmt(c.level.total.icc_2_1), _fmt(raters.icc_2_1) if raters else ""
        elif fig.what == "referral":
            tool, here = _fmt(c.level.referral.kappa), ""
        else:
            tool, here = _fmt(c.level.categories.accuracy), ""
        row = [fig.what.replace("_", " "), fig.statistic, tool, _range(fig), fig.source]
        rows.append([*row[:3], here, *row[3:]] if raters else row)
    header = ["item", "statistic", f"tool vs {c.reference} [95% CI]", "published", "source"]
    if raters:
        header.insert(3, "raters among themselves (Fleiss κ / ICC)")
    return _table(header, rows)


def _total_rows(t: TotalAgreement) -> list[list[str]]:
    sd = f"{t.sd_diff:.3f}" if t.sd_diff is not None else "n/a"
    return [
        ["n", str(t.n)],
        ["ICC(2,1) absolute agreement", _fmt(t.icc_2_1)],
        ["ICC(3,1) consistency", _fmt(t.icc_3_1)],
        ["mean absolute difference", _fmt(t.mean_abs_diff)],
        ["Bland-Altman bias (tool - reference)", _fmt(t.bias)],
        ["SD of differences", sd],
        ["lower limit of agreement", _fmt(t.loa_low)],
        ["upper limit of agreement", _fmt(t.loa_high)],
    ]


def _category_rows(cat: CategoryAgreement, binaries: tuple[BinaryAgreement, ...]) -> list[list[str]]:
    rows = [
        ["three categories: accuracy", _fmt(cat.accuracy, percent=True) + " %"],
        ["three categories: κ linear", _fmt(cat.kappa.linear)],
        ["three categories: κ quadratic", _fmt(cat.kappa.quadratic)],
    ]
    for b in binaries:
        name = f"{b.name} (total ≥ {b.threshold})"
        rows += [
            [f"{name}: TP/FP/FN/TN", f"{b.tp}/{b.fp}/{b.fn}/{b.tn}"],
            [f"{name}: sensitivity", _fmt(b.sensitivity, percent=True) + " %"],
            [f"{name}: specificity", _fmt(b.specificity, percent=True) + " %"],
            [f"{name}: PPV", _fmt(b.ppv, percent=True) + " %"],
            [f"{name}: NPV", _fmt(b.npv, percent=True) + " %"],
            [f"{name}: κ", _fmt(b.kappa)],
        ]
    return rows


def _comparison(c: Comparison, figures: bool) -> str:
    lv, cs = c.level, c.case
    parts = [f"<h2>Tool against {escape(c.reference)}</h2>"]
    pain = (
        f" For {lv.pain_from_manual} levels the tool had no pain: its total uses the rater's pain."
        if lv.pain_from_manual
        else ""
    )
    parts.append(
        f"<p>{lv.n_pairs} matched levels in {lv.n_cases} cases; {len(c.unmatched)} unmatched rows and "
        f"{len(c.unscored)} rows with items not assessed (listed below).{pain}</p>"
    )
    item_rows = [
        [
            a.item.replace("_", " "),
            str(a.n),
            _fmt(a.exact_agreement, percent=True) + " %",
            _fmt(a.kappa.unweighted),
            _fmt(a.kappa.linear),
            _fmt(a.kappa.quadratic),
        ]
        for a in lv.items
    ]
    parts.append("<h3>Items (per level)</h3>")
    parts.append(_table(["item", "n", "exact agreement", "κ", "κ linear", "κ quadratic"], item_rows))
    parts.append("<h3>Total (per level)</h3>" + _table(["statistic", "value [95% CI]"], _total_rows(lv.total)))
    parts.append(
        "<h3>Categories and thresholds (per level)</h3>"
        + _table(["statistic", "value [95% CI]"], _category_rows(lv.categories, (lv.referral, lv.unstable)))
    )
    parts.append(
        f"<h3>Per case (most unstable level on each side, {cs.n_cases} cases)</h3>"
        + _table(
            ["statistic", "value [95% CI]"],
            [
                ["same most unstable level", _fmt(cs.same_level, percent=True) + " %"],
                *_total_rows(cs.total),
                *_category_rows(cs.categories, (cs.referral, cs.unstable)),
            ],
        )
    )
    if figures:
        imgs = [
            _img(bland_altman_png(lv.total, f"Bland-Altman, levels (tool vs {c.reference})"), "Bland-Altman levels"),
            _img(bland_altman_png(cs.total, f"Bland-Altman, cases (tool vs {c.reference})"), "Bland-Altman cases"),
            _img(confusion_png(lv.categories.confusion, lv.categories.labels, "categories (levels)"), "categories"),
        ]
        imgs += [_img(confusion_png(a.confusion, a.labels, a.item.replace("_", " ")), a.item) for a in lv.items]
        parts.append('<h3>Figures</h3><div class="figs">' + "".join(imgs) + "</div>")
    if c.unmatched:
        rows = [[u.case_id, u.level or "", u.side, u.reason, u.where] for u in c.unmatched]
        parts.append("<h3>Unmatched rows</h3>" + _table(["case", "level", "side", "reason", "row"], rows))
    if c.unscored:
        rows = [[u.case_id, u.level, u.side, ", ".join(u.missing), u.where] for u in c.unscored]
        parts.append("<h3>Items not assessed</h3>" + _table(["case", "level", "side", "missing", "row"], rows))
    return "\n".join(parts)


def validation_html(result: ValidationResult) -> str:
    primary = result.primary
    raters = result.rater_agreement
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>OpenSINS validation</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>OpenSINS against manual SINS</h1>",
        _table(
            ["", ""],
            [
                ["tool (levels.csv)", result.auto_source],
                ["manual", result.manual_source],
                ["raters", ", ".join(result.raters)],
                ["tool lesion levels / rows", f"{result.n_auto_lesion_levels} / {result.n_auto_rows}"],
                ["manual rows", str(result.n_manual_rows)],
                ["OpenSINS version", result.software_version],
                ["configuration sha256", result.config_sha256[:16] + "…"],
                ["intervals", f"95 %; bootstrap by case, {result.n_boot} replicates, seed {result.seed}"],
            ],
        ),
        f"<h2>Beside the published agreement (tool vs {escape(primary.reference)}, per level)</h2>",
        _bar_table(primary, raters),
        "<p class='note'>Confusion matrices: rows reference, columns tool. Weighted κ weighs disagreement by the "
        "distance in category order. Intervals: Wilson for proportions, F distribution for ICC, case bootstrap "
        "otherwise.</p>",
    ]
    if raters:
        rows = [[f.item.replace("_", " "), str(f.n), _fmt(f.kappa)] for f in raters.fleiss]
        rows.append(["total ICC(2,1)", str(raters.n_total), _fmt(raters.icc_2_1)])
        rows.append(["total ICC(3,1)", str(raters.n_total), _fmt(raters.icc_3_1)])
        parts.append(
            f"<h2>Raters among themselves ({', '.join(map(escape, raters.raters))}; "
            f"{raters.n_levels} levels in {raters.n_cases} cases)</h2>"
            + _table(["item", "n", "Fleiss κ / ICC [95% CI]"], rows)
        )
    parts.append(_comparison(primary, figures=True))
    parts += [_comparison(c, figures=False) for c in result.comparisons[:-1]]
    parts.append("</body></html>")
    return "\n".join(parts)
