"""Offline replay: read a rosbag2 (sqlite3 or MCAP), run the pipeline on an image topic, write a
new bag with every input message plus the node's output topics.

Reading uses ``rosbags`` (pure Python, no ROS install); our outputs are built by the same
conversion functions as the node and serialised to CDR with ``rclpy.serialization`` (the ROS 2
wheels), so the recorded messages are byte-for-byte what the node would publish. Each output is
written at the bag time of its image and carries the image's header, exactly like the node.
Camera info: the latest valid CameraInfo before an image is used (as in the node); images
before any CameraInfo use the documented default intrinsics unless ``require_camera_info``.
Depth (optional ``depth_topic``): each image gets the depth image whose header stamp is nearest
to its own within ``depth_tolerance_s``, wherever it lies in the bag (an index of depth stamps is
read first, then each depth message is read when its image is processed: memory stays one
frame); an image without one, or with an unusable one, is processed monocular and counted in
``BagStats.depth_fallbacks`` by reason, as the node reports it.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from nbf_ros.errors import NbfError
from nbf_ros.geometry.camera import intrinsics_for_image
from nbf_ros.inference.overlay import draw_overlay
from nbf_ros.ros import conversions as conv

LOG = logging.getLogger(__name__)

OUTPUT_TYPES = {
    "markers": "visualization_msgs/msg/MarkerArray",
    "joints": "sensor_msgs/msg/PointCloud2",
    "people": "geometry_msgs/msg/PoseArray",
    "debug_image": "sensor_msgs/msg/Image",
}
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
DEFAULT_MARKER_LIFETIME_S = 0.3


@dataclass
class BagStats:
    """What ``process_bag`` did (logged by the CLI)."""

    messages_in: int = 0
    images: int = 0
    processed: int = 0
    people: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    output_topics: list[str] = field(default_factory=list)
    storage: str = ""
    seconds: float = 0.0
    depth_used: int = 0
    depth_fallbacks: dict[str, int] = field(default_factory=dict)
    results: list[tuple[int, Any]] = field(default_factory=list, repr=False)
    """(bag time ns, FrameResult) per processed image, for callers that also want JSON."""


class BagError(NbfError, ValueError):
    """A bag that cannot be processed as asked (missing topic, existing output, bad format)."""


def _storage_of(path: Path) -> str:
    if path.suffix == ".mcap" or (path.is_dir() and any(path.glob("*.mcap"))):
        return "mcap"
    return "sqlite3"


def _ros_header(header: Any) -> Any:
    """rosbags std_msgs/Header -> rclpy std_msgs/Header."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    return Header(stamp=Time(sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec)),
                  frame_id=str(header.frame_id))


def _decode(msgtype: str, msg: Any, max_side: int) -> np.ndarray:
    """Image or CompressedImage (rosbags object) -> H x W x 3 uint8 RGB; raises ImageError."""
    if msgtype == COMPRESSED_TYPE:
        import cv2

        data = np.asarray(msg.data, dtype=np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:
            raise conv.ImageError("encoding", f"undecodable CompressedImage ({msg.format!r})")
        if max(bgr.shape[:2]) > max_side:
            raise conv.ImageError("too_large", f"image {bgr.shape[1]} x {bgr.shape[0]} exceeds {max_side}")
        return np.ascontiguousarray(bgr[:, :, ::-1])
    return conv.image_to_rgb(msg, max_side)


class _Outputs:
    """Output connections of the new bag, and CDR serialisation of our messages."""

    def __init__(self, writer: Any, typestore: Any, prefix: str, debug_image: bool) -> None:
        names = [n for n in OUTPUT_TYPES if debug_image or n != "debug_image"]
        self.topics = {n: f"{prefix.rstrip('/')}/{n}" for n in names}
        self.connections = {n: writer.add_connection(self.topics[n], OUTPUT_TYPES[n], typestore=typestore)
                            for n in names}
        self.writer = writer

    def write(self, name: str, timestamp: int, msg: Any) -> None:
        from rclpy.serialization import serialize_message

        if name in self.connections:
            self.writer.write(self.connections[name], timestamp, serialize_message(msg))


def _copy_connections(reader: Any, writer: Any, typestore: Any) -> dict[int, Any]:
    """Input connection id -> output connection (same topic, type, definition and QoS)."""
    by_topic: dict[tuple[str, str], Any] = {}
    mapping: dict[int, Any] = {}
    for conn in reader.connections:
        key = (conn.topic, conn.msgtype)
        if key not in by_topic:
            ext = conn.ext
            kwargs = {"serialization_format": getattr(ext, "serialization_format", "cdr"),
                      "offered_qos_profiles": getattr(ext, "offered_qos_profiles", [])}
            if conn.msgdef.data and str(conn.digest).startswith("RIHS01_"):
                kwargs.update(msgdef=conn.msgdef.data, rihs01=conn.digest)
            else:
                kwargs.update(typestore=typestore)
            by_topic[key] = writer.add_connection(conn.topic, conn.msgtype, **kwargs)
        mapping[conn.id] = by_topic[key]
    return mapping


def process_bag(in_path: str | Path, out_path: str | Path, pipeline: Any, image_topic: str,
                info_topic: Optional[str] = None, *, fit: bool = True, output_prefix: str = "/nbf",
                storage: str = "auto", debug_image: bool = False, require_camera_info: bool = False,
                max_image_side: int = 4096, marker_lifetime_s: float = DEFAULT_MARKER_LIFETIME_S,
                keep_results: bool = False, depth_topic: Optional[str] = None,
                depth_tolerance_s: float = 0.015) -> BagStats:
    """Run ``pipeline`` on every image of ``image_topic`` in the bag at ``in_path``.

    Args:
        out_path: new bag (must not exist): all input messages plus ``<output_prefix>/markers``,
            ``/joints``, ``/people`` (and ``/debug_image``).
        pipeline: object with ``process(image_rgb, camera, tracker=, fit=, stamp_s=)``.
        info_topic: CameraInfo topic (None: default intrinsics for every image).
        depth_topic: aligned depth topic (16UC1 mm / 32FC1 m), paired by stamp (None: monocular).
        storage: "sqlite3", "mcap" or "auto" (same as the input).
    Returns:
        BagStats. Raises BagError for a missing topic or an existing output path.
    """
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from nbf_ros.tracking import Tracker

    start = time.perf_counter()
    in_path, out_path = Path(in_path), Path(out_path)
    if out_path.exists():
        raise BagError(f"{out_path}: output bag already exists; choose a new path")
    storage = _storage_of(in_path) if storage == "auto" else storage
    if storage not in ("sqlite3", "mcap"):
        raise BagError(f"storage must be sqlite3, mcap or auto, got {storage!r}")
    typestore = get_typestore(Stores.ROS2_KILTED)
    config = getattr(pipeline, "config", None)
    tracker = Tracker(config.tracker) if config is not None and hasattr(config, "tracker") else Tracker()
    stats = BagStats(storage=storage)
    skipped: Counter = Counter()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Reader(in_path) as reader, Writer(out_path, version=9, storage_plugin=plugin) as writer:
        topics = {c.topic: c.msgtype for c in reader.connections}
        if image_topic not in topics:
            raise BagError(f"{in_path}: no topic {image_topic!r}; topics: {sorted(topics)}")
        if topics[image_topic] not in (IMAGE_TYPE, COMPRESSED_TYPE):
            raise BagError(f"{image_topic} is {topics[image_topic]}, not an Image/CompressedImage")
        if info_topic and info_topic not in topics:
            raise BagError(f"{in_path}: no topic {info_topic!r}; topics: {sorted(topics)}")
        if depth_topic and topics.get(depth_topic, IMAGE_TYPE) != IMAGE_TYPE:
            raise BagError(f"{depth_topic} is {topics[depth_topic]}, not an Image")
        depths = _DepthIndex(reader, typestore, depth_topic, depth_tolerance_s) if depth_topic else None
        copies = _copy_connections(reader, writer, typestore)
        outputs = _Outputs(writer, typestore, output_prefix, debug_image)
        stats.output_topics = list(outputs.topics.values())
        camera: Optional[conv.CameraIntrinsics] = None
        camera_error: Optional[str] = None
        for conn, timestamp, raw in reader.messages():
            stats.messages_in += 1
            writer.write(copies[conn.id], timestamp, raw)
            if conn.topic == info_topic:
                try:
                    camera, camera_error = conv.camera_info_to_intrinsics(
                        typestore.deserialize_cdr(raw, conn.msgtype)), None
                except conv.CameraInfoError as exc:
                    camera, camera_error = None, str(exc)
                continue
            if conn.topic != image_topic:
                continue
            stats.images += 1
            msg = typestore.deserialize_cdr(raw, conn.msgtype)
            depth = depths.for_image(msg, max_image_side) if depths is not None else None
            reason = _process_one(msg, conn.msgtype, timestamp, camera, camera_error, pipeline, tracker,
                                  outputs, stats, fit=fit, require_camera_info=require_camera_info,
                                  max_side=max_image_side, lifetime=marker_lifetime_s,
                                  debug_image=debug_image, keep=keep_results, depth=depth)
            if reason:
                skipped[reason] += 1
    stats.skipped = dict(skipped)
    if depths is not None:
        stats.depth_fallbacks = dict(Counter(stats.depth_fallbacks) + depths.fallbacks)
    stats.seconds = time.perf_counter() - start
    LOG.info("bag %s -> %s: %d images, %d processed, skipped %s", in_path, out_path, stats.images,
             stats.processed, stats.skipped or "none")
    return stats


def _process_one(msg: Any, msgtype: str, timestamp: int, camera: Optional[conv.CameraIntrinsics],
                 camera_error: Optional[str], pipeline: Any, tracker: Any, outputs: _Outputs,
                 stats: BagStats, *, fit: bool, require_camera_info: bool, max_side: int,
                 lifetime: float, debug_image: bool, keep: bool,
                 depth: Optional[np.ndarray] = None) -> Optional[str]:
    """One image -> outputs written; returns the skip reason or None."""
    try:
        rgb = _decode(msgtype, msg, max_side)
    except conv.ImageError as exc:
        LOG.warning("bag image at %d skipped: %s", timestamp, exc)
        return exc.reason
    if camera_error is not None:
        return "camera_info_invalid"
    if camera is None:
        if require_camera_info:
            return "no_camera_info"
        intrinsics = conv.CameraIntrinsics.default_for(rgb.shape[1], rgb.shape[0])
    else:
        intrinsics = intrinsics_for_image(camera, rgb.shape[1], rgb.shape[0])
    stamp_s = conv.stamp_to_seconds(msg.header.stamp)
    if depth is not None and depth.shape != rgb.shape[:2]:
        LOG.warning("bag image at %d: depth %s is not registered to the image %s: monocular",
                    timestamp, depth.shape, rgb.shape[:2])
        stats.depth_fallbacks["size"] = stats.depth_fallbacks.get("size", 0) + 1
        depth = None
    extra = {} if depth is None else {"depth": depth}
    try:
        result = pipeline.process(rgb, intrinsics, tracker=tracker, fit=fit, stamp_s=stamp_s, **extra)
    except (NbfError, ValueError) as exc:
        LOG.warning("bag image at %d rejected by the pipeline: %s", timestamp, exc)
        return "rejected_by_pipeline"
    header = _ros_header(msg.header)
    people = list(result.people)
    outputs.write("markers", timestamp, conv.people_to_markers(people, header, lifetime))
    outputs.write("joints", timestamp, conv.people_to_pointcloud(people, header))
    outputs.write("people", timestamp, conv.people_to_pose_array(people, header))
    if debug_image:
        outputs.write("debug_image", timestamp, conv.rgb_to_image_msg(draw_overlay(rgb, people), header))
    stats.processed += 1
    stats.depth_used += depth is not None
    stats.people += len(people)
    if keep:
        stats.results.append((timestamp, result))
    return None


class _DepthIndex:
    """Header stamps of a bag's depth topic -> the depth image of an image's stamp, read when
    needed (one message in memory at a time)."""

    def __init__(self, reader: Any, typestore: Any, topic: str, tolerance_s: float) -> None:
        self.reader, self.typestore = reader, typestore
        self.connections = [c for c in reader.connections if c.topic == topic]
        if not self.connections:
            raise BagError(f"no topic {topic!r} in the bag; topics: "
                           f"{sorted({c.topic for c in reader.connections})}")
        self.tolerance_ns = int(round(tolerance_s * 1e9))
        self.bag_time: dict[int, int] = {}  # header stamp -> bag time
        for conn, timestamp, raw in reader.messages(connections=self.connections):
            header = typestore.deserialize_cdr(raw, conn.msgtype).header
            self.bag_time[conv.stamp_to_ns(header.stamp)] = timestamp
        self.stamps = np.array(sorted(self.bag_time), dtype=np.int64)
        self.fallbacks: Counter = Counter()

    def for_image(self, image: Any, max_side: int) -> Optional[np.ndarray]:
        """H x W metres for this image, or None (the reason counted in ``fallbacks``)."""
        stamp = conv.stamp_to_ns(image.header.stamp)
        if self.stamps.size == 0:
            self.fallbacks["none"] += 1
            return None
        nearest = int(self.stamps[np.argmin(np.abs(self.stamps - stamp))])
        if abs(nearest - stamp) > self.tolerance_ns:
            self.fallbacks["unmatched"] += 1
            return None
        when = self.bag_time[nearest]
        for conn, _, raw in self.reader.messages(connections=self.connections, start=when, stop=when + 1):
            msg = self.typestore.deserialize_cdr(raw, conn.msgtype)
            if conv.stamp_to_ns(msg.header.stamp) != nearest:
                continue
            try:
                return conv.depth_image_to_metres(msg, max_side)
            except conv.ImageError as exc:
                LOG.warning("bag depth at %d unusable (%s): monocular", when, exc)
                self.fallbacks[exc.reason] += 1
                return None
        self.fallbacks["unmatched"] += 1
        return None


def write_camera_bag(path: str | Path, frames: list[tuple[int, np.ndarray]], camera: conv.CameraIntrinsics,
                     *, image_topic: str = "/camera/image", info_topic: str = "/camera/camera_info",
                     frame_id: str = "camera_optical_frame", storage: str = "sqlite3",
                     encoding: str = "rgb8", depths: Optional[list[np.ndarray]] = None,
                     depth_topic: str = "/camera/aligned_depth_to_color/image_raw",
                     depth_encoding: str = "16UC1") -> None:
    """Write (stamp ns, H x W x 3 RGB) frames with a CameraInfo each into a new rosbag2; with
    ``depths`` (H x W metres per frame) also an aligned depth image per frame (same stamp).

    For tests, demos and bug reports: a bag that any ROS 2 tool (and ``process_bag``) reads.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    T = store.types
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(Path(path), version=9, storage_plugin=plugin) as writer:
        image_conn = writer.add_connection(image_topic, IMAGE_TYPE, typestore=store)
        info_conn = writer.add_connection(info_topic, INFO_TYPE, typestore=store)
        depth_conn = writer.add_connection(depth_topic, IMAGE_TYPE, typestore=store) if depths else None
        k = np.array([camera.fx, 0, camera.cx, 0, camera.fy, camera.cy, 0, 0, 1], dtype=np.float64)
        for index, (stamp, rgb) in enumerate(frames):
            sec, nanosec = divmod(int(stamp), 1_000_000_000)
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                              frame_id=frame_id)
            roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                         do_rectify=False)
            info = T[INFO_TYPE](
                header=header, height=rgb.shape[0], width=rgb.shape[1], distortion_model="plumb_bob",
                d=np.zeros(5), k=k, r=np.eye(3).reshape(9),
                p=np.array([camera.fx, 0, camera.cx, 0, 0, camera.fy, camera.cy, 0, 0, 0, 1, 0], float),
                binning_x=0, binning_y=0, roi=roi)
            enc = conv.encode_image(rgb, encoding)
            image = T[IMAGE_TYPE](header=header, height=enc.height, width=enc.width, encoding=enc.encoding,
                                  is_bigendian=0, step=enc.step, data=np.frombuffer(enc.data, np.uint8))
            if depth_conn is not None:  # first: a replay meets a frame's depth before its image
                enc = conv.encode_depth(depths[index], depth_encoding)
                depth = T[IMAGE_TYPE](header=header, height=enc.height, width=enc.width, encoding=enc.encoding,
                                      is_bigendian=0, step=enc.step, data=np.frombuffer(enc.data, np.uint8))
                writer.write(depth_conn, int(stamp), store.serialize_cdr(depth, IMAGE_TYPE))
            writer.write(info_conn, int(stamp), store.serialize_cdr(info, INFO_TYPE))
            writer.write(image_conn, int(stamp), store.serialize_cdr(image, IMAGE_TYPE))
