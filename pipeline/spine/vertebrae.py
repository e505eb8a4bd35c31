"""Per-vertebra masks, ordered cranial to caudal, with the contacts that anchor level naming."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cc3d
import numpy as np
from scipy import ndimage

from ..anatomy import Anatomy
from ..config import SinsConfig
from .labels import SpineLabels, bounding_box, box_affine, centroids, grown_pieces


@dataclass(frozen=True)
class VertebraMasks:
    """One vertebra cut out of the label maps (a box of the canonical grid with a margin).

    affine: index -> RAS mm of the box. lesion: lesion ids on this vertebra's voxels only.
    complete: the body does not touch the image border. rib_ml / sacrum_ml: volume of rib (sacrum)
    attached to this vertebra (costovertebral joints; S1 resting on the sacrum), counted from rib
    (sacrum) pieces of at least `instances.min_rib_piece_ml` (`min_sacrum_piece_ml`) only.
    """

    id: int
    affine: np.ndarray
    body: np.ndarray
    posterior: np.ndarray
    lesion: np.ndarray
    canal: np.ndarray
    complete: bool
    rib_ml: float
    sacrum_ml: float
    given_name: str | None = None

    @property
    def has_body(self) -> bool:
        return bool(self.body.any())

    def world(self, mask: np.ndarray) -> np.ndarray:
        """World (RAS mm) centres of the voxels of a mask of this box, (N, 3)."""
        ijk = np.argwhere(mask).astype(float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    @property
    def centroid(self) -> np.ndarray:
        """Body centroid (world), or the posterior elements' when there is no body (C1)."""
        return self.world(self.body if self.has_body else self.posterior).mean(axis=0)

    @property
    def voxel_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0


def _contacts(
    labels: SpineLabels, target: np.ndarray, sources: np.ndarray, reach_mm: float, min_ml: float
) -> dict[int, np.ndarray]:
    """Per connected piece of `target` of at least `min_ml` (its whole volume, also beyond the
    sources' box): voxel counts within `reach_mm` of each instance of `sources`."""
    out: dict[int, np.ndarray] = {}
    if not target.any() or not sources.any():
        return out
    spacing = labels.spacing
    margin = int(np.ceil(reach_mm / min(spacing))) + 1
    box = bounding_box(sources > 0, margin)
    assert box is not None
    if not target[box].any():
        return out
    all_pieces = cc3d.connected_components(target, connectivity=26)
    big = np.bincount(all_pieces.ravel()) * labels.voxel_ml >= min_ml
    src = sources[box]
    pieces = all_pieces[box]
    tgt = pieces > 0
    dist, near = ndimage.distance_transform_edt(src == 0, sampling=spacing, return_indices=True)
    close = tgt & (dist <= reach_mm) & big[pieces]
    owner = src[tuple(i[close] for i in near)]
    n_inst = int(labels.instances.max()) + 1
    for piece, inst in zip(pieces[close], owner, strict=True):
        out.setdefault(int(piece), np.zeros(n_inst, np.int64))[int(inst)] += 1
    return out


def _rib_contacts(labels: SpineLabels, ribs: np.ndarray, body_inst: np.ndarray, reach_mm: float, min_ml: float):
    """Per rib piece of at least `min_ml` (near the spine): (piece id, contact voxel counts per
    instance, the instance whose body centroid lies nearest, in the axial plane, to one of the piece's
    contact voxels)."""
    inst = labels.instances
    if not ribs.any() or not inst.any():
        return []
    spacing = np.asarray(labels.spacing)
    margin = int(np.ceil(reach_mm / spacing.min())) + 1
    box = bounding_box(inst > 0, margin)
    assert box is not None
    src, tgt = inst[box], ribs[box]
    if not tgt.any():
        return []
    dist, near = ndimage.distance_transform_edt(src == 0, sampling=spacing, return_indices=True)
    close = tgt & (dist <= reach_mm)
    pieces = cc3d.connected_components(tgt, connectivity=26)
    big = np.bincount(pieces.ravel()) * labels.voxel_ml >= min_ml
    close &= big[pieces]
    owner = src[tuple(i[close] for i in near)]
    where = np.argwhere(close)
    n_inst = int(inst.max()) + 1
    has_body = np.bincount(body_inst.ravel(), minlength=n_inst) > 0
    has_body[0] = False
    centres = np.zeros((n_inst, 3))
    with_body = np.flatnonzero(has_body)
    if with_body.size:
        centres[with_body] = centroids(body_inst[box], with_body)
    out = []
    piece_of = pieces[close]
    for piece in np.unique(piece_of):
        sel = piece_of == piece
        counts = np.bincount(owner[sel], minlength=n_inst)
        lateral = np.full(n_inst, np.inf)
        for o in np.unique(owner[sel]):
            if not has_body[o]:
                continue
            d = (where[sel][owner[sel] == o] - centres[o]) * spacing
            lateral[o] = float(np.min(np.hypot(d[:, 0], d[:, 1])))  # canonical axes 0, 1: R-L, A-P
        nearest = int(np.argmin(lateral)) if np.isfinite(lateral).any() else int(np.argmax(counts))
        out.append((int(piece), counts, nearest))
    return out


def extract_vertebrae(labels: SpineLabels, cfg: SinsConfig) -> list[VertebraMasks]:
    """One `VertebraMasks` per instance, ordered cranial to caudal along the spine."""
    ic = cfg.instances
    inst = labels.instances
    anat = labels.anatomy
    body_inst = np.where(anat == Anatomy.VERTEBRAL_BODY, inst, 0)
    voxel_ml = labels.voxel_ml
    n_inst = int(inst.max()) + 1
    # ribs: each rib piece belongs to the vertebra its most medial contact touches (the head at the
    # costovertebral joint; a low rib may also brush the transverse process of the vertebra below,
    # but farther from that vertebra's midline)
    rib_ml = np.zeros(n_inst)
    if labels.ribs is not None and labels.ribs.found:  # found in the CT itself (else the rib label's contacts)
        for i in range(n_inst):
            rib_ml[i] = labels.ribs.ml(i)
    else:
        rib_pieces = _rib_contacts(labels, anat == Anatomy.RIB, body_inst, ic.rib_contact_mm, ic.min_rib_piece_ml)
        for _piece, counts, nearest in rib_pieces:
            rib_ml[nearest] += counts[nearest] * voxel_ml
    sacrum_ml = np.zeros(n_inst)
    for counts in _contacts(
        labels, anat == Anatomy.SACRUM, body_inst, ic.rib_contact_mm, ic.min_sacrum_piece_ml
    ).values():
        sacrum_ml += counts * voxel_ml
    canal_all = anat == Anatomy.SPINAL_CANAL
    shape = inst.shape
    verts = []
    for i, box, mine in grown_pieces(inst, 2):
        a = anat[box]
        body = mine & (a == Anatomy.VERTEBRAL_BODY)
        posterior = mine & (a != Anatomy.VERTEBRAL_BODY)
        lesion = np.where(mine, labels.lesions[box], 0).astype(np.uint8)
        bidx = np.nonzero(body)
        complete = bool(bidx[0].size) and all(
            int(ix.min()) + s.start > 0 and int(ix.max()) + s.start < n - 1
            for ix, s, n in zip(bidx, box, shape, strict=True)
        )
        verts.append(
            VertebraMasks(
                id=i,
                affine=box_affine(labels.affine, box),
                body=body,
                posterior=posterior,
                lesion=lesion,
                canal=canal_all[box],
                complete=complete,
                rib_ml=float(rib_ml[i]),
                sacrum_ml=float(sacrum_ml[i]),
                given_name=labels.names.get(i),
            )
        )
    return order_cranial_to_caudal(verts)


def order_cranial_to_caudal(verts: list[VertebraMasks]) -> list[VertebraMasks]:
    """Sort along the main axis of the centroids, cranial (patient superior) first."""
    if len(verts) < 2:
        return verts
    c = np.array([v.centroid for v in verts])
    centred = c - c.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    if axis[2] < 0:
        axis = -axis
    return [verts[i] for i in np.argsort(-(centred @ axis))]


def drop_below_sacrum(
    labels: SpineLabels, verts: list[VertebraMasks], cfg: SinsConfig
) -> tuple[SpineLabels, list[VertebraMasks]]:
    """No vertebra lies below S1 (the body resting most on the sacrum): body pieces caudal to it are
    sacral segments or pelvis a network mistook for bodies, and are left out (with a note). A
    full-size rib-bearing vertebra below (`instances.min_vertebra_below_s1_share` of the median body
    above) means the sacrum contact is wrong, and nothing is dropped. Label maps that name their
    vertebrae are left as they are."""
    min_ml = cfg.instances.min_contact_ml
    if labels.names or not verts or max(v.sacrum_ml for v in verts) < min_ml:
        return labels, verts
    s1 = max(range(len(verts)), key=lambda i: verts[i].sacrum_ml)
    below = verts[s1 + 1 :]
    typical = float(np.median([np.count_nonzero(v.body) for v in verts[: s1 + 1]]))
    full = cfg.instances.min_vertebra_below_s1_share * typical
    if not below or any(v.rib_ml >= min_ml and np.count_nonzero(v.body) >= full for v in below):
        return labels, verts
    instances = np.where(np.isin(labels.instances, [v.id for v in below]), 0, labels.instances)
    note = f"{len(below)} body piece(s) below S1 (the body resting on the sacrum) are not vertebrae; left out"
    return replace(labels, instances=instances, notes=(*labels.notes, note)), verts[: s1 + 1]
