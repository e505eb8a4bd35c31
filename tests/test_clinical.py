"""Clinician CSV: parsing, precedence of pain and location, level-naming overrides, every error path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.anatomy import ALL_LEVELS
from pipeline.clinical import (
    ClinicalInfo,
    LevelOverride,
    clinical_for,
    clinical_notes,
    parse_level_override,
    read_clinical_csv,
)
from pipeline.errors import InputError


def write(tmp_path: Path, text: str, name: str = "clinical.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """case_id,level,pain,location,lowest_level,level_offset
c1,,occasional,,,
c1,t7,mechanical,,,
c1,T9,,rigid,,
c1,T7,mechanical,,,

c2,,none,mobile,L4,
c3,L1,mechanical,,,
c3,,,,,-2
"""


def test_good_file_and_precedence(tmp_path: Path) -> None:
    table = read_clinical_csv(write(tmp_path, GOOD))
    assert set(table) == {"c1", "c2", "c3"}
    c1 = table["c1"]
    assert c1.pain == {None: "occasional", "T7": "mechanical"}
    assert c1.location == {"T9": "rigid"}
    assert c1.override is None
    assert c1.pain_for("T7") == "mechanical"  # level-specific beats case-wide
    assert c1.pain_for("T9") == "occasional"  # blank pain on a level row falls back to case-wide
    assert c1.location_for("T9") == "rigid"
    assert c1.location_for("T7") is None  # derive from the level
    assert c1.levels_named() == ("T7", "T9")
    c2 = table["c2"]
    assert c2.pain_for("L2") == "none"
    assert c2.location_for("L2") == "mobile"
    assert c2.override == LevelOverride(lowest_level="L4")
    c3 = table["c3"]
    assert c3.override == LevelOverride(offset=-2)
    assert c3.pain_for("L1") == "mechanical"
    assert c3.pain_for("L2") is None


def test_command_line_pain_is_the_last_resort(tmp_path: Path) -> None:
    table = read_clinical_csv(write(tmp_path, GOOD))
    c1 = clinical_for(table, "c1", pain="none")  # CSV case-wide pain wins over --pain
    assert c1.pain_for("T7") == "mechanical"
    assert c1.pain_for("L1") == "occasional"
    c3 = clinical_for(table, "c3", pain="Occasional ")  # no CSV case-wide pain: --pain fills it
    assert c3.pain_for("L1") == "mechanical"
    assert c3.pain_for("L2") == "occasional"
    assert c3.override == LevelOverride(offset=-2)
    other = clinical_for(table, "unknown-case", pain="none")
    assert other == ClinicalInfo(case_id="unknown-case", pain={None: "none"}, location={})
    assert clinical_for(table, "unknown-case").pain_for("T1") is None
    assert table["c3"].pain_for("L2") is None  # the table itself is not changed


def test_command_line_pain_is_validated(tmp_path: Path) -> None:
    table = read_clinical_csv(write(tmp_path, GOOD))
    with pytest.raises(InputError, match=r"--pain: unknown pain 'severe'; expected one of mechanical, occasional"):
        clinical_for(table, "c3", pain="severe")
    with pytest.raises(InputError, match=r"unknown pain 'severe'"):
        clinical_for(table, "c1", pain="severe")  # even when the CSV gives the pain


def test_optional_columns_may_be_left_out(tmp_path: Path) -> None:
    table = read_clinical_csv(write(tmp_path, "case_id,level,pain\nc1,,mechanical\n"))
    assert table["c1"] == ClinicalInfo(case_id="c1", pain={None: "mechanical"}, location={})


def test_header_only_gives_an_empty_table(tmp_path: Path) -> None:
    assert read_clinical_csv(write(tmp_path, "case_id,level,pain\n")) == {}


def test_bom_case_insensitive_header_and_values(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeff Case_ID ,LEVEL, Pain ,Location\r\nc1, l1 , MECHANICAL ,Semi-Rigid\r\n".encode())
    info = read_clinical_csv(path)["c1"]
    assert info.pain == {"L1": "mechanical"}
    assert info.location == {"L1": "semi-rigid"}


def test_trailing_empty_header_column_is_tolerated(tmp_path: Path) -> None:
    table = read_clinical_csv(write(tmp_path, "case_id,level,pain,\nc1,T1,none,\n"))
    assert table["c1"].pain == {"T1": "none"}
    with pytest.raises(InputError, match=r"row 2: value 'x' in a column without a header name"):
        read_clinical_csv(write(tmp_path, "case_id,level,pain,\nc1,T1,none,x\n"))


def test_identical_duplicate_rows_are_fine(tmp_path: Path) -> None:
    text = "case_id,level,pain,lowest_level\nc1,,none,L5\nc1,,none,l5\nc1,,,\n"
    info = read_clinical_csv(write(tmp_path, text))["c1"]
    assert info.pain == {None: "none"}
    assert info.override == LevelOverride(lowest_level="L5")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        # unknown columns and a missing required column
        ("case_id,level,pain,rater\n", r"row 1: unknown column 'rater'; known: case_id, level, pain, location"),
        ("case_id,pain\nc1,none\n", r"header lacks column level; required: case_id, level, pain"),
        ("case_id,level,pain,pain\n", r"row 1: column 'pain' appears twice"),
        # cells
        ("case_id,level,pain\n ,T1,none\n", r"row 2: case_id is empty"),
        ("case_id,level,pain\nc1,T1,none\nc1,X7,none\n", r"row 3: unknown level 'X7'; expected one of C1, C2"),
        (
            "case_id,level,pain\nc1,T1,severe\n",
            r"row 2: unknown pain 'severe'; expected one of mechanical, occasional, none",
        ),
        ("case_id,level,pain\nc1,T1,no\n", r"row 2: unknown pain 'no'"),
        (
            "case_id,level,pain,location\nc1,T1,,flexible\n",
            r"row 2: unknown location 'flexible'; expected one of junctional, mobile, semi-rigid, rigid",
        ),
        ("case_id,level,pain\nc1,T1,none,extra\n", r"row 2: 4 fields but the header has 3 columns"),
        # level-naming overrides
        (
            "case_id,level,pain,lowest_level\nc1,T12,,L4\n",
            r"row 2: lowest_level 'L4' given on a row for level T12; .*leave level blank",
        ),
        (
            "case_id,level,pain,level_offset\nc1,T12,,1\n",
            r"row 2: level_offset '1' given on a row for level T12",
        ),
        ("case_id,level,pain,lowest_level\nc1,,,Q4\n", r"row 2: unknown lowest_level 'Q4'; expected one of C1"),
        ("case_id,level,pain,level_offset\nc1,,,two\n", r"row 2: level_offset 'two' is not an integer; .*-5 to 5"),
        ("case_id,level,pain,level_offset\nc1,,,1.5\n", r"row 2: level_offset '1.5' is not an integer"),
        ("case_id,level,pain,level_offset\nc1,,,-6\n", r"row 2: level offset -6 is too large; .*-5 to 5"),
        (
            "case_id,level,pain,lowest_level,level_offset\nc1,,,L4,1\n",
            r"row 2: case 'c1' has both lowest_level 'L4' and level_offset 1; give only one",
        ),
        (
            "case_id,level,pain,lowest_level,level_offset\nc1,,,L4,\nc2,,,,1\nc1,,,,2\n",
            r"row 4: case 'c1' has both lowest_level 'L4' and level_offset 2",
        ),
        # conflicting duplicates
        (
            "case_id,level,pain\nc1,T1,none\nc1,t1,mechanical\n",
            r"row 3: pain 'mechanical' conflicts with 'none' given on an earlier row",
        ),
        ("case_id,level,pain\nc1,,none\n\nc1,,occasional\n", r"row 4: pain 'occasional' conflicts with 'none'"),
        (
            "case_id,level,pain,location\nc1,,,rigid\nc1,,,mobile\n",
            r"row 3: location 'mobile' conflicts with 'rigid'",
        ),
        (
            "case_id,level,pain,lowest_level\nc1,,,L4\nc1,,,L5\n",
            r"row 3: lowest_level 'L5' conflicts with 'L4'",
        ),
    ],
)
def test_errors_name_file_row_and_value(tmp_path: Path, text: str, pattern: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=pattern) as err:
        read_clinical_csv(path)
    message = str(err.value)
    assert message.startswith(str(path))
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv: clinical CSV not found"):
        read_clinical_csv(tmp_path / "nope.csv")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"is a folder"):
        read_clinical_csv(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("case_id,level,pain\nRené,T1,none\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.csv: clinical CSV is not UTF-8"):
        read_clinical_csv(path)


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff", " , ,\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(InputError, match=r"clinical\.csv: clinical CSV is empty"):
        read_clinical_csv(write(tmp_path, text))


def test_notes(tmp_path: Path) -> None:
    text = "case_id,level,pain,location,level_offset\nc1,T7,mechanical,,\nc1,T9,,rigid,\nc1,L2,none,rigid,\nc1,,,,1\n"
    info = read_clinical_csv(write(tmp_path, text))["c1"]
    notes = clinical_notes(info, ["L2", "T7"])
    assert notes == (
        "clinical CSV gives location for T9, which carries no lesion in this case",
        "location of L2 set to rigid by the clinician (from the level: mobile)",
        "clinical CSV shifts the level names 1 caudally",
    )
    assert clinical_notes(ClinicalInfo(case_id="c", pain={None: "none"}), ["T1"]) == ()
    both = ClinicalInfo(case_id="c", pain={"T4": "none"}, location={"T4": "rigid"}, override=LevelOverride("S1"))
    assert clinical_notes(both, []) == (
        "clinical CSV gives pain and location for T4, which carries no lesion in this case",
        "clinical CSV names the most caudal vertebra S1",
    )


def test_parse_level_override() -> None:
    assert parse_level_override(None, None) is None
    assert parse_level_override("l4", None) == LevelOverride(lowest_level="L4")
    assert parse_level_override(None, -3) == LevelOverride(offset=-3)
    assert parse_level_override(None, 5) == LevelOverride(offset=5)
    assert all(parse_level_override(lv, None) == LevelOverride(lowest_level=lv) for lv in ALL_LEVELS)


@pytest.mark.parametrize(
    ("lowest", "offset", "pattern"),
    [
        ("L9", None, r"unknown lowest level 'L9'; expected one of C1, C2"),
        (None, 6, r"level offset 6 is too large; expected an integer from -5 to 5"),
        (None, -6, r"level offset -6 is too large"),
        ("L4", 1, r"give either a lowest level \('L4'\) or a level offset \(1\), not both"),
        (None, "2", r"level offset '2' is not an integer"),
        (None, True, r"level offset True is not an integer"),
    ],
)
def test_parse_level_override_errors(lowest: str | None, offset: object, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        parse_level_override(lowest, offset)  # type: ignore[arg-type]
