"""``nbf_node``: the lifecycle node that turns camera images into 3D people (a thin shell).

Lifecycle (REP-2002 managed node):
- configure: validate parameters, build the pipeline (models, detector), create publishers.
  A failure (missing model file, bad config) returns FAILURE with a one-line log: the node stays
  alive and unconfigured, and /diagnostics says why.
- activate: create the ``image`` and ``camera_info`` subscriptions, start the worker.
- deactivate: publish DELETEALL on ``~/markers``, destroy subscriptions, stop the worker.
- cleanup / shutdown: undo configure.

Processing: the image and camera_info callbacks only store the message in a mailbox that pairs
each image with the CameraInfo of the same stamp (``camera_sync``: exact-time sync, latest frame
wins, replaced frames are counted as dropped); a worker thread takes paired frames, decodes, runs
the pipeline and publishes, so the executor never blocks. Every output carries the input image's
header.
Bad input (encodings, sizes, intrinsics, stamps) is skipped with a throttled log and counted in
/diagnostics; nothing an input can do stops the node.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Sequence

import numpy as np

import rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data)

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseArray
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from nbf_ros.geometry.camera import intrinsics_for_image
from nbf_ros.inference.overlay import draw_overlay
from nbf_ros.ros import conversions as conv
from nbf_ros.ros import params as P
from nbf_ros.ros.camera_sync import CameraSyncSlot, Match, SyncedFrame, SyncParams, sync_status
from nbf_ros.ros.depth_sync import NONE, PAIRED, DepthMailbox, DepthStats, depth_status
from nbf_ros.ros.stats import NodeStats, Status, Thresholds, input_status, processing_status
from nbf_ros.types import CameraIntrinsics, FrameResult

if TYPE_CHECKING:  # the node imports the config and the tracker at configure, not at import
    from nbf_ros.config import NbfConfig
    from nbf_ros.tracking import Tracker

NODE_NAME = "nbf"
OUTPUT_DEPTH = 5
"""Publishers are reliable with a small depth (ros.md): a slow subscriber cannot grow memory."""
LOG_THROTTLE_S = 5.0
WORKER_POLL_S = 0.1

InfoEntry = tuple[Optional[conv.CameraIntrinsics], Optional[str]]
"""A received CameraInfo: (intrinsics, None) when valid, (None, why not) when invalid."""
TRANSITION_STATES = ("configuring", "cleaningup", "shuttingdown", "activating", "deactivating",
                     "errorprocessing")
"""REP-2002 transition states: parameters that a transition reads may not change during one."""


class PeoplePipeline(Protocol):
    """What the node runs per frame (``inference.pipeline.Pipeline``; a test double in tests)."""

    backend_name: str

    def process(self, image_rgb: np.ndarray, camera: CameraIntrinsics, tracker: Any = None,
                fit: bool = True, stamp_s: float = 0.0) -> FrameResult:
        """Every person in an H x W x 3 uint8 RGB image; raises NbfError/ValueError on bad input.
        A pipeline that also takes ``depth=`` (H x W metres, registered) is given it when the
        frame has one."""
        ...


PipelineFactory = Callable[["NbfConfig"], PeoplePipeline]


def default_pipeline_factory(config: "NbfConfig") -> PeoplePipeline:
    from nbf_ros.inference.pipeline import Pipeline

    return Pipeline.from_config(config)


class NbfNode(LifecycleNode):
    """Camera in, 3D people out (see the module docstring for the lifecycle and threading)."""

    def __init__(self, node_name: str = NODE_NAME, *, pipeline_factory: Optional[PipelineFactory] = None,
                 **kwargs: Any) -> None:
        # Set before Node.__init__: destroy_node() must work even if construction fails.
        self._stop = threading.Event()
        self._slot: CameraSyncSlot = CameraSyncSlot()
        self._depth = DepthMailbox()
        self._worker: Optional[threading.Thread] = None
        super().__init__(node_name, **kwargs)
        self._factory = pipeline_factory or default_pipeline_factory
        self._declare_parameters()
        self._values = {spec.name: self._param(spec.name) for spec in P.PARAMS}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if hasattr(self, "add_post_set_parameters_callback"):
            self.add_post_set_parameters_callback(self._after_set_parameters)
        self.stats = NodeStats()
        self.depth_stats = DepthStats()
        self._depth_subscribed = False
        self._pipeline: Optional[PeoplePipeline] = None
        self._tracker: Optional["Tracker"] = None
        self._config: Optional["NbfConfig"] = None
        self._configure_error: Optional[str] = None
        self._latest_info: InfoEntry = (None, None)
        # The last invalid CameraInfo since the previous diagnostics report: CameraInfos held back
        # by DDS arrive in bursts, and a valid one a millisecond later must not hide a bad one.
        self._info_error_since_report: Optional[str] = None
        """The latest CameraInfo as (intrinsics, error): what diagnostics report."""
        self._sync_mode = "exact"
        self._last_stamp_s: Optional[float] = None
        self._published_ids: set[int] = set()
        self._last_header: Any = None
        self._log_times: dict[str, float] = {}
        self._pubs: dict[str, Any] = {}
        self._subs: list[Any] = []
        self._tf = None
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self._values["diagnostics_period_s"], self.publish_diagnostics)

    # -- parameters ----------------------------------------------------------------------------
    def _declare_parameters(self) -> None:
        for spec in P.PARAMS:
            descriptor = ParameterDescriptor(description=f"{spec.description} [{spec.when}]",
                                             read_only=spec.when == P.READ_ONLY)
            if spec.min is not None and isinstance(spec.default, int) and not isinstance(spec.default, bool):
                descriptor.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=0)]
            elif spec.min is not None:
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.min),
                                                                      to_value=float(spec.max), step=0.0)]
            if spec.choices:
                descriptor.additional_constraints = f"one of {list(spec.choices)}"
            self.declare_parameter(spec.name, spec.default, descriptor)
        for spec in P.PARAMS:  # overrides (YAML, launch) are validated like later sets
            reason = P.validate(spec.name, self._param(spec.name), "unconfigured")
            if reason:
                raise ValueError(f"invalid parameter: {reason}")

    def _param(self, name: str) -> Any:
        value = self.get_parameter(name).value
        return list(value) if name == "fixed_box" else value

    def _on_set_parameters(self, parameters: Sequence[Any]) -> SetParametersResult:
        for param in parameters:
            value = list(param.value) if param.name == "fixed_box" else param.value
            reason = P.validate(param.name, value, self._settled_state())
            if reason:
                self.get_logger().warning(f"rejected parameter: {reason}")
                return SetParametersResult(successful=False, reason=reason)
        if not hasattr(self, "add_post_set_parameters_callback"):
            self._after_set_parameters(parameters)
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, parameters: Sequence[Any]) -> None:
        for param in parameters:
            if param.name in P.SPECS:
                self._values[param.name] = list(param.value) if param.name == "fixed_box" else param.value
                if param.name == "track_timeout_s" and self._tracker is not None:
                    self._tracker.config = P.tracker_config(self._tracker.config, self._values)

    # -- lifecycle -----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            from nbf_ros.tracking import Tracker

            config = P.pipeline_config(self._values)
            pipeline = self._factory(config)
            tracker = Tracker(config.tracker)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the node alive, unconfigured
            self._configure_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"configure failed: {self._configure_error}")
            return TransitionCallbackReturn.FAILURE
        self._config, self._pipeline, self._tracker = config, pipeline, tracker
        self._configure_error = None
        self._pubs = {
            "markers": self.create_lifecycle_publisher(MarkerArray, "~/markers", OUTPUT_DEPTH),
            "joints": self.create_lifecycle_publisher(PointCloud2, "~/joints", OUTPUT_DEPTH),
            "people": self.create_lifecycle_publisher(PoseArray, "~/people", OUTPUT_DEPTH),
            "debug_image": self.create_lifecycle_publisher(Image, "~/debug_image", 1),
        }
        self._tf = self._make_tf_broadcaster()
        tracking = (f"on (detector every {config.tracking.detect_every} frames)" if config.tracking.enabled
                    else "off")
        self.get_logger().info(f"configured: backend {self.backend_name}, detector "
                               f"{config.detector.kind}, max_people {config.detector.max_people}, "
                               f"tracking mode {tracking}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        qos = self.input_qos()
        params = SyncParams(wait_s=float(self._values["camera_info_wait_s"]),
                            static_after=int(self._values["camera_info_static_after"]))
        if self._slot.params != params:  # before the subscriptions that feed the slot
            self._slot = CameraSyncSlot(params)
        self._subs = [  # camera_info first: when both are ready, the executor takes it first
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos,
                                     event_callbacks=self._event_callbacks("camera_info")),
            self.create_subscription(Image, "image", self._on_image, qos,
                                     event_callbacks=self._event_callbacks("image")),
        ]
        self._depth_subscribed = bool(self._values["use_depth"])
        if self._depth_subscribed:
            self._subs.append(self.create_subscription(Image, "depth", self._on_depth, self.depth_qos(),
                                                       event_callbacks=self._event_callbacks("depth")))
        self._depth.reopen()
        self._last_stamp_s = None
        self._tracker.reset()
        self.stats.reset_rates()
        self._slot.reopen()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="nbf_worker", daemon=True)
        self._worker.start()
        depth = (f"; depth: {self.resolve_topic_name('depth')} ({self._values['depth_qos_reliability']}, "
                 f"depth {self._values['depth_qos_depth']})" if self._depth_subscribed else "")
        self.get_logger().info(f"active: subscribed to {self.resolve_topic_name('image')} and "
                               f"{self.resolve_topic_name('camera_info')} ({self.qos_text()}){depth}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._depth_subscribed = False
        if "markers" in self._pubs:
            self._pubs["markers"].publish(conv.delete_all_markers(self._clear_header()))
        self._published_ids.clear()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """From any primary state (``state``: the one being left): deactivate, then release."""
        if state.label == "active":
            self.on_deactivate(state)
        self._release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error("error during a transition: releasing everything")
        self._stop_worker()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self._stop_worker()
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        self._pipeline = self._tracker = self._config = self._tf = None
        self._latest_info = (None, None)
        self._info_error_since_report = None
        self._slot = CameraSyncSlot()  # CameraInfos and the sync mode belong to the old camera

    def destroy_node(self) -> None:
        self._stop_worker()
        super().destroy_node()

    @property
    def backend_name(self) -> str:
        return str(getattr(self._pipeline, "backend_name", "none"))

    @property
    def tracking_mode(self) -> str:
        """"on" / "off" (the configured pipeline's ``tracking.enabled``), "" while unconfigured."""
        if self._config is None:
            return ""
        return "on" if self._config.tracking.enabled else "off"

    @property
    def lifecycle_state(self) -> str:
        """The REP-2002 state machine's current state label ('unconfigured', 'active', ...)."""
        return str(self._state_machine.current_state[1])

    def _settled_state(self) -> str:
        """The state parameters are validated against: during a transition, 'active' (the
        strictest), so that a value a transition is reading cannot change under it."""
        state = self.lifecycle_state
        return "active" if state in TRANSITION_STATES else state

    # -- inputs --------------------------------------------------------------------------------
    def input_qos(self) -> QoSProfile:
        """Sensor-data QoS (best effort, keep last) by default; reliability/depth overridable."""
        qos = QoSProfile(**{k: getattr(qos_profile_sensor_data, k) for k in
                            ("durability", "liveliness", "deadline", "lifespan")},
                         history=HistoryPolicy.KEEP_LAST, depth=int(self._values["qos_depth"]))
        qos.reliability = (ReliabilityPolicy.RELIABLE if self._values["qos_reliability"] == "reliable"
                           else ReliabilityPolicy.BEST_EFFORT)
        return qos

    def depth_qos(self) -> QoSProfile:
        """The depth subscription's own QoS (sensor-data by default, like the image)."""
        qos = self.input_qos()
        qos.depth = int(self._values["depth_qos_depth"])
        qos.reliability = (ReliabilityPolicy.RELIABLE if self._values["depth_qos_reliability"] == "reliable"
                           else ReliabilityPolicy.BEST_EFFORT)
        return qos

    def qos_text(self) -> str:
        return f"{self._values['qos_reliability']}, depth {self._values['qos_depth']}"

    def _event_callbacks(self, topic: str):
        from rclpy.event_handler import SubscriptionEventCallbacks

        def incompatible(event: Any) -> None:
            text = (f"'{topic}': a publisher's QoS is incompatible with ours ({self.qos_text()}); "
                    f"policy {getattr(event, 'last_policy_kind', '?')}, {event.total_count} time(s)")
            with self.stats.lock:
                self.stats.qos_incompatible = text
            self.get_logger().error(text, throttle_duration_sec=LOG_THROTTLE_S)

        return SubscriptionEventCallbacks(incompatible_qos=incompatible)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        """Executor thread: convert and hand to the sync (an image may be waiting for it)."""
        try:
            entry: InfoEntry = (conv.camera_info_to_intrinsics(msg), None)
        except conv.CameraInfoError as exc:
            entry = (None, str(exc))
            self._info_error_since_report = str(exc)
            self.get_logger().error(f"camera_info: {exc}", throttle_duration_sec=LOG_THROTTLE_S)
        self._latest_info = entry
        self._slot.put_info(conv.stamp_to_ns(msg.header.stamp), entry)

    def _on_image(self, msg: Image) -> None:
        """Executor thread: store and return; the image waits there for its own CameraInfo."""
        self.stats.frame_received()
        if self._slot.put_image(msg, conv.stamp_to_ns(msg.header.stamp)):
            self.get_logger().debug("frame dropped: worker busy")

    def _on_depth(self, msg: Image) -> None:
        """Executor thread: store by stamp; the worker pairs it with its image."""
        self._depth.put(conv.stamp_to_ns(msg.header.stamp), msg)

    # -- worker --------------------------------------------------------------------------------
    def _stop_worker(self) -> None:
        self._stop.set()
        self._slot.close()
        self._depth.close()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join()

    def _work(self) -> None:
        while not self._stop.is_set():
            frame = self._slot.take(WORKER_POLL_S)
            self._log_sync_mode()
            if frame is None:
                continue
            try:
                self.process_frame(frame.image, frame)
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                self.stats.frame_failed(f"{type(exc).__name__}: {exc}")
                self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}\n"
                                        f"{traceback.format_exc(limit=4)}",
                                        throttle_duration_sec=LOG_THROTTLE_S)

    def _skip(self, reason: str, message: str) -> None:
        self.stats.frame_skipped(reason)
        self._log_throttled(reason, f"frame skipped ({reason}): {message}")

    def _log_throttled(self, key: str, text: str) -> None:
        """WARN at most once per LOG_THROTTLE_S per key (rclpy throttles per call site only)."""
        now = time.monotonic()
        if now - self._log_times.get(key, -LOG_THROTTLE_S) >= LOG_THROTTLE_S:
            self._log_times[key] = now
            self.get_logger().warning(text)

    def _log_sync_mode(self) -> None:
        mode = self._slot.state().mode
        if mode == self._sync_mode:
            return
        self._sync_mode = mode
        if mode == "latest":
            self.get_logger().warning("CameraInfo stamps do not match image stamps: using the latest "
                                      "CameraInfo for each image (see /diagnostics)")
        else:
            self.get_logger().info("CameraInfo stamps match image stamps again: exact pairing")

    def process_frame(self, msg: Image, synced: Optional[SyncedFrame] = None) -> bool:
        """Decode, check, run the pipeline and publish one frame; False when it was skipped.

        ``synced``: the frame as paired by the sync (the worker's path); without it (direct
        calls) the CameraInfo with the image's stamp is used if known, else the latest."""
        stamp_s = conv.stamp_to_seconds(msg.header.stamp)
        if not self._accept_stamp(stamp_s):
            return False
        try:
            rgb = conv.image_to_rgb(msg, int(self._values["max_image_side"]))
        except conv.ImageError as exc:
            self._skip(exc.reason, str(exc))
            return False
        match, entry = ((synced.match, synced.info) if synced is not None
                        else self._slot.lookup(conv.stamp_to_ns(msg.header.stamp)))
        camera = self._intrinsics(match, entry, rgb.shape[1], rgb.shape[0])
        if camera is None:
            return False
        depth = self._depth_for(msg, rgb.shape[1], rgb.shape[0])
        result = self._run_pipeline(rgb, camera, stamp_s, depth)
        if result is None:
            return False
        self._last_stamp_s = max(stamp_s, self._last_stamp_s or stamp_s)
        self._publish(msg.header, rgb, result)
        return True

    def _accept_stamp(self, stamp_s: float) -> bool:
        """Small steps back (reordered frames) are skipped; a large jump back is a clock reset."""
        last = self._last_stamp_s
        if last is None or stamp_s >= last:
            return True
        jump = self._tracker.config.max_backward_jump_s
        if last - stamp_s > jump:
            self.get_logger().warning(f"image stamp jumped back {last - stamp_s:.3f} s: clock reset, "
                                      "tracks dropped", throttle_duration_sec=LOG_THROTTLE_S)
            with self.stats.lock:
                self.stats.clock_resets += 1
            self._tracker.reset()
            self._last_stamp_s = None
            return True
        self._skip("stamp_backwards", f"stamp {stamp_s:.3f} is {last - stamp_s:.3f} s older than the "
                   "last processed frame")
        return False

    def _intrinsics(self, match: Match, entry: Optional[InfoEntry], width: int,
                    height: int) -> Optional[conv.CameraIntrinsics]:
        if match is Match.UNMATCHED:
            self._skip("camera_info_unmatched", "no CameraInfo with this image's stamp (it never came, "
                       f"or not within {self._slot.params.wait_s:.1f} s); not processed with another "
                       "frame's calibration")
            return None
        camera, error = entry if entry is not None else (None, None)
        if error is not None:
            self._skip("camera_info_invalid", error)
            return None
        if camera is None:
            if self._values["require_camera_info"]:
                self._skip("no_camera_info", "no CameraInfo received yet on "
                           f"{self.resolve_topic_name('camera_info')}")
                return None
            return conv.CameraIntrinsics.default_for(width, height)
        return intrinsics_for_image(camera, width, height)

    def _depth_for(self, msg: Image, width: int, height: int) -> Optional[np.ndarray]:
        """The aligned depth (H x W metres) of this image, or None: monocular, with the reason
        in /diagnostics when depth was expected (a live stream) but is late, unmatched or
        unusable (encoding, size). Never raises."""
        if not self._depth_subscribed:
            return None
        found = self._depth.match(conv.stamp_to_ns(msg.header.stamp), float(self._values["depth_tolerance_s"]),
                                  float(self._values["depth_wait_s"]))
        if found.outcome == NONE:
            if self.depth_stats.used:
                self._depth_fallback("stopped", "no depth image for "
                                     f"{self._depth.stream_timeout_s:.0f} s (stream stopped?)")
            return None
        if found.outcome != PAIRED:
            self._depth_fallback(found.outcome, f"no depth within {self._values['depth_tolerance_s']} s "
                                 f"of the image stamp after waiting {found.waited_s * 1e3:.0f} ms")
            return None
        from nbf_ros.geometry.depth import DepthError, check_registered

        try:
            depth = conv.depth_image_to_metres(found.msg, int(self._values["max_image_side"]))
            check_registered(depth, width, height)
        except (conv.ImageError, DepthError) as exc:
            self._depth_fallback(exc.reason, str(exc))
            return None
        self.depth_stats.paired(found.offset_s)
        return depth

    def _depth_fallback(self, reason: str, message: str) -> None:
        self.depth_stats.fell_back(reason, message)
        self._log_throttled(f"depth_{reason}", f"frame processed without depth ({reason}): {message}")

    def _run_pipeline(self, rgb: Any, camera: Any, stamp_s: float, depth: Optional[np.ndarray] = None) -> Any:
        from nbf_ros.errors import NbfError

        extra = {} if depth is None else {"depth": depth}  # pipelines without depth support still work
        try:
            return self._pipeline.process(rgb, camera, tracker=self._tracker,
                                          fit=bool(self._values["fit"]), stamp_s=stamp_s, **extra)
        except (NbfError, ValueError) as exc:
            self._skip("rejected_by_pipeline", f"{type(exc).__name__}: {exc}")
            return None

    # -- outputs -------------------------------------------------------------------------------
    def _clear_header(self) -> Any:
        """Header for DELETEALL: the last input's frame with the current time (RViz clears by
        namespace whatever the stamp; a fresh stamp keeps it from being discarded as old)."""
        from std_msgs.msg import Header

        frame = self._last_header.frame_id if self._last_header is not None else ""
        return Header(stamp=self.get_clock().now().to_msg(), frame_id=frame)

    def _publish(self, header: Any, rgb: Any, result: Any) -> None:
        people = list(result.people)
        self._last_header = header
        ids = {int(p.id) for p in people}
        vanished, self._published_ids = self._published_ids - ids, ids
        lifetime = float(self._values["marker_lifetime_s"])
        self._pubs["markers"].publish(conv.people_to_markers(people, header, lifetime, sorted(vanished)))
        self._pubs["joints"].publish(conv.people_to_pointcloud(people, header))
        self._pubs["people"].publish(conv.people_to_pose_array(people, header))
        if self._values["publish_debug_image"]:
            self._pubs["debug_image"].publish(conv.rgb_to_image_msg(draw_overlay(rgb, people), header))
        if self._values["publish_tf"]:
            self._broadcast_tf(header, people)
        latency_ms = (self.get_clock().now().nanoseconds * 1e-9 - conv.stamp_to_seconds(header.stamp)) * 1e3
        self.stats.frame_published(latency_ms, dict(result.timings_ms), len(people),
                                   result.rejected_boxes, result.unfitted_people,
                                   tracked_people=result.tracked_people, detector_ran=result.detector_ran,
                                   lost_tracks=result.lost_tracks)

    def _make_tf_broadcaster(self) -> Any:
        try:
            from tf2_ros import TransformBroadcaster  # type: ignore[import-not-found]
        except ImportError:
            self.get_logger().info("tf2_ros not available: publish_tf (body_<id> frames) disabled")
            return None
        return TransformBroadcaster(self)

    def _broadcast_tf(self, header: Any, people: list) -> None:
        if self._tf is None:
            self.get_logger().warning("publish_tf is true but tf2_ros is not installed",
                                      throttle_duration_sec=60.0)
            return
        from geometry_msgs.msg import TransformStamped

        transforms = []
        for person in people:
            t = TransformStamped()
            t.header = header
            t.child_frame_id = f"body_{int(person.id)}"
            x, y, z = (float(v) for v in person.joints3d[0])
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = x, y, z
            q = conv.root_quaternion(person.global_orient)
            (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
             t.transform.rotation.w) = (float(v) for v in q)
            transforms.append(t)
        if transforms:
            self._tf.sendTransform(transforms)

    # -- diagnostics ---------------------------------------------------------------------------
    def diagnostic_statuses(self) -> list[Status]:
        intrinsics, error = self._latest_info
        camera = "ok" if intrinsics is not None else ("invalid" if error else "missing")
        earlier, self._info_error_since_report = self._info_error_since_report, None
        if error is None and earlier is not None:
            error = f"{earlier} (received since the last report; the latest CameraInfo is valid)"
        snap = self.stats.snapshot(state=self.lifecycle_state, configure_error=self._configure_error,
                                   backend=self.backend_name, dropped=self._slot.dropped,
                                   camera_info=camera, camera_info_error=error, qos=self.qos_text(),
                                   tracking_mode=self.tracking_mode)
        th = Thresholds(float(self._values["latency_warn_ms"]), float(self._values["input_timeout_s"]),
                        bool(self._values["require_camera_info"]))
        name = self.get_fully_qualified_name()
        return [sync_status(input_status(snap, th, f"{name}: input"), self._slot.state()),
                processing_status(snap, th, f"{name}: processing"),
                depth_status(self.depth_stats, self._depth_subscribed, f"{name}: depth")]

    def publish_diagnostics(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        for status in self.diagnostic_statuses():
            msg.status.append(DiagnosticStatus(
                level=bytes([status.level]), name=status.name, message=status.message,
                hardware_id=self.get_fully_qualified_name(),
                values=[KeyValue(key=k, value=v) for k, v in status.values.items()]))
        self._diag_pub.publish(msg)


def autostart(node: NbfNode) -> bool:
    """configure + activate; logs and returns False if either fails (the node stays up)."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("autostart: configure failed; fix the cause and configure again "
                                "(ros2 lifecycle set /nbf configure)")
        return False
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("autostart: activate failed")
        return False
    return True

