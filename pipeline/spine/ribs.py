"""Ribs found in the CT itself, and the vertebra each one articulates with: the anchors that name the levels.

A segmentation's rib label near the spine is patchy on real CT (a rib's head and neck drawn at some levels,
not at others), so the naming anchors (T1: the first rib-bearing vertebra, T12: the last) come from the
bone itself:

1. Bone: CT voxels of at least `rib_hu`, in a box around the column (`rib_lateral_mm` either side of the
   bodies, from `rib_front_mm` in front of the bodies' centreline to `rib_back_mm` behind it), less the
   vertebrae (their instance voxels grown by `rib_gap_mm`, so a rib touching its vertebra at a joint
   comes apart from it).
2. Ribs: connected pieces of that bone that start near the column (their most medial voxel within
   `rib_start_mm` of the bodies' centreline, sideways) and reach at least `rib_reach_mm` out from it: a
   transverse process, the scapula (which starts far out) or a fleck does neither.
3. Each rib goes to the vertebra nearest to the rib's first `rib_neck_mm` (its head and neck, which
   articulate with the vertebra's body and transverse process), one side each; a side with less than
   `rib_side_min_ml` of rib counts as none (a rib's posterior arc in the box holds several mL).
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..config import LocaliseSettings
from .localise import slice_centroids


@dataclass(frozen=True)
class RibFinding:
    """Per vertebra instance id: the rib volume (mL) found on the left and on the right."""

    left_ml: dict[int, float]
    right_ml: dict[int, float]

    @property
    def found(self) -> bool:
        return bool(self.left_ml or self.right_ml)

    def ml(self, inst: int) -> float:
        return self.left_ml.get(inst, 0.0) + self.right_ml.get(inst, 0.0)


def find_ribs(hu: np.ndarray, instances: np.ndarray, body: np.ndarray, spacing, s: LocaliseSettings) -> RibFinding:
    """Ribs of a canonical CT (RAS: +x is the patient's right) and the vertebra instance each articulates
    with (module docstring)."""
    spacing = np.asarray(spacing, float)
    empty = RibFinding({}, {})
    if not body.any() or not instances.any():
        return empty
    # the bodies' centreline x and y per axial slice (index units), interpolated over the column's length
    ks, xs, ys = slice_centroids(body)
    lat = int(np.ceil(s.rib_lateral_mm / spacing[0]))
    front = int(np.ceil(s.rib_front_mm / spacing[1]))
    back = int(np.ceil(s.rib_back_mm / spacing[1]))
    x0, x1 = max(int(xs.min()) - lat, 0), min(int(xs.max()) + lat + 1, hu.shape[0])
    y0, y1 = max(int(ys.min()) - back, 0), min(int(ys.max()) + front + 1, hu.shape[1])
    k0, k1 = int(ks[0]), int(ks[-1]) + 1
    box = (slice(x0, x1), slice(y0, y1), slice(k0, k1))
    gap = np.ceil(s.rib_gap_mm / spacing).astype(int) * 2 + 1
    vert = ndimage.maximum_filter((instances[box] > 0).view(np.uint8), size=tuple(gap)).astype(bool)
    bone = (hu[box] >= s.rib_hu) & ~vert
    if not bone.any():
        return empty
    pieces = cc3d.connected_components(bone, connectivity=26)
    cx = np.interp(np.arange(k0, k1), ks, xs) - x0  # centreline x per slice, box index units
    left: dict[int, float] = {}
    right: dict[int, float] = {}
    voxel_ml = float(np.prod(spacing)) / 1000.0
    inst_box = instances[box]
    inst_where = np.argwhere(inst_box > 0)
    if not inst_where.size:
        return empty
    tree = cKDTree(inst_where * spacing)
    for label, sl in enumerate(ndimage.find_objects(pieces), start=1):
        if sl is None:
            continue
        where = np.argwhere(pieces[sl] == label) + np.array([b.start for b in sl])  # box index units
        if len(where) * voxel_ml < s.rib_min_ml:
            continue
        side = (where[:, 0] - cx[where[:, 2]]) * spacing[0]  # + towards the patient's right
        for sign, out in ((1.0, right), (-1.0, left)):
            part = where[side * sign > 0]
            if not len(part):
                continue
            dist = side[side * sign > 0] * sign
            if dist.min() > s.rib_start_mm or dist.max() < s.rib_reach_mm:
                continue
            neck = part[dist <= dist.min() + s.rib_neck_mm]
            _, idx = tree.query(neck.mean(axis=0) * spacing)
            inst = int(inst_box[tuple(inst_where[idx])])
            out[inst] = out.get(inst, 0.0) + len(part) * voxel_ml
    keep = s.rib_side_min_ml
    return RibFinding({i: v for i, v in left.items() if v >= keep}, {i: v for i, v in right.items() if v >= keep})
