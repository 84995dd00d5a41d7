"""2D keypoints for the fit other than the network's heatmaps: BlazePose, in this process.

``landmarks``: BlazePose's ONNX landmark model on any detector's boxes (engines/;
docs/landmarks.md); ``blazepose``: the 33 -> 24 SMPL joint mapping and crop keypoints
(numpy/torch only). Importing this package loads no model and no onnxruntime.
"""
from nbf_ros.keypoints.blazepose import (JOINT_RELIABILITY, LANDMARK_NAMES, SMPL_FROM_BLAZEPOSE,
                                         BlazePoseResult, SmplKeypoints, crop_keypoints,
                                         map_confidence, map_points, to_smpl)

__all__ = ["BlazePoseResult", "JOINT_RELIABILITY", "LANDMARK_NAMES", "SMPL_FROM_BLAZEPOSE",
           "SmplKeypoints", "crop_keypoints", "map_confidence", "map_points", "to_smpl"]
