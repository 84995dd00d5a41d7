"""Synthetic people with exact ground truth, and loaders of real data (docs/data.md).

Entry points: ``render_scene`` (full images), ``SyntheticCropDataset`` / ``write_shards`` /
``ShardDataset`` (training crops), ``body_labels`` (per-vertex truth tables, build once),
``JOINT_LIMITS`` / ``joint_limit_violation`` (the pose prior shared with the fitting).
Submodules import torch/numpy only; cv2 and scikit-image are imported when first used.
"""
from nbf_ros.data.crops import CropSample, render_crop
from nbf_ros.data.dataset import ShardDataset, SyntheticCropDataset, write_shards
from nbf_ros.data.poses import JOINT_LIMITS, PoseSampler, joint_limit_violation
from nbf_ros.data.scene import (GENERATOR_VERSION, BodyLabels, PersonTruth, SyntheticScene,
                                body_labels, render_scene)

__all__ = [
    "GENERATOR_VERSION", "BodyLabels", "CropSample", "JOINT_LIMITS", "PersonTruth", "PoseSampler",
    "ShardDataset",
    "SyntheticCropDataset", "SyntheticScene", "body_labels", "joint_limit_violation", "render_crop",
    "render_scene", "write_shards",
]
