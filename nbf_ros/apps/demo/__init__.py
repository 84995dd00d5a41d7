"""``nbf-ros demo``: the main job. The real node on a bundled, rendered input, with no camera and
no ROS install (the ROS 2 PyPI wheels give rclpy and DDS).

1. Render a short sequence with exact truth (``nbf_ros.data.sequence``: people, and a box that
   slides in front of the main person) and write it as a rosbag2 (MCAP) ``input_bag``
   (``sequence``).
2. Start the lifecycle node ``nbf`` (autostart, the real pipeline, config from ``node_config``)
   and a recorder in this process (``session``), then replay the bag from a SECOND process
   (``python -m nbf_ros.apps.demo.player``) as sensor_msgs/Image + CameraInfo at ``--rate`` Hz,
   stamped with the current time.
3. The recorder (``recorder``) saves what RViz would show: the node's debug image per processed
   frame as PNG (``overlays/``) and an MCAP ``output_bag`` with the input topics plus every
   output topic.
4. Outputs are matched to the truth by header stamp (``scoring``): root position error and MPJPE
   per frame, latency (image stamp to output received), frames published / processed / dropped.
   A short summary is printed, then one JSON line (also written to ``summary.json``).

``cli`` parses the options and prints the summary, ``run`` runs the steps in order, ``topics``
holds what the processes agree on and ``ros_env`` the environment both processes share.
"""
from __future__ import annotations

from nbf_ros.errors import NbfError


class DemoError(NbfError):
    """The demo could not run (one line for the user)."""
