"""Level names, label ids and SINS regions, declared once for the whole package.

Everything after segmentation works with level names ("T12", "L1", ...). Label maps written by
OpenSINS use the ids below; maps from other tools are translated at the boundary
(`VERSE_IDS`, `TOTALSEG_IDS`).
"""

from __future__ import annotations

from enum import IntEnum

# --------------------------------------------------------------------------------------------
# Vertebral levels, cranial to caudal. Transitional levels (T13, L6) sit where they occur.
# --------------------------------------------------------------------------------------------
CERVICAL = tuple(f"C{i}" for i in range(1, 8))
THORACIC = tuple(f"T{i}" for i in range(1, 13))
LUMBAR = tuple(f"L{i}" for i in range(1, 6))
SACRAL = ("S1",)
#: The standard column (no transitional vertebrae), cranial to caudal.
LEVELS: tuple[str, ...] = CERVICAL + THORACIC + LUMBAR + SACRAL
#: Every name a level may carry, including transitional anatomy.
ALL_LEVELS: tuple[str, ...] = (
    CERVICAL
    + THORACIC
    + ("T13",)
    + LUMBAR
    + ("L6",)
    + SACRAL
    + (
        "S2",
        "S3",
        "S4",
        "S5",
    )
)

#: VerSe level ids (also used for OpenSINS instance maps): 1-7 C1-C7, 8-19 T1-T12, 20-24 L1-L5,
#: 25 L6, 26 sacrum, 27 coccyx, 28 T13.
VERSE_IDS: dict[str, int] = {
    **{f"C{i}": i for i in range(1, 8)},
    **{f"T{i}": 7 + i for i in range(1, 13)},
    **{f"L{i}": 19 + i for i in range(1, 6)},
    "L6": 25,
    "S1": 26,  # VerSe: sacrum (we name its first segment S1)
    "T13": 28,
}
VERSE_NAMES: dict[int, str] = {v: k for k, v in VERSE_IDS.items()}

#: TotalSegmentator v2 `total` task ids of the vertebrae: 26 S1, 27 L5 ... 31 L1, 32 T12 ... 43 T1,
#: 44 C7 ... 50 C1 (25 is the sacrum).
TOTALSEG_IDS: dict[str, int] = {
    "S1": 26,
    **{f"L{i}": 32 - i for i in range(1, 6)},
    **{f"T{i}": 44 - i for i in range(1, 13)},
    **{f"C{i}": 51 - i for i in range(1, 8)},
}
TOTALSEG_SACRUM = 25
TOTALSEG_NAMES: dict[int, str] = {v: k for k, v in TOTALSEG_IDS.items()}


def level_index(level: str) -> int:
    """Cranio-caudal order of a level name (C1 = 0); transitional levels fall between."""
    try:
        return ALL_LEVELS.index(level)
    except ValueError:
        raise ValueError(f"unknown vertebral level {level!r}; expected one of {', '.join(ALL_LEVELS)}") from None


def region_of(level: str) -> str:
    """Anatomical region of a level: cervical, thoracic, lumbar or sacral."""
    level_index(level)
    return {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}[level[0]]


def is_rib_bearing(level: str) -> bool:
    """Thoracic vertebrae (including a transitional T13) carry ribs."""
    return region_of(level) == "thoracic"


# --------------------------------------------------------------------------------------------
# Normal sagittal curve: tilt of each body's cranio-caudal axis (deg, + = top tilted anteriorly),
# typical adult values (cervical lordosis, thoracic kyphosis, lumbar lordosis, sacral slope).
# Segmental angle expected across a level = tilt(level above) - tilt(level below); the phantom
# builds its spines from it and the measurement scales it to each patient ("expected regional curve").
# --------------------------------------------------------------------------------------------
NORMAL_TILT_DEG: dict[str, float] = {
    "C1": -14, "C2": -12, "C3": -8, "C4": -4, "C5": 0, "C6": 5, "C7": 10,
    "T1": 16, "T2": 18, "T3": 18, "T4": 16, "T5": 13, "T6": 9, "T7": 5, "T8": 1, "T9": -3,
    "T10": -7, "T11": -10, "T12": -12, "L1": -13, "L2": -11, "L3": -5, "L4": 5, "L5": 17, "S1": 38,
}  # fmt: skip


def normal_tilt(level: str) -> float:
    """Normal sagittal tilt (deg) of a level's axis; transitional T13/L6 halfway between neighbours."""
    if level == "T13":
        return (NORMAL_TILT_DEG["T12"] + NORMAL_TILT_DEG["L1"]) / 2
    if level == "L6":
        return (NORMAL_TILT_DEG["L5"] + NORMAL_TILT_DEG["S1"]) / 2
    if level not in NORMAL_TILT_DEG:
        raise ValueError(f"no normal tilt for level {level!r}")
    return NORMAL_TILT_DEG[level]


# --------------------------------------------------------------------------------------------
# Measurement conventions shared by the measurement stage and the phantoms' truth (DESIGN.md §2).
# --------------------------------------------------------------------------------------------
#: AP positions of the anterior, middle and posterior body heights (share of depth from the front).
HEIGHT_POSITIONS: tuple[float, float, float] = (0.15, 0.50, 0.85)
#: Levels whose height never serves as a reference: C1 has no body, C2 carries the dens, S1 is part
#: of the sacrum.
NO_REFERENCE_LEVELS: frozenset[str] = frozenset({"C1", "C2", "S1"})


# --------------------------------------------------------------------------------------------
# SINS location regions (Fisher 2010). The table of points lives in configs/sins.yaml.
# --------------------------------------------------------------------------------------------
JUNCTIONAL = "junctional"
MOBILE = "mobile"
SEMI_RIGID = "semi-rigid"
RIGID = "rigid"
LOCATION_REGIONS: tuple[str, ...] = (JUNCTIONAL, MOBILE, SEMI_RIGID, RIGID)

_LOCATION_OF_LEVEL: dict[str, str] = {
    **{lv: JUNCTIONAL for lv in ("C1", "C2", "C7", "T1", "T2", "T11", "T12", "T13", "L1", "L5", "L6", "S1")},
    **{lv: MOBILE for lv in ("C3", "C4", "C5", "C6", "L2", "L3", "L4")},
    **{f"T{i}": SEMI_RIGID for i in range(3, 11)},
    **{lv: RIGID for lv in ("S2", "S3", "S4", "S5")},
}


def location_region(level: str) -> str:
    """SINS location region of a level name.

    Junctional: occiput-C2, C7-T2, T11-L1, L5-S1; mobile: C3-C6, L2-L4; semi-rigid: T3-T10;
    rigid: S2-S5. Transitional T13 is thoracolumbar (junctional) and L6 lumbosacral (junctional).
    """
    level_index(level)
    return _LOCATION_OF_LEVEL[level]


# --------------------------------------------------------------------------------------------
# Label ids of OpenSINS maps.
# --------------------------------------------------------------------------------------------
class Anatomy(IntEnum):
    """Anatomy label map (`anatomy.nii.gz`, network output channel order)."""

    BACKGROUND = 0
    VERTEBRAL_BODY = 1
    POSTERIOR_ELEMENTS = 2  # pedicles, laminae, articular, spinous and transverse processes
    DISC = 3
    SPINAL_CANAL = 4
    RIB = 5
    SACRUM = 6
    PELVIS = 7


class Lesion(IntEnum):
    """Lesion label map (`lesions.nii.gz`); a lesion voxel replaces bone of its vertebra."""

    NONE = 0
    LYTIC = 1
    BLASTIC = 2


ANATOMY_COLOURS: dict[int, tuple[int, int, int]] = {
    Anatomy.VERTEBRAL_BODY: (241, 214, 145),
    Anatomy.POSTERIOR_ELEMENTS: (177, 122, 101),
    Anatomy.DISC: (111, 184, 210),
    Anatomy.SPINAL_CANAL: (244, 214, 49),
    Anatomy.RIB: (216, 101, 79),
    Anatomy.SACRUM: (221, 130, 101),
    Anatomy.PELVIS: (144, 238, 144),
}
LESION_COLOURS: dict[int, tuple[int, int, int]] = {
    Lesion.LYTIC: (230, 40, 40),
    Lesion.BLASTIC: (40, 90, 230),
}

SIDES: tuple[str, str] = ("left", "right")
PAIN_VALUES: tuple[str, ...] = ("mechanical", "occasional", "none")
LESION_TYPES: tuple[str, ...] = ("lytic", "mixed", "blastic")
ALIGNMENT_FINDINGS: tuple[str, ...] = ("translation", "deformity", "normal")
CATEGORIES: tuple[str, ...] = ("stable", "potentially unstable", "unstable")
