"""Name the vertebrae of a scan by counting from anatomical anchors (DESIGN.md §2).

Anchors, strongest first: S1 (the body resting on the sacrum); the last rib-bearing vertebra (T12,
or T13 when the first rib-bearing one is also in view and 13 carry ribs); the first rib-bearing
vertebra (T1, with two rib-free vertebrae above it in view); the ring of C1 (a vertebra without a
body at the top). When two anchors bracket a region its count decides transitional anatomy: six
non-rib vertebrae between the last rib and the sacrum make L6, thirteen rib-bearing ones T13.
Anchors that disagree with the one used are reported in the notes. Names given by the input map
(VerSe / TotalSegmentator ids) are used as they are. A clinician's override (lowest level, or a
shift) wins over everything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import cc3d
import numpy as np
from skimage.segmentation import watershed

from ..anatomy import CERVICAL
from ..clinical import LevelOverride
from ..config import SinsConfig
from ..errors import CaseError
from .labels import SpineLabels
from .vertebrae import VertebraMasks

#: Posterior elements of C2 higher above its body centre than this share of the C2-C3 spacing
#: belong to the ring of C1 (C2's own superior facets stay below it).
RING_HEIGHT = 0.8


@dataclass(frozen=True)
class Naming:
    levels: tuple[str, ...]  # one per vertebra, cranial to caudal
    anchors: tuple[str, ...]  # what named them
    notes: tuple[str, ...] = ()


def column(thoracic: int = 12, lumbar: int = 5) -> tuple[str, ...]:
    """The vertebral column cranial to caudal, with T13 / L6 when there are 13 / 6 of them."""
    return (
        CERVICAL
        + tuple(f"T{i}" for i in range(1, thoracic + 1))
        + tuple(f"L{i}" for i in range(1, lumbar + 1))
        + ("S1", "S2", "S3", "S4", "S5")
    )


def _place(col: tuple[str, ...], index: int, name: str, n: int) -> tuple[str, ...] | None:
    """Names of n vertebrae when vertebra `index` is `name` (None when the column runs out)."""
    start = col.index(name) - index
    if start < 0 or start + n > len(col):
        return None
    return col[start : start + n]


def name_levels(verts: Sequence[VertebraMasks], cfg: SinsConfig, override: LevelOverride | None = None) -> Naming:
    """Level names of `verts` (ordered cranial to caudal)."""
    n = len(verts)
    if n == 0:
        raise CaseError("no vertebra found")
    if override is not None and override.lowest_level is not None:
        low = override.lowest_level
        col = column(13 if low == "T13" else 12, 6 if low == "L6" else 5)
        names = _place(col, n - 1, low, n)
        if names is None:
            raise CaseError(f"{n} vertebrae cannot end at {low}")
        return Naming(names, (f"clinician override: the lowest vertebra is {low}",))
    if all(v.given_name for v in verts):
        names = tuple(v.given_name for v in verts)  # type: ignore[misc]
        anchors: tuple[str, ...] = ("level ids of the input label map",)
        notes: tuple[str, ...] = ()
    else:
        names, anchors, notes = _from_anchors(verts, cfg)
    if override is not None and override.offset:
        col = column(13 if "T13" in names else 12, 6 if "L6" in names else 5)
        shifted = []
        for name in names:
            k = col.index(name) + override.offset
            if not 0 <= k < len(col):
                raise CaseError(f"level offset {override.offset:+d} moves {name} off the column")
            shifted.append(col[k])
        anchors = (*anchors, f"clinician override: names shifted by {override.offset:+d}")
        names = tuple(shifted)
    return Naming(tuple(names), anchors, notes)


def _from_anchors(verts: Sequence[VertebraMasks], cfg: SinsConfig) -> tuple[tuple[str, ...], tuple[str, ...], tuple]:
    n = len(verts)
    min_ml = cfg.instances.min_contact_ml
    ribs = [v.rib_ml >= min_ml for v in verts]
    notes: list[str] = []

    s1 = None
    sac = [v.sacrum_ml for v in verts]
    if max(sac) >= min_ml:
        s1 = max(range(n), key=lambda i: sac[i])
        if any(ribs[s1:]):
            notes.append("the vertebra on the sacrum or one below it carries a rib; sacrum anchor ignored")
            s1 = None
    rib_idx = [i for i in range(n) if ribs[i]]
    # T12 needs a whole rib-free vertebra below it (L1): a vertebra the scan cuts may be a thoracic one
    # whose ribs lie outside it; likewise T1 needs a whole rib-free vertebra above it, or two (C6, C7)
    share = cfg.instances.anchor_in_view_share

    def in_view(i: int, ref: int) -> bool:  # vertebra i whole, or its body at least `share` of vertebra ref's
        return verts[i].complete or np.count_nonzero(verts[i].body) >= share * np.count_nonzero(verts[ref].body)

    last_rib = None
    if rib_idx and rib_idx[-1] + 1 < n and in_view(rib_idx[-1] + 1, rib_idx[-1]) and (s1 is None or rib_idx[-1] < s1):
        last_rib = rib_idx[-1]
    first_rib = rib_idx[0] if rib_idx and (rib_idx[0] >= 2 or (rib_idx[0] == 1 and in_view(0, 1))) else None
    ring = 0 if not verts[0].has_body else None

    thoracic, lumbar = 12, 5
    if last_rib is not None and s1 is not None:
        between = s1 - last_rib - 1
        if between in (5, 6):
            lumbar = between
        else:
            notes.append(f"{between} vertebrae without ribs between the last rib and the sacrum; named from the sacrum")
    if first_rib is not None and last_rib is not None:
        count = last_rib - first_rib + 1
        if count in (12, 13):
            thoracic = count
        else:
            notes.append(f"{count} rib-bearing vertebrae in view (expected 12)")
    col = column(thoracic, lumbar)
    candidates: list[tuple[str, tuple[str, ...] | None]] = []
    if s1 is not None:
        candidates.append(("S1: the body resting on the sacrum", _place(col, s1, "S1", n)))
    # the first rib before the last: the first rib is large and always there, the twelfth small and now
    # and then missing (eleven pairs) or matched by a lumbar rib
    if first_rib is not None:
        candidates.append(("T1: the first rib-bearing vertebra", _place(col, first_rib, "T1", n)))
    if last_rib is not None:
        t_last = f"T{thoracic}"
        candidates.append((f"{t_last}: the last rib-bearing vertebra", _place(col, last_rib, t_last, n)))
    if ring is not None:
        candidates.append(("C1: the ring without a body at the top", _place(col, 0, "C1", n)))
    candidates = [(a, c) for a, c in candidates if c is not None]
    if not candidates:
        raise CaseError(
            "cannot name the levels: no sacrum, rib-bearing transition or C1 in view; "
            "give the lowest level (--lowest-level, or lowest_level in the clinical CSV)"
        )
    anchor, names = candidates[0]
    used = [anchor]
    for other, alt in candidates[1:]:
        if alt == names:
            used.append(other)
        else:
            notes.append(f"anchor '{other}' disagrees (would name the top vertebra {alt[0]}); not used")
    assert names is not None
    return names, tuple(used), tuple(notes)


def separate_c1_ring(
    labels: SpineLabels, verts: Sequence[VertebraMasks], naming: Naming, cfg: SinsConfig
) -> SpineLabels | None:
    """When the top vertebra is C2, the ring of C1 around its dens floods into C2's posterior
    elements (the dens touches it). Posterior elements lying higher above C2's body centre than most
    of the way to C3 seed the ring, which then takes the part of C2's posterior elements nearer to
    it than to C2's body, and becomes a vertebra of its own (no body). None when there is none."""
    if len(verts) < 2 or naming.levels[0] != "C2" or labels.names or not verts[0].has_body or not verts[1].has_body:
        return None
    c2, c3 = verts[0], verts[1]
    up = c2.centroid - c3.centroid
    step = float(np.linalg.norm(up))
    up /= step
    pts = c2.world(c2.posterior)
    high = np.zeros(c2.posterior.shape, bool)
    high[c2.posterior] = (pts - c2.centroid) @ up > RING_HEIGHT * step
    seeds = cc3d.connected_components(high, connectivity=26)
    sizes = np.bincount(seeds.ravel())[1:] * labels.voxel_ml
    if not sizes.size or sizes.max() < cfg.instances.min_fragment_ml:
        return None
    # the highest part seeds the ring; the rest of C2's posterior elements go to whichever of C2's
    # body and that seed they are geodesically nearer
    markers = np.where(c2.body, 1, 0) + np.where(seeds == int(np.argmax(sizes)) + 1, 2, 0)
    parts = watershed(np.zeros(markers.shape, np.uint8), markers, mask=c2.body | c2.posterior)
    ring_box = parts == 2
    if ring_box.sum() * labels.voxel_ml < cfg.instances.min_ring_ml:
        return None
    origin = np.linalg.solve(labels.affine[:3, :3], c2.affine[:3, 3] - labels.affine[:3, 3]).round().astype(int)
    ring = np.zeros(labels.instances.shape, bool)
    ring[tuple((np.argwhere(ring_box) + origin).T)] = True
    instances = labels.instances.copy()
    instances[ring] = int(instances.max()) + 1
    return dataclasses.replace(
        labels, instances=instances, notes=(*labels.notes, "C1: the ring above C2 separated from C2")
    )
