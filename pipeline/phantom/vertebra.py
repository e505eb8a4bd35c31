"""One vertebra of the phantom: its shape in its own frame and the exact quantities derived from it.

Local frame (see `shapes.Frame`): u towards the patient's left, v posterior, w cranial; origin at
the body centre. The body spans v in [-D/2, D/2] (anterior wall at -D/2, flat posterior wall at +D/2)
and w between the endplates `w_bot(u, v)` and `w_top(u, v)`, which carry the collapse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..anatomy import HEIGHT_POSITIONS
from . import shapes
from .spec import CollapseSpec
from .tables import LevelDims

#: Normal central endplate concavity (share of the height, both endplates together).
NORMAL_CONCAVITY = 0.03
#: Radius (share of depth) of the central endplate depression of a biconcave body.
_CONCAVE_RADIUS = 0.35
CORTEX_MM = 1.0


@dataclass(frozen=True)
class Vertebra:
    level: str
    dims: LevelDims
    frame: shapes.Frame
    collapse: CollapseSpec | None = None
    has_body: bool = True  # C1 has none

    # ------------------------------------------------------------------ body
    @property
    def half_width(self) -> float:
        return self.dims.width / 2

    @property
    def depth(self) -> float:
        return self.dims.depth

    @property
    def nominal_height(self) -> float:
        return self.dims.height

    @property
    def arch_height(self) -> float:
        """Height of the posterior wall; the arch (pedicles, laminae, facets) scales with it, so a
        crushed body takes its posterior elements down with it instead of leaving them hanging
        into the level below."""
        bot, top = self.endplates(np.zeros(1), np.array([self.depth / 2]))
        return float(top[0] - bot[0])

    def _ellipse(self) -> tuple[float, float, float]:
        """Cross-section ellipse (a, b, v0): anterior tip at -D/2, clipped flat at v = +D/2."""
        b = 0.55 * self.depth
        return self.half_width, b, -self.depth / 2 + b

    def section_sdf(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """In-plane signed distance of the body cross-section."""
        a, b, v0 = self._ellipse()
        e = np.sqrt((u / a) ** 2 + ((v - v0) / b) ** 2)
        return np.maximum((e - 1.0) * min(a, b), v - self.depth / 2)

    def endplates(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(w_bot, w_top) of the body at in-plane position (u, v)."""
        h = self.nominal_height
        t = np.clip((v + self.depth / 2) / self.depth, 0.0, 1.0)
        rho2 = (t - 0.5) ** 2 + (0.5 * u / self.half_width) ** 2
        g = np.maximum(0.0, 1.0 - rho2 / _CONCAVE_RADIUS**2)
        c = self.collapse
        depression = NORMAL_CONCAVITY
        bot = np.full_like(np.asarray(u, dtype=float), -h / 2)
        top = np.full_like(bot, h / 2)
        if c is not None and c.kind == "crush":
            bot, top = bot * (1 - c.fraction), top * (1 - c.fraction)
            h = h * (1 - c.fraction)
        elif c is not None and c.kind == "wedge":
            p0, p1 = HEIGHT_POSITIONS[0], HEIGHT_POSITIONS[2]
            share = np.clip((t - p0) / (p1 - p0), 0.0, 1.0)
            top = bot + h * ((1 - c.fraction) + c.fraction * share)
        elif c is not None and c.kind == "biconcave":
            depression = max(depression, c.fraction)
        dep = depression * h / 2 * g
        return bot + dep, top - dep

    def body_sdf(self, p: np.ndarray) -> np.ndarray:
        u, v, w = p[..., 0], p[..., 1], p[..., 2]
        bot, top = self.endplates(u, v)
        return np.maximum(self.section_sdf(u, v), np.maximum(w - top, bot - w))

    def core_sdf(self, p: np.ndarray) -> np.ndarray:
        """Cancellous core: the body shrunk by the cortical thickness."""
        return self.body_sdf(p) + CORTEX_MM

    def heights(self) -> tuple[float, float, float]:
        """Anterior, middle and posterior body heights (mm) on the mid-sagittal line."""
        v = np.array([-self.depth / 2 + s * self.depth for s in HEIGHT_POSITIONS])
        bot, top = self.endplates(np.zeros(3), v)
        return tuple(float(x) for x in (top - bot))  # type: ignore[return-value]

    def _section_grid(self, step: float = 0.1) -> tuple[np.ndarray, np.ndarray, float]:
        a = self.half_width
        u = np.arange(-a + step / 2, a, step)
        v = np.arange(-self.depth / 2 + step / 2, self.depth / 2, step)
        uu, vv = np.meshgrid(u, v, indexing="ij")
        return uu.ravel(), vv.ravel(), step * step

    def body_volume_ml(self) -> float:
        """Exact body volume by integration over the cross-section (0.1 mm grid)."""
        u, v, da = self._section_grid()
        inside = self.section_sdf(u, v) <= 0
        bot, top = self.endplates(u[inside], v[inside])
        return float(np.sum(np.maximum(top - bot, 0.0)) * da / 1000.0)

    def core_slab_volume_ml(self, w_cut: float) -> float:
        """Volume of the cancellous core above w = w_cut."""
        u, v, da = self._section_grid()
        inside = self.section_sdf(u, v) <= -CORTEX_MM
        bot, top = self.endplates(u[inside], v[inside])
        lo = np.maximum(bot + CORTEX_MM, w_cut)
        return float(np.sum(np.maximum(top - CORTEX_MM - lo, 0.0)) * da / 1000.0)

    def slab_cut_for(self, volume_ml: float) -> float:
        """w_cut such that the core above it has `volume_ml` (bisection)."""
        lo, hi = -self.nominal_height, self.nominal_height
        for _ in range(60):
            mid = (lo + hi) / 2
            if self.core_slab_volume_ml(mid) > volume_ml:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    # ------------------------------------------------------------------ anchors for stacking
    def corner_posterior(self, top: bool) -> np.ndarray:
        """Local position of the posterior-superior (top) or posterior-inferior midline corner."""
        bot_w, top_w = self.endplates(np.zeros(1), np.array([self.depth / 2]))
        return np.array([0.0, self.depth / 2, float(top_w[0] if top else bot_w[0])])

    def endplate_centre(self, top: bool) -> np.ndarray:
        bot_w, top_w = self.endplates(np.zeros(1), np.zeros(1))
        return np.array([0.0, 0.0, float(top_w[0] if top else bot_w[0])])

    # ------------------------------------------------------------------ posterior elements
    @property
    def canal(self) -> tuple[float, float, float]:
        """(half width, half depth, v of centre) of the spinal canal."""
        ra, rb = self.dims.canal_width / 2, self.dims.canal_depth / 2
        return ra, rb, self.depth / 2 + rb

    @property
    def pedicle_w(self) -> float:
        """w of the pedicle axis (upper part of the body)."""
        _, top = self.endplates(np.zeros(1), np.array([self.depth / 2]))
        return float(top[0]) - self.pedicle_height / 2 - 0.12 * self.arch_height

    @property
    def pedicle_height(self) -> float:
        return self.dims.pedicle_height * self.arch_height / self.nominal_height

    def pedicle_u(self, side: int) -> float:
        """u of a pedicle axis; side +1 left, -1 right."""
        ra, _, _ = self.canal
        return side * (ra + self.dims.pedicle_width / 2 - 0.5)

    def canal_sdf(self, p: np.ndarray, below: float, above: float) -> np.ndarray:
        ra, rb, vc = self.canal
        e = np.sqrt((p[..., 0] / ra) ** 2 + ((p[..., 1] - vc) / rb) ** 2)
        bot, top = -self.nominal_height / 2 - below, self.nominal_height / 2 + above
        return np.maximum((e - 1) * min(ra, rb), np.maximum(p[..., 2] - top, bot - p[..., 2]))

    def posterior_parts(self) -> list[tuple[str, object]]:
        """Named primitive shapes of the posterior elements (callables on local points)."""
        d = self.dims
        ra, rb, vc = self.canal
        wp = self.pedicle_w
        lt = max(3.0, 0.22 * d.pedicle_width + 3.0)  # lamina thickness
        h = self.arch_height
        lam_h = 0.75 * h
        parts: list[tuple[str, object]] = []

        def lamina(p: np.ndarray) -> np.ndarray:
            u, v, w = p[..., 0], p[..., 1], p[..., 2]
            e_in = np.sqrt((u / ra) ** 2 + ((v - vc) / rb) ** 2)
            e_out = np.sqrt((u / (ra + lt)) ** 2 + ((v - vc) / (rb + lt)) ** 2)
            ring = np.maximum((e_out - 1) * (rb + lt), -(e_in - 1) * rb)
            return np.maximum(np.maximum(ring, vc - 2.0 - v), np.abs(w - (wp - 0.1 * lam_h)) - lam_h / 2)

        parts.append(("lamina", lamina))
        for side in (+1, -1):
            up = self.pedicle_u(side)
            # the pedicle leaves the body at its posterolateral corner (in the neck the canal is
            # wider than the body, so the pedicle runs outwards to reach the articular pillar)
            a = np.array([side * min(abs(up), 0.75 * self.half_width), self.depth / 2 - 3.0, wp])
            b = np.array([up, vc + 1.0, wp])
            parts.append(
                (
                    f"pedicle_{side}",
                    _capsule(a, b, d.pedicle_width / 2, self.pedicle_height / 2, np.array([1.0, 0.0, 0.0])),
                )
            )
            # articular processes (facets): superior rises above, inferior hangs below
            sap = np.array([up + side * 1.0, vc + 2.0, wp + 0.45 * h])
            iap = np.array([up, vc + 6.0, wp - 0.75 * h])
            rf = np.array([d.pedicle_width / 2 + 1.0, 5.0, 0.3 * h])
            parts.append((f"facet_sup_{side}", _ellipsoid(sap, rf)))
            parts.append((f"facet_inf_{side}", _ellipsoid(iap, rf * np.array([0.9, 1.0, 1.0]))))
            if d.transverse_length > 0:
                beta = np.deg2rad(25.0)
                ta = np.array([up, vc, wp])
                tb = ta + np.array([side * d.transverse_length * np.cos(beta), d.transverse_length * np.sin(beta), 2.0])
                parts.append((f"transverse_{side}", _capsule(ta, tb, 4.0, 4.5, np.array([0.0, 1.0, 0.0]))))
        sa = np.deg2rad(d.spinous_angle)
        s0 = np.array([0.0, vc + rb + lt - 2.0, wp - 0.1 * lam_h])
        s1 = s0 + d.spinous_length * np.array([0.0, np.cos(sa), -np.sin(sa)])
        sh = max(4.0, 0.3 * h)
        parts.append(("spinous", _capsule(s0, s1, 3.0, sh, np.array([1.0, 0.0, 0.0]))))
        return parts

    def posterior_sdf(self, p: np.ndarray) -> np.ndarray:
        out = None
        for _, f in self.posterior_parts():
            d = f(p)  # type: ignore[operator]
            out = d if out is None else np.minimum(out, d)
        assert out is not None
        return out

    def local_extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounding box (local) of the whole vertebra, generous."""
        d = self.dims
        lateral = self.canal[0] + d.pedicle_width + max(d.transverse_length, self.half_width) + 8
        lateral = max(lateral, self.half_width + 4)
        back = self.canal[2] + self.canal[1] + 12 + d.spinous_length
        h = self.nominal_height
        down = h / 2 + 0.9 * h + d.spinous_length * max(0.0, np.sin(np.deg2rad(d.spinous_angle))) + 6
        return np.array([-lateral, -self.depth / 2 - 4, -down]), np.array([lateral, back, h / 2 + 0.8 * h])


def _capsule(a: np.ndarray, b: np.ndarray, r1: float, r2: float, n1: np.ndarray):
    return lambda p: shapes.capsule(p, a, b, r1, r2, n1)


def _ellipsoid(c: np.ndarray, r: np.ndarray):
    return lambda p: shapes.ellipsoid(p, c, r)
