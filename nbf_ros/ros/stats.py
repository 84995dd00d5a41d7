"""Bounded run-time statistics and the diagnostics they turn into (no ROS types here).

Everything is bounded: rates count events in a sliding time window held in a deque with a hard
cap, latencies keep the last ``LATENCY_WINDOW`` frames. ``NodeStats`` is written by the worker
and the callbacks and read by the 1 Hz diagnostics timer, under one lock.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

LATENCY_WINDOW = 300
"""Frames kept for latency percentiles (10 s at 30 Hz)."""
RATE_WINDOW_S = 5.0
MAX_EVENTS = 10_000
"""Hard cap on timestamps kept per rate meter, whatever the input rate."""

OK, WARN, ERROR = 0, 1, 2
"""diagnostic_msgs/DiagnosticStatus levels."""


class RateMeter:
    """Events per second over the last ``window_s`` seconds (monotonic clock)."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=MAX_EVENTS)

    def tick(self, now: Optional[float] = None) -> None:
        self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: Optional[float] = None) -> float:
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        return len(self._times) / self.window_s

    def last(self) -> Optional[float]:
        return self._times[-1] if self._times else None


def percentiles(values_ms: list[float]) -> dict[str, float]:
    """p50, p90, p95, p99 and max of a list of milliseconds (NaN when empty)."""
    if not values_ms:
        return {key: float("nan") for key in ("p50", "p90", "p95", "p99", "max")}
    arr = np.asarray(values_ms, dtype=np.float64)
    p50, p90, p95, p99 = np.percentile(arr, [50, 90, 95, 99])
    return {"p50": float(p50), "p90": float(p90), "p95": float(p95), "p99": float(p99), "max": float(arr.max())}


@dataclass
class Snapshot:
    """What the diagnostics timer reports; a copy, so it can be formatted without the lock."""

    state: str
    configure_error: Optional[str]
    backend: str
    input_hz: float
    output_hz: float
    since_last_image_s: Optional[float]
    latency_ms: dict[str, float]
    stage_ms: dict[str, float]
    received: int
    processed: int
    dropped: int
    dropped_period: int
    skipped: dict[str, int]
    skipped_period: dict[str, int]
    people: int
    rejected_boxes: int
    unfitted_people: int
    unfitted_period: int
    camera_info: str
    camera_info_error: Optional[str]
    qos: str
    qos_incompatible: Optional[str]
    errors_period: int
    last_error: Optional[str]
    clock_resets: int
    # Tracking mode (FrameResult.box_sources / detector_reason / lost_tracks): "on" / "off"
    # ("" = unknown, no pipeline), the last frame's people by where their box came from, and
    # counts since start.
    tracking_mode: str = ""
    people_tracked: int = 0
    people_detected: int = 0
    detector_runs: int = 0
    tracks_lost: int = 0


@dataclass
class NodeStats:
    """Counters shared by the callbacks, the worker and the diagnostics timer."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    input_rate: RateMeter = field(default_factory=RateMeter)
    output_rate: RateMeter = field(default_factory=RateMeter)
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    stage_ms: dict = field(default_factory=dict)
    received: int = 0
    processed: int = 0
    skipped: Counter = field(default_factory=Counter)
    people: int = 0
    # Detector boxes dropped as "not a person" since start (FrameResult.rejected_boxes).
    rejected_boxes: int = 0
    # People left at their start body because the frame's fit budget was spent, since start
    # (FrameResult.unfitted_people).
    unfitted_people: int = 0
    # Tracking mode: the last frame's tracked / detected people, and since start the frames the
    # detector ran on and the tracked people BlazePose lost (FrameResult).
    people_tracked: int = 0
    people_detected: int = 0
    detector_runs: int = 0
    tracks_lost: int = 0
    errors: int = 0
    last_error: Optional[str] = None
    clock_resets: int = 0
    qos_incompatible: Optional[str] = None
    _period_skipped: Counter = field(default_factory=Counter)
    _period_dropped_base: int = 0
    _period_errors_base: int = 0
    _period_unfitted_base: int = 0

    def frame_received(self) -> None:
        with self.lock:
            self.received += 1
            self.input_rate.tick()

    def frame_skipped(self, reason: str) -> None:
        with self.lock:
            self.skipped[reason] += 1
            self._period_skipped[reason] += 1

    def frame_failed(self, message: str) -> None:
        with self.lock:
            self.errors += 1
            self.last_error = message

    def frame_published(self, latency_ms: float, timings_ms: dict[str, float], people: int,
                        rejected_boxes: int = 0, unfitted_people: int = 0, tracked_people: int = 0,
                        detector_ran: bool = True, lost_tracks: int = 0) -> None:
        with self.lock:
            self.processed += 1
            self.rejected_boxes += rejected_boxes
            self.unfitted_people += unfitted_people
            self.people_tracked, self.people_detected = tracked_people, people - tracked_people
            self.detector_runs += int(detector_ran)
            self.tracks_lost += lost_tracks
            self.output_rate.tick()
            self.latencies_ms.append(float(latency_ms))
            self.people = people
            for name, ms in timings_ms.items():  # exponential moving average per stage
                prev = self.stage_ms.get(name)
                self.stage_ms[name] = float(ms) if prev is None else 0.9 * prev + 0.1 * float(ms)

    def latency_percentiles(self) -> dict[str, float]:
        with self.lock:
            return percentiles(list(self.latencies_ms))

    def reset_rates(self) -> None:
        with self.lock:
            self.input_rate = RateMeter()
            self.output_rate = RateMeter()
            self.latencies_ms.clear()
            self.stage_ms.clear()

    def snapshot(self, *, state: str, configure_error: Optional[str], backend: str, dropped: int,
                 camera_info: str, camera_info_error: Optional[str], qos: str,
                 tracking_mode: str = "") -> Snapshot:
        """Copy the counters and start a new reporting period (per-period counts reset)."""
        with self.lock:
            now = time.monotonic()
            last = self.input_rate.last()
            snap = Snapshot(
                state=state, configure_error=configure_error, backend=backend,
                input_hz=self.input_rate.rate(now), output_hz=self.output_rate.rate(now),
                since_last_image_s=None if last is None else now - last,
                latency_ms=percentiles(list(self.latencies_ms)), stage_ms=dict(self.stage_ms),
                received=self.received, processed=self.processed, dropped=dropped,
                dropped_period=dropped - self._period_dropped_base, skipped=dict(self.skipped),
                skipped_period=dict(self._period_skipped), people=self.people,
                rejected_boxes=self.rejected_boxes, unfitted_people=self.unfitted_people,
                unfitted_period=self.unfitted_people - self._period_unfitted_base,
                camera_info=camera_info, camera_info_error=camera_info_error, qos=qos,
                qos_incompatible=self.qos_incompatible,
                errors_period=self.errors - self._period_errors_base, last_error=self.last_error,
                clock_resets=self.clock_resets, tracking_mode=tracking_mode,
                people_tracked=self.people_tracked, people_detected=self.people_detected,
                detector_runs=self.detector_runs, tracks_lost=self.tracks_lost)
            self._period_skipped.clear()
            self._period_dropped_base = dropped
            self._period_errors_base = self.errors
            self._period_unfitted_base = self.unfitted_people
            return snap


@dataclass
class Status:
    """One diagnostic_msgs/DiagnosticStatus, ROS-free."""

    level: int
    name: str
    message: str
    values: dict[str, str]


@dataclass(frozen=True)
class Thresholds:
    latency_warn_ms: float = 500.0
    input_timeout_s: float = 2.0
    require_camera_info: bool = True


def _fmt(value: float, digits: int = 1) -> str:
    return "nan" if value != value else f"{value:.{digits}f}"


def input_status(s: Snapshot, th: Thresholds, name: str) -> Status:
    """Camera stream health: rate, CameraInfo, bad frames, QoS."""
    values = {"input_rate_hz": _fmt(s.input_hz), "frames_received": str(s.received),
              "camera_info": s.camera_info, "qos": s.qos,
              "skipped_total": ", ".join(f"{k}={v}" for k, v in sorted(s.skipped.items())) or "0",
              "clock_resets": str(s.clock_resets)}
    if s.qos_incompatible:
        return Status(ERROR, name, f"QoS incompatible with a peer: {s.qos_incompatible}", values)
    if s.camera_info_error:
        return Status(ERROR, name, f"invalid CameraInfo, not processing: {s.camera_info_error}", values)
    if s.state != "active":
        return Status(OK, name, f"not subscribed (node {s.state})", values)
    if s.since_last_image_s is None or s.since_last_image_s > th.input_timeout_s:
        waited = "never" if s.since_last_image_s is None else f"{s.since_last_image_s:.1f} s ago"
        return Status(WARN, name, f"no image received (last: {waited})", values)
    if th.require_camera_info and s.camera_info == "missing":
        return Status(ERROR, name, "images arrive but no CameraInfo: not processing", values)
    if s.skipped_period:
        reasons = ", ".join(f"{k} x{v}" for k, v in sorted(s.skipped_period.items()))
        return Status(WARN, name, f"bad frames skipped: {reasons}", values)
    return Status(OK, name, f"receiving {s.input_hz:.1f} Hz", values)


def processing_status(s: Snapshot, th: Thresholds, name: str) -> Status:
    """Pipeline health: configured, errors, latency, drops."""
    lat = s.latency_ms
    values = {"state": s.state, "backend": s.backend, "output_rate_hz": _fmt(s.output_hz),
              "frames_processed": str(s.processed), "frames_dropped": str(s.dropped),
              "dropped_last_period": str(s.dropped_period), "people": str(s.people),
              "boxes_rejected_not_person": str(s.rejected_boxes),
              "people_unfitted_frame_budget": str(s.unfitted_people),
              "tracking_mode": s.tracking_mode or "unknown", "people_tracked": str(s.people_tracked),
              "people_detected": str(s.people_detected), "detector_runs": str(s.detector_runs),
              "tracks_lost": str(s.tracks_lost),
              "latency_p50_ms": _fmt(lat["p50"]), "latency_p90_ms": _fmt(lat["p90"]),
              "latency_p99_ms": _fmt(lat["p99"]), "latency_max_ms": _fmt(lat["max"])}
    values.update({f"stage_{k}_ms": _fmt(v) for k, v in sorted(s.stage_ms.items())})
    if s.last_error:
        values["last_error"] = s.last_error
    if s.configure_error:
        return Status(ERROR, name, f"not configured: {s.configure_error}", values)
    if s.state != "active":
        return Status(WARN if s.state == "inactive" else OK, name, f"node {s.state}: not processing", values)
    if s.errors_period:
        return Status(ERROR, name, f"pipeline failed on {s.errors_period} frame(s): {s.last_error}", values)
    if lat["p90"] == lat["p90"] and lat["p90"] > th.latency_warn_ms:
        return Status(WARN, name, f"latency p90 {lat['p90']:.0f} ms > {th.latency_warn_ms:.0f} ms", values)
    if s.dropped_period:
        return Status(WARN, name, f"dropped {s.dropped_period} frame(s): processing slower than input "
                      f"({s.output_hz:.1f} of {s.input_hz:.1f} Hz)", values)
    if s.unfitted_period:
        return Status(WARN, name, f"{s.unfitted_period} person(s) published unfitted (start body): the "
                      "frame's fit budget (fit.frame_budget_ms) was spent on larger people", values)
    return Status(OK, name, f"{s.output_hz:.1f} Hz, {s.people} people, p50 {_fmt(lat['p50'], 0)} ms", values)
