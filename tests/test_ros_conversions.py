"""Message conversions: image round trips and every bad-image case, CameraInfo, PointCloud2
layout, PoseArray quaternions, marker colours; plus the mailbox, stats and parameter rules."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")

from scipy.spatial.transform import Rotation  # noqa: E402
from sensor_msgs.msg import PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from nbf_ros.geometry.camera import intrinsics_for_image  # noqa: E402
from nbf_ros.inference import overlay  # noqa: E402
from nbf_ros.ros import conversions as conv  # noqa: E402
from nbf_ros.ros import params as P  # noqa: E402
from nbf_ros.ros.stats import ERROR, OK, WARN, NodeStats, Thresholds, input_status, processing_status  # noqa: E402
from nbf_ros.types import JOINT_PARENTS, NUM_JOINTS, Person  # noqa: E402


def rgb_image(h: int = 5, w: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def msg_from(enc: conv.EncodedImage, **changes) -> SimpleNamespace:
    fields = dict(encoding=enc.encoding, height=enc.height, width=enc.width, step=enc.step,
                  data=enc.data, is_bigendian=enc.is_bigendian)
    fields.update(changes)
    return SimpleNamespace(**fields)


def person(pid: int = 3, z: float = 4.0, visibility=None) -> Person:
    rng = np.random.default_rng(pid)
    joints = rng.normal(0, 0.3, (NUM_JOINTS, 3)) + [0.0, 0.0, z]
    vis = np.linspace(0, 1, NUM_JOINTS) if visibility is None else np.asarray(visibility, float)
    return Person(pid, np.array([10.0, 20.0, 110.0, 320.0]), joints, rng.uniform(0, 100, (NUM_JOINTS, 2)),
                  vis, 0.8, np.zeros(10), np.array([np.pi, 0.0, 0.0]), np.zeros(69), joints[0].copy(),
                  joint_confidence=np.full(NUM_JOINTS, 0.7))


# -- images ----------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "8UC3", "rgb16", "bgr16"])
@pytest.mark.parametrize("padding", [0, 3])
def test_colour_round_trip_is_exact(encoding, padding):
    rgb = rgb_image()
    enc = conv.encode_image(rgb, encoding, row_padding=padding)
    np.testing.assert_array_equal(conv.image_to_rgb(msg_from(enc)), rgb)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1", "mono16", "16UC1"])
def test_grey_round_trip_replicates_channels(encoding):
    rgb = rgb_image()
    grey = np.round(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
    out = conv.image_to_rgb(msg_from(conv.encode_image(rgb, encoding, row_padding=2)))
    np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))


def test_bgr8_byte_order_and_big_endian_mono16():
    data = bytes([10, 20, 30, 40, 50, 60])  # two BGR pixels
    msg = SimpleNamespace(encoding="bgr8", height=1, width=2, step=6, data=data, is_bigendian=0)
    np.testing.assert_array_equal(conv.image_to_rgb(msg), [[[30, 20, 10], [60, 50, 40]]])
    value = 257 * 200  # -> 200 after scaling
    big = SimpleNamespace(encoding="mono16", height=1, width=1, step=2, data=value.to_bytes(2, "big"),
                          is_bigendian=1)
    assert conv.image_to_rgb(big)[0, 0].tolist() == [200, 200, 200]


@pytest.mark.parametrize("change,reason", [
    (dict(encoding="yuv422"), "encoding"),
    (dict(encoding="32FC1"), "encoding"),
    (dict(height=0, width=0, step=0, data=b""), "size"),
    (dict(step=20), "step"),                     # 7 px x 3 bytes = 21 > 20
    ("short", "data_size"),
    ("long", "data_size"),
    (dict(data=b""), "data_size"),
])
def test_bad_images_rejected_with_reason(change, reason):
    enc = conv.encode_image(rgb_image(), "rgb8")
    if change == "short":
        change = dict(data=enc.data[:-1])
    elif change == "long":
        change = dict(data=enc.data + b"\0" * enc.step)
    with pytest.raises(conv.ImageError) as info:
        conv.image_to_rgb(msg_from(enc, **change))
    assert info.value.reason == reason and str(info.value)


def test_size_cap():
    enc = conv.encode_image(rgb_image(4, 40), "rgb8")
    assert conv.image_to_rgb(msg_from(enc), max_side=40).shape == (4, 40, 3)
    with pytest.raises(conv.ImageError) as info:
        conv.image_to_rgb(msg_from(enc), max_side=39)
    assert info.value.reason == "too_large"


def test_rgb_to_image_msg_round_trip():
    rgb = rgb_image(6, 9)
    msg = conv.rgb_to_image_msg(rgb, Header(frame_id="cam"), "bgr8")
    assert msg.header.frame_id == "cam" and msg.step == 27
    np.testing.assert_array_equal(conv.image_to_rgb(msg), rgb)


# -- camera info -----------------------------------------------------------------------------
def info(k, w=640, h=480):
    return SimpleNamespace(k=k, width=w, height=h)


def test_camera_info_valid_and_scaled():
    cam = conv.camera_info_to_intrinsics(info([500, 0, 320, 0, 510, 240, 0, 0, 1]))
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (500, 510, 320, 240, 640, 480)
    assert intrinsics_for_image(cam, 640, 480) is cam
    half = intrinsics_for_image(cam, 320, 240)
    assert half.fx == pytest.approx(250) and half.cx == pytest.approx(159.75)  # pixel-centre rule
    unsized = conv.camera_info_to_intrinsics(info([500, 0, 320, 0, 510, 240, 0, 0, 1], 0, 0))
    assert intrinsics_for_image(unsized, 800, 600).width == 800


@pytest.mark.parametrize("k", [[0.0] * 9, [float("nan")] * 9, [500, 0, 320, 0, float("inf"), 240, 0, 0, 1],
                               [-500, 0, 320, 0, 500, 240, 0, 0, 1], [1, 2, 3]])
def test_camera_info_invalid(k):
    with pytest.raises(conv.CameraInfoError):
        conv.camera_info_to_intrinsics(info(k))


# -- outputs ---------------------------------------------------------------------------------
def test_pointcloud_layout_and_values():
    people = [person(3), person(8, z=6.0)]
    msg = conv.people_to_pointcloud(people, Header(frame_id="cam"))
    layout = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    assert layout == [("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1),
                      ("z", 8, PointField.FLOAT32, 1), ("confidence", 12, PointField.FLOAT32, 1),
                      ("visibility", 16, PointField.FLOAT32, 1), ("person_id", 20, PointField.UINT32, 1),
                      ("joint_id", 24, PointField.UINT32, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 48, 28, 48 * 28)
    assert not msg.is_bigendian and msg.is_dense and len(msg.data) == 48 * 28
    points = conv.pointcloud_to_array(msg)
    for i, p in enumerate(people):
        block = points[i * NUM_JOINTS:(i + 1) * NUM_JOINTS]
        xyz = np.stack([block["x"], block["y"], block["z"]], axis=1)
        np.testing.assert_allclose(xyz, p.joints3d, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(block["visibility"], p.joint_visibility, atol=1e-7)
        np.testing.assert_allclose(block["confidence"], 0.7, atol=1e-7)
        assert block["person_id"].tolist() == [p.id] * NUM_JOINTS
        assert block["joint_id"].tolist() == list(range(NUM_JOINTS))
    empty = conv.people_to_pointcloud([], Header())
    assert empty.width == 0 and len(empty.data) == 0 and len(empty.fields) == 7
    assert conv.pointcloud_to_array(empty).size == 0


def test_pose_array_is_pelvis_and_global_orient():
    p = person(5)
    p.global_orient = np.array([0.3, -1.2, 0.4])
    msg = conv.people_to_pose_array([p], Header(frame_id="cam"))
    pose = msg.poses[0]
    np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z], p.joints3d[0])
    q = [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
    np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(),
                               Rotation.from_rotvec(p.global_orient).as_matrix(), atol=1e-12)
    assert np.linalg.norm(q) == pytest.approx(1.0)
    assert conv.people_to_pose_array([], Header()).poses == []


def test_markers_namespaces_ids_colours_lifetime():
    header = Header(frame_id="cam")
    msg = conv.people_to_markers([person(3), person(4)], header, 0.3, vanished_ids=[1])
    deletes = [m for m in msg.markers if m.action == Marker.DELETE]
    assert {(m.ns, m.id) for m in deletes} == {("person_1", i) for i in range(3)} | {("body_surface", 1)}
    adds = [m for m in msg.markers if m.action == Marker.ADD]
    assert {(m.ns, m.id, m.type) for m in adds} == {
        (f"person_{pid}", i, t) for pid in (3, 4)
        for i, t in ((0, Marker.LINE_LIST), (1, Marker.SPHERE_LIST), (2, Marker.TEXT_VIEW_FACING))}
    for m in adds:
        assert m.header.frame_id == "cam" and m.lifetime.sec == 0 and m.lifetime.nanosec == 300_000_000
        colours = [m.color] + list(m.colors)
        for c in colours:
            assert all(0.0 <= v <= 1.0 for v in (c.r, c.g, c.b, c.a))
        if m.type == Marker.LINE_LIST:
            assert len(m.points) == 2 * sum(1 for p in JOINT_PARENTS if p >= 0)
        if m.type == Marker.SPHERE_LIST:
            assert len(m.points) == len(m.colors) == NUM_JOINTS
            # visibility 0 -> occluded colour (red dominant), 1 -> visible (green dominant)
            assert m.colors[0].r > m.colors[0].g and m.colors[-1].g > m.colors[-1].r
        if m.type == Marker.TEXT_VIEW_FACING:
            assert m.text.startswith(f"id {m.ns.split('_')[1]} | conf 0.80 | ")
    clear = conv.delete_all_markers(header)
    assert [m.action for m in clear.markers] == [Marker.DELETEALL]


def surface_person(pid: int = 3, count: int = 858) -> Person:
    """A person with a known surface: points scattered around its joints (optical frame, z ~ 4 m)."""
    p = person(pid)
    rng = np.random.default_rng(100 + pid)
    p.surface_points = p.joints3d[rng.integers(0, NUM_JOINTS, count)] + rng.normal(0, 0.02, (count, 3))
    return p


def test_surface_marker_has_every_point_with_frame_stamp_namespace_lifetime():
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    people = [surface_person(3), surface_person(4), person(5)]  # person 5 has no surface points
    msg = conv.people_to_markers(people, header, 0.3)
    surfaces = [m for m in msg.markers if m.ns == conv.SURFACE_NAMESPACE]
    assert [(m.id, m.type, m.action) for m in surfaces] == [(3, Marker.SPHERE_LIST, Marker.ADD),
                                                          (4, Marker.SPHERE_LIST, Marker.ADD)]
    assert len(msg.markers) == 3 * 3 + 2  # skeleton, joints, label each; surfaces for 3 and 4
    for m, p in zip(surfaces, people):
        assert m.header.frame_id == "cam" and (m.header.stamp.sec, m.header.stamp.nanosec) == (12, 345)
        assert (m.lifetime.sec, m.lifetime.nanosec) == (0, 300_000_000)
        assert m.scale.x == m.scale.y == m.scale.z == conv.SURFACE_POINT_DIAMETER_M
        assert m.pose.orientation.w == 1.0
        xyz = np.array([[q.x, q.y, q.z] for q in m.points])
        assert xyz.shape == (858, 3) and np.all(np.isfinite(xyz))
        np.testing.assert_array_equal(xyz, p.surface_points)  # float64 on the wire: exact
        assert len(m.colors) == 858
        for c in list(m.colors) + [m.color]:
            assert all(0.0 <= v <= 1.0 for v in (c.r, c.g, c.b, c.a))


def test_surface_colours_dim_by_nearest_joint_visibility():
    p = surface_person(2, count=300)
    p.joint_visibility = np.random.default_rng(0).uniform(0, 1, NUM_JOINTS)
    p.joint_visibility[7] = np.nan  # counts as occluded
    rgba = conv.surface_colours(p.surface_points, p.joints3d, p.joint_visibility)
    base = np.asarray(conv.SKELETON_RGBA[:3])
    for point, colour in zip(p.surface_points, rgba):
        nearest = min(range(NUM_JOINTS), key=lambda j: np.linalg.norm(point - p.joints3d[j]))  # brute force
        v = 0.0 if np.isnan(p.joint_visibility[nearest]) else p.joint_visibility[nearest]
        low = conv.SURFACE_OCCLUDED_BRIGHTNESS
        np.testing.assert_allclose(colour, [*(base * (low + (1 - low) * v)), conv.SURFACE_ALPHA], atol=1e-12)
    # fully visible -> the skeleton colour; fully occluded -> dimmed
    ones, zeros = np.ones(NUM_JOINTS), np.zeros(NUM_JOINTS)
    np.testing.assert_allclose(conv.surface_colours(p.joints3d, p.joints3d, ones)[:, :3], np.tile(base, (24, 1)))
    np.testing.assert_allclose(conv.surface_colours(p.joints3d, p.joints3d, zeros)[:, :3],
                               np.tile(conv.SURFACE_OCCLUDED_BRIGHTNESS * base, (24, 1)))
    with pytest.raises(ValueError, match="K x 3 points"):
        conv.surface_colours(p.surface_points[:, :2], p.joints3d, ones)


def test_surface_marker_absent_when_off_or_not_finite():
    header = Header(frame_id="cam")
    off = person(1)  # surface_points None: the pipeline's switch is off
    assert conv.surface_marker(off, header, 0.3) is None
    assert all(m.ns != conv.SURFACE_NAMESPACE for m in conv.people_to_markers([off], header, 0.3).markers)
    bad = surface_person(2)
    bad.surface_points[17, 1] = np.nan
    assert conv.surface_marker(bad, header, 0.3) is None
    msg = conv.people_to_markers([bad], header, 0.3)
    assert {m.ns for m in msg.markers} == {"person_2"} and len(msg.markers) == 3  # skeleton still drawn
    inf = surface_person(3)
    inf.surface_points[0, 2] = np.inf
    assert conv.surface_marker(inf, header, 0.3) is None
    with pytest.raises(ValueError, match="K x 3"):
        conv.surface_marker(dataclasses.replace(surface_person(4), surface_points=np.zeros((5, 2))), header, 0.3)


def test_visibility_colour_endpoints_and_nan():
    assert overlay.visibility_colour(1.0)[:3] == tuple(overlay.VISIBLE_RGB)
    assert overlay.visibility_colour(0.0)[:3] == tuple(overlay.OCCLUDED_RGB)
    assert overlay.visibility_colour(float("nan")) == overlay.visibility_colour(0.0)
    assert overlay.visibility_colour(7.0) == overlay.visibility_colour(1.0)


def test_stamp_to_ns_is_exact():
    stamp = SimpleNamespace(sec=1_700_000_000, nanosec=999_999_999)
    assert conv.stamp_to_ns(stamp) == 1_700_000_000_999_999_999


def test_non_finite_person_has_no_markers_and_cloud_not_dense():
    p = person(2)
    p.joints3d[4] = np.nan
    assert conv.person_markers(p, Header(), 0.3) == []
    assert not conv.people_to_pointcloud([p], Header()).is_dense


def test_overlay_draws_on_a_copy():
    rgb = np.zeros((400, 200, 3), np.uint8)
    out = overlay.draw_overlay(rgb, [person(1)])
    assert out.shape == rgb.shape and out.any() and not rgb.any()


# -- mailbox, stats, parameters ------------------------------------------------------------------
def _snapshot(stats: NodeStats, **kw):
    args = dict(state="active", configure_error=None, backend="x", dropped=0, camera_info="ok",
                camera_info_error=None, qos="best_effort, depth 5")
    args.update(kw)
    return stats.snapshot(**args)


def test_diagnostic_levels():
    th = Thresholds(latency_warn_ms=100.0, input_timeout_s=2.0)
    stats = NodeStats()
    assert input_status(_snapshot(stats), th, "in").level == WARN  # nothing received yet
    stats.frame_received()
    stats.frame_published(20.0, {"detect": 5.0}, 2, rejected_boxes=1)
    stats.frame_published(20.0, {"detect": 5.0}, 2, rejected_boxes=2)
    snap = _snapshot(stats)
    assert input_status(snap, th, "in").level == OK and processing_status(snap, th, "p").level == OK
    assert processing_status(snap, th, "p").values["stage_detect_ms"] == "5.0"
    assert processing_status(snap, th, "p").values["boxes_rejected_not_person"] == "3"  # since start
    stats.frame_published(20.0, {}, 3, unfitted_people=2)
    status = processing_status(_snapshot(stats), th, "p")
    assert status.level == WARN and "fit budget" in status.message
    assert status.values["people_unfitted_frame_budget"] == "2"
    assert processing_status(_snapshot(stats), th, "p").level == OK  # per-period count was reset
    stats.frame_received()
    stats.frame_skipped("encoding")
    status = input_status(_snapshot(stats), th, "in")
    assert status.level == WARN and "encoding" in status.message
    assert input_status(_snapshot(stats), th, "in").level == OK  # per-period counts were reset
    assert input_status(_snapshot(stats, camera_info="invalid", camera_info_error="K is zero"),
                        th, "in").level == ERROR
    assert input_status(_snapshot(stats, camera_info="missing"), th, "in").level == ERROR
    assert processing_status(_snapshot(stats, dropped=3), th, "p").level == WARN
    assert processing_status(_snapshot(stats, configure_error="no model"), th, "p").level == ERROR
    for _ in range(20):
        stats.frame_published(500.0, {}, 0)
    assert "latency" in processing_status(_snapshot(stats), th, "p").message
    stats.frame_failed("boom")
    assert processing_status(_snapshot(stats), th, "p").level == ERROR


def test_parameter_rules():
    assert P.validate("qos_depth", 0, "unconfigured") is not None
    assert P.validate("qos_depth", 10, "unconfigured") is None
    assert "read at activate" in P.validate("qos_depth", 10, "active")
    assert "clean up" in P.validate("config_file", "x.yaml", "inactive")
    assert P.validate("config_file", "x.yaml", "unconfigured") is None
    assert "one of" in P.validate("detector", "yolo", "unconfigured")
    assert "one of" in P.validate("detector", "mediapipe", "unconfigured")  # removed
    assert "one of" in P.validate("keypoint_source", "mediapipe", "unconfigured")
    assert "x1 > x0" in P.validate("fixed_box", [10.0, 10.0, 5.0, 20.0], "unconfigured")
    assert P.validate("fixed_box", [0.0, 0.0, 0.0, 0.0], "unconfigured") is None
    assert "finite" in P.validate("marker_lifetime_s", float("nan"), "active")
    assert P.validate("max_image_side", 1024, "active") is None


def test_pipeline_config_overrides(tmp_path):
    defaults = {s.name: s.default for s in P.PARAMS}
    base = P.pipeline_config(defaults)
    assert (base.detector.kind, base.fit.keypoint_source) == ("nanodet", "blazepose")  # the defaults
    old = P.pipeline_config({**defaults, "detector": "hog", "keypoint_source": "network"})
    assert (old.detector.kind, old.fit.keypoint_source) == ("hog", "network")
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text("detector:\n  max_people: 2\nfit:\n  max_iters: 7\n")
    cfg = P.pipeline_config({**defaults, "config_file": str(yaml_file), "detector": "fixed",
                             "fixed_box": [1.0, 2.0, 30.0, 40.0], "track_timeout_s": 3.0})
    assert (cfg.detector.kind, cfg.detector.max_people, cfg.fit.max_iters) == ("fixed", 2, 7)
    assert cfg.detector.fixed_box == (1.0, 2.0, 30.0, 40.0) and cfg.tracker.timeout_s == 3.0
    cfg = P.pipeline_config({**defaults, "config_file": str(yaml_file), "max_people": 4, "max_iters": 0})
    assert (cfg.detector.max_people, cfg.fit.max_iters) == (4, 0)


def test_yaml_file_declares_every_parameter():
    import yaml

    from nbf_ros.config import PACKAGE_ROOT

    data = yaml.safe_load((PACKAGE_ROOT / "config" / "nbf.yaml").read_text())
    params = data["nbf"]["ros__parameters"]
    assert set(params) == {s.name for s in P.PARAMS}
    for name, value in params.items():
        assert P.validate(name, value, "unconfigured") is None, name
        assert type(value) is type(P.SPECS[name].default), name


def test_docs_describe_every_parameter():
    from nbf_ros.config import PACKAGE_ROOT

    text = (PACKAGE_ROOT / "docs" / "ros_node.md").read_text()
    missing = [s.name for s in P.PARAMS if f"| `{s.name}` |" not in text]
    assert not missing, f"docs/ros_node.md lacks parameters {missing}"
