"""The node under test and the recorder in one rclpy context, and the wait for the node's last
outputs (it says in its diagnostics when every frame is accounted for)."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from nbf_ros.apps.demo import DemoError
from nbf_ros.apps.demo.recorder import Recorder, Recording
from nbf_ros.apps.demo.topics import DEPTH_TOPIC, DISCOVERY_TIMEOUT_S, IMAGE_TOPIC, INFO_TOPIC, INPUT_DEPTH

LOG = logging.getLogger("nbf_ros.demo")

SETTLE_S = 5.0
"""After the player ends, wait this long (plus twice the worst latency) for the last outputs."""
MAX_WAIT_S = 120.0
DEPTH_WAIT_S = 1.0


class RosSession:
    """One rclpy context with the node under test and the recorder, spun in a thread."""

    def __init__(self, config_yaml: Path, fit: bool, bag_out: Path, depth: bool = True) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter

        from nbf_ros.ros.node import NbfNode, autostart

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = NbfNode(context=self.context, parameter_overrides=[
            Parameter("config_file", value=str(config_yaml)), Parameter("fit", value=fit),
            Parameter("publish_debug_image", value=True), Parameter("qos_reliability", value="reliable"),
            Parameter("qos_depth", value=INPUT_DEPTH), Parameter("use_depth", value=depth),
            Parameter("depth_qos_reliability", value="reliable"), Parameter("depth_qos_depth", value=INPUT_DEPTH),
            # A replayed 0.6 MB depth image can trail its image by up to a second on a loaded
            # machine (reliable DDS repairs lost fragments late): at 1 Hz, wait for it.
            Parameter("depth_wait_s", value=DEPTH_WAIT_S)],
            cli_args=["--ros-args", "-r", f"image:={IMAGE_TOPIC}", "-r", f"camera_info:={INFO_TOPIC}",
                      "-r", f"depth:={DEPTH_TOPIC}"])
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


def node_counts(diag: Any) -> dict[str, str]:
    """frames_received / processed / dropped as the node itself reports them (last diagnostics)."""
    keys = ("frames_received", "frames_processed", "frames_dropped", "skipped_total", "backend",
            "depth_frames_used", "depth_fallback_total")
    values = {kv.key: kv.value for status in (diag.status if diag is not None else []) for kv in status.values}
    return {k: values[k] for k in keys if k in values}


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
            counts = node_counts(rec.last_diagnostics)
            lat = [e.latency_ms for e in rec.by_stamp.values() if np.isfinite(e.latency_ms)]
            idle = time.monotonic() - rec.last_activity
        if len(complete) == len(stamps) or (node_finished(counts, len(stamps))
                                            and len(complete) >= int(counts["frames_processed"])):
            return
        if idle > (SETTLE_S + 2e-3 * max(lat) if lat else MAX_WAIT_S):
            LOG.warning("stopped waiting for outputs after %.0f s without any", idle)
            return
        time.sleep(0.1)
