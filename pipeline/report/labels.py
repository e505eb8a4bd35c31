"""The label table of `segmentation.nii.gz`, declared once and written for each tool that opens it.

`segmentation.nii.gz` holds vertebrae by VerSe level id (1-28) and lesions as 101 lytic / 102
blastic (`analyze.SEGMENTATION_LESION_IDS`). The same table is written three ways:

- `segmentation_labels.json`: ``{"labels": {id: name}, "colours": {id: [r, g, b]}}`` (scripts);
- `segmentation.itksnap.txt`: ITK-SNAP label description file (Segmentation > Import Label
  Descriptions);
- `segmentation.ctbl`: 3D Slicer colour table (load it, then pick it as the label map's colour
  table in Volumes > Display).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..anatomy import LESION_COLOURS, VERSE_IDS, Lesion
from ..schema import write_json_atomic, write_text_atomic

#: Vertebra colours, cycled by level id so that neighbours always differ (bone-like, distinct).
LEVEL_PALETTE: tuple[tuple[int, int, int], ...] = (
    (241, 214, 145),
    (128, 174, 128),
    (111, 184, 210),
    (216, 101, 79),
    (183, 156, 220),
    (244, 170, 60),
)


@dataclass(frozen=True)
class Label:
    """One entry of the label table."""

    id: int
    name: str
    colour: tuple[int, int, int]


def level_colour(level: str) -> tuple[int, int, int]:
    """Display colour of a vertebra level (same in every figure and file)."""
    return LEVEL_PALETTE[VERSE_IDS[level] % len(LEVEL_PALETTE)]


def label_table(levels: list[str] | tuple[str, ...], lesion_ids: dict[int, int]) -> tuple[Label, ...]:
    """Entries for the vertebrae present (cranial to caudal) and every lesion type."""
    present = sorted(set(levels), key=VERSE_IDS.__getitem__)
    out = [Label(VERSE_IDS[lv], lv, level_colour(lv)) for lv in present]
    for lesion, sid in sorted(lesion_ids.items(), key=lambda kv: kv[1]):
        out.append(Label(sid, f"lesion {Lesion(lesion).name.lower()}", LESION_COLOURS[lesion]))
    return tuple(out)


def itksnap_text(table: tuple[Label, ...]) -> str:
    """ITK-SNAP label description file (IDX R G B A VIS MSH "LABEL")."""
    lines = [
        "################################################",
        "# ITK-SnAP Label Description File (written by OpenSINS)",
        "# File format:",
        "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL",
        "# Fields:",
        "#    IDX:   Zero-based index",
        "#    -R-:   Red color component (0..255)",
        "#    -G-:   Green color component (0..255)",
        "#    -B-:   Blue color component (0..255)",
        "#    -A-:   Label transparency (0.00 .. 1.00)",
        "#    VIS:   Label visibility (0 or 1)",
        "#    MSH:   Label mesh visibility (0 or 1)",
        "#  LABEL:   Label description",
        "################################################",
        '    0     0    0    0        0  0  0    "Clear Label"',
    ]
    for lab in table:
        r, g, b = lab.colour
        lines.append(f'{lab.id:5d} {r:5d} {g:4d} {b:4d}        1  1  1    "{lab.name}"')
    return "\n".join(lines) + "\n"


def slicer_ctbl_text(table: tuple[Label, ...]) -> str:
    """3D Slicer colour table (`id name R G B A`; names without spaces)."""
    top = max((lab.id for lab in table), default=0)
    lines = ["# Color table file written by OpenSINS", f"# {top + 1} values", "0 Background 0 0 0 0"]
    for lab in table:
        r, g, b = lab.colour
        lines.append(f"{lab.id} {lab.name.replace(' ', '_')} {r} {g} {b} 255")
    return "\n".join(lines) + "\n"


def write_label_files(table: tuple[Label, ...], out_dir: str | Path, stem: str = "segmentation") -> list[Path]:
    """`<stem>_labels.json`, `<stem>.itksnap.txt` and `<stem>.ctbl` in `out_dir`."""
    out = Path(out_dir)
    doc = {
        "labels": {str(lab.id): lab.name for lab in table},
        "colours": {str(lab.id): list(lab.colour) for lab in table},
    }
    return [
        write_json_atomic(doc, out / f"{stem}_labels.json"),
        write_text_atomic(itksnap_text(table), out / f"{stem}.itksnap.txt"),
        write_text_atomic(slicer_ctbl_text(table), out / f"{stem}.ctbl"),
    ]
