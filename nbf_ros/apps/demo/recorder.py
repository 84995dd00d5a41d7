"""Records what the node publishes: every input and output message into an MCAP bag, and what
the scoring needs (joints, debug image per input stamp; the last diagnostics) in memory."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from nbf_ros.apps.demo.topics import DEPTH_TOPIC, IMAGE_TOPIC, INFO_TOPIC, INPUT_TOPICS, OUTPUT_TOPICS, input_qos

LOG = logging.getLogger("nbf_ros.demo")


@dataclass
class Received:
    """What arrived for one input stamp (ns)."""

    joints: Optional[np.ndarray] = None   # structured array of the ~/joints cloud
    frame_id: str = ""
    latency_ms: float = float("nan")
    debug_image: Optional[np.ndarray] = None


@dataclass
class Recording:
    """What the recorder keeps, shared by its callbacks (executor threads) and the demo: take
    ``lock`` to read it while the node runs."""

    by_stamp: dict[int, Received] = field(default_factory=dict)
    last_diagnostics: Any = None
    last_activity: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def entry(self, stamp_ns: int) -> Received:
        self.last_activity = time.monotonic()
        return self.by_stamp.setdefault(stamp_ns, Received())


class Recorder:
    """Subscribes to the inputs and every output; writes them all into an MCAP bag as they
    arrive (bag time = receive time) and keeps what the evaluation needs (joints, debug image,
    by input stamp; the last diagnostics)."""

    def __init__(self, context: Any, bag_path: Path) -> None:
        import rclpy
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.node = rclpy.create_node("nbf_demo_recorder", context=context)
        self.rec = Recording()
        store = get_typestore(Stores.ROS2_KILTED)
        self._writer = Writer(bag_path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._conns = {name: self._writer.add_connection(topic, msgtype, typestore=store)
                       for name, (topic, msgtype) in {**INPUT_TOPICS, **OUTPUT_TOPICS}.items()}
        self.output_subs = self._subscribe()

    def _subscribe(self) -> list[Any]:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from visualization_msgs.msg import MarkerArray

        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        n = self.node
        n.create_subscription(Image, IMAGE_TOPIC, self._cb("image"), input_qos())
        n.create_subscription(CameraInfo, INFO_TOPIC, self._cb("camera_info"), input_qos())
        n.create_subscription(Image, DEPTH_TOPIC, self._cb("depth"), input_qos())
        types = {"markers": MarkerArray, "joints": PointCloud2, "people": PoseArray,
                 "debug_image": Image, "diagnostics": DiagnosticArray}
        return [n.create_subscription(types[name], OUTPUT_TOPICS[name][0], self._cb(name), reliable)
                for name in types]

    def _cb(self, name: str):
        def callback(msg: Any) -> None:
            received_ns = time.time_ns()
            try:
                self._write(name, received_ns, msg)
                with self.rec.lock:
                    self._keep(name, received_ns, msg)
            except Exception as exc:  # noqa: BLE001 - an exception here would stop the executor
                LOG.error("recorder: %s message not kept: %s: %s", name, type(exc).__name__, exc)
        return callback

    def _write(self, name: str, received_ns: int, msg: Any) -> None:
        from rclpy.serialization import serialize_message

        data = serialize_message(msg)
        with self.rec.lock:
            if self._writer is not None:
                self._writer.write(self._conns[name], received_ns, data)

    def _keep(self, name: str, received_ns: int, msg: Any) -> None:
        from nbf_ros.ros.conversions import image_to_rgb, pointcloud_to_array, stamp_to_ns

        if name == "diagnostics":
            self.rec.last_diagnostics = msg
        elif name == "joints":
            entry = self.rec.entry(stamp_to_ns(msg.header.stamp))
            entry.joints = np.array(pointcloud_to_array(msg))
            entry.frame_id = msg.header.frame_id
            entry.latency_ms = (received_ns - stamp_to_ns(msg.header.stamp)) * 1e-6
        elif name == "debug_image":
            self.rec.entry(stamp_to_ns(msg.header.stamp)).debug_image = image_to_rgb(msg)

    def outputs_matched(self) -> bool:
        return all(sub.get_publisher_count() >= 1 for sub in self.output_subs)

    def close(self) -> None:
        with self.rec.lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()


def save_overlays(rec: Recording, manifest: list[dict], folder: Path) -> int:
    """The node's debug image (what RViz's image panel shows) per processed frame, as PNG."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for line in manifest:
        got = rec.by_stamp.get(line["stamp_ns"])
        if got is not None and got.debug_image is not None:
            cv2.imwrite(str(folder / f"frame_{line['index']:03d}.png"), got.debug_image[..., ::-1])
            count += 1
    return count
