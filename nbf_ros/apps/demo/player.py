"""The demo's camera: replays the input bag from a second process, as a camera driver would.

    python -m nbf_ros.apps.demo.player BAG --rate HZ --manifest MANIFEST.jsonl [--wait-subscribers N]

``run_player`` starts it from the demo and reads back its manifest (one JSON line per frame it
published: the frame's index, its bag stamp and the stamp it was published with).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from nbf_ros.apps.demo import DemoError
from nbf_ros.apps.demo.topics import (ACK_TIMEOUT_S, DISCOVERY_TIMEOUT_S, FIRST_OUTPUT_TIMEOUT_S,
                                      DEPTH_TOPIC, IMAGE_TOPIC, INFO_TOPIC, OUTPUT_TOPICS, input_qos)

MODULE = "nbf_ros.apps.demo.player"


def run_player(bag: Path, rate_hz: float, frames: int, manifest: Path, env: dict[str, str]) -> list[dict]:
    """Replay ``bag`` from a second process; returns its manifest (one dict per published frame)."""
    cmd = [sys.executable, "-m", MODULE, str(bag), "--rate", str(rate_hz), "--manifest", str(manifest),
           "--wait-subscribers", "2"]
    timeout = DISCOVERY_TIMEOUT_S + FIRST_OUTPUT_TIMEOUT_S + ACK_TIMEOUT_S + frames / rate_hz + 30.0
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise DemoError(f"the player process failed ({proc.returncode}): {tail}")
    return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]


def play(bag: Path, rate_hz: float, manifest: Path, wait_subscribers: int) -> int:
    """Publish the bag's images, camera infos and (where the bag has them) aligned depth images
    at ``rate_hz``, stamped now (the depth with its image's stamp, as an align node does).

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

    from nbf_ros.apps.camera_publisher import wait_for_subscribers

    rclpy.init()
    node = rclpy.create_node("nbf_demo_camera")
    try:
        image_pub = node.create_publisher(Image, IMAGE_TOPIC, input_qos())
        info_pub = node.create_publisher(CameraInfo, INFO_TOPIC, input_qos())
        depth_pub = node.create_publisher(Image, DEPTH_TOPIC, input_qos())
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
            replay(reader, node, (image_pub, info_pub, depth_pub), rate_hz, out, deserialize_message,
                   (Image, CameraInfo), first_output)
        # A reliable writer that goes away early takes its unacknowledged samples with it.
        from rclpy.duration import Duration

        for pub in (info_pub, depth_pub, image_pub):
            pub.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def replay(reader: Any, node: Any, pubs: tuple[Any, Any], rate_hz: float, out: Any,
           deserialize: Any, types: tuple[Any, Any], after_first: Any) -> None:
    """Publish each image (with the latest CameraInfo and the depth image of its bag stamp, all
    restamped now) and log it to ``out``; ``after_first`` runs once after the first image (the
    wait for the node's slow first frame). A bag writes a frame's depth before or after its
    image: depth images are kept by header stamp until their image comes."""
    image_pub, info_pub, depth_pub = pubs
    image_type, info_type = types
    info, depths = None, {}
    index, start = 0, time.monotonic()
    for conn, bag_ns, raw in reader.messages():
        if conn.topic == INFO_TOPIC:
            info = deserialize(raw, info_type)
            continue
        if conn.topic == DEPTH_TOPIC:
            depth = deserialize(raw, image_type)
            depths[depth.header.stamp.sec * 1_000_000_000 + depth.header.stamp.nanosec] = depth
            continue
        if conn.topic != IMAGE_TOPIC:
            continue
        image = deserialize(raw, image_type)
        depth = depths.pop(image.header.stamp.sec * 1_000_000_000 + image.header.stamp.nanosec, None)
        now = node.get_clock().now().to_msg()
        image.header.stamp = now
        if info is not None:
            info.header.stamp = now
            info_pub.publish(info)
        if depth is not None:  # before its image: the node's worker waits for it only briefly
            depth.header.stamp = now
            depth_pub.publish(depth)
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


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    p.add_argument("bag", type=Path, help="input bag (the demo's input_bag)")
    p.add_argument("--rate", type=float, required=True, help="frames per second")
    p.add_argument("--manifest", type=Path, required=True,
                   help="write one JSON line per published frame here")
    p.add_argument("--wait-subscribers", type=int, default=2,
                   help="wait until this many subscribers see the image topic (0: do not wait)")
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    """0 when every frame was published; 3 when no subscriber matched."""
    args = parse_args(argv)
    return play(args.bag, args.rate, args.manifest, args.wait_subscribers)


if __name__ == "__main__":
    sys.exit(main())
