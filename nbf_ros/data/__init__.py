"""Synthetic people with exact ground truth, and loaders of real data (docs/data.md).

Build-time and training code only: the runtime never imports this package. Nothing is imported
here; use the submodules: ``scene`` (``render_scene``, ``body_labels``), ``crops``
(``render_crop``), ``dataset`` (``SyntheticCropDataset``, ``write_shards``, ``ShardDataset``),
``poses`` (``PoseSampler``; the joint limits it clamps to are ``nbf_ros.body.pose_limits``),
``real`` (3DPW, generic .npz). Submodules import torch/numpy only; cv2 and scikit-image are
imported when first used.
"""

__all__ = ["appearance", "crops", "dataset", "occluders", "poses", "raster", "real", "scene",
           "sequence"]
