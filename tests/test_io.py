"""Edge file formats: images, camera_info YAML, the estimate JSON."""
import json

import cv2
import numpy as np
import pytest

from nbf_ros.inference.io import (InputError, estimate_json, load_camera_info_yaml, load_image_rgb,
                                  write_json)
from nbf_ros.types import FrameResult, Person

CAMERA_INFO = """image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [525.0, 0.0, 319.5, 0.0, 526.0, 239.5, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.0, 0.0, 0.0, 0.0, 0.0]
"""


def test_camera_info_yaml(tmp_path):
    path = tmp_path / "cam.yaml"
    path.write_text(CAMERA_INFO)
    cam = load_camera_info_yaml(path)
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (525.0, 526.0, 319.5, 239.5, 640, 480)


@pytest.mark.parametrize("text, fragment", [
    (CAMERA_INFO.replace("525.0, 0.0, 319.5", ".nan, 0.0, 319.5"), "non-finite"),
    (CAMERA_INFO.replace("525.0, 0.0, 319.5", "0.0, 0.0, 319.5"), "positive"),
    (CAMERA_INFO.replace("image_width: 640\n", ""), "not a camera_info"),
    (CAMERA_INFO.replace("1.0]", "1.0, 2.0]"), "9 values"),
])
def test_bad_camera_info(tmp_path, text, fragment):
    path = tmp_path / "cam.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=fragment):
        load_camera_info_yaml(path)


def test_image_formats_become_rgb(tmp_path):
    bgr = np.zeros((8, 9, 3), np.uint8)
    bgr[..., 2] = 200  # red in BGR
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    rgb = load_image_rgb(tmp_path / "a.png")
    assert rgb.shape == (8, 9, 3) and rgb[0, 0].tolist() == [200, 0, 0]
    cv2.imwrite(str(tmp_path / "g.png"), np.full((5, 6), 7, np.uint16) * 257)
    assert load_image_rgb(tmp_path / "g.png")[0, 0].tolist() == [7, 7, 7]


def test_unreadable_images(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("bad.jpg", "empty.png", "missing.png"):
        with pytest.raises(InputError, match=name):
            load_image_rgb(tmp_path / name)


def test_json_schema(tmp_path):
    z = np.zeros
    person = Person(id=0, bbox=np.array([1, 2, 3, 4.0]), joints3d=z((24, 3)), joints2d=z((24, 2)),
                    joint_visibility=np.ones(24), confidence=0.5, betas=z(10), global_orient=z(3),
                    body_pose=z(69), transl=z(3))
    doc = estimate_json([("a.png", 10, 20, FrameResult([person])), ("b.png", 5, 5, FrameResult([]))],
                        {"body_model": "m", "weights": "w", "backend": "torch/cpu"})
    write_json(doc, tmp_path / "out" / "o.json")
    back = json.loads((tmp_path / "out" / "o.json").read_text())
    p = back["images"][0]["people"][0]
    assert set(p) == {"id", "bbox", "joints3d", "joints2d", "joint_visibility", "confidence", "betas",
                      "global_orient", "body_pose", "transl", "fit"}
    assert len(p["joints3d"]) == 24 and len(p["body_pose"]) == 69 and len(p["betas"]) == 10
    assert set(p["fit"]) == {"iterations", "loss_init", "loss", "ms"}
    assert back["images"][1]["people"] == []
