"""Shared set-up for the ROS end-to-end tests: an isolated DDS domain, the node under test spun
in a background executor, a collector of its outputs, and the camera publisher as a real second
process (``python -m nbf_ros.apps.camera_publisher``)."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import traceback
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
    """One rclpy context; nodes added to one executor spinning in a thread of its own.

    Everything that creates or destroys ROS entities (lifecycle transitions, node removal) runs
    on the spin thread between two ``spin_once`` calls, as it does in the real node (transitions
    are service callbacks of its single-threaded executor). Done from the test thread instead, it
    races with the executor: a subscription destroyed between the executor's wait and its
    dispatch makes ``spin_once`` raise ``InvalidHandle``, which once silently ended the spin thread
    under load, and every later test of the module then received nothing.

    The spin thread never ends silently: an exception escaping a callback is recorded in
    ``errors`` (and printed) and spinning goes on; ``close`` fails the module when any occurred.
    """

    def __init__(self, spin_period_s: float = 0.02) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.env = isolate_ros_domain()
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.errors: list[str] = []
        self._period = spin_period_s
        self._calls: "queue.Queue[tuple[Callable[[], Any], threading.Event, dict]]" = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="ros_harness_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self._serve_calls()
            try:
                self.executor.spin_once(timeout_sec=self._period)
            except Exception:  # noqa: BLE001 - recorded; the test module fails at close
                if self._stop.is_set() or not self.context.ok():
                    break
                self.errors.append(traceback.format_exc())
                print(f"ros_harness: exception in the executor:\n{self.errors[-1]}", file=sys.stderr)
        self._serve_calls()

    def _serve_calls(self) -> None:
        while True:
            try:
                fn, done, box = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                box["error"] = exc
            done.set()

    def call(self, fn: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Run ``fn`` on the spin thread, between two executor steps, and return its result."""
        if threading.current_thread() is self._thread:
            return fn()
        done, box = threading.Event(), {}
        self._calls.put((fn, done, box))
        assert done.wait(timeout), f"spin thread did not run {fn} within {timeout} s"
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def transition(self, node: Any, name: str) -> Any:
        """``node.trigger_<name>()`` on the spin thread, as a lifecycle service call would run."""
        return self.call(getattr(node, f"trigger_{name}"))

    def add(self, node: Any) -> Any:
        self.executor.add_node(node)
        return node

    def remove(self, node: Any) -> None:
        def remove_and_destroy() -> None:
            self.executor.remove_node(node)
            node.destroy_node()
        self.call(remove_and_destroy)

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

        self._stop.set()
        self._thread.join(timeout=10.0)
        self.executor.shutdown(timeout_sec=2.0)
        rclpy.try_shutdown(context=self.context)
        assert not self.errors, f"{len(self.errors)} exception(s) in the executor; first:\n{self.errors[0]}"


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
