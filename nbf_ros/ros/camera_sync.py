"""Pair each image with the CameraInfo of the same stamp (exact-time sync) without blocking.

Why: a camera driver publishes ``Image`` and ``CameraInfo`` with the same header stamp, but the
two topics travel separately: under load (large images, reliable DDS repairing a lost sample) a
CameraInfo can arrive hundreds of milliseconds after its image. Using "the latest CameraInfo" for
such an image applies another frame's calibration, and an invalid calibration of this very frame
can be missed. Like image_transport's CameraSubscriber (message_filters exact-time sync), an
image therefore waits here, without holding any thread, until its own CameraInfo arrives.

Rules (decided by the order of events; one timeout for a stream that stalls or stops):

1. An image whose CameraInfo (same stamp) is known is ready at once (``EXACT``), with that
   CameraInfo, valid or not: the node skips a frame whose own calibration is invalid.
2. Otherwise it is pending. CameraInfos of one publisher arrive in publishing order, so when a
   later image gets its own CameraInfo, or a CameraInfo with a later stamp arrives, an image
   still pending will not get its own: it gives up at once (``UNMATCHED``). It also gives up
   after ``wait_s``, or when more than ``max_pending`` images wait (the oldest gives up):
   memory stays bounded.
3. While stamps match (``exact`` mode) an ``UNMATCHED`` frame is skipped by the node, never
   processed with another stamp's calibration. The mode is decided from the outcomes of the
   last ``window`` images: a miss is an image that gave up with evidence that its CameraInfo
   does not exist (rule 2, or a CameraInfo stream silent for ``wait_s``: stopped). A stall
   (a shorter silence, then the late CameraInfos in a burst) is not a miss, and a CameraInfo
   arriving after its image gave up turns that miss back into a match: one late arrival never
   changes the mode. When ``enter_misses`` of the last ``window`` images are misses (a driver
   whose CameraInfo stamps never match, one that publishes it at a lower rate, or one that
   stopped), the sync switches to ``latest`` mode: no waiting, an image takes its own
   CameraInfo if already there, else the latest (``LATEST``), and the node reports a WARN. It
   switches back once at most ``exit_misses`` of the last ``window`` images lack their own.
4. Latest frame wins while the worker is slower than the camera (its time per frame, measured
   between takes, is at least the time between images): only the newest image is taken, once
   paired; older paired frames are dropped (counted). While the worker keeps up, frames paired
   together by a burst of late CameraInfos are taken in order: the backlog drains, and an info
   stall does not cost them. Up to ``max_pending`` frames that gave up stay, so that the node
   reports why they were skipped (they cost nothing).
5. Before the first CameraInfo: an image waits (a driver's first CameraInfo may come just
   after its first image) during the first ``wait_s`` after the first image only; an image
   stamped before the oldest CameraInfo seen that gives up is ``NONE`` (no CameraInfo yet), not
   a miss: by stamp, because the topics arrive in either order (a large image often after the
   small CameraInfo published with the next frame). With no CameraInfo publisher at all, images
   are ``NONE`` at once after that.

6. A fixed calibration need not be waited for: once the last ``static_after`` CameraInfos were
   identical, an image whose own CameraInfo has not arrived yet is ready at once with that
   calibration (``STATIC``), not counted as a miss. Its own CameraInfo, when it comes, is still
   compared: a different one (a zooming camera, a new calibration) ends this until
   ``static_after`` identical ones again, so at most the images already taken then used the
   old calibration (also when the late one is invalid: such an image is processed, not
   skipped; ``static_after`` 0 keeps rule 1 strict). Why: a CameraInfo often arrives after its
   image (above), and in the node's one Python process the callbacks that deliver it are served
   late while the pipeline computes; waiting cost the worker 45 % of its time at 10 Hz
   (docs/ros_node.md).

``CameraInfoSync`` is the pure logic (explicit ``now``, no threads, unit tested);
``CameraSyncSlot`` is the thread-safe mailbox the node's callbacks and worker share.
"""
from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Generic, Optional, TypeVar

from nbf_ros.ros.stats import ERROR, WARN, Status

T = TypeVar("T")
"""The image (a sensor_msgs/Image in the node; anything in tests)."""
I = TypeVar("I")
"""The CameraInfo entry, as the node stores it."""


class Match(str, enum.Enum):
    """How a frame got its camera."""

    EXACT = "exact"
    """Its own CameraInfo (same stamp), valid or not."""
    LATEST = "latest"
    """``latest`` mode: no CameraInfo with its stamp, the latest one is used."""
    UNMATCHED = "unmatched"
    """``exact`` mode: its own CameraInfo never came (or not within ``wait_s``): skip it."""
    NONE = "none"
    """No CameraInfo received yet when the image arrived."""
    STATIC = "static"
    """Its own CameraInfo had not arrived, and the last ``static_after`` ones were identical:
    that calibration is used at once (rule 6)."""


@dataclass(frozen=True)
class SyncParams:
    """Bounds of the exact-time sync (see the module docstring for the rules)."""

    wait_s: float = 3.5
    """Longest an image waits for its own CameraInfo when nothing settles it earlier (rule 2 or
    the count bound): a CameraInfo stream that stalls or stops. Measured on the loaded test
    machine with reliable QoS: CameraInfos held back 0.2-2.9 s, then delivered in a burst,
    images on time (consistent with a lost sample repaired at the writer's next heartbeat;
    Fast DDS's default heartbeat period is 3 s).
    A stream silent this long counts as stopped."""
    max_pending: int = 32
    """Images waiting for their CameraInfo at most: a 3 s stall at 10 Hz (memory bound:
    32 VGA rgb8 frames = 30 MB, only during a stall)."""
    history: int = 64
    """CameraInfos kept by stamp (tiny), for images that arrive after their CameraInfo."""
    window: int = 10
    """Images whose outcome (own CameraInfo seen or not) decides the mode."""
    enter_misses: int = 3
    """Images of ``window`` without their own CameraInfo that switch to ``latest`` mode."""
    exit_misses: int = 0
    """At most this many such images in ``window`` switch back to ``exact`` mode."""
    static_after: int = 10
    """Identical consecutive CameraInfos after which images stop waiting for their own (rule
    6); 0 = always wait."""

    def __post_init__(self) -> None:
        if self.wait_s <= 0 or self.max_pending < 1 or self.history < 1 or self.static_after < 0:
            raise ValueError(f"SyncParams: wait_s > 0, max_pending >= 1, history >= 1, static_after >= 0 "
                             f"needed: {self}")
        if not 0 <= self.exit_misses < self.enter_misses <= self.window:
            raise ValueError("SyncParams: 0 <= exit_misses < enter_misses <= window needed: "
                             f"{self.exit_misses}, {self.enter_misses}, {self.window}")


@dataclass
class SyncedFrame(Generic[T, I]):
    """One image and the decision about its camera (``match`` None while pending)."""

    image: T
    stamp_ns: int
    arrived_s: float
    match: Optional[Match] = None
    info: Optional[I] = None
    """Its own CameraInfo (EXACT), the latest (LATEST), else None."""
    waited_s: float = 0.0
    """How long it waited for its CameraInfo (0 when it was already there)."""
    gave_up: bool = False
    """It stopped waiting without its own CameraInfo (UNMATCHED, or NONE after waiting)."""


@dataclass(frozen=True)
class SyncState:
    """What diagnostics report about the sync."""

    mode: str
    """``exact`` (images wait for their own CameraInfo) or ``latest`` (fallback)."""
    misses: int
    """Images of the last ``window`` that never saw their own CameraInfo."""
    window: int
    pending: int
    dropped: int
    max_wait_ms: float
    """Longest an image waited for its own CameraInfo so far (how late CameraInfo runs)."""
    static: bool = False
    """Rule 6 applies: the calibration has been fixed for ``static_after`` CameraInfos."""


class CameraInfoSync(Generic[T, I]):
    """Exact-time pairing of images and CameraInfos, with a fallback mode; not thread-safe."""

    def __init__(self, params: Optional[SyncParams] = None) -> None:
        self.params = params or SyncParams()
        self._infos: OrderedDict[int, I] = OrderedDict()
        self._latest: Optional[I] = None
        self._has_info = False
        self._frames: deque[SyncedFrame[T, I]] = deque()
        self._outcomes: OrderedDict[int, bool] = OrderedDict()
        self._last_info_s: Optional[float] = None
        self._first_info_s: Optional[float] = None
        self._first_info_stamp_ns: Optional[int] = None
        """Oldest CameraInfo stamp seen: images stamped before it predate the CameraInfo stream."""
        self._first_image_s: Optional[float] = None
        self._last_image_s: Optional[float] = None
        self._period_s: Optional[float] = None
        """Moving average of the time between images."""
        self._busy_s: Optional[float] = None
        """Moving average of the worker's time per frame (from one take to the next)."""
        self._taken_s: Optional[float] = None
        self.fallback = False
        self.dropped = 0
        self.max_wait_s = 0.0
        self._same_infos = 0
        """Consecutive identical CameraInfos (in arrival order) up to the latest."""

    # -- events --------------------------------------------------------------------------------
    def add_info(self, stamp_ns: int, info: I, now_s: float) -> None:
        """A CameraInfo arrived: keep it by stamp; the image waiting for it becomes ready, and
        images still waiting with an older stamp will not get theirs (rule 2)."""
        self._same_infos = self._same_infos + 1 if self._has_info and info == self._latest else 1
        self._infos[stamp_ns] = info
        self._infos.move_to_end(stamp_ns)
        while len(self._infos) > self.params.history:
            self._infos.popitem(last=False)
        self._latest, self._has_info, self._last_info_s = info, True, now_s
        if self._first_info_s is None:
            self._first_info_s = now_s
        if self._first_info_stamp_ns is None or stamp_ns < self._first_info_stamp_ns:
            self._first_info_stamp_ns = stamp_ns
        if stamp_ns in self._outcomes:  # its image gave up or used the latest: it was only late
            self._outcomes[stamp_ns] = True
        for index, frame in enumerate(self._frames):
            if frame.match is None and frame.stamp_ns == stamp_ns:
                self._give_up_before(index, now_s)
                frame.waited_s = max(0.0, now_s - frame.arrived_s)
                self._decide(frame, Match.EXACT, info, now_s, own=True)
        for frame in self._frames:
            if frame.match is None and frame.stamp_ns < stamp_ns:
                self._give_up(frame, now_s, mismatch=True)
        self._update_mode(now_s)

    def add_image(self, image: T, stamp_ns: int, now_s: float) -> None:
        """An image arrived: ready at once if its CameraInfo is known (or in ``latest`` mode),
        else pending (see rule 4 for what it replaces)."""
        frame: SyncedFrame[T, I] = SyncedFrame(image, stamp_ns, now_s)
        self._frames.append(frame)
        if self._first_image_s is None:
            self._first_image_s = now_s
        if self._last_image_s is not None:
            self._period_s = _ema(self._period_s, now_s - self._last_image_s)
        self._last_image_s = now_s
        if stamp_ns in self._infos:
            self._give_up_before(len(self._frames) - 1, now_s)
            self._decide(frame, Match.EXACT, self._infos[stamp_ns], now_s, own=True)
        elif self.static and not self.fallback:
            self._decide(frame, Match.STATIC, self._latest, now_s, own=False, record=False)
        elif not self._has_info and now_s - self._first_image_s >= self.params.wait_s:
            # No CameraInfo publisher, it seems: nothing to wait for.
            self._decide(frame, Match.NONE, None, now_s, own=False, record=False)
        elif self.fallback:
            self._decide(frame, Match.LATEST, self._latest, now_s, own=False)
        else:
            pending = [f for f in self._frames if f.match is None]
            for old in pending[: max(0, len(pending) - self.params.max_pending)]:
                self._give_up(old, now_s, mismatch=False)
        self._update_mode(now_s)

    def expire(self, now_s: float) -> None:
        """Pending images older than ``wait_s`` give up (their CameraInfo may still come late)."""
        for frame in self._frames:
            if frame.match is None and now_s - frame.arrived_s >= self.params.wait_s:
                self._give_up(frame, now_s, mismatch=False)
        self._update_mode(now_s)

    def take(self, now_s: float) -> Optional[SyncedFrame[T, I]]:
        """The next frame for the worker (arrival order), or None if the oldest still waits.

        Rule 4: while the worker is slower than the camera, only the newest image is worth
        processing (latest frame wins): a ready frame with a newer image behind it, paired or
        still waiting for its CameraInfo, is dropped. While it keeps up, a backlog (frames
        made ready together after a CameraInfo stall) is taken in order."""
        if self._taken_s is not None:  # the worker comes back: it was busy since the last take
            self._busy_s = _ema(self._busy_s, now_s - self._taken_s)
            self._taken_s = None
        live = [f for f in self._frames if not f.gave_up]
        if len(live) > 1 and self._worker_behind():
            stale = {id(f) for f in live[:-1] if f.match is not None}
            self.dropped += len(stale)
            self._frames = deque(f for f in self._frames if id(f) not in stale)
        if self._frames and self._frames[0].match is not None:
            self._taken_s = now_s
            return self._frames.popleft()
        return None

    # -- queries -------------------------------------------------------------------------------
    @property
    def static(self) -> bool:
        """Rule 6: the last ``static_after`` CameraInfos were identical."""
        return 0 < self.params.static_after <= self._same_infos

    def lookup(self, stamp_ns: int) -> tuple[Match, Optional[I]]:
        """Without waiting: the CameraInfo with this stamp, else the latest (synchronous use)."""
        if stamp_ns in self._infos:
            return Match.EXACT, self._infos[stamp_ns]
        return (Match.LATEST, self._latest) if self._has_info else (Match.NONE, None)

    def next_deadline(self) -> Optional[float]:
        """When the oldest pending image gives up (monotonic seconds), None if none waits."""
        arrivals = [f.arrived_s for f in self._frames if f.match is None]
        return min(arrivals) + self.params.wait_s if arrivals else None

    def state(self) -> SyncState:
        return SyncState(mode="latest" if self.fallback else "exact", misses=self.misses,
                         window=self.params.window, pending=sum(f.match is None for f in self._frames),
                         dropped=self.dropped, max_wait_ms=1e3 * self.max_wait_s, static=self.static)

    @property
    def misses(self) -> int:
        return sum(not seen for seen in self._outcomes.values())

    def clear_frames(self) -> None:
        """Forget waiting and ready frames (deactivate); CameraInfos and the mode are kept."""
        self._frames.clear()

    # -- internals -----------------------------------------------------------------------------
    def _decide(self, frame: SyncedFrame[T, I], match: Match, info: Optional[I], now_s: float, *,
                own: bool, record: bool = True) -> None:
        """Settle a frame; ``own``: it has its own CameraInfo (the outcome the mode counts)."""
        frame.match, frame.info = match, info
        if own:
            self.max_wait_s = max(self.max_wait_s, frame.waited_s)
        if record:
            self._outcomes[frame.stamp_ns] = own
            self._outcomes.move_to_end(frame.stamp_ns)
            while len(self._outcomes) > self.params.window:
                self._outcomes.popitem(last=False)

    def _give_up(self, frame: SyncedFrame[T, I], now_s: float, *, mismatch: bool) -> None:
        """A pending image stops waiting. It counts as a miss when there is evidence that its
        CameraInfo will not come: a later one arrived (``mismatch``), or the CameraInfo stream
        has been silent for ``wait_s`` (stopped). A shorter silence is a stall: its images are
        skipped, but the mode does not change (their CameraInfos are late, not missing)."""
        frame.waited_s, frame.gave_up = now_s - frame.arrived_s, True
        if self._first_info_stamp_ns is None or frame.stamp_ns < self._first_info_stamp_ns:
            # It is older than the CameraInfo stream (by stamp: the two topics may arrive in either
            # order, large images after small CameraInfos): no CameraInfo yet, not a miss.
            self._decide(frame, Match.NONE, None, now_s, own=False, record=False)
            return
        silent = now_s - self._last_info_s >= self.params.wait_s
        self._decide(frame, Match.UNMATCHED, None, now_s, own=False, record=mismatch or silent)

    def _worker_behind(self) -> bool:
        """The worker needs more time per frame than the camera gives it (unknown: no)."""
        return self._busy_s is not None and self._period_s is not None and self._busy_s >= self._period_s

    def _cap_gave_up(self) -> None:
        """Keep at most ``max_pending`` given-up frames (the newest) for the node to report."""
        gave_up = [f for f in self._frames if f.gave_up]
        extra = {id(f) for f in gave_up[: max(0, len(gave_up) - self.params.max_pending)]}
        if extra:
            self.dropped += len(extra)
            self._frames = deque(f for f in self._frames if id(f) not in extra)

    def _give_up_before(self, index: int, now_s: float) -> None:
        """Images before ``index`` still pending will never get their CameraInfo (rule 2)."""
        for frame in list(self._frames)[:index]:
            if frame.match is None:
                self._give_up(frame, now_s, mismatch=True)

    def _update_mode(self, now_s: float) -> None:
        """Switch mode from the window's misses (rule 3); then apply rule 4."""
        misses = self.misses
        if not self.fallback and misses >= self.params.enter_misses:
            self.fallback = True
            for frame in self._frames:  # nothing waits in latest mode
                if frame.match is None:
                    self._decide(frame, Match.LATEST, self._latest, now_s, own=False)
        elif self.fallback and misses <= self.params.exit_misses:
            self.fallback = False
        self._cap_gave_up()


def _ema(previous: Optional[float], sample: float, weight: float = 0.2) -> float:
    return sample if previous is None else (1.0 - weight) * previous + weight * sample


class CameraSyncSlot(Generic[T, I]):
    """Thread-safe mailbox around ``CameraInfoSync``: the executor's callbacks put images and
    CameraInfos (never blocking on anything but a short lock), the worker ``take``s ready
    frames, sleeping until one is ready or the oldest pending image's deadline."""

    def __init__(self, params: Optional[SyncParams] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sync: CameraInfoSync[T, I] = CameraInfoSync(params)
        self._clock = clock
        self._cond = threading.Condition()
        self._closed = False

    @property
    def params(self) -> SyncParams:
        return self._sync.params

    @property
    def dropped(self) -> int:
        with self._cond:
            return self._sync.dropped

    def put_image(self, image: T, stamp_ns: int) -> int:
        """Store an image; returns how many ready frames it replaced (dropped)."""
        with self._cond:
            before = self._sync.dropped
            self._sync.add_image(image, stamp_ns, self._clock())
            self._cond.notify_all()
            return self._sync.dropped - before

    def put_info(self, stamp_ns: int, info: I) -> None:
        with self._cond:
            self._sync.add_info(stamp_ns, info, self._clock())
            self._cond.notify_all()

    def take(self, timeout: Optional[float] = None) -> Optional[SyncedFrame[T, I]]:
        """The next ready frame, waiting up to ``timeout`` s; None on timeout or close."""
        end = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._closed:
                now = self._clock()
                self._sync.expire(now)
                frame = self._sync.take(now)
                if frame is not None:
                    return frame
                waits = [t - now for t in (end, self._sync.next_deadline()) if t is not None]
                if end is not None and now >= end:
                    return None
                self._cond.wait(max(0.0, min(waits)) if waits else None)
            return None

    def lookup(self, stamp_ns: int) -> tuple[Match, Optional[I]]:
        with self._cond:
            return self._sync.lookup(stamp_ns)

    def state(self) -> SyncState:
        with self._cond:
            return self._sync.state()

    def close(self) -> None:
        """Wake the worker and drop every waiting frame; ``take`` returns None until reopened."""
        with self._cond:
            self._closed = True
            self._sync.clear_frames()
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False


def sync_status(status: Status, state: SyncState) -> Status:
    """The input diagnostics status with the sync's values, WARN in ``latest`` mode (unless it
    is already an ERROR, which says more)."""
    values = dict(status.values, camera_info_sync=state.mode,
                  camera_info_unmatched=f"{state.misses}/{state.window}",
                  camera_info_max_wait_ms=f"{state.max_wait_ms:.0f}",
                  camera_info_static=str(state.static).lower())
    if state.mode != "latest" or status.level >= ERROR:
        return Status(status.level, status.name, status.message, values)
    message = (f"CameraInfo stamps do not match image stamps ({state.misses} of the last "
               f"{state.window} images had none): using the latest CameraInfo")
    if status.level == WARN:
        message = f"{message}; {status.message}"
    return Status(WARN, status.name, message, values)
