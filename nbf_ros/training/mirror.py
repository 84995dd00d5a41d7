"""Left/right mirror augmentation of training crops, with labels that follow the mirror.

A crop flipped horizontally shows the mirror image of its person: the person's left side now
appears where a right side would be. Trained on such crops with the *mirrored* labels (each
pixel's kernel replaced by the kernel at the mirror-image place on the body, the joints mirrored
and their left/right names swapped), the features have to tell a left limb from a right one by
what the body looks like around it, not by where it sits in a typical crop; on unflipped crops
alone the head swaps left and right on 8.9 % of body cells (docs/features.md).

The kernel sites are not left/right symmetric (farthest-point sampling on the rest mesh), so a
kernel's mirror is the kernel owning the rest-mesh vertex nearest to the mirror image of its
site (x -> -x; SMPL's rest mesh is symmetric about x = 0): 14 mm from the exact mirror point on
average, against ~40 mm between neighbouring kernels.

Orientation bins need no table: the trainer derives them from the joints, and the mirrored
joints give the mirrored limb directions, so bin weights follow (the 4 "sphere" bin directions
are themselves mirror symmetric).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from nbf_ros.body.pose_limits import MIRROR_JOINTS
from nbf_ros.data.scene import BodyLabels

MIRROR_X = np.array([-1.0, 1.0, 1.0])
"""Camera- and body-frame mirror: x (image right / the body's left-right axis) negated."""


def kernel_mirror_map(labels: BodyLabels) -> np.ndarray:
    """(K,) for each kernel, the kernel at the mirror-image place on the rest body."""
    sites = labels.rest_vertices[labels.kernel_vertex_ids] * MIRROR_X
    _, nearest = cKDTree(labels.rest_vertices).query(sites)
    return np.asarray(labels.vertex_kernel[nearest], np.int64)


def nbv_kernel_mirror_map(data) -> np.ndarray:
    """``kernel_mirror_map`` in the NBV's kernel order (the order of a training crop's
    ``kernel_index``), from the generator's labels and its remap (``training.data.DataBody``)."""
    generator = kernel_mirror_map(data.labels)
    remap = np.asarray(data.remap)
    out = np.empty_like(generator)
    out[remap] = remap[generator]
    return out


def mirror_crop(sample: dict[str, torch.Tensor], kernel_map: torch.Tensor) -> dict[str, torch.Tensor]:
    """A training crop (``SyntheticCrops`` item: image 3 x S x S, kernel_index h x w with -1 for
    no body, joints3d 24 x 3 camera frame) flipped horizontally with labels that follow.

    The joints are mirrored about the camera's y-z plane. The flipped image's camera has its
    principal point mirrored too (cx -> S - 1 - cx), which moves every pixel's ray but no
    direction between rays, so the limb directions the orientation bins read are exact. Keys
    other than these three are dropped: their mirrored meaning is not needed for the head.
    """
    kernels = sample["kernel_index"].flip(-1)
    mirrored = torch.where(kernels >= 0, kernel_map[kernels.clamp(min=0)], kernels)
    joints = sample["joints3d"][torch.as_tensor(MIRROR_JOINTS)] * torch.as_tensor(MIRROR_X, dtype=torch.float32)
    return {"image": sample["image"].flip(-1), "kernel_index": mirrored, "joints3d": joints}


class MirroredCrops:
    """A view of a crop dataset whose items are ``mirror_crop`` of the originals."""

    def __init__(self, crops, kernel_map: np.ndarray) -> None:
        self.crops = crops
        self.kernel_map = torch.as_tensor(kernel_map, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return mirror_crop(self.crops[index], self.kernel_map)

    @property
    def cache(self):
        return self.crops.cache
