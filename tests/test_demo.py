"""The main job (``nbf-ros demo``) end to end, and its rendered sequence.

The end-to-end test runs the demo's ``main`` with a tiny frame count against an untrained
network (never the shipped weights), in its own DDS domain on localhost: the player is a real
second process, the node and the recorder real rclpy nodes. It checks what a user gets: the
output bag (MCAP) holds the input topics and every output topic, each output carrying an input
image's stamp and frame_id; one overlay PNG per processed frame; a summary JSON line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from nbf_ros.geometry.camera import project

pytest.importorskip("rclpy")
pytest.importorskip("rosbags")


@pytest.fixture(scope="module")
def body_and_labels():
    from nbf_ros.body.model import BodyModel
    from nbf_ros.config import resolve_path
    from nbf_ros.data.scene import body_labels

    body = BodyModel(resolve_path("models/nbf_body.npz"))
    return body, body_labels(body)


def _frames(cfg, body_and_labels):
    from nbf_ros.data.sequence import render_sequence

    body, labels = body_and_labels
    camera, frames = render_sequence(cfg, body, labels)
    return camera, list(frames)


def test_sequence_is_deterministic_with_consistent_truth_and_a_passing_occluder(body_and_labels):
    from nbf_ros.data.sequence import SequenceConfig

    cfg = SequenceConfig(frames=5, width=320, height=240, people=2)
    camera, frames = _frames(cfg, body_and_labels)
    _, again = _frames(cfg, body_and_labels)
    assert (camera.width, camera.height) == (320, 240)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, again))
    # The occluder slides across the main person: hidden in the middle frame, clear at the ends.
    occluded = [f.main_occluded_fraction for f in frames]
    assert occluded[0] < 0.05 and occluded[-1] < 0.05 and occluded[2] > 0.2
    main = [f.people[0] for f in frames]
    assert all(np.allclose(p.joints3d, main[0].joints3d) for p in main)  # the main person stands still
    walker_x = [f.people[1].joints3d[0, 0] for f in frames]
    assert np.all(np.diff(walker_x) < 0)  # the second person walks (to the left)
    for frame in frames:
        for person in frame.people:
            assert np.allclose(person.joints2d, project(person.joints3d, camera))
            assert np.all(person.joints3d[:, 2] > 1.0)
    # The main person's middle pixels really are covered: the truth hides some joints there.
    assert main[2].joint_visibility.min() < 0.5 <= main[0].joint_visibility.max()


def test_sequence_rejects_bad_settings():
    from nbf_ros.data.sequence import SequenceConfig

    for bad in (dict(frames=0), dict(people=3), dict(occluder_distance_m=5.0), dict(main_pose="moonwalk")):
        with pytest.raises(ValueError):
            SequenceConfig(**bad).validate()


def test_cloud_to_people_and_matching_against_brute_force():
    from types import SimpleNamespace

    from nbf_ros.apps.demo.scoring import CloudPerson, match_people, people_from_cloud
    from nbf_ros.ros.conversions import people_to_joint_array
    from nbf_ros.types import CameraIntrinsics

    rng = np.random.default_rng(0)
    camera = CameraIntrinsics(500.0, 500.0, 320.0, 240.0, 640, 480)
    hidden = np.arange(24) < 6  # truth: the first 6 joints of person 0 are hidden
    truth = [SimpleNamespace(joints3d=rng.normal(0, 0.3, (24, 3)) + [x, 0.0, 4.0], bbox=np.array([0, 0, 80, 200.0]),
                             joint_visibility=np.where(hidden & (x < 0), 0.1, 0.9)) for x in (-1.0, 1.0)]
    pred_joints = {7: truth[1].joints3d + [0.05, 0.0, 0.0], 3: truth[0].joints3d + 0.01 * rng.normal(size=(24, 3))}
    pred_vis = {7: np.full(24, 0.8), 3: np.where(np.arange(24) < 3, 0.2, 0.7)}  # 3 of 6 hidden found
    people = [SimpleNamespace(id=pid, joints3d=j, joint_confidence=np.ones(24), joint_visibility=pred_vis[pid])
              for pid, j in pred_joints.items()]
    decoded = people_from_cloud(people_to_joint_array(people))
    assert sorted(decoded) == [3, 7]
    assert all(np.allclose(decoded[k].joints, pred_joints[k], atol=1e-6) for k in decoded)
    assert all(np.allclose(decoded[k].visibility, pred_vis[k], atol=1e-6) for k in decoded)
    matches = {m["id"]: m for m in match_people(decoded, truth, camera)}
    assert matches[7]["truth"] == 1 and matches[3]["truth"] == 0
    assert matches[7]["root_error_m"] == pytest.approx(0.05, abs=1e-5)
    assert matches[7]["mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)  # a pure shift: root-aligned error 0
    assert matches[7]["visibility_agreement"] == 1.0
    assert matches[3]["visibility_agreement"] == pytest.approx(21 / 24)
    far = {9: CloudPerson(truth[0].joints3d + [2.0, 0.0, 0.0], np.ones(24))}  # 250 px off: no pair
    assert match_people(far, truth[:1], camera) == []
    offsets = decoded[3].joints - truth[0].joints3d
    brute = np.mean(np.linalg.norm(offsets - offsets[0], axis=1)) * 1e3
    assert matches[3]["mpjpe_mm"] == pytest.approx(brute, rel=1e-6)


def test_demo_defaults_to_the_config_detector_and_checks_the_onnx_files_first(tmp_path):
    """Without --detector the demo runs the config's detector (NanoDet-g by default); a missing
    ONNX file stops it before anything is rendered, naming the file and the rebuild command."""
    from nbf_ros.apps.demo import DemoError
    from nbf_ros.apps.demo.cli import parse_args
    from nbf_ros.apps.demo.node_config import node_config

    cfg = node_config(parse_args(["--out", str(tmp_path / "out")]))
    assert (cfg.detector.kind, cfg.fit.keypoint_source) == ("nanodet", "blazepose")
    assert node_config(parse_args(["--detector", "hog"])).detector.kind == "hog"
    config = tmp_path / "missing.yaml"
    config.write_text(f"detector:\n  nanodet_model_path: {tmp_path / 'gone.onnx'}\n")
    with pytest.raises(DemoError, match=r"gone\.onnx.*`python3 tools/build_pretrained_models\.py`"):
        node_config(parse_args(["--config", str(config)]))
    assert not (tmp_path / "out").exists()


def test_demo_end_to_end(untrained_weights, tmp_path, monkeypatch, capsys):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    from nbf_ros.apps.demo.cli import main
    from nbf_ros.apps.demo.topics import DEPTH_TOPIC, FRAME_ID, IMAGE_TOPIC, INFO_TOPIC, OUTPUT_TOPICS

    monkeypatch.setenv("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))  # not the node tests' range
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    out = tmp_path / "demo"
    code = main(["--out", str(out), "--frames", "3", "--people", "1", "--rate", "1",
                 "--weights", str(untrained_weights), "--max-iters", "2"])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["frames_published"] == 3
    processed = summary["frames_processed"]
    assert 1 <= processed <= 3 and summary["frames_dropped"] == 3 - processed
    assert summary["detector"] == "nanodet"  # the default: the real detector, no region from the truth
    assert summary["people_per_frame"] == [1] * processed  # NanoDet finds the one rendered person
    assert summary["frame_ids"] == [FRAME_ID]
    assert summary["main_person"]["track_ids"]  # the main person got a track id
    for frame in summary["per_frame"]:
        assert frame["matches"] and frame["matches"][0]["truth"] == 0
        assert np.isfinite(frame["matches"][0]["root_error_m"]) and frame["latency_ms"] > 0

    store = get_typestore(Stores.ROS2_KILTED)
    with Reader(Path(summary["files"]["output_bag"])) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        messages = [(c.topic, store.deserialize_cdr(raw, c.msgtype)) for c, _, raw in reader.messages()]
    assert counts[IMAGE_TOPIC] == 3 and counts[INFO_TOPIC] == 3
    image_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for t, m in messages if t == IMAGE_TOPIC}
    for name in ("markers", "joints", "people", "debug_image"):
        topic = OUTPUT_TOPICS[name][0]
        assert counts[topic] >= processed, name
        headers = [h for t, m in messages if t == topic
                   for h in ([mk.header for mk in m.markers] if name == "markers" else [m.header])]
        assert headers and all((h.stamp.sec, h.stamp.nanosec) in image_stamps for h in headers), name
        assert all(h.frame_id == FRAME_ID for h in headers), name
    assert counts["/diagnostics"] >= 1
    clouds = [m for t, m in messages if t == OUTPUT_TOPICS["joints"][0]]
    assert [f.name for f in clouds[0].fields] == ["x", "y", "z", "confidence", "visibility", "person_id",
                                                  "joint_id"]

    import cv2

    overlays = sorted(Path(summary["files"]["overlays"]).glob("frame_*.png"))
    assert len(overlays) == processed == summary["overlays_written"]
    assert cv2.imread(str(overlays[0])).shape == (480, 640, 3)
    with Reader(Path(summary["files"]["input_bag"])) as reader:
        assert {c.topic: c.msgcount for c in reader.connections} == {IMAGE_TOPIC: 3, INFO_TOPIC: 3, DEPTH_TOPIC: 3}
    # The node ran with the depth stream; the summary also has the same frames without depth.
    assert summary["depth"] is True and counts[DEPTH_TOPIC] == 3
    assert summary["without_depth"]["frames"] == processed
    assert np.isfinite(summary["without_depth"]["root_error_m"]["mean"])
    truth = json.loads(Path(summary["files"]["truth"]).read_text())
    assert len(truth["frames"]) == 3 and len(truth["frames"][0]["people"][0]["joints3d"]) == 24
