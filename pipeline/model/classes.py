"""The network's output channels, declared once (written to every model card as `channel_def`).

One softmax over anatomy and lesions: a lesion voxel replaces the bone it grows in (channels 8, 9),
so the anatomy under a predicted lesion is recovered afterwards (`spine.labels.attach_lesions`:
body within the body's outline, else the nearest bone).
"""

from __future__ import annotations

import numpy as np

from ..anatomy import Anatomy, Lesion

#: channel -> name. Channels 0-7 are the `Anatomy` ids; 8 and 9 the lesions.
CHANNELS: dict[int, str] = {
    0: "background",
    1: "vertebral body",
    2: "posterior elements",
    3: "intervertebral disc",
    4: "spinal canal",
    5: "rib",
    6: "sacrum",
    7: "pelvis",
    8: "lytic lesion",
    9: "blastic lesion",
}
N_CHANNELS = len(CHANNELS)
LYTIC_CHANNEL = 8
BLASTIC_CHANNEL = 9
#: Target value of voxels whose class is unknown (real scans): excluded from the training loss.
IGNORE = 255
#: Channels that make up the spine (for the coarse localisation crop).
SPINE_CHANNELS = (1, 2, 3, 4, 6, 8, 9)
#: Bone channels (body, posterior elements, rib, sacrum, pelvis): what bone-density augmentation thins.
BONE_CHANNELS = (1, 2, 5, 6, 7)


def to_target(anatomy: np.ndarray, lesions: np.ndarray) -> np.ndarray:
    """Training target from an anatomy map (`Anatomy` ids) and a lesion map (`Lesion` ids)."""
    target = anatomy.astype(np.uint8).copy()
    target[lesions == Lesion.LYTIC] = LYTIC_CHANNEL
    target[lesions == Lesion.BLASTIC] = BLASTIC_CHANNEL
    return target


def from_prediction(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(anatomy, lesions) maps from the network's argmax; lesion voxels get anatomy 0 here and
    take their bone label later (`spine.labels.attach_lesions`)."""
    lesions = np.zeros(labels.shape, np.uint8)
    lesions[labels == LYTIC_CHANNEL] = Lesion.LYTIC
    lesions[labels == BLASTIC_CHANNEL] = Lesion.BLASTIC
    anatomy = np.where(labels < LYTIC_CHANNEL, labels, 0).astype(np.uint8)
    assert int(Anatomy.PELVIS) == 7
    return anatomy, lesions
