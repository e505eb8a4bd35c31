"""Typed, validated configuration read from `configs/*.yaml` (unknown keys are an error).

Each file maps onto a frozen dataclass tree. An overlay (e.g. a site calibration written by
`sins calibrate`) may set any subset of keys. Every output records `config_hash`, the sha256 of the
resolved configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError

#: The repository's configs/ folder (the project is installed editable, see README).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


# ---------------------------------------------------------------- SINS thresholds (sins.yaml)
@dataclass(frozen=True)
class CollapseThresholds:
    onset_fraction: float
    severe_fraction: float
    involvement_fraction: float


@dataclass(frozen=True)
class LesionThresholds:
    min_volume_ml: float
    network_min_thickness_vox: int
    network_thick_slice_ratio: float
    network_bone_depth_mm: float
    network_lytic_contrast_hu: float
    network_blastic_contrast_hu: float
    network_rim_mm: float
    network_rim_voxels: int
    network_edge_voxels: int
    network_blastic_spread_mm: float
    network_blastic_spread_contrast_hu: float
    network_mirror_posterior: bool
    network_lesion_probability: float
    mixed_minor_fraction: float


@dataclass(frozen=True)
class AlignmentThresholds:
    translation_mm: float
    deformity_deg: float


@dataclass(frozen=True)
class PosterolateralThresholds:
    min_side_volume_ml: float


@dataclass(frozen=True)
class CategoryThresholds:
    potentially_unstable_from: int
    unstable_from: int


@dataclass(frozen=True)
class NearThreshold:
    fraction: float
    mm: float
    deg: float
    ml: float


@dataclass(frozen=True)
class InstanceSettings:
    min_body_ml: float
    min_body_share: float
    max_body_canal_mm: float
    column_link_mm: float
    min_vertebra_below_s1_share: float
    anchor_in_view_share: float
    min_fragment_ml: float
    posterior_gap_mm: float
    min_ring_ml: float
    split_min_length: float
    split_min_share: float
    lesion_attach_mm: float
    body_outline_reach_mm: float
    crop_margin_mm: float
    rib_contact_mm: float
    min_contact_ml: float
    min_rib_piece_ml: float
    min_sacrum_piece_ml: float


@dataclass(frozen=True)
class LocaliseSettings:
    """Disc planes along the bodies' centreline (`spine.localise`)."""

    min_section_mm2: float
    axis_smoothing_mm: float
    fill_hu: float
    fill_radius_share: float
    profile_step_mm: float
    profile_radius_mm: float
    profile_smoothing_mm: float
    edge_mm: float
    hu_floor: float
    hu_ceiling: float
    mask_weight: float
    min_depth: float
    max_depth: float
    min_spacing_mm: float
    max_spacing_mm: float
    spacing_weight: float
    spacing_per_radius: float
    min_spacing_share: float
    size_weight: float
    rib_hu: float
    rib_lateral_mm: float
    rib_front_mm: float
    rib_back_mm: float
    rib_gap_mm: float
    rib_min_ml: float
    rib_side_min_ml: float
    rib_start_mm: float
    rib_reach_mm: float
    rib_neck_mm: float


@dataclass(frozen=True)
class MeasurementSettings:
    line_step_mm: float
    wall_half_width_mm: float
    endplate_window_mm: float
    endplate_window_share: float
    endplate_region: float
    endplate_divergence_deg: float
    curve_prior_levels: float
    curve_outlier_deg: float
    curve_fit_lesion_deformity: bool


@dataclass(frozen=True)
class SinsConfig:
    collapse: CollapseThresholds
    lesion: LesionThresholds
    alignment: AlignmentThresholds
    posterolateral: PosterolateralThresholds
    category: CategoryThresholds
    near_threshold: NearThreshold
    instances: InstanceSettings
    localise: LocaliseSettings
    measurement: MeasurementSettings
    source: str = field(default="", compare=False)

    @property
    def hash(self) -> str:
        return config_hash(self)


# ---------------------------------------------------------------- input checks (input.yaml)
@dataclass(frozen=True)
class SpacingLimits:
    min: float
    max: float


@dataclass(frozen=True)
class HounsfieldChecks:
    air_hu: float
    air_min_fraction: float
    fat_hu: float
    fat_min_fraction: float
    bone_hu: float
    bone_min_fraction: float


@dataclass(frozen=True)
class DicomChecks:
    uneven_spacing_tolerance: float
    tilt_tolerance_deg: float


@dataclass(frozen=True)
class InputConfig:
    spacing_mm: SpacingLimits
    hounsfield: HounsfieldChecks
    dicom: DicomChecks
    source: str = field(default="", compare=False)


T = TypeVar("T")


def _build(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass `cls` from a mapping, rejecting unknown and missing keys."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    missing = sorted(set(fields) - set(data))
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    values: dict[str, Any] = {}
    for name in fields:
        tp = hints[name]
        value = data[name]
        key = f"{where}.{name}"
        if dataclasses.is_dataclass(tp):
            values[name] = _build(tp, value, key)  # type: ignore[arg-type]
        elif tp is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{key}: expected a number, got {value!r}")
            values[name] = float(value)
        elif tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{key}: expected an integer, got {value!r}")
            values[name] = value
        elif typing.get_origin(tp) is tuple and typing.get_args(tp)[:1] == (str,):
            if not isinstance(value, list) or any(not isinstance(x, str) for x in value):
                raise ConfigError(f"{key}: expected a list of names, got {value!r}")
            values[name] = tuple(value)
        elif typing.get_origin(tp) is tuple:
            if (
                not isinstance(value, list)
                or not value
                or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in value)
            ):
                raise ConfigError(f"{key}: expected a list of numbers, got {value!r}")
            ints = typing.get_args(tp)[:1] == (int,)
            if ints and any(not isinstance(x, int) for x in value):
                raise ConfigError(f"{key}: expected a list of integers, got {value!r}")
            values[name] = tuple(int(x) for x in value) if ints else tuple(float(x) for x in value)
        elif tp is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{key}: expected true or false, got {value!r}")
            values[name] = value
        elif tp is str or (isinstance(tp, types.UnionType) and str in typing.get_args(tp)):
            values[name] = value
        else:  # pragma: no cover - only the types above are declared
            raise ConfigError(f"{key}: unsupported type {tp}")
    return cls(**values)


def _merge(base: dict, overlay: dict, where: str) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        if key not in base:
            raise ConfigError(f"{where}: unknown key {key!r}; allowed: {', '.join(base)}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a mapping")
            out[key] = _merge(base[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: expected a mapping at the top level")
    return data


def _load(cls: type[T], default_name: str, overlay: str | Path | None) -> T:
    base_path = CONFIG_DIR / default_name
    data = _read_yaml(base_path)
    source = str(base_path)
    if overlay is not None:
        opath = Path(overlay)
        data = _merge(data, _read_yaml(opath), opath.name)
        source = f"{base_path} + {opath}"
    cfg = _build(cls, data, default_name.removesuffix(".yaml"))
    return dataclasses.replace(cfg, source=source)  # type: ignore[type-var]


def load_sins_config(overlay: str | Path | None = None) -> SinsConfig:
    """configs/sins.yaml, optionally overridden by an overlay file."""
    cfg = _load(SinsConfig, "sins.yaml", overlay)
    if not 0 < cfg.collapse.onset_fraction < cfg.collapse.severe_fraction < 1:
        raise ConfigError("sins.collapse: need 0 < onset_fraction < severe_fraction < 1")
    if not 0 < cfg.category.potentially_unstable_from < cfg.category.unstable_from <= 18:
        raise ConfigError("sins.category: need 0 < potentially_unstable_from < unstable_from <= 18")
    if not 0 < cfg.lesion.network_lesion_probability <= 1:
        raise ConfigError("sins.lesion: need 0 < network_lesion_probability <= 1")
    return cfg


def load_input_config(overlay: str | Path | None = None) -> InputConfig:
    """configs/input.yaml, optionally overridden by an overlay file."""
    cfg = _load(InputConfig, "input.yaml", overlay)
    if not 0 < cfg.spacing_mm.min < cfg.spacing_mm.max:
        raise ConfigError("input.spacing_mm: need 0 < min < max")
    return cfg


def config_dict(cfg: Any) -> dict:
    """Plain dict of a config (without its `source`)."""
    d = dataclasses.asdict(cfg)
    d.pop("source", None)
    return d


def config_hash(cfg: Any) -> str:
    """sha256 of the canonical JSON of a resolved configuration."""
    blob = json.dumps(config_dict(cfg), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def load_config_file(cls: type[T], path: str | Path) -> T:
    """A whole configuration file (not an overlay) read into dataclass `cls`."""
    path = Path(path)
    cfg = _build(cls, _read_yaml(path), path.stem)
    return dataclasses.replace(cfg, source=str(path))  # type: ignore[type-var]
