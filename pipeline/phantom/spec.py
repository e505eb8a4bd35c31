"""Parameters of a synthetic spine CT. Every pathology is given by its exact parameters; the truth
(`truth.json`) is computed from these, never measured from the image."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Fields of view by name: (top level, bottom level) fully or partly in view.
FIELDS_OF_VIEW: dict[str, tuple[str, str]] = {
    "cervical": ("C1", "T2"),
    "thoracic": ("T1", "L1"),
    "thoracolumbar": ("T9", "L3"),
    "lumbar": ("T12", "S1"),
    "whole": ("C1", "S1"),
}

COMPARTMENTS = ("body", "posterior_left", "posterior_right")
COLLAPSE_KINDS = ("wedge", "biconcave", "crush")


@dataclass(frozen=True)
class LesionSpec:
    """One lesion: an ellipsoid of `volume_ml`, or (shape "slab", body only) the top part of the
    cancellous core replacing `involvement` of the body volume (its volume then follows).

    blastic_share: share of the lesion volume that is blastic (0 lytic, 1 blastic, between: a
    mixed lesion with a lytic core and a sclerotic rim of that share).
    """

    level: str
    compartment: str
    volume_ml: float
    blastic_share: float
    shape: str = "ellipsoid"  # or "slab": the top part of the body's cancellous core
    involvement: float = 0.0  # slab only: share of the body volume it replaces


@dataclass(frozen=True)
class CollapseSpec:
    """Body collapse: `fraction` of the nominal height lost (wedge: anteriorly; biconcave:
    centrally; crush: everywhere)."""

    level: str
    kind: str
    fraction: float


@dataclass(frozen=True)
class TranslationSpec:
    """Displacement of `level` (and everything above) relative to the vertebra below, in the lower
    body's frame: ap_mm > 0 anterior, lr_mm > 0 to the patient's left."""

    level: str
    ap_mm: float
    lr_mm: float


@dataclass(frozen=True)
class DeformitySpec:
    """De novo angulation across `level`, half at each of its two discs: kyphosis_deg > 0 flexes
    the segment above forwards, scoliosis_deg > 0 tilts it to the patient's left."""

    level: str
    kyphosis_deg: float
    scoliosis_deg: float


@dataclass(frozen=True)
class PhantomSpec:
    """Everything needed to build one phantom deterministically."""

    seed: int
    case_id: str = "phantom"
    top: str = "T9"  # first level in view
    bottom: str = "L3"  # last level in view
    top_cut: float = 1.0  # share of the top vertebra's body height inside the field of view
    bottom_cut: float = 1.0  # share of the bottom vertebra's body height inside the field of view
    spacing: tuple[float, float, float] = (2.0, 2.0, 2.0)  # mm along the canonical i, j, k
    orientation: str = "RAS"  # axis codes of the written image
    inplane_fov_mm: tuple[float, float] = (360.0, 280.0)  # left-right, anterior-posterior
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # patient yaw, pitch, roll in the scanner
    thoracic_count: int = 12  # 13: transitional T13
    lumbar_count: int = 5  # 6: transitional L6
    size_scale: float = 1.0
    curve_scale: float = 1.0
    noise_hu: float = 20.0
    blur_mm: float = 0.6
    contrast: bool = False
    lesions: tuple[LesionSpec, ...] = ()
    collapses: tuple[CollapseSpec, ...] = ()
    translations: tuple[TranslationSpec, ...] = ()
    deformities: tuple[DeformitySpec, ...] = ()
    tissue_jitter: float = 1.0  # scale of the random tissue-HU variation
    habitus: float = 1.0  # body size (outline, fat) relative to an average adult
    pain: str | None = None  # clinician's pain for this case (mechanical | occasional | none), if any
    notes: tuple[str, ...] = field(default=())
