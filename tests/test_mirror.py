"""Left/right mirror augmentation (training/mirror.py): the kernel map against the rest body's
geometry, a mirrored crop against the camera model, and the orientation bins against the
bins of the original pose (what the docstring claims lets the trainer need no bin table)."""
from __future__ import annotations

import numpy as np
import torch

from nbf_ros.body.nbv import LIMB_NAMES, LIMBS, orientation_weights, sphere_bin_directions
from nbf_ros.body.pose_limits import MIRROR_JOINTS, mirror_name
from nbf_ros.config import NetConfig, SyntheticConfig
from nbf_ros.data.crops import render_crop
from nbf_ros.evaluation.metrics import LATERAL_M
from nbf_ros.training.mirror import MIRROR_X, kernel_mirror_map, mirror_crop


def test_the_kernel_map_sends_each_kernel_to_its_mirror_place(labels):
    sites = labels.rest_vertices[labels.kernel_vertex_ids]
    mapped = kernel_mirror_map(labels)
    distance = np.linalg.norm(sites[mapped] - sites * MIRROR_X, axis=1)
    spacing = np.median(np.sort(np.linalg.norm(sites[:, None] - sites[None], axis=-1), 1)[:, 1])
    assert np.median(distance) < spacing  # near the mirror point, within a kernel's reach
    lateral = np.abs(sites[:, 0]) > LATERAL_M
    assert np.all(np.sign(sites[mapped[lateral], 0]) == -np.sign(sites[lateral, 0]))
    limbs = [LIMB_NAMES[p] for p in labels.kernel_part]
    same = np.mean([limbs[m] == mirror_name(limbs[k]) for k, m in enumerate(mapped)])
    assert same > 0.95


def test_a_mirrored_crop_is_the_flipped_image_with_labels_that_follow(body, labels):
    net = NetConfig(crop_size=96, feature_stride=4)
    s = render_crop(3, SyntheticConfig(), body, labels, net, occlusion=False)
    sample = {"image": torch.from_numpy(np.ascontiguousarray(s.image)).permute(2, 0, 1).float() / 255.0,
              "kernel_index": torch.from_numpy(np.asarray(s.kernel_index, np.int64)),
              "joints3d": torch.from_numpy(np.asarray(s.joints3d, np.float32))}
    mapped = torch.from_numpy(kernel_mirror_map(labels))
    out = mirror_crop(sample, mapped)
    assert torch.equal(out["image"], sample["image"].flip(-1))
    flipped = sample["kernel_index"].flip(-1)
    assert torch.equal(out["kernel_index"] < 0, flipped < 0)
    body_pixels = flipped >= 0
    assert torch.equal(out["kernel_index"][body_pixels], mapped[flipped[body_pixels]])
    # The mirrored joints, seen by the flipped image's camera (cx -> S - 1 - cx), land on the
    # flipped 2D joints of the other side.
    fx, fy, cx, cy = (float(v) for v in s.crop_camera)
    size = net.crop_size
    j = out["joints3d"].double()
    u = fx * j[:, 0] / j[:, 2] + (size - 1 - cx)
    v = fy * j[:, 1] / j[:, 2] + cy
    uv = torch.from_numpy(np.asarray(s.joints2d, np.float64))[MIRROR_JOINTS]
    assert torch.allclose(u, size - 1 - uv[:, 0], atol=1e-3) and torch.allclose(v, uv[:, 1], atol=1e-3)


def test_orientation_bins_of_the_mirrored_pose_are_the_mirrored_bins(body, labels):
    """The 4 sphere bins map onto each other under x -> -x (bin 0 and 1 stay, 2 and 3 swap), so
    the bins of the mirrored joints at the mirrored kernel's limb are the original bins permuted."""
    bins = torch.from_numpy(sphere_bin_directions(4))
    swap = [0, 1, 3, 2]
    assert torch.allclose(bins * torch.tensor(MIRROR_X), bins[swap], atol=1e-12)
    s = render_crop(5, SyntheticConfig(), body, labels, NetConfig(crop_size=96), occlusion=False)
    joints = torch.from_numpy(np.asarray(s.joints3d, np.float64))
    mirrored = joints[MIRROR_JOINTS] * torch.tensor(MIRROR_X)
    limbs = torch.tensor(LIMBS)

    def weights(j: torch.Tensor) -> torch.Tensor:
        d = torch.nn.functional.normalize(j[limbs[:, 1]] - j[limbs[:, 0]], dim=-1)
        return orientation_weights(d, 4, "sphere", 4.0, bins)

    limb_mirror = [LIMB_NAMES.index(mirror_name(n)) for n in LIMB_NAMES]
    assert torch.allclose(weights(mirrored)[limb_mirror], weights(joints)[:, swap], atol=1e-9)
