"""The node's optional depth input (issue 15): pairing by stamp, the outcomes of the mailbox, and
frames that fall back to monocular with the reason in /diagnostics (wrong size, bad encoding,
late), never a crash. The mailbox is tested without ROS; the node with a recording stand-in
pipeline, frames handed in directly and, once, over DDS."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from nbf_ros.ros.depth_sync import (LATE, NONE, PAIRED, UNMATCHED, DepthMailbox, DepthStats,
                                    depth_status)
from nbf_ros.ros.stats import OK, WARN


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- the mailbox, without ROS ----------------------------------------------------------------------
def test_nearest_depth_within_tolerance_is_paired_and_never_one_outside_it():
    clock = Clock()
    box = DepthMailbox(clock=clock)
    for stamp in (1_000_000_000, 1_033_000_000, 1_066_000_000):
        box.put(stamp, f"d{stamp}")
    found = box.match(1_030_000_000, tolerance_s=0.015, wait_s=0.0)
    assert (found.outcome, found.msg) == (PAIRED, "d1033000000")
    assert found.offset_s == pytest.approx(0.003)
    assert box.match(1_066_000_000, 0.0, 0.0).msg == "d1066000000"  # exact stamps
    # Nothing within 15 ms of 1.05 s, and later depth images exist: it will not come.
    assert box.match(1_050_000_000, 0.015, 10.0).outcome == UNMATCHED


def test_without_a_live_depth_stream_the_answer_is_none_at_once():
    clock = Clock()
    box = DepthMailbox(stream_timeout_s=2.0, clock=clock)
    assert box.match(5, 0.01, 10.0).outcome == NONE  # never received: no waiting
    box.put(0, "d0")
    clock.now = 2.5  # silent for longer than the stream timeout
    assert box.match(10, 0.01, 10.0).outcome == NONE


def test_a_depth_that_is_late_gives_up_after_the_wait_and_one_that_comes_wakes_the_worker():
    box = DepthMailbox()
    box.put(0, "d0")
    assert box.match(1_000_000_000, 0.01, wait_s=0.05).outcome == LATE
    result = {}
    started = threading.Event()

    def worker() -> None:
        started.set()
        result["match"] = box.match(2_000_000_000, 0.01, wait_s=30.0)

    thread = threading.Thread(target=worker)
    thread.start()
    assert started.wait(10.0)
    box.put(2_000_000_000, "d2")  # whether the worker already waits or not: it gets this one
    thread.join(30.0)
    assert not thread.is_alive() and result["match"].outcome == PAIRED and result["match"].msg == "d2"
    box.close()  # deactivate wakes a waiting worker at once
    assert box.match(3, 0.01, 30.0).outcome == NONE


def test_depth_status_warns_only_for_frames_that_fell_back_in_the_last_period():
    stats = DepthStats()
    assert depth_status(stats, True, "d").level == OK
    assert depth_status(stats, False, "d").message.startswith("depth not used")
    stats.paired(0.002)
    assert depth_status(stats, True, "d").message == "depth paired (1 frames)"
    stats.fell_back("size", "depth image is 320 x 240, the colour image 640 x 480")
    status = depth_status(stats, True, "d")
    assert status.level == WARN and "size x1" in status.message and "320 x 240" in status.message
    assert status.values["depth_fallback_total"] == "size=1"
    assert depth_status(stats, True, "d").level == OK  # the next period is clean again


# -- the node ----------------------------------------------------------------------------------------
rclpy = pytest.importorskip("rclpy")

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from nbf_ros.ros import conversions as conv  # noqa: E402
from nbf_ros.ros.node import NbfNode  # noqa: E402
from nbf_ros.testing.pipelines import SilhouettePipeline  # noqa: E402
from ros_harness import RosHarness, wait_until  # noqa: E402

W, H = 160, 120


class RecordingPipeline(SilhouettePipeline):
    """The stand-in pipeline that also takes ``depth=`` and records what each frame got."""

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.depths: list = []
        self.lock = threading.Lock()

    def process(self, image_rgb, camera, tracker=None, fit=True, boxes=None, stamp_s=0.0, depth=None):
        with self.lock:
            self.depths.append((stamp_s, None if depth is None else depth.copy()))
        return super().process(image_rgb, camera, tracker=tracker, fit=fit, boxes=boxes, stamp_s=stamp_s)


@pytest.fixture(scope="module")
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


@pytest.fixture
def node(ros):
    pipelines: list[RecordingPipeline] = []

    def factory(cfg):
        pipelines.append(RecordingPipeline(cfg))
        return pipelines[-1]

    overrides = [Parameter("autostart", value=False), Parameter("require_camera_info", value=False),
                 Parameter("qos_reliability", value="reliable"), Parameter("depth_qos_reliability", value="reliable"),
                 Parameter("depth_wait_s", value=0.05), Parameter("diagnostics_period_s", value=60.0)]
    n = ros.add(NbfNode(context=ros.context, parameter_overrides=overrides, pipeline_factory=factory))
    assert ros.transition(n, "configure") == TransitionCallbackReturn.SUCCESS
    assert ros.transition(n, "activate") == TransitionCallbackReturn.SUCCESS
    n.recorded = pipelines[-1]
    yield n
    ros.transition(n, "deactivate")
    ros.remove(n)


def header(stamp_ns: int) -> Header:
    h = Header(frame_id="cam")
    h.stamp.sec, h.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return h


def image_msg(stamp_ns: int):
    rgb = np.full((H, W, 3), 255, np.uint8)
    return conv.rgb_to_image_msg(rgb, header(stamp_ns))


def depth_status_of(node):
    return next(s for s in node.diagnostic_statuses() if s.name.endswith(": depth"))


def test_the_node_pairs_each_image_with_the_depth_of_its_stamp(node):
    depth = np.full((H, W), 2.5, np.float32)
    depth[0, 0] = np.nan
    for i, encoding in enumerate(("16UC1", "32FC1")):
        stamp = 1_000_000_000 + i * 100_000_000
        node._on_depth(conv.depth_to_image_msg(depth + i, header(stamp + 2_000_000), encoding))  # 2 ms off
        node._on_depth(conv.depth_to_image_msg(depth + 10, header(stamp + 40_000_000), encoding))  # next frame's
        assert node.process_frame(image_msg(stamp))
        stamp_s, got = node.recorded.depths[-1]
        assert got.shape == (H, W) and np.isnan(got[0, 0])
        np.testing.assert_allclose(got[1:, 1:], 2.5 + i, atol=1e-6)
    status = depth_status_of(node)
    assert status.level == OK and status.values["depth_frames_used"] == "2"


@pytest.mark.parametrize("case", ["size", "encoding", "late"])
def test_unusable_or_late_depth_falls_back_to_monocular_with_the_reason(node, case):
    stamp = 2_000_000_000
    if case == "size":
        node._on_depth(conv.depth_to_image_msg(np.ones((H // 2, W // 2), np.float32), header(stamp)))
    elif case == "encoding":
        bad = conv.depth_to_image_msg(np.ones((H, W), np.float32), header(stamp), "32FC1")
        bad.encoding = "rgb8"  # 4 bytes per pixel is not what rgb8 says either: rejected, not misread
        node._on_depth(bad)
    else:
        node._on_depth(conv.depth_to_image_msg(np.ones((H, W), np.float32), header(stamp - 500_000_000)))
    assert node.process_frame(image_msg(stamp))  # processed, monocular
    assert node.recorded.depths[-1][1] is None
    status = depth_status_of(node)
    assert status.level == WARN and f"{case} x1" in status.message, status
    assert status.values["depth_last_fallback"].startswith(case)


def test_depth_over_dds_reaches_the_pipeline_paired_by_stamp(ros, node):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    # DDS may deliver a depth image after its image on a loaded machine: wait for it (the
    # fallback when it does not come is the test above).
    assert ros.call(lambda: node.set_parameters([Parameter("depth_wait_s", value=5.0)]))[0].successful
    pub_node = ros.add(rclpy.create_node("depth_test_camera", context=ros.context))
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {name: ros.call(lambda n=name, t=t: pub_node.create_publisher(t, n, qos))
            for name, t in (("image", Image), ("depth", Image), ("camera_info", CameraInfo))}
    try:
        assert wait_until(lambda: all(p.get_subscription_count() >= 1 for p in pubs.values()), 30.0)
        stamps = [3_000_000_000 + i * 100_000_000 for i in range(3)]
        for i, stamp in enumerate(stamps):
            info = CameraInfo(header=header(stamp), width=W, height=H)
            info.k = [200.0, 0.0, W / 2, 0.0, 200.0, H / 2, 0.0, 0.0, 1.0]
            pubs["camera_info"].publish(info)
            pubs["depth"].publish(conv.depth_to_image_msg(np.full((H, W), 1.0 + i, np.float32), header(stamp)))
            pubs["image"].publish(image_msg(stamp))
        got = lambda: [d for d in node.recorded.depths if d[0] >= 3.0]  # noqa: E731
        assert wait_until(lambda: len(got()) >= 1 and got()[-1][0] >= 3.2 - 1e-9, 30.0), got()
        for stamp_s, depth in got():  # whichever frames latest-frame-wins kept: each with its own depth
            assert depth is not None
            assert float(np.nanmedian(depth)) == pytest.approx(1.0 + round((stamp_s - 3.0) / 0.1), abs=1e-3)
    finally:
        ros.remove(pub_node)


# -- bag replay and the CLI ----------------------------------------------------------------------------
def test_bag_replay_pairs_each_image_with_the_depth_of_its_stamp(tmp_path):
    pytest.importorskip("rosbags")
    from nbf_ros.ros.bag_io import BagError, process_bag, write_camera_bag
    from nbf_ros.testing.scenes import DrawnScene

    scene = DrawnScene(num_people=1, seed=1)
    frames = [(1_700_000_000_000_000_000 + i * 100_000_000, scene.frame(i)[0]) for i in range(3)]
    h, w = frames[0][1].shape[:2]
    depths = [np.full((h, w), 1.0 + i, np.float32) for i in range(3)]
    depths[2] = np.full((h // 2, w // 2), 3.0, np.float32)  # not registered: that frame goes monocular
    write_camera_bag(tmp_path / "in", frames, scene.camera, depths=depths)
    pipeline = RecordingPipeline()
    stats = process_bag(tmp_path / "in", tmp_path / "out", pipeline, "/camera/image", "/camera/camera_info",
                        depth_topic="/camera/aligned_depth_to_color/image_raw")
    assert stats.processed == 3 and stats.depth_used == 2 and stats.depth_fallbacks == {"size": 1}
    got = [d for _, d in pipeline.depths]
    assert float(np.nanmedian(got[0])) == pytest.approx(1.0) and float(np.nanmedian(got[1])) == pytest.approx(2.0)
    assert got[2] is None
    with pytest.raises(BagError, match="no topic"):
        process_bag(tmp_path / "in", tmp_path / "out2", pipeline, "/camera/image", None, depth_topic="/nope")
