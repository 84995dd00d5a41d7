"""2D keypoint sources other than the network's heatmaps: BlazePose.

``landmarks``: BlazePose's ONNX landmark model on any detector's boxes, in this process
(engines/; docs/landmarks.md); ``blazepose``: the 33 -> 24 SMPL joint mapping, boxes, crop
keypoints (numpy/torch only); the optional MediaPipe package:
``runtime``: where MediaPipe runs (in-process or a helper process); ``mediapipe_worker``: the
helper's script and wire format. Importing this package never imports mediapipe.
"""
from nbf_ros.keypoints.blazepose import (JOINT_RELIABILITY, LANDMARK_NAMES, SMPL_FROM_BLAZEPOSE,
                                         BlazePoseResult, SmplKeypoints, crop_keypoints,
                                         map_confidence, map_points, pose_box, to_smpl)

__all__ = ["BlazePoseResult", "JOINT_RELIABILITY", "LANDMARK_NAMES", "SMPL_FROM_BLAZEPOSE",
           "SmplKeypoints", "crop_keypoints", "map_confidence", "map_points", "pose_box", "to_smpl"]
