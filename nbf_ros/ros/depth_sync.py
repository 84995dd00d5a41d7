"""Pair each image with the aligned depth image of its stamp, or say why the frame goes monocular.

The ``depth`` topic is optional: a node without a depth publisher works as before. Depth travels
separately from the colour image (and, on most RGB-D drivers, from an align node that adds a few
milliseconds), so the worker, holding an image already paired with its CameraInfo, waits here up
to ``wait_s`` for a depth image whose stamp is within ``tolerance_s`` of the image's (the nearest
one wins), without blocking the executor. What it can answer:

- ``paired``: the depth image to use;
- ``none``: no depth stream (never received, or silent for ``STREAM_TIMEOUT_S``): monocular,
  which is the normal case without an RGB-D camera, not a warning;
- ``late``: the stream is live but the depth of this stamp did not arrive within ``wait_s``;
- ``unmatched``: depth images with later stamps arrived, none within ``tolerance_s``.

A frame that falls back to monocular because of ``late``/``unmatched`` (or a depth image that
cannot be used: size, encoding) is reported by the node in /diagnostics with the reason.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from nbf_ros.ros.stats import OK, WARN, Status

PAIRED, NONE, LATE, UNMATCHED = "paired", "none", "late", "unmatched"
STREAM_TIMEOUT_S = 5.0
"""A depth stream silent this long is gone: frames go monocular without waiting (``none``; after
depth was paired before, reported as ``stopped``). Long enough for a 1 Hz stream whose
messages DDS delivers late."""


@dataclass(frozen=True)
class DepthMatch:
    """The outcome for one image: ``msg`` (the depth image) only when ``outcome`` is paired."""

    outcome: str
    msg: Any = None
    offset_s: float = 0.0
    """Depth stamp minus image stamp (paired)."""
    waited_s: float = 0.0


class DepthMailbox:
    """Thread-safe store of the latest depth images by stamp (executor puts, worker matches)."""

    def __init__(self, history: int = 16, stream_timeout_s: float = STREAM_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._history = history
        self._stream_timeout_s = stream_timeout_s
        self._clock = clock
        self._msgs: OrderedDict[int, Any] = OrderedDict()
        self._last_arrival: Optional[float] = None
        self._cond = threading.Condition()
        self._closed = False

    @property
    def stream_timeout_s(self) -> float:
        return self._stream_timeout_s

    def put(self, stamp_ns: int, msg: Any) -> None:
        with self._cond:
            self._msgs[stamp_ns] = msg
            self._msgs.move_to_end(stamp_ns)
            while len(self._msgs) > self._history:
                self._msgs.popitem(last=False)
            self._last_arrival = self._clock()
            self._cond.notify_all()

    def match(self, stamp_ns: int, tolerance_s: float, wait_s: float) -> DepthMatch:
        """The depth image nearest to ``stamp_ns`` within ``tolerance_s``, waiting up to
        ``wait_s`` for it while the stream is live (see the module docstring)."""
        tolerance_ns = int(round(tolerance_s * 1e9))
        start = self._clock()
        with self._cond:
            while True:
                now = self._clock()
                if self._closed or not self._live(now):
                    return DepthMatch(NONE, waited_s=now - start)
                best = self._nearest(stamp_ns, tolerance_ns)
                if best is not None:
                    return DepthMatch(PAIRED, self._msgs[best], (best - stamp_ns) * 1e-9, now - start)
                if any(s > stamp_ns + tolerance_ns for s in self._msgs):
                    return DepthMatch(UNMATCHED, waited_s=now - start)
                if now - start >= wait_s:
                    return DepthMatch(LATE, waited_s=now - start)
                self._cond.wait(wait_s - (now - start))

    def close(self) -> None:
        """Wake a waiting worker (deactivate); ``match`` answers ``none`` until reopened."""
        with self._cond:
            self._closed = True
            self._msgs.clear()
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
            self._last_arrival = None

    def _live(self, now: float) -> bool:
        return self._last_arrival is not None and now - self._last_arrival <= self._stream_timeout_s

    def _nearest(self, stamp_ns: int, tolerance_ns: int) -> Optional[int]:
        near = [s for s in self._msgs if abs(s - stamp_ns) <= tolerance_ns]
        return min(near, key=lambda s: abs(s - stamp_ns)) if near else None


@dataclass
class DepthStats:
    """What /diagnostics reports about depth (the worker writes, the diagnostics timer reads)."""

    used: int = 0
    fallbacks: Counter = field(default_factory=Counter)
    """Frames that went monocular although a depth stream is live, by reason."""
    period_fallbacks: Counter = field(default_factory=Counter)
    last_reason: str = ""
    max_offset_ms: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paired(self, offset_s: float) -> None:
        with self.lock:
            self.used += 1
            self.max_offset_ms = max(self.max_offset_ms, abs(offset_s) * 1e3)

    def fell_back(self, reason: str, message: str) -> None:
        with self.lock:
            self.fallbacks[reason] += 1
            self.period_fallbacks[reason] += 1
            self.last_reason = f"{reason}: {message}"


def depth_status(stats: DepthStats, subscribed: bool, name: str) -> Status:
    """The depth diagnostics status: OK when depth is paired or absent by design; WARN when a
    frame of the last period fell back to monocular (the reasons and the last message)."""
    with stats.lock:
        period, stats.period_fallbacks = stats.period_fallbacks, Counter()
        values = {"depth_subscribed": str(subscribed).lower(), "depth_frames_used": str(stats.used),
                  "depth_fallback_total": ", ".join(f"{k}={v}" for k, v in sorted(stats.fallbacks.items())) or "0",
                  "depth_max_stamp_offset_ms": f"{stats.max_offset_ms:.1f}"}
        if stats.last_reason:
            values["depth_last_fallback"] = stats.last_reason
        last = stats.last_reason
    if not subscribed:
        return Status(OK, name, "depth not used (use_depth false)", values)
    if period:
        reasons = ", ".join(f"{k} x{v}" for k, v in sorted(period.items()))
        return Status(WARN, name, f"frames fell back to monocular: {reasons} (last: {last})", values)
    if stats.used == 0:
        return Status(OK, name, "no depth stream: monocular", values)
    return Status(OK, name, f"depth paired ({stats.used} frames)", values)
