"""What the demo's processes (node, recorder, player) agree on: topics, message types, the input
QoS and how long they wait for each other."""
from __future__ import annotations

from typing import Any

IMAGE_TOPIC = "/camera/image_raw"
INFO_TOPIC = "/camera/camera_info"
DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"
FRAME_ID = "camera_optical_frame"
NODE_PREFIX = "/nbf"
OUTPUT_TOPICS = {  # name -> (topic, ROS type)
    "markers": (f"{NODE_PREFIX}/markers", "visualization_msgs/msg/MarkerArray"),
    "joints": (f"{NODE_PREFIX}/joints", "sensor_msgs/msg/PointCloud2"),
    "people": (f"{NODE_PREFIX}/people", "geometry_msgs/msg/PoseArray"),
    "debug_image": (f"{NODE_PREFIX}/debug_image", "sensor_msgs/msg/Image"),
    "diagnostics": ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
}
INPUT_TOPICS = {"image": (IMAGE_TOPIC, "sensor_msgs/msg/Image"),
                "camera_info": (INFO_TOPIC, "sensor_msgs/msg/CameraInfo"),
                "depth": (DEPTH_TOPIC, "sensor_msgs/msg/Image")}
DISCOVERY_TIMEOUT_S = 20.0
FIRST_OUTPUT_TIMEOUT_S = 60.0
ACK_TIMEOUT_S = 10.0
INPUT_DEPTH = 5


def input_qos() -> Any:
    """Reliable, keep last INPUT_DEPTH: the player's, the node's and the recorder's inputs."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=INPUT_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
