"""Detectors: full frame, fixed box, OpenCV HOG on drawn people and on real pedestrian footage."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nbf_ros.config import DetectorConfig
from nbf_ros.detection import Detections, make_detector
from nbf_ros.geometry.boxes import box_iou, nms
from nbf_ros.testing.scenes import DrawnScene, background

cv2 = pytest.importorskip("cv2")
HAS_HOG = hasattr(cv2, "HOGDescriptor")
needs_hog = pytest.mark.skipif(not HAS_HOG, reason="this OpenCV build has no HOGDescriptor "
                               "(OpenCV 5 needs opencv-contrib-python-headless)")
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")  # Debian package opencv-doc


def test_full_frame_and_fixed_box():
    image = np.zeros((48, 64, 3), np.uint8)
    np.testing.assert_allclose(make_detector(DetectorConfig(kind="full_frame")).detect(image),
                               [[-0.5, -0.5, 63.5, 47.5]])
    fixed = make_detector(DetectorConfig(kind="fixed", fixed_box=(10, 5, 100, 40)))
    np.testing.assert_allclose(fixed.detect(image), [[10, 5, 63.5, 40]])  # clipped to the image
    outside = make_detector(DetectorConfig(kind="fixed", fixed_box=(100, 100, 200, 200)))
    assert outside.detect(image).shape == (0, 4)
    with pytest.raises(ValueError, match="fixed_box"):
        make_detector(DetectorConfig(kind="fixed", fixed_box=(10, 10, 5, 20)))
    with pytest.raises(ValueError, match="max_people"):
        make_detector(DetectorConfig(kind="full_frame", max_people=0))
    with pytest.raises(ValueError, match="RGB"):
        make_detector(DetectorConfig(kind="full_frame")).detect(np.zeros((4, 4), np.uint8))


def test_nms_matches_definition():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], float)
    scores = np.array([0.5, 0.9, 0.3, 0.1])
    keep = nms(boxes, scores, 0.5)
    assert keep.tolist() == [1, 2]  # 0 and 3 overlap box 1 by > 0.5
    assert np.all(box_iou(boxes[keep], boxes[keep])[~np.eye(len(keep), dtype=bool)] <= 0.5)


@needs_hog
def test_hog_finds_drawn_people_and_nothing_in_an_empty_scene():
    detector = make_detector(DetectorConfig(kind="hog", max_people=5))
    for num_people in (1, 3):
        scene = DrawnScene(num_people=num_people, seed=2)
        for index in (0, 7, 30):
            image, truth = scene.frame(index)
            boxes = detector.detect(image)
            iou = box_iou(np.array([p.box for p in truth]), boxes)
            assert iou.shape[1] >= num_people
            assert np.all(iou.max(axis=1) > 0.5), (index, boxes, [p.box for p in truth])
    empty = background(640, 480, np.random.default_rng(0))
    assert detector.detect(empty).shape == (0, 4)


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def test_best_keeps_the_largest_people_of_a_crowd_first():
    """30 people, max_people 5: the 5 largest boxes (nearest people), largest first, against a
    brute-force reference; too short and empty boxes never count; equal areas: higher score first."""
    rng = np.random.default_rng(3)
    corner = rng.uniform(0, 600, (30, 2))
    size = rng.uniform([10, 20], [150, 400], (30, 2))
    boxes = np.hstack([corner, corner + size])
    boxes[4, 2] = boxes[4, 0]  # zero width
    scores = rng.uniform(0.35, 1.0, 30)
    best = Detections(boxes, scores).best(5, min_height_px=48.0)
    eligible = [i for i in range(30) if size[i, 1] >= 48.0 and i != 4]
    expected = sorted(eligible, key=lambda i: -_areas(boxes[i:i + 1])[0])[:5]
    np.testing.assert_array_equal(best.boxes, boxes[expected])
    np.testing.assert_array_equal(best.scores, scores[expected])
    assert len(Detections(boxes, scores).best(64, 48.0).boxes) == len(eligible)
    twins = Detections(np.array([[0, 0, 50, 100], [200, 0, 250, 100.0]]), np.array([0.4, 0.9])).best(2)
    np.testing.assert_array_equal(twins.scores, [0.9, 0.4])
    nobody = Detections().best(5, 48.0)
    assert nobody.boxes.shape == (0, 4) and nobody.scores.shape == (0,)


@needs_hog
def test_hog_max_people_and_largest_first():
    everyone = make_detector(DetectorConfig(kind="hog", max_people=64))
    detector = make_detector(DetectorConfig(kind="hog", max_people=2))
    image, _ = DrawnScene(num_people=3, seed=1).frame(5)
    det, all_boxes = detector.detect_scored(image), everyone.detect(image)
    assert len(det.boxes) == 2 and np.all(np.diff(_areas(det.boxes)) <= 0)
    np.testing.assert_array_equal(det.boxes, all_boxes[:2])


@needs_hog
@pytest.mark.skipif(not VTEST.is_file(), reason="opencv-doc's vtest.avi is not installed")
def test_hog_on_real_pedestrian_footage():
    """Frame 80 of OpenCV's vtest.avi, five walkers labelled by hand (centres, pixels)."""
    capture = cv2.VideoCapture(str(VTEST))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 80)
    ok, bgr = capture.read()
    capture.release()
    if not ok:
        pytest.skip("this OpenCV build cannot decode vtest.avi")
    labelled = np.array([[271, 207], [385, 220], [458, 214], [487, 213], [584, 238]], float)
    boxes = make_detector(DetectorConfig(kind="hog", hog_max_side=1024)).detect(bgr[:, :, ::-1].copy())
    for cx, cy in labelled:
        inside = (boxes[:, 0] <= cx) & (cx <= boxes[:, 2]) & (boxes[:, 1] <= cy) & (cy <= boxes[:, 3])
        assert inside.any(), f"walker at ({cx}, {cy}) not found in {boxes.round()}"
    heights = boxes[:, 3] - boxes[:, 1]
    assert np.all((heights > 50) & (heights < 150))  # walkers are ~80-120 px tall there
