"""Offline bag replay: a rosbag2 (sqlite3 and MCAP) in, the same bag plus output topics out."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rosbags")
pytest.importorskip("rclpy")

from rosbags.rosbag2 import Reader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from nbf_ros.ros.bag_io import BagError, process_bag, write_camera_bag  # noqa: E402
from nbf_ros.ros.conversions import pointcloud_to_array  # noqa: E402
from nbf_ros.testing.pipelines import SilhouettePipeline  # noqa: E402
from nbf_ros.testing.scenes import DrawnScene  # noqa: E402

START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000


def make_bag(path, storage, people=2, count=6):
    scene = DrawnScene(num_people=people, seed=1)
    frames = [(START_NS + i * PERIOD_NS, scene.frame(i)[0]) for i in range(count)]
    write_camera_bag(path, frames, scene.camera, storage=storage, encoding="bgr8")
    return scene, frames


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_bag_in_bag_out(tmp_path, storage):
    scene, frames = make_bag(tmp_path / "in", storage)
    stats = process_bag(tmp_path / "in", tmp_path / "out", SilhouettePipeline(), "/camera/image",
                        "/camera/camera_info", debug_image=True)
    assert (stats.images, stats.processed, stats.people, stats.storage) == (6, 6, 12, storage)
    assert stats.messages_in == 12 and stats.skipped == {}
    store = get_typestore(Stores.ROS2_KILTED)
    with Reader(tmp_path / "out") as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts == {"/camera/image": 6, "/camera/camera_info": 6, "/nbf/markers": 6, "/nbf/joints": 6,
                          "/nbf/people": 6, "/nbf/debug_image": 6}
        clouds = [(t, store.deserialize_cdr(raw, c.msgtype)) for c, t, raw in reader.messages()
                  if c.topic == "/nbf/joints"]
    ids = set()
    for (bag_time, cloud), (stamp, _) in zip(clouds, frames):
        assert bag_time == stamp  # written at the image's bag time, with its header
        assert cloud.header.stamp.sec * 1_000_000_000 + cloud.header.stamp.nanosec == stamp
        assert cloud.header.frame_id == "camera_optical_frame"
        points = pointcloud_to_array(cloud)
        assert len(points) == 48 and points.dtype.names[-2:] == ("person_id", "joint_id")
        ids.update(points["person_id"].tolist())
        depths = sorted(points[points["joint_id"] == 0]["z"])
        np.testing.assert_allclose(depths, sorted(p.depth_m for p in scene.frame(0)[1]), rtol=0.05)
    assert len(ids) == 2  # tracked across the bag


def test_bag_errors(tmp_path):
    make_bag(tmp_path / "in", "sqlite3", count=1)
    with pytest.raises(BagError, match="no topic"):
        process_bag(tmp_path / "in", tmp_path / "out", SilhouettePipeline(), "/nope", None)
    (tmp_path / "exists").mkdir()
    with pytest.raises(BagError, match="already exists"):
        process_bag(tmp_path / "in", tmp_path / "exists", SilhouettePipeline(), "/camera/image", None)
    with pytest.raises(BagError, match="not an Image"):
        process_bag(tmp_path / "in", tmp_path / "out2", SilhouettePipeline(), "/camera/camera_info", None)
