"""A camera stand-in: publishes synthetic Images + CameraInfo at a fixed rate (second process).

Used by the end-to-end tests, the node benchmark and the no-camera demo. Besides good frames it
can publish every kind of bad input the node must survive (``--pattern``), and it writes a JSON
line per published frame (``--manifest``) with the stamp, the kind and the ground truth, so a
test can check what the node did with each one.

    python -m nbf_ros.apps.camera_publisher --rate 10 --people 3 --duration 30
    python -m nbf_ros.apps.camera_publisher --pattern good,bad_encoding,good,short_data --frames 40
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Optional

import numpy as np

from nbf_ros.testing.scenes import DrawnScene

GOOD = "good"
BAD_KINDS = ("bad_encoding", "short_data", "long_data", "small_step", "zero_size", "huge",
             "nan_info", "zero_info", "backwards")
"""Frames the node must skip (and survive): see ``corrupt``."""
HUGE_SIDE = 8192
DISCOVERY_TIMEOUT_S = 20.0
ACK_TIMEOUT_S = 10.0


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=10.0, help="frames per second")
    p.add_argument("--frames", type=int, default=0, help="frames to publish (0: use --duration)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds to publish when --frames is 0")
    p.add_argument("--people", type=int, default=1)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--encodings", default="rgb8", help="comma list cycled over good frames")
    p.add_argument("--pattern", default=GOOD, help=f"comma list of kinds cycled: {GOOD}, {', '.join(BAD_KINDS)}")
    p.add_argument("--info-from", type=int, default=0, help="first frame index with a CameraInfo")
    p.add_argument("--frame-id", default="camera_optical_frame")
    p.add_argument("--image-topic", default="image")
    p.add_argument("--info-topic", default="camera_info")
    p.add_argument("--reliable", action="store_true", help="reliable QoS (default: sensor data)")
    p.add_argument("--wait-subscribers", type=int, default=1,
                   help="wait until this many subscribers see the image topic (0: do not wait)")
    p.add_argument("--manifest", default="", help="write one JSON line per published frame here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rendered", type=int, default=0,
                   help="publish N scenes rendered with the body model (nbf_ros.data, up to --people "
                   "people each, occluders included) instead of drawn people; each repeated "
                   "frames/N times, truth = the people's joints3d")
    p.add_argument("--distance", default="",
                   help="with --rendered: MIN,MAX camera-to-person distance in metres (default: the "
                   "generator's range)")
    p.add_argument("--video", default="", help="publish this video's frames (looped) instead of "
                   "drawn people, at its own size (truth left empty)")
    return p.parse_args(argv)


def corrupt(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Make image fields (encoding, height, width, step, data) invalid in the way ``kind`` says."""
    f = dict(fields)
    if kind == "bad_encoding":
        f["encoding"] = "bayer_rggb8x"
    elif kind == "short_data":
        f["data"] = f["data"][: -f["step"]]
    elif kind == "long_data":
        f["data"] = f["data"] + bytes(17)
    elif kind == "small_step":
        f["step"] = f["width"] * 3 - 1
        f["data"] = bytes(f["step"] * f["height"])
    elif kind == "zero_size":
        f.update(height=0, width=0, step=0, data=b"")
    elif kind == "huge":
        f.update(height=4, width=HUGE_SIDE, step=HUGE_SIDE * 3, data=bytes(HUGE_SIDE * 3 * 4))
    return f


def camera_info_msg(scene: Any, header: Any, kind: str) -> Any:
    from sensor_msgs.msg import CameraInfo

    cam = scene.camera
    k = [cam.fx, 0.0, cam.cx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 1.0]
    if kind == "nan_info":
        k = [float("nan")] * 9
    elif kind == "zero_info":
        k = [0.0] * 9
    info = CameraInfo()
    info.header = header
    info.width, info.height = cam.width, cam.height
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = k
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def image_msg(fields: dict[str, Any], header: Any) -> Any:
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header = header
    msg.encoding, msg.is_bigendian = fields["encoding"], 0
    msg.height, msg.width, msg.step = fields["height"], fields["width"], fields["step"]
    msg.data = fields["data"]
    return msg


def wait_for_subscribers(node: Any, publishers: list, count: int) -> bool:
    """Spin until every publisher has ``count`` matched subscribers (DDS discovery), or
    DISCOVERY_TIMEOUT_S: frames sent before matching would be lost to the node."""
    import rclpy

    deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
    while any(pub.get_subscription_count() < count for pub in publishers):
        if time.monotonic() > deadline:
            return False
        rclpy.spin_once(node, timeout_sec=0.05)
    return True


class RenderedFrames:
    """Scenes rendered by ``nbf_ros.data.scene.render_scene`` (test split), each repeated so that
    a tracker sees a static scene; truth carries the people's 3D joints and boxes.

    The background photos come from scikit-image only (a pinned dependency), never from the
    optional Debian opencv-doc photos: the same seed must render the same scene on every
    machine, or a test that passes on one fails on another."""

    def __init__(self, count: int, max_people: int, width: int, height: int, seed: int, total: int,
                 distance_m: Optional[tuple[float, float]] = None) -> None:
        import dataclasses

        from nbf_ros.body.model import BodyModel
        from nbf_ros.config import BodyConfig, SyntheticConfig, resolve_path
        from nbf_ros.data.scene import render_scene

        base = SyntheticConfig(split="test")
        camera = dataclasses.replace(base.camera, image_sizes=((width, height),) * len(base.camera.image_sizes),
                                     distance_m=distance_m or base.camera.distance_m)
        appearance = dataclasses.replace(base.appearance, opencv_doc_photos=False)
        cfg = dataclasses.replace(base, camera=camera, appearance=appearance, max_people=max(1, max_people))
        body = BodyModel(resolve_path(BodyConfig().model_path))
        self.scenes = [render_scene(seed + i, cfg, body) for i in range(count)]
        self.repeat = max(1, -(-total // count))

    def scene(self) -> Any:
        """The first scene's size and intrinsics (all share the image size; see camera_info_msg)."""
        return self.scenes[0]

    def frame(self, index: int) -> tuple[np.ndarray, list]:
        scene = self.scenes[min(index // self.repeat, len(self.scenes) - 1)]
        return scene.image, scene

    @staticmethod
    def truth(scene: Any) -> list[dict]:
        return [{"box": [float(v) for v in p.bbox], "joints3d": np.asarray(p.joints3d).tolist(),
                 "depth_m": float(p.joints3d[0][2])} for p in scene.people]


class VideoFrames:
    """Frames of a video file, looped, as RGB; decoded up front (tests use short clips)."""

    MAX_FRAMES = 300

    def __init__(self, path: str) -> None:
        import cv2

        capture = cv2.VideoCapture(path)
        self.frames = []
        while len(self.frames) < self.MAX_FRAMES:
            ok, bgr = capture.read()
            if not ok:
                break
            self.frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
        capture.release()
        if not self.frames:
            raise SystemExit(f"publisher: cannot read video {path}")

    def scene(self) -> DrawnScene:
        """A scene object only for its size and default intrinsics."""
        height, width = self.frames[0].shape[:2]
        return DrawnScene(width, height, 0)

    def frame(self, index: int) -> tuple[np.ndarray, list]:
        return self.frames[index % len(self.frames)], []


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from nbf_ros.ros.conversions import encode_image

    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if args.reliable else qos_profile_sensor_data
    total = args.frames if args.frames > 0 else int(round(args.duration * args.rate))
    scene = DrawnScene(args.width, args.height, args.people, args.seed)
    video = VideoFrames(args.video) if args.video else None
    if args.rendered:
        distance = tuple(float(v) for v in args.distance.split(",")) if args.distance else None
        video = RenderedFrames(args.rendered, args.people, args.width, args.height, args.seed, total,
                               distance)  # type: ignore[arg-type]
    if video is not None:
        scene = video.scene()
    pattern = [k.strip() for k in args.pattern.split(",") if k.strip()]
    encodings = [e.strip() for e in args.encodings.split(",") if e.strip()]
    unknown = [k for k in pattern if k != GOOD and k not in BAD_KINDS]
    if unknown:
        print(f"publisher: unknown pattern kinds {unknown}", file=sys.stderr)
        return 2
    rclpy.init()
    node = rclpy.create_node("nbf_test_camera")
    manifest = open(args.manifest, "w") if args.manifest else None  # noqa: SIM115
    try:
        image_pub = node.create_publisher(Image, args.image_topic, qos)
        info_pub = node.create_publisher(CameraInfo, args.info_topic, qos)
        if args.wait_subscribers and not wait_for_subscribers(node, [image_pub, info_pub], args.wait_subscribers):
            print("publisher: no subscriber matched", file=sys.stderr)
            return 3
        period = 1.0 / args.rate
        start = time.monotonic()
        last_good_ns: Optional[int] = None
        good_count = 0
        for index in range(total):
            kind = pattern[index % len(pattern)]
            now_ns = node.get_clock().now().nanoseconds
            if kind == "backwards" and last_good_ns is not None:
                now_ns = last_good_ns - 50_000_000  # 50 ms in the past: a reordered frame
            header = Header(frame_id=args.frame_id)
            header.stamp.sec, header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
            rgb, truth = video.frame(index) if video is not None else scene.frame(index)
            if isinstance(video, RenderedFrames):
                scene, truth = truth, RenderedFrames.truth(truth)
            else:
                truth = [{"box": list(p.box), "depth_m": p.depth_m} for p in truth]
            encoding = encodings[good_count % len(encodings)] if kind == GOOD else "rgb8"
            enc = encode_image(rgb, encoding)
            fields = corrupt(kind, {"encoding": enc.encoding, "height": enc.height, "width": enc.width,
                                    "step": enc.step, "data": enc.data})
            if index >= args.info_from:
                info_pub.publish(camera_info_msg(scene, header, kind))
            image_pub.publish(image_msg(fields, header))
            if kind == GOOD:
                last_good_ns, good_count = now_ns, good_count + 1
            if manifest is not None:
                manifest.write(json.dumps({
                    "index": index, "stamp_ns": now_ns, "kind": kind, "encoding": fields["encoding"],
                    "has_info": index >= args.info_from,
                    "truth": truth}) + "\n")
                manifest.flush()
            rclpy.spin_once(node, timeout_sec=0.0)
            sleep = start + (index + 1) * period - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)
        # Reliable: wait until the subscribers acknowledged everything (a writer that goes away
        # early takes its unacknowledged samples with it); best effort: a moment to leave.
        from rclpy.duration import Duration

        for pub in (info_pub, image_pub):
            pub.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
        time.sleep(0.3)
    finally:
        if manifest is not None:
            manifest.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
