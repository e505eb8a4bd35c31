"""Rasterise a phantom layout into a CT (HU) and its label maps on an axis-aligned RAS grid.

Labels are exact at voxel centres (the sign of each shape's signed distance); the CT gets partial
volume from a one-voxel linear ramp across each surface, then the scanner blur and correlated noise.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..anatomy import VERSE_IDS, Anatomy, Lesion, is_rib_bearing, level_index
from . import shapes
from .layout import Layout
from .lesions import LesionShape
from .tables import chest_profile, chest_size
from .vertebra import CORTEX_MM, Vertebra


@dataclass(frozen=True)
class Tissues:
    """Hounsfield units of one phantom (randomised per case)."""

    air: float = -1000.0
    fat: float = -100.0
    muscle: float = 45.0
    organ: float = 55.0
    blood: float = 40.0
    csf: float = 10.0
    disc: float = 85.0
    lung: float = -850.0
    cortex: float = 950.0
    cancellous: float = 220.0
    posterior_cortex: float = 750.0
    rib_cortex: float = 650.0
    marrow: float = 200.0
    lytic: float = 35.0
    blastic: float = 950.0
    gas: float = -950.0
    kidney: float = 35.0


def random_tissues(rng: np.random.Generator, contrast: bool, jitter: float = 1.0) -> Tissues:
    """Tissue HU drawn around typical adult values."""

    def j(mean: float, sd: float) -> float:
        return float(mean + jitter * rng.normal(0.0, sd))

    return Tissues(
        fat=j(-100, 8), muscle=j(45, 6), organ=j(110 if contrast else 55, 8), blood=j(250 if contrast else 40, 25),
        csf=j(10, 4), disc=j(85, 8), lung=j(-850, 25), cortex=j(950, 120), cancellous=j(220, 45),
        posterior_cortex=j(700, 80), rib_cortex=j(650, 70), marrow=j(200, 30), lytic=j(35, 10),
        blastic=j(950, 120), gas=j(-950, 30), kidney=j(180 if contrast else 35, 10),
    )  # fmt: skip


class Canvas:
    """CT and label arrays on a RAS grid covering [fov_min, fov_max] (voxel edges, world mm)."""

    def __init__(self, fov_min: np.ndarray, fov_max: np.ndarray, spacing: tuple[float, float, float]):
        self.spacing = np.asarray(spacing, dtype=float)
        self.shape = tuple(int(np.ceil((fov_max[a] - fov_min[a]) / self.spacing[a] - 1e-6)) for a in range(3))
        self.origin = fov_min + self.spacing / 2  # centre of voxel (0, 0, 0)
        self.hu = np.full(self.shape, -1000.0, dtype=np.float32)
        self.anatomy = np.zeros(self.shape, dtype=np.uint8)
        self.instance = np.zeros(self.shape, dtype=np.uint8)
        self.lesion = np.zeros(self.shape, dtype=np.uint8)
        self.ramp = float(np.prod(self.spacing) ** (1 / 3))

    @property
    def affine(self) -> np.ndarray:
        aff = np.diag([*self.spacing, 1.0])
        aff[:3, 3] = self.origin
        return aff

    @property
    def fov_min(self) -> np.ndarray:
        return self.origin - self.spacing / 2

    @property
    def fov_max(self) -> np.ndarray:
        return self.origin + self.spacing * (np.array(self.shape) - 0.5)

    def region(self, lo: np.ndarray, hi: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray] | None:
        """Index box covering world box [lo, hi] and the world points of its voxels (N, 3)."""
        i0 = np.maximum(np.floor((lo - self.origin) / self.spacing).astype(int), 0)
        i1 = np.minimum(np.ceil((hi - self.origin) / self.spacing).astype(int) + 1, self.shape)
        if np.any(i1 <= i0):
            return None
        sl = tuple(slice(int(a), int(b)) for a, b in zip(i0, i1, strict=True))
        axes = [self.origin[a] + self.spacing[a] * np.arange(i0[a], i1[a]) for a in range(3)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        return sl, grid

    def paint(
        self,
        sl: tuple[slice, ...],
        sdf: np.ndarray,
        value: float | np.ndarray,
        labels: tuple[tuple[np.ndarray, int], ...] = (),
    ) -> None:
        """Composite `value` over the CT with partial volume; set labels where sdf < 0."""
        shape = tuple(s.stop - s.start for s in sl)
        sdf = sdf.reshape(shape)
        cov = np.clip(0.5 - sdf / self.ramp, 0.0, 1.0).astype(np.float32)
        if not np.any(cov):
            return
        hu = self.hu[sl]
        val = value.reshape(shape) if isinstance(value, np.ndarray) else value
        hu *= 1.0 - cov
        hu += cov * val
        inside = sdf < 0
        for arr, label in labels:
            arr[sl][inside] = label


def _world_box(v: Vertebra, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    world = v.frame.to_world(corners)
    return world.min(axis=0), world.max(axis=0)


def render(
    layout: Layout,
    lesions: list[LesionShape],
    spacing: tuple[float, float, float],
    tissues: Tissues,
    rng: np.random.Generator,
    noise_hu: float,
    blur_mm: float,
    habitus: float,
) -> Canvas:
    """Draw the whole phantom; returns the canvas with CT (float HU, before rounding) and labels."""
    canvas = Canvas(layout.fov_min, layout.fov_max, spacing)
    visible = [v for v in layout.vertebrae if _overlaps(canvas, v)]
    _draw_soft_tissue(canvas, layout, tissues, rng, habitus)
    for v in visible:
        _draw_canal(canvas, layout, v, tissues)
    for upper, lower in zip(layout.vertebrae[:-1], layout.vertebrae[1:], strict=True):
        if upper.has_body and (upper in visible or lower in visible):
            _draw_disc(canvas, upper, lower, tissues)
    for v in visible:
        if is_rib_bearing(v.level):
            _draw_ribs(canvas, v, tissues, habitus)
    sacrum = layout.vertebrae[-1]
    _draw_sacrum_and_pelvis(canvas, sacrum, tissues)
    for v in visible:
        _draw_vertebra(canvas, v, tissues, rng)
    for les in lesions:
        _draw_lesion(canvas, layout.by_level(les.level), les, tissues)
    _finish(canvas, rng, noise_hu, blur_mm)
    return canvas


def _overlaps(canvas: Canvas, v: Vertebra) -> bool:
    lo, hi = _world_box(v, *v.local_extent())
    return bool(np.all(hi >= canvas.fov_min) and np.all(lo <= canvas.fov_max))


# --------------------------------------------------------------------------- soft tissue
def _profile(layout: Layout, z: np.ndarray, habitus: float) -> dict[str, np.ndarray]:
    """Body outline parameters along patient z: spine x/y, half-width, back and front depths."""
    pts = np.array([layout.rotation.T @ v.frame.origin for v in layout.vertebrae])
    order = np.argsort(pts[:, 2])
    zs = pts[order, 2]
    idx = np.array([level_index(v.level) for v in layout.vertebrae], dtype=float)[order]
    x_sp = np.interp(z, zs, pts[order, 0])
    y_sp = np.interp(z, zs, pts[order, 1])
    li = np.interp(z, zs, idx)
    # key rows: level index -> half width, back, front (mm)
    key = np.array([[0, 60, 70, 55], [6, 75, 75, 60], [8, 140, 80, 90], [11, 160, 80, 150], [15, 165, 80, 170],
                    [19, 160, 85, 180], [22, 160, 90, 170], [26, 175, 90, 160]], dtype=float)  # fmt: skip
    hw = np.interp(li, key[:, 0], key[:, 1]) * habitus
    back = np.interp(li, key[:, 0], key[:, 2]) * (0.6 + 0.4 * habitus)
    front = np.interp(li, key[:, 0], key[:, 3]) * habitus
    return {"x": x_sp, "y": y_sp, "hw": hw, "back": back, "front": front, "level": li}


def _draw_soft_tissue(canvas: Canvas, layout: Layout, t: Tissues, rng: np.random.Generator, habitus: float) -> None:
    nx, ny, nz = canvas.shape
    xs = canvas.origin[0] + canvas.spacing[0] * np.arange(nx)
    ys = canvas.origin[1] + canvas.spacing[1] * np.arange(ny)
    zs = canvas.origin[2] + canvas.spacing[2] * np.arange(nz)
    coarse = _smooth_field(rng, canvas.shape, canvas.spacing, 25.0)
    rot_t = layout.rotation.T
    verts = {v.level: v for v in layout.vertebrae}
    thor_levels = [lv for lv in verts if is_rib_bearing(lv)]
    z_diaphragm = (rot_t @ verts["T10"].frame.origin)[2] if "T10" in verts else -np.inf
    z_apex = (rot_t @ verts["T1"].frame.origin)[2] + 15 if "T1" in verts else np.inf
    z_kidney = (rot_t @ verts["L2"].frame.origin)[2] if "L2" in verts else None
    z_liver = (rot_t @ verts["T12"].frame.origin)[2] if "T12" in verts else None
    z_heart = (rot_t @ verts["T7"].frame.origin)[2] if "T7" in verts else None
    gas = _gas_pockets(rng, layout, habitus)
    for k0 in range(0, nz, 16):
        k1 = min(nz, k0 + 16)
        X, Y, Z = np.meshgrid(xs, ys, zs[k0:k1], indexing="ij")
        world = np.stack([X, Y, Z], axis=-1)
        p = world @ rot_t.T  # patient coordinates
        px, py, pz = p[..., 0], p[..., 1], p[..., 2]
        prof = _profile(layout, pz, habitus)
        dx = (px - prof["x"]) / prof["hw"]
        yc = prof["y"] + (prof["front"] - prof["back"]) / 2
        ry = (prof["front"] + prof["back"]) / 2
        dy = (py - yc) / ry
        r = (np.abs(dx) ** 2.4 + np.abs(dy) ** 2.4) ** (1 / 2.4)
        scale = np.minimum(prof["hw"], ry)
        outline_sdf = (r - 1.0) * scale
        fat_thick = 8.0 + 18.0 * max(habitus - 0.8, 0.0)
        hu = np.full(X.shape, t.air, dtype=np.float32)
        ramp = canvas.ramp
        cov_body = np.clip(0.5 - outline_sdf / ramp, 0, 1)
        inner = outline_sdf + fat_thick
        cov_inner = np.clip(0.5 - inner / ramp, 0, 1)
        field = coarse[:, :, k0:k1]
        muscle = t.muscle + 8 * field
        body_hu = t.fat * (1 - cov_inner) + muscle * cov_inner
        # abdominal cavity: mottled fat / bowel wall / organs anterior of the spine
        abdomen = (prof["level"] > 18.5) & (py > prof["y"] + 25)
        mottled = np.where(field > 0.3, t.organ - 20, np.where(field < -0.6, t.fat + 10, t.organ - 35))
        body_hu = np.where(abdomen & (inner < -15), mottled, body_hu)
        # lungs
        if thor_levels:
            # inside the rib cage (the ellipse the ribs follow), beside the mediastinum, above a
            # dome-shaped diaphragm that sinks laterally, below an apex that rounds off
            rx, ry = chest_profile(prof["level"])
            rx, ry = rx * habitus**0.5, ry * habitus**0.5
            dx = px - prof["x"]
            ell = (dx / (rx - 9)) ** 2 + ((py - (prof["y"] + ry - 32)) / (ry - 9)) ** 2
            lat = np.clip(np.abs(dx) / rx, 0, 1)
            lung = (ell < 1) & (np.abs(dx) > 22 + 18 * (py > prof["y"] + 20))
            lung &= pz > z_diaphragm + 35 * (1 - lat**2) - 25
            lung &= pz < z_apex - 25 * lat**2
            if z_heart is not None:
                heart = (
                    ((px - prof["x"] + 20) / 65) ** 2 + ((py - prof["y"] - 95) / 55) ** 2 + ((pz - z_heart) / 70) ** 2
                )
                body_hu = np.where(heart < 1, t.blood, body_hu)
                lung &= heart >= 1.1
            body_hu = np.where(lung, t.lung + 15 * field, body_hu)
        # descending aorta, left-anterior of the spine, from the arch to the bifurcation
        aorta = (px - prof["x"] + 22) ** 2 + (py - prof["y"] - 28) ** 2 < (11 * habitus**0.3) ** 2
        aorta &= (prof["level"] > 10) & (prof["level"] < 22.5)
        body_hu = np.where(aorta, t.blood, body_hu)
        if z_liver is not None:
            liver = ((px - prof["x"] - 75) / 85) ** 2 + ((py - prof["y"] - 85) / 75) ** 2 + ((pz - z_liver) / 85) ** 2
            body_hu = np.where((liver < 1) & (inner < -10) & (pz < z_diaphragm + 20), t.organ, body_hu)
        if z_kidney is not None:
            for side in (-1, 1):
                kid = ((px - prof["x"] - side * 60) / 28) ** 2 + ((py - prof["y"] - 5) / 24) ** 2
                kid = kid + ((pz - z_kidney) / 55) ** 2
                body_hu = np.where(kid < 1, t.kidney, body_hu)
        for c, rad in gas:
            g = np.sum((p - c) ** 2, axis=-1) < rad**2
            body_hu = np.where(g & (inner < -10), t.gas, body_hu)
        hu = hu * (1 - cov_body) + body_hu * cov_body
        canvas.hu[:, :, k0:k1] = hu


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], spacing: np.ndarray, scale_mm: float) -> np.ndarray:
    """Smooth random field in about [-1, 1] with features of `scale_mm`."""
    step = np.maximum(1, np.round(scale_mm / spacing).astype(int))
    small = tuple(int(np.ceil(s / st)) + 2 for s, st in zip(shape, step, strict=True))
    noise = rng.standard_normal(small).astype(np.float32)
    big = ndimage.zoom(noise, step, order=1)[: shape[0], : shape[1], : shape[2]]
    return np.clip(big, -2, 2) / 2


def _gas_pockets(rng: np.random.Generator, layout: Layout, habitus: float) -> list[tuple[np.ndarray, float]]:
    out = []
    levels = {v.level: v for v in layout.vertebrae}
    for lv in ("L1", "L2", "L3", "L4", "L5"):
        if lv not in levels:
            continue
        c = layout.rotation.T @ levels[lv].frame.origin
        for _ in range(int(rng.integers(0, 3))):
            off = np.array([rng.uniform(-100, 100) * habitus, rng.uniform(70, 140) * habitus, rng.uniform(-20, 20)])
            out.append((c + off, float(rng.uniform(6, 20))))
    return out


# --------------------------------------------------------------------------- spine parts
def _local_region(canvas: Canvas, v: Vertebra, lo: np.ndarray, hi: np.ndarray):
    wlo, whi = _world_box(v, lo, hi)
    reg = canvas.region(wlo, whi)
    if reg is None:
        return None
    sl, world = reg
    return sl, v.frame.to_local(world)


def _draw_canal(canvas: Canvas, layout: Layout, v: Vertebra, t: Tissues) -> None:
    ra, rb, vc = v.canal
    below = layout.disc_heights.get(v.level, 6.0) / 2 + 3
    above = 8.0
    lo = np.array([-ra - 2, vc - rb - 2, -v.nominal_height / 2 - below - 2])
    hi = np.array([ra + 2, vc + rb + 2, v.nominal_height / 2 + above + 2])
    reg = _local_region(canvas, v, lo, hi)
    if reg is None:
        return
    sl, p = reg
    sdf = v.canal_sdf(p, below, above)
    canvas.paint(sl, sdf, t.csf, ((canvas.anatomy, Anatomy.SPINAL_CANAL),))


def _draw_disc(canvas: Canvas, upper: Vertebra, lower: Vertebra, t: Tissues) -> None:
    """The disc fills the space between the endplates of two bodies."""
    a = max(upper.half_width, lower.half_width) + 3
    lo = np.array([-a, -lower.depth / 2 - 3, lower.nominal_height / 2 - 6])
    hi = np.array([a, lower.depth / 2 + 3, lower.nominal_height / 2 + 25])
    reg = _local_region(canvas, lower, lo, hi)
    if reg is None:
        return
    sl, p_low = reg
    world = lower.frame.to_world(p_low)
    p_up = upper.frame.to_local(world)
    u, v = p_low[:, 0], p_low[:, 1]
    sec = np.minimum(lower.section_sdf(u, v), upper.section_sdf(p_up[:, 0], p_up[:, 1]))
    sec = np.maximum(sec, lower.section_sdf(u, v) - 1.5)
    _, top_low = lower.endplates(u, v)
    bot_up, _ = upper.endplates(p_up[:, 0], p_up[:, 1])
    sdf = np.maximum(sec, np.maximum(top_low - p_low[:, 2], p_up[:, 2] - bot_up))
    canvas.paint(sl, sdf, t.disc, ((canvas.anatomy, Anatomy.DISC),))


def _draw_vertebra(canvas: Canvas, v: Vertebra, t: Tissues, rng: np.random.Generator) -> None:
    lo, hi = v.local_extent()
    reg = _local_region(canvas, v, lo, hi)
    if reg is None:
        return
    sl, p = reg
    inst = VERSE_IDS[v.level]
    is_sacrum = v.level == "S1"
    pe_label = Anatomy.SACRUM if is_sacrum else Anatomy.POSTERIOR_ELEMENTS
    pe = v.posterior_sdf(p)
    canvas.paint(sl, pe, t.posterior_cortex, ((canvas.anatomy, pe_label), (canvas.instance, inst)))
    canvas.paint(sl, pe + 1.2, t.marrow)
    if v.has_body:
        body = v.body_sdf(p)
        canc = t.cancellous + float(rng.normal(0, 12))
        canvas.paint(sl, body, t.cortex, ((canvas.anatomy, Anatomy.VERTEBRAL_BODY), (canvas.instance, inst)))
        canvas.paint(sl, body + CORTEX_MM, canc)
        if v.level == "C2":  # the dens rises from the body of C2
            dens = shapes.capsule(p, np.array([0.0, 0.0, 0.0]), np.array([0.0, -1.0, v.nominal_height + 6]), 5.0)
            canvas.paint(sl, dens, t.cortex, ((canvas.anatomy, Anatomy.VERTEBRAL_BODY), (canvas.instance, inst)))
            canvas.paint(sl, dens + 1.5, canc)
    else:  # C1: anterior arch and lateral masses around the dens of C2
        ring = _atlas_sdf(p, v)
        canvas.paint(
            sl, ring, t.posterior_cortex, ((canvas.anatomy, Anatomy.POSTERIOR_ELEMENTS), (canvas.instance, inst))
        )
        canvas.paint(sl, ring + 1.5, t.marrow)


def _atlas_sdf(p: np.ndarray, v: Vertebra) -> np.ndarray:
    ant = shapes.capsule(p, np.array([-9.0, -4.0, 0]), np.array([9.0, -4.0, 0]), 4.0, 5.0, np.array([0.0, 1.0, 0.0]))
    out = ant
    for side in (-1, 1):
        mass = shapes.ellipsoid(p, np.array([side * 18.0, 6.0, 0.0]), np.array([8.0, 11.0, 8.0]))
        out = np.minimum(out, mass)
    return out


def _draw_ribs(canvas: Canvas, v: Vertebra, t: Tissues, habitus: float) -> None:
    d = v.dims
    ra, _rb, vc = v.canal
    wp = v.pedicle_w
    rx, ry = chest_size(v.level)
    rx, ry = rx * habitus**0.5, ry * habitus**0.5
    idx = level_index(v.level) - level_index("T1")
    end = {10: 1.7, 11: 1.25, 12: 1.1}.get(idx, 2.55)
    drop = (1.0 + 0.6 * min(idx, 6) / 6) * v.nominal_height
    for side in (+1, -1):
        tip_u = side * (ra + d.pedicle_width / 2 + max(d.transverse_length, 12) * 0.9)
        tip_v = vc + max(d.transverse_length, 12) * 0.42
        v_centre = tip_v + 6 - ry
        alpha0 = float(np.arcsin(np.clip(abs(tip_u) / rx, 0, 0.99)))
        alphas = np.linspace(alpha0, end, 14)
        pts = [np.array([side * v.half_width * 0.8, v.depth / 2 - 2, wp]), np.array([tip_u, tip_v, wp])]
        for k, al in enumerate(alphas):
            w = wp - drop * k / (len(alphas) - 1) - 3.0
            pts.append(np.array([side * rx * np.sin(al), v_centre + ry * np.cos(al), w]))
        pts_arr = np.array(pts)
        world_pts = v.frame.to_world(pts_arr)
        n1 = v.frame.w
        for a, b in itertools.pairwise(world_pts):
            lo = np.minimum(a, b) - 8
            hi = np.maximum(a, b) + 8
            reg = canvas.region(lo, hi)
            if reg is None:
                continue
            sl, world = reg
            sdf = shapes.capsule(world, a, b, 5.5, 3.0, n1)
            canvas.paint(sl, sdf, t.rib_cortex, ((canvas.anatomy, Anatomy.RIB),))
            canvas.paint(sl, sdf + 1.2, t.marrow)


def _draw_sacrum_and_pelvis(canvas: Canvas, s1: Vertebra, t: Tissues) -> None:
    lo = np.array([-160.0, -150.0, -240.0])
    hi = np.array([160.0, 80.0, 40.0])
    reg = _local_region(canvas, s1, lo, hi)
    if reg is None:
        return
    sl, p = reg
    w_half = s1.half_width
    h = s1.nominal_height
    sac = np.full(len(p), np.inf)
    for k, (hw, dep) in enumerate(((21, 13), (17, 10), (12, 8), (8, 6)), start=1):
        c = np.array([0.0, 3.0 + 3.0 * k**2, -h / 2 - 18.0 * k + 6])
        sac = np.minimum(sac, shapes.ellipsoid(p, c, np.array([hw * 1.0, dep, 12.0])))
    for side in (-1, 1):
        ala = shapes.ellipsoid(p, np.array([side * (w_half + 16), 6.0, -6.0]), np.array([24.0, 17.0, 24.0]))
        sac = np.minimum(sac, ala)
    canvas.paint(sl, sac, t.posterior_cortex, ((canvas.anatomy, Anatomy.SACRUM), (canvas.instance, VERSE_IDS["S1"])))
    canvas.paint(sl, sac + 1.5, t.marrow)
    pel = np.full(len(p), np.inf)
    for side in (-1, 1):
        u = p[:, 0] * side
        ilium = shapes.ellipsoid(p, np.array([side * (w_half + 62), -15.0, -10.0]), np.array([38.0, 72.0, 78.0]))
        shell = np.abs(ilium) - 3.5
        shell = np.maximum(shell, (w_half + 36) - u)
        shell = np.maximum(shell, -95.0 - p[:, 2])
        head_c = np.array([side * (w_half + 72), -60.0, -105.0])
        head = shapes.ellipsoid(p, head_c, np.array([23.0, 23.0, 23.0]))
        acet = np.maximum(np.abs(shapes.ellipsoid(p, head_c, np.array([29.0, 29.0, 29.0]))) - 3.5, u - (w_half + 75))
        pubis = shapes.capsule(p, head_c + np.array([-side * 10, -20, -8]), np.array([side * 9.0, -105.0, -120.0]), 9.0)
        ischium = shapes.capsule(
            p, head_c + np.array([-side * 5, 15, -15]), head_c + np.array([-side * 15, 30, -60]), 10.0
        )
        neck = shapes.capsule(p, head_c, head_c + np.array([side * 40, 0, -30]), 14.0)
        shaft = shapes.capsule(p, head_c + np.array([side * 40, 0, -30]), head_c + np.array([side * 48, 0, -200]), 14.0)
        pel = np.minimum.reduce([pel, shell, head, acet, pubis, ischium, neck, shaft])
    canvas.paint(sl, pel, t.rib_cortex, ((canvas.anatomy, Anatomy.PELVIS),))
    canvas.paint(sl, pel + 2.0, t.marrow)


def _draw_lesion(canvas: Canvas, v: Vertebra, les: LesionShape, t: Tissues) -> None:
    lo, hi = les.local_box()
    reg = _local_region(canvas, v, lo - 2, hi + 2)
    if reg is None:
        return
    sl, p = reg
    outer = les.sdf(p, v)
    if les.blastic_share >= 1.0:
        canvas.paint(sl, outer, t.blastic, ((canvas.lesion, Lesion.BLASTIC),))
        return
    if les.blastic_share <= 0.0:
        canvas.paint(sl, outer, t.lytic, ((canvas.lesion, Lesion.LYTIC),))
        return
    canvas.paint(sl, outer, t.blastic, ((canvas.lesion, Lesion.BLASTIC),))
    canvas.paint(sl, les.lytic_sdf(p, v), t.lytic, ((canvas.lesion, Lesion.LYTIC),))


def _finish(canvas: Canvas, rng: np.random.Generator, noise_hu: float, blur_mm: float) -> None:
    """Scanner blur (Gaussian PSF) and correlated noise."""
    if blur_mm > 0:
        sigma = blur_mm / canvas.spacing
        canvas.hu = ndimage.gaussian_filter(canvas.hu, sigma, mode="nearest").astype(np.float32)
    if noise_hu > 0:
        noise = rng.standard_normal(canvas.shape).astype(np.float32)
        noise = ndimage.gaussian_filter(noise, 0.7)
        noise *= noise_hu / max(float(noise.std()), 1e-6)
        canvas.hu += noise
