"""``nbf-ros demo``: the main job. The real node on a bundled, rendered input, with no camera and
no ROS install (the ROS 2 PyPI wheels give rclpy and DDS).

1. Render a short sequence with exact truth (``nbf_ros.data.sequence``: people, and a box that
   slides in front of the main person) and write it as a rosbag2 (MCAP) ``input_bag``.
2. Start the lifecycle node ``nbf`` (autostart, the real pipeline) and a recorder in this
   process, then replay the bag from a SECOND process (``python -m nbf_ros.demo --play``) as
   sensor_msgs/Image + CameraInfo at ``--rate`` Hz, stamped with the current time.
3. The recorder saves what RViz would show: the node's debug image per processed frame as PNG
   (``overlays/``) and an MCAP ``output_bag`` with the input topics plus every output topic.
4. Outputs are matched to the truth by header stamp: root position error and MPJPE per frame,
   latency (image stamp to output received), frames published / processed / dropped. A short
   summary is printed, then one JSON line (also written to ``summary.json``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from nbf_ros.errors import NbfError

LOG = logging.getLogger("nbf_ros.demo")

IMAGE_TOPIC = "/camera/image_raw"
INFO_TOPIC = "/camera/camera_info"
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
                "camera_info": (INFO_TOPIC, "sensor_msgs/msg/CameraInfo")}
BAG_START_NS = 1_700_000_000_000_000_000
"""Stamp of frame 0 in the input bag (fixed, so the bag is reproducible); replay restamps."""
DEFAULT_RATE_HZ = 1.0
DEFAULT_DETECTOR = "fixed"
FIXED_BOX_MARGIN = 0.0
"""The fixed region is the main person's full-body box (union over the frames) grown by this
fraction per side. The network learned from crops around tight person boxes (a few per cent of
jitter): a looser region makes the person look smaller in the crop than in training, and the
network puts them too near (root error 0.76 m with a 15 % margin, 0.28 m without, in a preview
run with partly trained weights)."""
DISCOVERY_TIMEOUT_S = 20.0
FIRST_OUTPUT_TIMEOUT_S = 60.0
ACK_TIMEOUT_S = 10.0
INPUT_DEPTH = 5
SETTLE_S = 5.0
"""After the player ends, wait this long (plus twice the worst latency) for the last outputs."""
MAX_WAIT_S = 120.0
OCCLUDED_MIN = 0.2
"""Frames where the occluder hides at least this share of the main person count as occluded."""


class DemoError(NbfError):
    """The demo could not run (one line for the user)."""


# -- arguments ------------------------------------------------------------------------------------
def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nbf-ros demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="demo_out", help="output folder (input_bag, output_bag, overlays/, "
                   "summary.json, truth.json); the demo's own files in it are replaced")
    p.add_argument("--frames", type=int, default=20, help="frames in the sequence")
    p.add_argument("--people", type=int, default=2, choices=(1, 2), help="people in the scene")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE_HZ, help="replay rate, frames per second")
    p.add_argument("--seed", type=int, default=7, help="scene seed (looks, shapes, background)")
    p.add_argument("--config", metavar="PIPELINE.yaml", help="pipeline config (embedded defaults if absent)")
    p.add_argument("--weights", metavar="NET.pt", help="network weights (overrides the config)")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, choices=("fixed", "hog", "full_frame", "config"),
                   help="person boxes: 'fixed' = the region where the main person stands (default: "
                   "HOG misses people behind the occluder), 'config' = as the pipeline config says")
    p.add_argument("--max-iters", type=int, default=None, help="fitting iterations per person")
    p.add_argument("--no-fit", action="store_true", help="regression only")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: the environment's)")
    p.add_argument("--play", metavar="BAG", help=argparse.SUPPRESS)
    p.add_argument("--manifest", help=argparse.SUPPRESS)
    p.add_argument("--wait-subscribers", type=int, default=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.frames < 1:
        p.error(f"--frames must be >= 1, got {args.frames}")
    if not 0.05 <= args.rate <= 100.0:
        p.error(f"--rate must be in [0.05, 100], got {args.rate}")
    if args.max_iters is not None and args.max_iters < 0:
        p.error(f"--max-iters must be >= 0, got {args.max_iters}")
    return args


# -- the player (second process) -------------------------------------------------------------------
def input_qos() -> Any:
    """Reliable, keep last INPUT_DEPTH: the player's, the node's and the recorder's inputs."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=INPUT_DEPTH, reliability=ReliabilityPolicy.RELIABLE)


def play(bag: Path, rate_hz: float, manifest: Path, wait_subscribers: int) -> int:
    """Publish the bag's images and camera infos at ``rate_hz``, stamped now.

    Reliable QoS, as ``ros2 bag play`` offers for recorded topics: best-effort 1 MB images
    between two processes lose fragments (whole frames) on a loaded machine; the node's
    ``qos_reliability`` is set to match.

    Writes one JSON line per image to ``manifest``: its index in the bag, the bag stamp and the
    stamp it was published with, so outputs can be matched to the truth by stamp.

    The node's first frame is slow (first-call set-up in torch and the fitter), so the player
    waits for the node's first output (up to FIRST_OUTPUT_TIMEOUT_S) before pacing the rest:
    frames are then dropped only when the node cannot keep up with ``rate_hz``.
    """
    import rclpy
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from nbf_ros.ros.publisher import wait_for_subscribers

    rclpy.init()
    node = rclpy.create_node("nbf_demo_camera")
    try:
        image_pub = node.create_publisher(Image, IMAGE_TOPIC, input_qos())
        info_pub = node.create_publisher(CameraInfo, INFO_TOPIC, input_qos())
        outputs: list[Any] = []
        node.create_subscription(PointCloud2, OUTPUT_TOPICS["joints"][0], outputs.append, input_qos())
        if wait_subscribers and not wait_for_subscribers(node, [image_pub, info_pub], wait_subscribers):
            print("demo player: no subscriber matched", file=sys.stderr)
            return 3

        def first_output() -> None:
            deadline = time.monotonic() + FIRST_OUTPUT_TIMEOUT_S
            while not outputs and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.05)

        with Reader(bag) as reader, open(manifest, "w") as out:
            _replay(reader, node, (image_pub, info_pub), rate_hz, out, deserialize_message,
                    (Image, CameraInfo), first_output)
        # A reliable writer that goes away early takes its unacknowledged samples with it.
        from rclpy.duration import Duration

        for pub in (info_pub, image_pub):
            pub.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _replay(reader: Any, node: Any, pubs: tuple[Any, Any], rate_hz: float, out: Any,
            deserialize: Any, types: tuple[Any, Any], after_first: Any) -> None:
    image_pub, info_pub = pubs
    image_type, info_type = types
    info = None
    index, start = 0, time.monotonic()
    for conn, bag_ns, raw in reader.messages():
        if conn.topic == INFO_TOPIC:
            info = deserialize(raw, info_type)
            continue
        if conn.topic != IMAGE_TOPIC:
            continue
        image = deserialize(raw, image_type)
        now = node.get_clock().now().to_msg()
        image.header.stamp = now
        if info is not None:
            info.header.stamp = now
            info_pub.publish(info)
        image_pub.publish(image)
        out.write(json.dumps({"index": index, "bag_stamp_ns": int(bag_ns),
                              "stamp_ns": now.sec * 1_000_000_000 + now.nanosec}) + "\n")
        out.flush()
        index += 1
        if index == 1:
            after_first()
            start = time.monotonic() - 1.0 / rate_hz
        sleep = start + index / rate_hz - time.monotonic()
        if sleep > 0:
            time.sleep(sleep)


# -- the recorder ------------------------------------------------------------------------------------
@dataclass
class Received:
    """What arrived for one input stamp (ns)."""

    joints: Optional[np.ndarray] = None   # structured array of the ~/joints cloud
    frame_id: str = ""
    latency_ms: float = float("nan")
    debug_image: Optional[np.ndarray] = None


@dataclass
class Recording:
    by_stamp: dict[int, Received] = field(default_factory=dict)
    last_diagnostics: Any = None
    last_activity: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def entry(self, stamp_ns: int) -> Received:
        self.last_activity = time.monotonic()
        return self.by_stamp.setdefault(stamp_ns, Received())


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


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
        from nbf_ros.ros.conversions import image_to_rgb, pointcloud_to_array

        if name == "diagnostics":
            self.rec.last_diagnostics = msg
        elif name == "joints":
            entry = self.rec.entry(_stamp_ns(msg.header))
            entry.joints = np.array(pointcloud_to_array(msg))
            entry.frame_id = msg.header.frame_id
            entry.latency_ms = (received_ns - _stamp_ns(msg.header)) * 1e-6
        elif name == "debug_image":
            self.rec.entry(_stamp_ns(msg.header)).debug_image = image_to_rgb(msg)

    def outputs_matched(self) -> bool:
        return all(sub.get_publisher_count() >= 1 for sub in self.output_subs)

    def close(self) -> None:
        with self.rec.lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()


# -- evaluation -------------------------------------------------------------------------------------
@dataclass
class FrameEval:
    index: int
    stamp_ns: int
    occluded: float
    people_out: int
    latency_ms: float
    matches: list[dict[str, float]]


@dataclass
class CloudPerson:
    """One person of a ~/joints cloud: 24 x 3 joints (metres, camera frame), (24,) visibility."""

    joints: np.ndarray
    visibility: np.ndarray


def people_from_cloud(points: np.ndarray) -> dict[int, CloudPerson]:
    """~/joints cloud (structured array, interfaces.md fields) -> {person id: CloudPerson}."""
    from nbf_ros.types import NUM_JOINTS

    people: dict[int, CloudPerson] = {}
    for pid in np.unique(points["person_id"]) if len(points) else []:
        rows = points[points["person_id"] == pid]
        person = CloudPerson(np.full((NUM_JOINTS, 3), np.nan), np.full(NUM_JOINTS, np.nan))
        person.joints[rows["joint_id"]] = np.stack([rows["x"], rows["y"], rows["z"]], axis=1)
        person.visibility[rows["joint_id"]] = rows["visibility"]
        people[int(pid)] = person
    return people


def match_people(pred: dict[int, CloudPerson], truth: list[Any], camera: Any,
                 visible_threshold: float = 0.5) -> list[dict[str, float]]:
    """Pair predictions with truth people by the image distance of their projected roots
    (Hungarian), a pair only when that distance is below the truth person's box height (a
    prediction elsewhere in the image is not that person). Per pair: truth index, id, root position error (m), root-aligned MPJPE (mm) and
    the share of joints whose visible/hidden call (at ``visible_threshold``) matches the truth."""
    from scipy.optimize import linear_sum_assignment

    from nbf_ros.data.raster import project
    from nbf_ros.evaluation.occlusion import root_aligned_error

    if not pred or not truth:
        return []
    ids = sorted(pred)
    pred_uv = project(np.stack([pred[i].joints[0] for i in ids]), camera)
    truth_uv = project(np.stack([t.joints3d[0] for t in truth]), camera)
    cost = np.nan_to_num(np.linalg.norm(pred_uv[:, None] - truth_uv[None], axis=2), nan=np.inf)
    gate = np.array([t.bbox[3] - t.bbox[1] for t in truth])
    rows, cols = linear_sum_assignment(np.where(cost < gate[None], cost, 1e9))
    out = []
    for r, c in zip(rows, cols):
        if not cost[r, c] < gate[c]:
            continue
        person, true = pred[ids[r]], truth[c]
        agree = (person.visibility >= visible_threshold) == (np.asarray(true.joint_visibility) >= visible_threshold)
        out.append({"truth": int(c), "id": int(ids[r]),
                    "root_error_m": float(np.linalg.norm(person.joints[0] - true.joints3d[0])),
                    "mpjpe_mm": float(root_aligned_error(person.joints, true.joints3d).mean() * 1e3),
                    "visibility_agreement": float(agree.mean())})
    return out


def evaluate(manifest: list[dict], rec: Recording, truths: list[list[Any]], occluded: list[float],
             camera: Any) -> list[FrameEval]:
    """One FrameEval per published frame that got a ~/joints output (matched by stamp)."""
    out = []
    for line in manifest:
        got = rec.by_stamp.get(line["stamp_ns"])
        if got is None or got.joints is None:
            continue
        i = line["index"]
        pred = people_from_cloud(got.joints)
        out.append(FrameEval(i, line["stamp_ns"], occluded[i], len(pred), got.latency_ms,
                             match_people(pred, truths[i], camera)))
    return out


def _stat(values: list[float]) -> dict[str, Optional[float]]:
    if not values:
        return {"mean": None, "p50": None, "p95": None}
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(arr.mean()), 4), "p50": round(float(np.percentile(arr, 50)), 4),
            "p95": round(float(np.percentile(arr, 95)), 4)}


def summarise(published: int, evals: list[FrameEval], frame_ids: set[str], files: dict[str, str],
              extra: dict[str, Any]) -> dict[str, Any]:
    """The summary JSON (numbers rounded for reading)."""
    main = [(e, m) for e in evals for m in e.matches if m["truth"] == 0]
    occl = [m for e, m in main if e.occluded >= OCCLUDED_MIN]
    clear = [m for e, m in main if e.occluded < OCCLUDED_MIN]
    matches = [m for e in evals for m in e.matches]
    return {
        "frames_published": published, "frames_processed": len(evals),
        "frames_dropped": published - len(evals),
        "people_per_frame": [e.people_out for e in evals],
        "latency_ms": {k: v for k, v in _stat([e.latency_ms for e in evals]).items() if k != "mean"},
        "root_error_m": _stat([m["root_error_m"] for m in matches]),
        "mpjpe_mm": _stat([m["mpjpe_mm"] for m in matches]),
        "main_person": {"occluded_frames": len(occl), "clear_frames": len(clear),
                        "track_ids": sorted({int(m["id"]) for _, m in main}),
                        "root_error_m_occluded": _stat([m["root_error_m"] for m in occl])["mean"],
                        "root_error_m_clear": _stat([m["root_error_m"] for m in clear])["mean"],
                        "mpjpe_mm_occluded": _stat([m["mpjpe_mm"] for m in occl])["mean"],
                        "mpjpe_mm_clear": _stat([m["mpjpe_mm"] for m in clear])["mean"],
                        "visibility_agreement_occluded": _stat([m["visibility_agreement"] for m in occl])["mean"],
                        "visibility_agreement_clear": _stat([m["visibility_agreement"] for m in clear])["mean"]},
        "per_frame": [{"frame": e.index, "occluded": round(e.occluded, 3), "people": e.people_out,
                       "latency_ms": round(e.latency_ms, 1),
                       "matches": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}
                                   for m in e.matches]} for e in evals],
        "frame_ids": sorted(frame_ids), **extra, "files": files,
    }


# -- the run -------------------------------------------------------------------------------------------
@dataclass
class Scene:
    camera: Any
    truths: list[list[Any]]
    occluded: list[float]
    fixed_box: tuple[float, float, float, float]


def render_input(args: argparse.Namespace, body_path: Path, bag: Path, truth_json: Path) -> Scene:
    """Render the sequence, write the input bag (MCAP) and truth.json."""
    from nbf_ros.body.model import BodyModel
    from nbf_ros.data.sequence import SequenceConfig, render_sequence
    from nbf_ros.ros.bag_io import write_camera_bag

    cfg = SequenceConfig(frames=args.frames, people=args.people, seed=args.seed)
    camera, frames = render_sequence(cfg, BodyModel(body_path))
    period_ns = int(round(1e9 / args.rate))
    images, truths, occluded = [], [], []
    for frame in frames:
        images.append((BAG_START_NS + frame.index * period_ns, frame.image))
        truths.append(frame.people)
        occluded.append(frame.main_occluded_fraction)
    write_camera_bag(bag, images, camera, image_topic=IMAGE_TOPIC, info_topic=INFO_TOPIC,
                     frame_id=FRAME_ID, storage="mcap")
    truth_json.write_text(json.dumps({"camera": dataclasses.asdict(camera), "frames": [
        {"frame": i, "bag_stamp_ns": images[i][0], "main_occluded_fraction": occluded[i],
         "people": [{"joints3d": t.joints3d.round(4).tolist(), "bbox": t.bbox.round(1).tolist(),
                     "joint_visibility": np.asarray(t.joint_visibility).round(3).tolist()} for t in people]}
        for i, people in enumerate(truths)]}))
    return Scene(camera, truths, occluded, _fixed_box(truths, camera))


def _fixed_box(truths: list[list[Any]], camera: Any) -> tuple[float, float, float, float]:
    """The main person's full-body box (union over frames) grown by FIXED_BOX_MARGIN, clipped."""
    boxes = np.stack([people[0].bbox for people in truths])
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    mx, my = FIXED_BOX_MARGIN * (x1 - x0), FIXED_BOX_MARGIN * (y1 - y0)
    return (float(max(x0 - mx, 0.0)), float(max(y0 - my, 0.0)),
            float(min(x1 + mx, camera.width)), float(min(y1 + my, camera.height)))


def pipeline_config(args: argparse.Namespace) -> Any:
    """The node's pipeline config: the user's (or the defaults) with the demo's overrides; raises
    DemoError before anything is rendered when a model file is missing."""
    from nbf_ros.config import load_config, resolve_path

    cfg = load_config(args.config)
    if args.weights:
        cfg = dataclasses.replace(cfg, inference=dataclasses.replace(
            cfg.inference, weights_path=str(Path(args.weights).resolve())))
    if args.detector != "config":
        cfg = dataclasses.replace(cfg, detector=dataclasses.replace(cfg.detector, kind=args.detector))
    if args.max_iters is not None:
        cfg = dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, max_iters=args.max_iters))
    needed = [("body model", cfg.body.model_path)]
    if cfg.inference.backend == "torch":
        needed.append(("network weights", cfg.inference.weights_path))
    for what, p in needed:
        if not resolve_path(p).is_file():
            raise DemoError(f"{what} not found: {resolve_path(p)} (pass --weights NET.pt or a --config)")
    return cfg


def save_pipeline_yaml(cfg: Any, scene: Scene, path: Path) -> Any:
    """Write ``cfg`` with the fixed region set from the scene (the node reads this file)."""
    from nbf_ros.config import save_config

    if cfg.detector.kind == "fixed" and not any(cfg.detector.fixed_box):
        cfg = dataclasses.replace(cfg, detector=dataclasses.replace(cfg.detector, fixed_box=scene.fixed_box))
    save_config(cfg, path)
    return cfg


def _ros_env(domain_id: Optional[int]) -> dict[str, str]:
    """The environment for rclpy here and in the player: localhost discovery unless the user
    chose a range (the demo talks to itself), and the domain if given."""
    if domain_id is not None:
        os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in os.environ:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        os.environ.pop("ROS_LOCALHOST_ONLY", None)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


class RosSession:
    """One rclpy context with the node under test and the recorder, spun in a thread."""

    def __init__(self, config_yaml: Path, fit: bool, bag_out: Path) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter

        from nbf_ros.ros.node import NbfNode, autostart

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = NbfNode(context=self.context, parameter_overrides=[
            Parameter("config_file", value=str(config_yaml)), Parameter("fit", value=fit),
            Parameter("publish_debug_image", value=True), Parameter("qos_reliability", value="reliable"),
            Parameter("qos_depth", value=INPUT_DEPTH)],
            cli_args=["--ros-args", "-r", f"image:={IMAGE_TOPIC}", "-r", f"camera_info:={INFO_TOPIC}"])
        self.recorder: Optional[Recorder] = None
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self._thread: Optional[threading.Thread] = None
        if not autostart(self.node):
            reasons = "; ".join(s.message for s in self.node.diagnostic_statuses() if s.level)
            self.close()
            raise DemoError(f"the node did not start: {reasons or 'configure/activate failed'}")
        self.recorder = Recorder(self.context, bag_out)
        self.executor.add_node(self.node)
        self.executor.add_node(self.recorder.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - the context is shut down at the end
            pass

    def wait_matched(self) -> None:
        deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
        while not self.recorder.outputs_matched():
            if time.monotonic() > deadline:
                raise DemoError("the recorder never matched the node's outputs (DDS discovery)")
            time.sleep(0.05)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.node.destroy_node()
        if self.recorder is not None:
            self.recorder.node.destroy_node()
            self.recorder.close()
        rclpy.try_shutdown(context=self.context)


def run_player(args: argparse.Namespace, bag: Path, manifest: Path, env: dict[str, str]) -> list[dict]:
    """Replay ``bag`` from a second process; returns its manifest (one dict per published frame)."""
    cmd = [sys.executable, "-m", "nbf_ros.demo", "--play", str(bag), "--rate", str(args.rate),
           "--manifest", str(manifest), "--wait-subscribers", "2"]
    timeout = DISCOVERY_TIMEOUT_S + FIRST_OUTPUT_TIMEOUT_S + ACK_TIMEOUT_S + args.frames / args.rate + 30.0
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise DemoError(f"the player process failed ({proc.returncode}): {tail}")
    return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]


def node_finished(counts: dict[str, str], published: int) -> bool:
    """From the node's own diagnostics: it received every published frame and each one was
    processed, dropped (replaced while busy) or skipped, so no more outputs will come."""
    try:
        received, processed, dropped = (int(counts[k]) for k in
                                        ("frames_received", "frames_processed", "frames_dropped"))
        skipped = sum(int(item.split("=")[1]) for item in counts.get("skipped_total", "0").split(", ")
                      if "=" in item)
    except (KeyError, ValueError):
        return False
    return received >= published and processed + dropped + skipped >= received


def wait_for_outputs(rec: Recording, stamps: list[int]) -> None:
    """After the player ended: until the node's diagnostics say every frame is accounted for and
    its outputs are here, or nothing new arrived for SETTLE_S plus twice the worst latency so far
    (MAX_WAIT_S before the first output)."""
    with rec.lock:
        rec.last_activity = time.monotonic()
    while True:
        with rec.lock:
            complete = [s for s in stamps if s in rec.by_stamp and rec.by_stamp[s].joints is not None
                        and rec.by_stamp[s].debug_image is not None]
            counts = _node_counts(rec.last_diagnostics)
            lat = [e.latency_ms for e in rec.by_stamp.values() if np.isfinite(e.latency_ms)]
            idle = time.monotonic() - rec.last_activity
        if len(complete) == len(stamps) or (node_finished(counts, len(stamps))
                                            and len(complete) >= int(counts["frames_processed"])):
            return
        if idle > (SETTLE_S + 2e-3 * max(lat) if lat else MAX_WAIT_S):
            LOG.warning("stopped waiting for outputs after %.0f s without any", idle)
            return
        time.sleep(0.1)


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


def _fresh(out: Path) -> dict[str, Path]:
    """The demo's paths in ``out``; earlier demo outputs there are removed (nothing else)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("input_bag", "output_bag", "overlays")}
    for p in paths.values():
        if p.is_dir():
            shutil.rmtree(p)
    paths.update({name: out / f"{name}.json" for name in ("truth", "summary", "manifest")})
    paths["pipeline"] = out / "pipeline.yaml"
    return paths


def _node_counts(diag: Any) -> dict[str, str]:
    """frames_received / processed / dropped as the node itself reports them (last diagnostics)."""
    keys = ("frames_received", "frames_processed", "frames_dropped", "skipped_total", "backend")
    values = {kv.key: kv.value for status in (diag.status if diag is not None else []) for kv in status.values}
    return {k: values[k] for k in keys if k in values}


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    """The whole demo; returns the summary dict (raises DemoError with a one-line reason)."""
    from nbf_ros.config import resolve_path

    start = time.perf_counter()
    cfg = pipeline_config(args)
    paths = _fresh(Path(args.out))
    LOG.info("rendering %d frames (%d people, moving occluder) ...", args.frames, args.people)
    scene = render_input(args, resolve_path(cfg.body.model_path), paths["input_bag"], paths["truth"])
    cfg = save_pipeline_yaml(cfg, scene, paths["pipeline"])
    env = _ros_env(args.domain_id)
    LOG.info("starting the node (detector %s, weights %s) ...", cfg.detector.kind, cfg.inference.weights_path)
    session = RosSession(paths["pipeline"], not args.no_fit, paths["output_bag"])
    try:
        session.wait_matched()
        LOG.info("replaying %d frames at %.1f Hz from a second process ...", args.frames, args.rate)
        manifest = run_player(args, paths["input_bag"], paths["manifest"], env)
        wait_for_outputs(session.recorder.rec, [m["stamp_ns"] for m in manifest])
        node_counts = _node_counts(session.recorder.rec.last_diagnostics)
    finally:
        session.close()
    rec = session.recorder.rec
    evals = evaluate(manifest, rec, scene.truths, scene.occluded, scene.camera)
    overlays = save_overlays(rec, manifest, paths["overlays"])
    files = {k: str(paths[k]) for k in ("input_bag", "output_bag", "overlays", "truth", "summary")}
    summary = summarise(len(manifest), evals, {e.frame_id for e in rec.by_stamp.values() if e.frame_id},
                        files, {"overlays_written": overlays, "node": node_counts,
                                "detector": cfg.detector.kind, "fit": not args.no_fit,
                                "seconds": round(time.perf_counter() - start, 1)})
    paths["summary"].write_text(json.dumps(summary, indent=1))
    if not evals:
        raise DemoError(f"no output arrived from the node for any of {len(manifest)} frames; see "
                        f"{paths['output_bag']} (/diagnostics)")
    return summary


def print_summary(s: dict[str, Any]) -> None:
    """A few human lines (stdout), then the JSON line."""
    lat, main = s["latency_ms"], s["main_person"]
    fmt = lambda v, scale=1.0, unit="": "n/a" if v is None else f"{v * scale:.0f}{unit}"  # noqa: E731
    print(f"nbf-ros demo: {s['frames_processed']}/{s['frames_published']} frames processed "
          f"({s['frames_dropped']} dropped while the node was busy), detector {s['detector']}, "
          f"fit {'on' if s['fit'] else 'off'}, {s['seconds']} s")
    print(f"  people per frame: {s['people_per_frame']}")
    print(f"  latency (image stamp -> outputs received): p50 {fmt(lat['p50'])} ms, p95 {fmt(lat['p95'])} ms")
    print(f"  all matched people: root error mean {fmt(s['root_error_m']['mean'], 100, ' cm')}, "
          f"MPJPE mean {fmt(s['mpjpe_mm']['mean'], 1, ' mm')}")
    print(f"  main person, occluded frames ({main['occluded_frames']}): root "
          f"{fmt(main['root_error_m_occluded'], 100, ' cm')}, MPJPE {fmt(main['mpjpe_mm_occluded'], 1, ' mm')}; "
          f"clear frames ({main['clear_frames']}): root {fmt(main['root_error_m_clear'], 100, ' cm')}, "
          f"MPJPE {fmt(main['mpjpe_mm_clear'], 1, ' mm')}; track ids {main['track_ids']}")
    print(f"  main person, joints called visible/hidden as in the truth: occluded frames "
          f"{fmt(main['visibility_agreement_occluded'], 100, ' %')}, clear frames "
          f"{fmt(main['visibility_agreement_clear'], 100, ' %')}")
    print(f"  files: {s['files']['output_bag']} (input + outputs, MCAP), {s['files']['overlays']}/ "
          f"({s['overlays_written']} PNG), {s['files']['input_bag']}, {s['files']['summary']}")
    print(json.dumps(s, separators=(",", ":")))


def main(argv: Optional[list[str]] = None) -> int:
    """``nbf-ros demo`` (and ``python -m nbf_ros.demo``). 0 on success, 1 with a one-line error."""
    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    if args.play:
        return play(Path(args.play), args.rate, Path(args.manifest), args.wait_subscribers)
    try:
        summary = run_demo(args)
    except (DemoError, NbfError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        print(f"nbf-ros demo: error: {exc}", file=sys.stderr)
        return 1
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
