"""Place lesions inside bone with exactly known volumes.

An ellipsoid lesion lies wholly inside its compartment (body, or the posterior elements of one
side, never crossing into the body), so its label volume is its analytic volume up to voxel
rounding. A "slab" lesion is the top part of the body's cancellous core (for > 50 % involvement);
its volume is integrated from the same shape functions the renderer uses.
A mixed lesion has a lytic core and a sclerotic (blastic) rim holding `blastic_share` of the volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import shapes
from .spec import LesionSpec
from .vertebra import Vertebra

_SURFACE = shapes.fibonacci_sphere(500)


@dataclass(frozen=True)
class LesionShape:
    level: str
    compartment: str
    blastic_share: float
    volume_ml: float
    centre: np.ndarray | None = None  # ellipsoid (local mm)
    radii: np.ndarray | None = None
    w_cut: float | None = None  # slab: core above w_cut
    w_mid: float | None = None  # slab, mixed: lytic above w_mid, blastic between

    @property
    def lytic_ml(self) -> float:
        return self.volume_ml * (1.0 - self.blastic_share)

    @property
    def blastic_ml(self) -> float:
        return self.volume_ml * self.blastic_share

    def sdf(self, p: np.ndarray, v: Vertebra) -> np.ndarray:
        if self.centre is not None:
            return shapes.ellipsoid(p, self.centre, self.radii)
        return np.maximum(v.core_sdf(p), self.w_cut - p[:, 2])

    def lytic_sdf(self, p: np.ndarray, v: Vertebra) -> np.ndarray:
        """The lytic part of a mixed lesion."""
        if self.centre is not None:
            core = (1.0 - self.blastic_share) ** (1 / 3)
            return shapes.ellipsoid(p, self.centre, self.radii * core)
        return np.maximum(v.core_sdf(p), self.w_mid - p[:, 2])

    def local_box(self) -> tuple[np.ndarray, np.ndarray]:
        if self.centre is not None:
            return self.centre - self.radii, self.centre + self.radii
        return np.array([-80.0, -60.0, self.w_cut]), np.array([80.0, 60.0, 60.0])


def _ellipsoid_radii(volume_ml: float, aspect: np.ndarray) -> np.ndarray:
    k = (volume_ml * 1000.0 * 3 / (4 * np.pi) / float(np.prod(aspect))) ** (1 / 3)
    return aspect * k


def place_lesion(spec: LesionSpec, v: Vertebra, rng: np.random.Generator) -> LesionShape:
    """Concrete lesion geometry for `spec` in vertebra `v` (volume shrunk only if it cannot fit)."""
    if spec.compartment == "body":
        if not v.has_body:
            raise ValueError(f"{v.level} has no vertebral body for a lesion")
        if spec.shape == "slab":
            volume = spec.involvement * v.body_volume_ml()
            w_cut = v.slab_cut_for(volume)
            w_mid = v.slab_cut_for(volume * (1 - spec.blastic_share)) if 0 < spec.blastic_share < 1 else w_cut
            return LesionShape(
                v.level, "body", spec.blastic_share, v.core_slab_volume_ml(w_cut), w_cut=w_cut, w_mid=w_mid
            )
        return _place_ellipsoid(spec, v, rng, _body_centre, lambda q: v.body_sdf(q) <= -0.3)
    side = 1 if spec.compartment == "posterior_left" else -1
    return _place_posterior(spec, v, side)


def _place_posterior(spec: LesionSpec, v: Vertebra, side: int) -> LesionShape:
    """Largest-fitting spot around the pedicle / articular-process junction of one side."""
    _, _, vc = v.canal
    h = v.arch_height

    def inside(q: np.ndarray) -> bool:
        ok = (v.posterior_sdf(q) <= 0.2) & (q[:, 1] >= v.depth / 2 + 0.5) & (q[:, 0] * side > 1.0)
        return bool(np.all(ok))

    aspect = np.array([v.dims.pedicle_width / 2, 5.0, 0.3 * h])
    best: tuple[float, np.ndarray] | None = None
    for dv in (v.depth / 2 + 3.0, (v.depth / 2 + vc) / 2 + 1.0, vc, vc + 2.0, vc + 4.0):
        for dw in (-0.2 * h, 0.0, 0.2 * h):
            c = np.array([v.pedicle_u(side), dv, v.pedicle_w + dw])
            lo, hi = 0.0, 1.5
            for _ in range(20):
                mid = (lo + hi) / 2
                if inside(c + _SURFACE * aspect * mid):
                    lo = mid
                else:
                    hi = mid
            vol = 4 / 3 * np.pi * float(np.prod(aspect * lo)) / 1000.0
            if best is None or vol > best[0]:
                best = (vol, c)
    assert best is not None
    max_ml, centre = best
    volume = min(spec.volume_ml, max_ml)
    radii = _ellipsoid_radii(volume, aspect)
    return LesionShape(
        v.level,
        spec.compartment,
        spec.blastic_share,
        4 / 3 * np.pi * float(np.prod(radii)) / 1000.0,
        centre=centre,
        radii=radii,
    )


def max_posterior_ml(v: Vertebra) -> float:
    """Largest posterior lesion (mL) that fits one side of `v`."""
    return _place_posterior(LesionSpec(v.level, "posterior_left", 1e9, 0.0), v, 1).volume_ml


def _body_centre(rng: np.random.Generator, v: Vertebra) -> np.ndarray:
    return np.array(
        [
            rng.uniform(-0.35, 0.35) * v.half_width,
            rng.uniform(-0.25, 0.25) * v.depth,
            rng.uniform(-0.15, 0.15) * v.nominal_height,
        ]
    )


def _place_ellipsoid(spec: LesionSpec, v: Vertebra, rng: np.random.Generator, centre_fn, inside_fn) -> LesionShape:
    aspect = np.array([1.0, rng.uniform(0.8, 1.2), rng.uniform(0.7, 1.0)])
    volume = spec.volume_ml
    for _ in range(40):
        radii = _ellipsoid_radii(volume, aspect)
        for _ in range(25):
            c = centre_fn(rng, v)
            pts = c + _SURFACE * radii
            if np.all(inside_fn(pts)):
                return LesionShape(
                    v.level,
                    spec.compartment,
                    spec.blastic_share,
                    4 / 3 * np.pi * float(np.prod(radii)) / 1000.0,
                    centre=c,
                    radii=radii,
                )
        volume *= 0.9
    raise ValueError(f"cannot place a lesion of {spec.volume_ml} mL in {v.level} {spec.compartment}")
