"""End to end: a real second process publishes camera frames, the node runs in this process.

The node wraps the stand-in ``SilhouettePipeline`` (it finds the drawn people and places a
1.7 m skeleton at the depth their height implies), so these tests check the ROS shell: stamps,
frames, fields, ids, empty outputs, parameters and lifecycle. The real pipeline's end-to-end
test lives in test_ros_pipeline_e2e.py.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import PointField  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from nbf_ros.ros.conversions import pointcloud_to_array  # noqa: E402
from nbf_ros.ros.node import NbfNode  # noqa: E402
from nbf_ros.testing.pipelines import SilhouettePipeline  # noqa: E402
from nbf_ros.types import NUM_JOINTS  # noqa: E402
from ros_harness import RosHarness, stamp_ns, wait_matched, wait_settled, wait_until  # noqa: E402

FRAME_ID = "test_camera_optical"


@pytest.fixture(scope="module")
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


def make_node(ros, factory=None, **params):
    overrides = [Parameter("autostart", value=False), Parameter("qos_reliability", value="reliable"),
                 Parameter("qos_depth", value=10), Parameter("diagnostics_period_s", value=0.25)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = NbfNode(context=ros.context, parameter_overrides=overrides,
                   pipeline_factory=factory or (lambda cfg: SilhouettePipeline(cfg)))
    return ros.add(node)


def start(ros, node, collector: bool = False):
    assert ros.transition(node, "configure") == TransitionCallbackReturn.SUCCESS
    assert ros.transition(node, "activate") == TransitionCallbackReturn.SUCCESS
    if collector:
        wait_matched(node)


def test_outputs_carry_input_stamp_and_frame_with_declared_fields_and_stable_ids(ros, tmp_path):
    collector, out = ros.collector()
    node = make_node(ros)
    start(ros, node, collector=True)
    try:
        frames = ros.publish("--rate", "10", "--frames", "20", "--people", "3", "--reliable",
                             "--frame-id", FRAME_ID, "--encodings", "rgb8,bgr8,rgba8,bgra8,mono8,mono16",
                             manifest=tmp_path / "m.jsonl")
        # However fast this machine is: every received frame settled and all its outputs in.
        assert wait_settled(node), (node.stats.received, node.stats.processed)
        assert wait_until(lambda: len(out.joints) == len(out.people) == len(out.markers)
                          == node.stats.processed, timeout=30.0), (node.stats.processed, len(out.joints))
        assert node.stats.processed >= 5, (node.stats.received, node._slot.dropped, node.stats.skipped)
    finally:
        ros.transition(node, "deactivate")
        ros.remove(node)
    sent = {f["stamp_ns"]: f for f in frames}
    # Every output is the answer to one input frame: its stamp and frame id.
    for name in ("joints", "people", "markers"):
        for _, msg in getattr(out, name):
            header = msg.header if name != "markers" else msg.markers[0].header if msg.markers else None
            if header is None or (name == "markers" and msg.markers[0].action == Marker.DELETEALL):
                continue
            assert stamp_ns(header) in sent, name
            assert header.frame_id == FRAME_ID
    joint_stamps = [stamp_ns(m.header) for _, m in out.joints]
    assert joint_stamps == sorted(joint_stamps)  # in order, nothing stale published late
    ids_seen = set()
    for _, cloud in out.joints:
        names = [(f.name, f.datatype) for f in cloud.fields]
        assert names == [("x", PointField.FLOAT32), ("y", PointField.FLOAT32), ("z", PointField.FLOAT32),
                         ("confidence", PointField.FLOAT32), ("visibility", PointField.FLOAT32),
                         ("person_id", PointField.UINT32), ("joint_id", PointField.UINT32)]
        points = pointcloud_to_array(cloud)
        assert len(points) == 3 * NUM_JOINTS
        truth = sent[stamp_ns(cloud.header)]["truth"]
        pelvis = points[points["joint_id"] == 0]
        # Sensible 3D: each pelvis at the drawn person's depth (within 5 %) and inside its box.
        for gt in truth:
            z = gt["depth_m"]
            u = 320 + 800 * pelvis["x"] / pelvis["z"]  # default intrinsics: f = diagonal = 800
            match = (np.abs(pelvis["z"] - z) < 0.05 * z) & (u > gt["box"][0]) & (u < gt["box"][2])
            assert match.sum() == 1, (gt, pelvis)
        ids_seen.update(int(i) for i in pelvis["person_id"])
    assert len(ids_seen) == 3, f"ids not stable across frames: {sorted(ids_seen)}"
    for _, poses in out.people:
        assert len(poses.poses) == 3
        for pose in poses.poses:
            q = np.array([pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w])
            assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-6) and pose.position.z > 1.0
    drawn = [m for _, m in out.markers if any(x.action == Marker.ADD for x in m.markers)]
    assert {m.ns for m in drawn[-1].markers if m.action == Marker.ADD} == {f"person_{i}" for i in ids_seen}
    assert wait_until(lambda: out.markers[-1][1].markers[0].action == Marker.DELETEALL)  # by deactivate
    ros.remove(collector)


def test_nobody_in_view_still_publishes_empty_outputs_and_deactivate_clears(ros, tmp_path):
    collector, out = ros.collector()
    node = make_node(ros, publish_debug_image=True)
    start(ros, node, collector=True)
    try:
        frames = ros.publish("--rate", "10", "--frames", "8", "--people", "0", "--reliable",
                             "--frame-id", FRAME_ID, manifest=tmp_path / "m.jsonl")
        assert wait_settled(node), (node.stats.received, node.stats.processed)
        assert wait_until(lambda: len(out.joints) == len(out.people) == len(out.markers)
                          == len(out.debug_image) == node.stats.processed, timeout=30.0), \
            (node.stats.processed, len(out.joints), len(out.debug_image))
        assert node.stats.processed >= 3, (node.stats.received, node._slot.dropped, node.stats.skipped)
        count_before = len(out.markers)
        assert ros.transition(node, "deactivate") == TransitionCallbackReturn.SUCCESS
        assert wait_until(lambda: len(out.markers) > count_before)
    finally:
        ros.remove(node)
    stamps = {f["stamp_ns"] for f in frames}
    for _, cloud in out.joints:
        assert cloud.width == 0 and len(cloud.data) == 0 and stamp_ns(cloud.header) in stamps
    for _, poses in out.people:
        assert poses.poses == [] and poses.header.frame_id == FRAME_ID
    assert all(m.markers == [] for _, m in out.markers[:count_before])
    _, clear = out.markers[-1]
    assert [m.action for m in clear.markers] == [Marker.DELETEALL]
    _, overlay = out.debug_image[0]
    assert (overlay.width, overlay.height, overlay.encoding) == (640, 480, "rgb8")
    ros.remove(collector)


def test_invalid_parameters_rejected_with_reason(ros):
    node = make_node(ros)
    try:
        cases = [("qos_depth", 0), ("detector", "yolo"), ("fixed_box", [10.0, 10.0, 5.0, 5.0]),
                 ("marker_lifetime_s", -1.0), ("qos_reliability", "sometimes"), ("max_people", 1000)]
        for name, value in cases:
            result = node.set_parameters([Parameter(name, value=value)])[0]
            assert not result.successful and result.reason, name
        assert not node.set_parameters([Parameter("autostart", value=True)])[0].successful  # read-only
        assert not node.set_parameters([Parameter("qos_depth", value="ten")])[0].successful  # type
        start(ros, node)
        result = node.set_parameters([Parameter("config_file", value="other.yaml")])[0]
        assert not result.successful and "configure" in result.reason
        result = node.set_parameters([Parameter("qos_depth", value=3)])[0]
        assert not result.successful and "activate" in result.reason
        assert node.set_parameters([Parameter("max_image_side", value=1000)])[0].successful
        assert node.set_parameters([Parameter("track_timeout_s", value=2.5)])[0].successful
        assert node._tracker.config.timeout_s == 2.5  # runtime parameters apply at once
        assert not node.set_parameters([Parameter("camera_info_wait_s", value=0.5)])[0].successful
        ros.transition(node, "deactivate")
        assert node.set_parameters([Parameter("qos_depth", value=3)])[0].successful
        assert node.set_parameters([Parameter("camera_info_wait_s", value=0.5)])[0].successful
        assert ros.transition(node, "activate") == TransitionCallbackReturn.SUCCESS
        assert node._slot.params.wait_s == 0.5  # the pairing waits as long as the parameter says
        ros.transition(node, "deactivate")
    finally:
        ros.remove(node)
    with pytest.raises(ValueError, match="fixed_box"):
        NbfNode(context=ros.context, pipeline_factory=lambda c: None,
                parameter_overrides=[Parameter("fixed_box", value=[5.0, 5.0, 1.0, 1.0])])


def test_configure_failure_keeps_node_alive_and_reports_it(ros):
    attempts = []

    def factory(cfg):
        attempts.append(cfg)
        if len(attempts) == 1:
            raise FileNotFoundError("models/nbf_net.pt: no such file (run nbf-ros train or download)")
        return SilhouettePipeline(cfg)

    node = make_node(ros, factory=factory)
    try:
        assert ros.transition(node, "configure") == TransitionCallbackReturn.FAILURE
        statuses = {s.name.split(": ")[1]: s for s in node.diagnostic_statuses()}
        assert statuses["processing"].level == 2 and "nbf_net.pt" in statuses["processing"].message
        start(ros, node)  # fixed: configure again works, the node was never lost
        assert node.lifecycle_state == "active" and node.backend_name == "silhouette"
        assert ros.transition(node, "deactivate") == TransitionCallbackReturn.SUCCESS
        assert ros.transition(node, "cleanup") == TransitionCallbackReturn.SUCCESS
        assert node._pipeline is None and node.lifecycle_state == "unconfigured"
        start(ros, node)  # and the whole cycle again
        assert ros.transition(node, "shutdown") == TransitionCallbackReturn.SUCCESS  # from active
        assert node.lifecycle_state == "finalized"
        assert node._pipeline is None and node._pubs == {} and node._worker is None
    finally:
        ros.remove(node)


def test_missing_or_corrupt_onnx_model_fails_configure_with_one_line(ros, tmp_path):
    """The real pipeline factory with the detector's ONNX file missing, then corrupt: configure
    fails (the node stays alive, unconfigured) and diagnostics give one line naming the file and
    the command that rebuilds it."""
    from nbf_ros.inference.pipeline import Pipeline

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx graph")
    for model in (tmp_path / "missing.onnx", corrupt):
        config = tmp_path / f"{model.stem}.yaml"
        config.write_text(f"detector:\n  nanodet_model_path: {model}\n")
        node = make_node(ros, factory=Pipeline.from_config, config_file=str(config))
        try:
            assert ros.transition(node, "configure") == TransitionCallbackReturn.FAILURE
            assert node.lifecycle_state == "unconfigured"
            message = {s.name.split(": ")[1]: s for s in node.diagnostic_statuses()}["processing"].message
            assert str(model) in message and "`python3 tools/build_pretrained_models.py`" in message
            assert "\n" not in message
        finally:
            ros.remove(node)


def image_msg(stamp_s: float, people: int = 1, frame_id: str = FRAME_ID):
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from nbf_ros.ros.conversions import rgb_to_image_msg
    from nbf_ros.testing.scenes import DrawnScene

    sec = int(stamp_s)
    header = Header(stamp=Time(sec=sec, nanosec=int(round((stamp_s - sec) * 1e9))), frame_id=frame_id)
    return rgb_to_image_msg(DrawnScene(num_people=people).frame(0)[0], header)


def info_msg(k, stamp_s: float = 0.0):
    from sensor_msgs.msg import CameraInfo

    header = image_msg(stamp_s).header
    return CameraInfo(header=header, width=640, height=480, k=[float(v) for v in k])


GOOD_K = [800.0, 0.0, 320.0, 0.0, 800.0, 240.0, 0.0, 0.0, 1.0]


def test_stamp_rules_camera_info_rules_and_pipeline_crash_survival(ros):
    """Driven through the callbacks directly (no DDS): order of events is exact."""
    class Flaky(SilhouettePipeline):
        def process(self, image_rgb, camera, **kwargs):
            if kwargs.get("stamp_s") == 13.0:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return super().process(image_rgb, camera, **kwargs)

    node = make_node(ros, factory=lambda cfg: Flaky(cfg))
    start(ros, node)
    try:
        assert not node.process_frame(image_msg(10.0))  # no CameraInfo yet
        node._on_camera_info(info_msg([0.0] * 9))
        assert not node.process_frame(image_msg(10.0))  # all-zero K
        node._on_camera_info(info_msg([float("nan")] * 9))
        assert not node.process_frame(image_msg(10.0))  # NaN K
        statuses = {s.name.split(": ")[1]: s for s in node.diagnostic_statuses()}
        assert statuses["input"].level == 2 and "CameraInfo" in statuses["input"].message
        node._on_camera_info(info_msg(GOOD_K))
        assert node.process_frame(image_msg(10.0))
        assert node.process_frame(image_msg(10.0))  # same stamp again: accepted
        assert not node.process_frame(image_msg(9.8))  # reordered, 0.2 s late: skipped
        first_ids = node._tracker.track_ids
        assert node.process_frame(image_msg(2.0))  # clock reset (bag loop): accepted, tracks renewed
        assert node.stats.clock_resets == 1 and node._tracker.track_ids != first_ids
        assert node.stats.skipped == {"no_camera_info": 1, "camera_info_invalid": 2, "stamp_backwards": 1}
        # A pipeline crash in the worker is logged and counted; the next frame is processed.
        processed = node.stats.processed
        node._on_camera_info(info_msg(GOOD_K, 13.0))  # a driver stamps both alike
        node._on_image(image_msg(13.0))
        assert wait_until(lambda: node.stats.errors == 1)
        node._on_camera_info(info_msg(GOOD_K, 13.1))
        node._on_image(image_msg(13.1))
        assert wait_until(lambda: node.stats.processed == processed + 1)
        statuses = {s.name.split(": ")[1]: s for s in node.diagnostic_statuses()}
        assert "illegal memory access" in statuses["processing"].values["last_error"]
    finally:
        ros.remove(node)


def k_with_focal(fx: float) -> list[float]:
    return [fx, 0.0, 320.0, 0.0, fx, 240.0, 0.0, 0.0, 1.0]


def test_camera_info_paired_by_stamp_when_late_invalid_or_never_matching(ros):
    """Driven through the callbacks (no DDS), in the orders that made the node flaky: a frame
    uses its own CameraInfo even when it comes late, is skipped when its own is invalid, and
    a driver whose CameraInfo stamps never match falls back to the latest, with a WARN."""
    used: dict[float, float] = {}

    class Recording(SilhouettePipeline):
        def process(self, image_rgb, camera, **kwargs):
            used[round(kwargs["stamp_s"], 3)] = camera.fx
            return super().process(image_rgb, camera, **kwargs)

    node = make_node(ros, factory=lambda cfg: Recording(cfg))
    start(ros, node)
    try:
        node._on_camera_info(info_msg(k_with_focal(800.0), 20.0))
        node._on_image(image_msg(20.0))
        assert wait_until(lambda: 20.0 in used)
        node._on_image(image_msg(20.1))  # its CameraInfo comes 0.3 s later, with another K
        time.sleep(0.3)
        assert 20.1 not in used  # waiting, not processed with the K of 20.0
        node._on_camera_info(info_msg(k_with_focal(900.0), 20.1))
        assert wait_until(lambda: 20.1 in used) and used[20.1] == 900.0
        node._on_image(image_msg(20.2))
        node._on_image(image_msg(20.3))
        node._on_camera_info(info_msg([float("nan")] * 9, 20.2))  # its own K is invalid
        node._on_camera_info(info_msg(k_with_focal(700.0), 20.3))
        assert wait_until(lambda: 20.3 in used) and used[20.3] == 700.0 and 20.2 not in used
        assert node.stats.skipped == {"camera_info_invalid": 1}
        assert node._slot.state().mode == "exact"
        node.diagnostic_statuses()  # a report (the timer may be starved): the invalid K is reported
        for i in range(8):  # a driver stamping CameraInfo 1 ms after the image, never equal
            stamp = 30.0 + 0.1 * i
            node._on_camera_info(info_msg(k_with_focal(600.0 + i), stamp + 0.001))
            node._on_image(image_msg(stamp))
            time.sleep(0.25)  # slower than the worker even on a loaded machine: nothing dropped
        assert wait_until(lambda: 30.7 in used)
        # The first images were skipped (each until the next CameraInfo showed its stamp had
        # none), then the latest CameraInfo is used, with no wait.
        assert node.stats.skipped["camera_info_unmatched"] == 3
        assert {s: used[s] for s in sorted(used) if s >= 30.0} == {
            round(30.0 + 0.1 * i, 3): 600.0 + i for i in range(3, 8)}
        status = {s.name.split(": ")[1]: s for s in node.diagnostic_statuses()}["input"]
        assert status.level == 1 and "do not match" in status.message, status.message
        assert status.values["camera_info_sync"] == "latest"
    finally:
        ros.remove(node)


def test_an_invalid_camera_info_is_reported_even_when_a_valid_one_follows_at_once(ros):
    """CameraInfos held back by DDS arrive in bursts: the next diagnostics report must still say
    that an invalid one came, once, though the latest is valid again."""
    node = make_node(ros, diagnostics_period_s=60.0)  # no timer report during the test
    start(ros, node)
    try:
        node._on_camera_info(info_msg([float("nan")] * 9, 40.0))
        node._on_camera_info(info_msg(k_with_focal(800.0), 40.1))
        first = {s.name.split(": ")[1]: s for s in node.diagnostic_statuses()}["input"]
        assert first.level == 2 and "invalid CameraInfo" in first.message, first.message
        assert "the latest CameraInfo is valid" in first.message
        second = {s.name.split(": ")[1]: s for s in node.diagnostic_statuses()}["input"]
        assert "invalid CameraInfo" not in second.message, second.message
    finally:
        ros.remove(node)


def test_qos_mismatch_is_reported(ros):
    """A best-effort camera cannot feed a reliable subscription: the node must say so."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    node = make_node(ros)  # reliable input QoS
    start(ros, node)
    camera = ros.add(rclpy.create_node("best_effort_camera", context=ros.context))
    camera.create_publisher(Image, "image", qos_profile_sensor_data)
    try:
        assert wait_until(lambda: node.stats.qos_incompatible is not None, timeout=60.0)  # discovery
        status = {s.name.split(": ")[1]: s for s in node.diagnostic_statuses()}["input"]
        assert status.level == 2 and "QoS incompatible" in status.message and "'image'" in status.message
    finally:
        ros.remove(camera)
        ros.remove(node)


VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"  # Debian package opencv-doc


def test_real_pedestrian_footage_through_the_node(ros, tmp_path):
    """Real camera footage (OpenCV's vtest.avi) from a second process, the real HOG detector in
    the node: walkers come out at pedestrian distances with ids that persist across frames."""
    import os

    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "HOGDescriptor") or not os.path.isfile(VTEST):
        pytest.skip("needs OpenCV HOG and opencv-doc's vtest.avi")
    from nbf_ros.config import DetectorConfig
    from nbf_ros.detection import make_detector

    hog = make_detector(DetectorConfig(kind="hog", hog_max_side=768, max_people=5))
    collector, out = ros.collector()
    node = make_node(ros, factory=lambda cfg: SilhouettePipeline(cfg, detector=hog))
    start(ros, node, collector=True)
    try:
        # 1 Hz: HOG on these 768 x 576 frames takes ~70 ms on a free core, so even a loaded
        # machine processes every frame and the tracker sees consecutive ones; a slower node
        # would drop frames (latest wins), so wait for every received frame to settle and its
        # output to arrive, whatever their number, rather than for a count.
        frames = ros.publish("--rate", "1", "--frames", "12", "--reliable", "--video", VTEST,
                             "--frame-id", FRAME_ID, manifest=tmp_path / "m.jsonl")
        assert wait_settled(node), (node.stats.received, node.stats.processed)
        assert wait_until(lambda: len(out.joints) == node.stats.processed, timeout=30.0), \
            (node.stats.received, node.stats.processed, node.stats.skipped, len(out.joints))
        assert len(out.joints) >= 3, (node.stats.received, node._slot.dropped, node.stats.skipped)
    finally:
        ros.transition(node, "deactivate")
        ros.remove(node)
    sent = {f["stamp_ns"] for f in frames}
    counts, tracks = [], {}
    for _, cloud in out.joints:
        assert stamp_ns(cloud.header) in sent and cloud.header.frame_id == FRAME_ID
        pelvis = pointcloud_to_array(cloud)
        pelvis = pelvis[pelvis["joint_id"] == 0]
        counts.append(len(pelvis))
        # The camera looks at a yard from ~10-20 m (walkers 80-130 px tall at f = 960 px); HOG
        # boxes around pairs of walkers are taller, hence the loose lower bound.
        assert np.all((pelvis["z"] > 3.0) & (pelvis["z"] < 30.0)), pelvis["z"]
        for pid in pelvis["person_id"]:
            tracks[int(pid)] = tracks.get(int(pid), 0) + 1
    assert np.mean(counts) >= 1.5  # several walkers found per frame
    longest = sorted(tracks.values(), reverse=True)
    assert longest[0] >= 0.7 * len(counts), tracks  # at least one walker kept its id throughout
    ros.remove(collector)
