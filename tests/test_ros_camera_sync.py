"""Exact-time pairing of images and CameraInfos (``nbf_ros.ros.camera_sync``), without ROS.

Events are fed in explicit orders with explicit times, so every case is deterministic: the
orders that made the node flaky (a CameraInfo delivered after its image, a stalled CameraInfo
stream, a burst of late CameraInfos) and drivers whose CameraInfo stamps never match."""
from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from nbf_ros.ros.camera_sync import (CameraInfoSync, CameraSyncSlot, Match, SyncParams, sync_status)
from nbf_ros.ros.stats import ERROR, OK, WARN, Status

P = SyncParams(wait_s=1.0, max_pending=4, window=6, enter_misses=3, exit_misses=0)


def drain(sync: CameraInfoSync, now: float = 0.0) -> list[tuple[str, Match, object]]:
    """Everything the worker can take at ``now`` (taking costs no time here)."""
    out = []
    while (frame := sync.take(now)) is not None:
        out.append((frame.image, frame.match, frame.info))
    return out


def test_info_before_or_after_its_image_is_paired_by_stamp_never_with_the_previous():
    sync = CameraInfoSync(P)
    sync.add_info(100, "K100", 0.0)
    sync.add_image("img100", 100, 0.01)
    assert drain(sync) == [("img100", Match.EXACT, "K100")]
    sync.add_image("img200", 200, 0.10)  # its CameraInfo is late: K100 is not used for it
    assert sync.take(0.0) is None and sync.state().pending == 1
    sync.add_info(200, "K200-invalid", 0.35)
    frame = sync.take(0.0)
    assert (frame.image, frame.match, frame.info) == ("img200", Match.EXACT, "K200-invalid")
    assert frame.waited_s == pytest.approx(0.25)
    assert sync.state().max_wait_ms == pytest.approx(250.0)
    assert sync.state().mode == "exact" and sync.misses == 0


def test_a_single_late_info_never_turns_waiting_off():
    """The old bug: after one miss the next late image got the previous CameraInfo."""
    sync = CameraInfoSync(P)
    sync.add_info(0, "K0", 0.0)
    sync.add_image("a", 100, 0.0)
    sync.expire(1.0)  # gave up waiting (stalled stream)
    assert drain(sync) == [("a", Match.UNMATCHED, None)] and sync.misses == 1
    sync.add_info(100, "K100", 1.2)  # ... it was only late: not a mismatch after all
    assert sync.misses == 0
    sync.add_image("b", 200, 1.3)
    assert sync.take(0.0) is None  # still waits for its own
    sync.add_info(200, "K200", 1.31)
    assert drain(sync) == [("b", Match.EXACT, "K200")]


def test_burst_of_late_infos_releases_every_frame_in_order():
    sync = CameraInfoSync(P)
    sync.add_info(0, "K0", 0.0)
    for i in range(1, 4):
        sync.add_image(f"img{i}", i, 0.1 * i)
    assert sync.take(0.0) is None
    for i in range(1, 4):
        sync.add_info(i, f"K{i}", 0.9)
    assert drain(sync) == [(f"img{i}", Match.EXACT, f"K{i}") for i in range(1, 4)]
    assert sync.dropped == 0


def test_slow_worker_keeps_only_the_latest_ready_frame():
    sync = CameraInfoSync(P)
    for i in range(3):  # 10 Hz; the worker needs 0.5 s per frame
        sync.add_info(i, f"K{i}", 0.1 * i)
        sync.add_image(f"img{i}", i, 0.1 * i)
        if i == 0:
            assert sync.take(0.0).image == "img0"
    assert drain(sync, now=0.5) == [("img2", Match.EXACT, "K2")] and sync.dropped == 1


def test_stall_backlog_is_taken_in_order_while_the_worker_keeps_up():
    sync = CameraInfoSync(P)
    sync.add_info(0, "K0", 0.0)
    for i in range(1, 4):
        sync.add_image(f"img{i}", i, 0.1 * i)
    for i in range(1, 4):
        sync.add_info(i, f"K{i}", 0.9)  # the stall ends: 3 frames ready together
    taken = [sync.take(0.9 + 0.01 * k).image for k in range(3)]  # 10 ms per frame
    assert taken == ["img1", "img2", "img3"] and sync.dropped == 0


def _three_images_waiting_after_a_first_frame() -> CameraInfoSync:
    """A sync whose worker took frame 0 (stamp 0, 0.0 s) and whose images 1-3 (0.1-0.3 s) wait
    for CameraInfos that a stall holds back."""
    sync = CameraInfoSync(P)
    sync.add_info(0, "K0", 0.0)
    sync.add_image("img0", 0, 0.0)
    assert sync.take(0.0).image == "img0"
    for i in range(1, 4):
        sync.add_image(f"img{i}", i, 0.1 * i)
    return sync


def test_stall_backlog_is_dropped_but_the_newest_when_the_worker_is_slower():
    sync = _three_images_waiting_after_a_first_frame()
    for i in range(1, 4):
        sync.add_info(i, f"K{i}", 0.9)
    assert drain(sync, now=0.95) == [("img3", Match.EXACT, "K3")] and sync.dropped == 2


def test_slow_worker_skips_a_stale_frame_while_a_newer_image_waits_for_its_info():
    """After a stall the first late CameraInfo must not make the worker spend its time on the
    oldest frame: the newer images are about to be paired too."""
    sync = _three_images_waiting_after_a_first_frame()
    sync.add_info(1, "K1", 1.2)  # the stall ends, one CameraInfo at a time
    assert sync.take(1.2) is None and sync.dropped == 1
    sync.add_info(2, "K2", 1.201)
    sync.add_info(3, "K3", 1.202)
    assert drain(sync, now=1.21) == [("img3", Match.EXACT, "K3")] and sync.dropped == 2


def test_slow_worker_with_info_after_image_still_keeps_only_the_latest():
    sync = CameraInfoSync(P)
    sync.add_info(0, "K0", 0.0)
    sync.add_image("img0", 0, 0.0)
    assert sync.take(0.0).image == "img0"
    for i in range(1, 6):  # each CameraInfo 5 ms after its image; the worker needs 0.6 s
        sync.add_image(f"img{i}", i, 0.1 * i)
        sync.add_info(i, f"K{i}", 0.1 * i + 0.005)
    assert drain(sync, now=0.6) == [("img5", Match.EXACT, "K5")] and sync.dropped == 4


def test_a_later_match_settles_earlier_waiting_images_at_once():
    """CameraInfos arrive in publishing order: once img3 has its own, img1/img2 never will."""
    sync = CameraInfoSync(P)
    sync.add_info(0, "K0", 0.0)
    sync.add_image("img1", 1, 0.0)
    sync.add_image("img2", 2, 0.1)
    sync.add_info(3, "K3", 0.15)
    sync.add_image("img3", 3, 0.2)
    assert drain(sync) == [("img1", Match.UNMATCHED, None), ("img2", Match.UNMATCHED, None),
                           ("img3", Match.EXACT, "K3")]
    assert sync.state().mode == "exact" and sync.misses == 2


def test_pending_is_bounded_oldest_gives_up():
    sync = CameraInfoSync(SyncParams(wait_s=10.0, max_pending=2, window=10, enter_misses=5))
    sync.add_info(0, "K0", 0.0)
    for i in range(1, 5):
        sync.add_image(f"img{i}", i, 0.01 * i)
    assert sync.state().pending == 2 and sync.dropped == 0 and sync.misses == 0  # a stall
    assert drain(sync) == [("img1", Match.UNMATCHED, None), ("img2", Match.UNMATCHED, None)]
    assert sync.next_deadline() == pytest.approx(0.03 + 10.0)


def test_a_stall_beyond_the_pending_bound_skips_the_oldest_but_keeps_exact_mode():
    """No CameraInfo for 0.9 s at 30 Hz, then all of them at once (a DDS repair)."""
    sync = CameraInfoSync(P)
    sync.add_info(0, "K0", 0.0)
    taken = []
    for i in range(1, 28):
        sync.add_image(f"img{i}", i, i / 30)
        sync.expire(i / 30)
        taken += [(f.image, f.match) for f in iter(lambda: sync.take(0.0), None)]
    assert taken == [(f"img{i}", Match.UNMATCHED) for i in range(1, 24)]  # bounded memory
    assert sync.state().mode == "exact" and sync.misses == 0  # a stall is not a mismatch
    for i in range(1, 28):
        sync.add_info(i, f"K{i}", 0.95)
    assert drain(sync) == [(f"img{i}", Match.EXACT, f"K{i}") for i in range(24, 28)]
    assert sync.state().mode == "exact"


def test_reordered_image_with_an_older_stamp_gets_its_own_info():
    sync = CameraInfoSync(P)
    sync.add_info(100, "K100", 0.0)
    sync.add_image("img100", 100, 0.0)
    assert drain(sync) == [("img100", Match.EXACT, "K100")]
    sync.add_image("img90", 90, 0.1)  # reordered frame, older stamp; its CameraInfo follows
    sync.add_info(90, "K90", 0.11)
    assert drain(sync) == [("img90", Match.EXACT, "K90")] and sync.misses == 0


def test_driver_with_never_matching_stamps_falls_back_to_latest_then_recovers():
    sync = CameraInfoSync(P)
    t, taken = 0.0, []
    for i in range(1, 14):  # CameraInfo stamped 1 ms after its image (stamped on publish)
        t += 0.1
        sync.add_info(i * 1000 + 1, f"K{i}", t)
        sync.add_image(f"img{i}", i * 1000, t)
        sync.expire(t)
        taken += [(i, f.image, f.match, f.info) for f in iter(lambda: sync.take(0.0), None)]
    # Each image waits only until the next CameraInfo (a later stamp) settles it, never wait_s;
    # the first is stamped before any CameraInfo (NONE, not a miss); after enter_misses more,
    # latest mode: every image at once, with the latest CameraInfo.
    assert taken[0][2] is Match.NONE
    assert [m for _, _, m, _ in taken].count(Match.UNMATCHED) == P.enter_misses
    assert sync.state().mode == "latest" and sync.state().pending == 0
    switched = next(i for i, _, m, _ in taken if m is Match.LATEST)
    assert switched == P.enter_misses + 2
    assert all((img, m, info) == (f"img{i}", Match.LATEST, f"K{i}")
               for i, img, m, info in taken if i > switched)
    assert len(taken) == 13  # nothing lost but the skipped ones, which were reported
    for i in range(14, 14 + P.window):  # the driver is fixed: stamps match again
        t += 0.1
        sync.add_info(i * 1000, f"K{i}", t)
        sync.add_image(f"img{i}", i * 1000, t)
        assert drain(sync) == [(f"img{i}", Match.EXACT, f"K{i}")]
    assert sync.state().mode == "exact"


def test_stopped_info_stream_falls_back_after_a_bounded_wait_not_per_frame():
    sync = CameraInfoSync(P)
    sync.add_info(0, "K0", 0.0)
    t, waited = 0.0, []
    for i in range(1, 30):
        t += 0.1
        sync.add_image(f"img{i}", i, t)
        sync.expire(t)
        waited += [f.waited_s for f in iter(lambda: sync.take(0.0), None) if f.match is Match.LATEST]
    assert sync.state().mode == "latest" and waited
    assert t < 3.0  # latest mode reached within about one wait_s, and then every frame at once


def test_infos_at_a_lower_rate_fall_back_and_use_own_when_present():
    sync = CameraInfoSync(P)
    matches = []
    for i in range(40):
        t = 0.1 * i
        if i % 5 == 0:
            sync.add_info(i, f"K{i}", t)
        sync.add_image(f"img{i}", i, t)
        sync.expire(t)
        matches += [(f.image, f.match, f.info) for f in iter(lambda: sync.take(0.0), None)]
    assert sync.state().mode == "latest"
    assert ("img35", Match.EXACT, "K35") in matches and ("img36", Match.LATEST, "K35") in matches


def test_before_the_first_info_images_wait_briefly_then_none():
    sync = CameraInfoSync(P)
    sync.add_image("img1", 1, 0.0)  # the driver's first CameraInfo follows its first image
    assert sync.take(0.0) is None
    sync.add_info(1, "K1", 0.05)
    assert drain(sync) == [("img1", Match.EXACT, "K1")]
    sync = CameraInfoSync(P)
    sync.add_image("img1", 1, 0.0)  # images before the CameraInfo stream starts (at img3)
    sync.add_image("img2", 2, 0.1)
    sync.add_info(3, "K3", 0.2)
    sync.add_image("img3", 3, 0.2)
    assert drain(sync) == [("img1", Match.NONE, None), ("img2", Match.NONE, None),
                           ("img3", Match.EXACT, "K3")]
    assert sync.misses == 0 and sync.state().mode == "exact"
    assert sync.lookup(3) == (Match.EXACT, "K3") and sync.lookup(5) == (Match.LATEST, "K3")


def test_images_older_than_the_camera_info_stream_are_none_whatever_the_arrival_order():
    """DDS delivered the first CameraInfo (stamp 3) before the large images stamped 1 and 2."""
    sync = CameraInfoSync(P)
    sync.add_info(3, "K3", 0.0)
    sync.add_image("img1", 1, 0.01)
    sync.add_image("img2", 2, 0.02)
    sync.add_image("img3", 3, 0.03)
    assert drain(sync) == [("img1", Match.NONE, None), ("img2", Match.NONE, None),
                           ("img3", Match.EXACT, "K3")]
    assert sync.misses == 0


def test_without_any_camera_info_publisher_images_stop_waiting():
    sync = CameraInfoSync(P)
    assert sync.lookup(5) == (Match.NONE, None)
    sync.add_image("img1", 1, 0.0)
    sync.expire(P.wait_s)
    sync.add_image("img2", 2, P.wait_s + 0.1)  # past the start-up wait: at once
    assert drain(sync) == [("img1", Match.NONE, None), ("img2", Match.NONE, None)]
    assert sync.misses == 0


def test_params_are_validated():
    with pytest.raises(ValueError):
        SyncParams(enter_misses=0)
    with pytest.raises(ValueError):
        SyncParams(wait_s=0.0)


def test_slot_worker_sleeps_until_the_info_or_the_deadline():
    slot: CameraSyncSlot = CameraSyncSlot(SyncParams(wait_s=0.3))
    slot.put_info(0, "K0")
    slot.put_image("a", 1)
    threading.Timer(0.05, slot.put_info, (1, "K1")).start()
    start = time.monotonic()
    frame = slot.take(2.0)
    assert (frame.image, frame.match, frame.info) == ("a", Match.EXACT, "K1")
    assert 0.03 < time.monotonic() - start < 0.3
    slot.put_image("b", 2)  # its CameraInfo never comes
    start = time.monotonic()
    frame = slot.take(2.0)
    assert frame.match is Match.UNMATCHED and 0.25 < time.monotonic() - start < 1.0
    assert slot.take(0.01) is None
    slot.close()
    assert slot.take(5.0) is None


def test_sync_status_warns_in_latest_mode_and_keeps_errors():
    sync = CameraInfoSync(P)
    ok = Status(OK, "in", "receiving 10.0 Hz", {"qos": "x"})
    assert sync_status(ok, sync.state()).level == OK
    sync.fallback = True
    warned = sync_status(ok, sync.state())
    assert warned.level == WARN and "latest CameraInfo" in warned.message
    assert warned.values["camera_info_sync"] == "latest" and warned.values["qos"] == "x"
    skipped = sync_status(Status(WARN, "in", "bad frames skipped: size x1", {}), sync.state())
    assert "latest CameraInfo" in skipped.message and "size x1" in skipped.message
    assert sync_status(Status(ERROR, "in", "invalid CameraInfo", {}), sync.state()).level == ERROR


def test_a_fixed_calibration_is_used_at_once_until_a_different_one_arrives():
    """Rule 6: after ``static_after`` identical CameraInfos an image whose own CameraInfo is late
    is ready at once with that calibration (not a miss, mode unchanged); a CameraInfo that differs
    restores waiting until the new one has held as long; 0 keeps waiting always."""
    params = SyncParams(wait_s=1.0, max_pending=4, window=6, enter_misses=3, exit_misses=0, static_after=3)
    sync = CameraInfoSync(params)
    for i in range(3):  # three identical CameraInfos, each before its image
        sync.add_info(i, "K", 0.1 * i)
        sync.add_image(f"img{i}", i, 0.1 * i + 0.01)
    assert [m for _, m, _ in drain(sync)] == [Match.EXACT] * 3 and sync.state().static
    sync.add_image("img3", 3, 0.31)  # its CameraInfo is late: the fixed calibration, no wait
    assert drain(sync) == [("img3", Match.STATIC, "K")]
    sync.add_info(3, "K", 0.45)  # the late one comes, identical
    assert sync.misses == 0 and sync.state().mode == "exact" and sync.state().pending == 0
    sync.add_info(4, "K-zoomed", 0.5)  # the calibration changes: images wait for their own again
    sync.add_image("img4", 4, 0.51)
    sync.add_image("img5", 5, 0.61)
    assert drain(sync) == [("img4", Match.EXACT, "K-zoomed")] and not sync.state().static
    assert sync.take(0.62) is None and sync.state().pending == 1
    sync.add_info(5, "K-zoomed", 0.7)
    assert drain(sync, 0.7) == [("img5", Match.EXACT, "K-zoomed")]
    never = CameraInfoSync(dataclasses.replace(params, static_after=0))
    for i in range(5):
        never.add_info(i, "K", 0.1 * i)
    never.add_image("late", 9, 0.6)
    assert never.take(0.6) is None and not never.state().static
    assert sync_status(Status(OK, "input", "ok", {}), sync.state()).values["camera_info_static"] == "false"
