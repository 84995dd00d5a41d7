"""End to end: a real second process publishes camera frames, the node runs in this process.

The node wraps the stand-in ``SilhouettePipeline`` (it finds the drawn people and places a
1.7 m skeleton at the depth their height implies), so these tests check the ROS shell: stamps,
frames, fields, ids, empty outputs, parameters and lifecycle. The real pipeline's end-to-end
test lives in test_ros_pipeline_e2e.py.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import PointField  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from nbf_ros.ros.conversions import pointcloud_to_array  # noqa: E402
from nbf_ros.ros.node import NbfNode  # noqa: E402
from nbf_ros.ros.synthetic import SilhouettePipeline  # noqa: E402
from nbf_ros.types import NUM_JOINTS  # noqa: E402
from ros_harness import RosHarness, stamp_ns, wait_matched, wait_until  # noqa: E402

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


def start(node, collector: bool = False):
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    if collector:
        wait_matched(node)


def test_outputs_carry_input_stamp_and_frame_with_declared_fields_and_stable_ids(ros, tmp_path):
    collector, out = ros.collector()
    node = make_node(ros)
    start(node, collector=True)
    try:
        frames = ros.publish("--rate", "10", "--frames", "20", "--people", "3", "--reliable",
                             "--frame-id", FRAME_ID, "--encodings", "rgb8,bgr8,rgba8,bgra8,mono8,mono16",
                             manifest=tmp_path / "m.jsonl")
        assert wait_until(lambda: len(out.joints) >= 15 and len(out.people) >= 15 and len(out.markers) >= 15)
    finally:
        node.trigger_deactivate()
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
    start(node, collector=True)
    try:
        frames = ros.publish("--rate", "10", "--frames", "8", "--people", "0", "--reliable",
                             "--frame-id", FRAME_ID, manifest=tmp_path / "m.jsonl")
        assert wait_until(lambda: len(out.joints) >= 6 and len(out.people) >= 6 and len(out.markers) >= 6)
        assert wait_until(lambda: len(out.debug_image) >= 6)
        count_before = len(out.markers)
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
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
        start(node)
        result = node.set_parameters([Parameter("config_file", value="other.yaml")])[0]
        assert not result.successful and "configure" in result.reason
        result = node.set_parameters([Parameter("qos_depth", value=3)])[0]
        assert not result.successful and "activate" in result.reason
        assert node.set_parameters([Parameter("max_image_side", value=1000)])[0].successful
        assert node.set_parameters([Parameter("track_timeout_s", value=2.5)])[0].successful
        assert node._tracker.config.timeout_s == 2.5  # runtime parameters apply at once
        node.trigger_deactivate()
        assert node.set_parameters([Parameter("qos_depth", value=3)])[0].successful
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
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        statuses = {s.name.split(": ")[1]: s for s in node.diagnostic_statuses()}
        assert statuses["processing"].level == 2 and "nbf_net.pt" in statuses["processing"].message
        start(node)  # fixed: configure again works, the node was never lost
        assert node.lifecycle_state == "active" and node.backend_name == "silhouette"
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node._pipeline is None and node.lifecycle_state == "unconfigured"
        start(node)  # and the whole cycle again
        assert node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS
    finally:
        ros.remove(node)
