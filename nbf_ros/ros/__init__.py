"""The ROS 2 layer: a thin lifecycle node over the pipeline, and ROS-message conversions.

Modules (importing this package imports nothing heavy; rclpy is needed by ``node``
and the message-building functions only):

- ``node``        ``nbf_node``: the lifecycle node (``NbfNode``, ``main``).
- ``conversions`` Image/CameraInfo -> numpy, people -> MarkerArray/PointCloud2/PoseArray (pure).
- ``params``      the parameter table, validation, mapping onto ``NbfConfig`` (no rclpy).
- ``camera_sync`` the image/CameraInfo exact-stamp pairing and the mailbox between callbacks and worker.
- ``stats``       bounded rates/latency windows and the diagnostics they turn into (no rclpy).
- ``bag_io``      offline rosbag2 replay (``process_bag``) and a bag writer for tests/demos.
"""
