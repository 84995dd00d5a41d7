"""Shared set-up for the ROS end-to-end tests: an isolated DDS domain, the node under test spun
in a background executor, a collector of its outputs, and the camera publisher as a real second
process (``python -m nbf_ros.apps.camera_publisher``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parent.parent


def isolate_ros_domain() -> dict[str, str]:
    """A DDS domain of our own (from the pid) on localhost only; returns the environment to
    give child processes. Must run before rclpy creates a context."""
    os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated since Jazzy; conflicts with the above
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@dataclass
class Outputs:
    markers: list = field(default_factory=list)
    joints: list = field(default_factory=list)
    people: list = field(default_factory=list)
    diagnostics: list = field(default_factory=list)
    debug_image: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            with self.lock:
                getattr(self, name).append((time.monotonic(), msg))
        return callback


class RosHarness:
    """One rclpy context; nodes added to one executor spinning in a thread."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self.env = isolate_ros_domain()
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - context shut down at teardown
            pass

    def add(self, node: Any) -> Any:
        self.executor.add_node(node)
        return node

    def remove(self, node: Any) -> None:
        self.executor.remove_node(node)
        node.destroy_node()

    def collector(self, node_ns: str = "/nbf") -> tuple[Any, Outputs]:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image, PointCloud2
        from visualization_msgs.msg import MarkerArray

        node = rclpy.create_node(f"collector_{time.monotonic_ns()}", context=self.context)
        out = Outputs()
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(MarkerArray, f"{node_ns}/markers", out.add("markers"), qos)
        node.create_subscription(PointCloud2, f"{node_ns}/joints", out.add("joints"), qos)
        node.create_subscription(PoseArray, f"{node_ns}/people", out.add("people"), qos)
        node.create_subscription(Image, f"{node_ns}/debug_image", out.add("debug_image"), qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", out.add("diagnostics"), qos)
        return self.add(node), out

    def publish(self, *args: str, timeout: float = 60.0, manifest: Optional[Path] = None) -> list[dict]:
        """Run the camera publisher as a second process; return its manifest (one dict per frame)."""
        cmd = [sys.executable, "-m", "nbf_ros.apps.camera_publisher", *args]
        if manifest is not None:
            cmd += ["--manifest", str(manifest)]
        proc = subprocess.run(cmd, env=self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"publisher failed ({proc.returncode}): {proc.stderr[-2000:]}"
        if manifest is None:
            return []
        return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5.0)


def wait_matched(node, timeout: float = 30.0) -> None:
    """Block until the node's output publishers see a subscriber (the collector), so that no
    early output is lost to DDS discovery."""
    pubs = [pub for name, pub in node._pubs.items() if name != "debug_image"]
    assert wait_until(lambda: all(pub.get_subscription_count() >= 1 for pub in pubs), timeout), \
        "collector never matched the node's publishers"


def settled(node) -> bool:
    """Every frame the node received is settled: processed, dropped by latest-frame-wins, skipped
    or failed; none waits for its CameraInfo or is in flight. A condition to wait for after the
    camera stopped, that does not depend on how fast this machine is."""
    with node.stats.lock:
        done = node.stats.processed + sum(node.stats.skipped.values()) + node.stats.errors
    return node._slot.state().pending == 0 and done + node._slot.dropped == node.stats.received


def wait_settled(node, expect_frames: bool = True, quiet_s: float = 2.0, timeout: float = 60.0) -> bool:
    """Wait until the node is ``settled`` and has received nothing new for ``quiet_s``: the
    camera has stopped, and samples DDS already delivered to the reader but whose callbacks a
    starved executor has not run yet have come through (``settled`` alone is true while they
    wait, e.g. before the first one). With ``expect_frames``, at least one must have arrived."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        received = node.stats.received
        if received != last:
            last, since = received, time.monotonic()
        elif settled(node) and (received >= 1 or not expect_frames) and time.monotonic() - since >= quiet_s:
            return True
        time.sleep(0.05)
    return False


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, period: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return predicate()


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
