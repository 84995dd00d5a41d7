"""NanoDet-g person detector (detection/nanodet.py): real photo, rendered people, the decode, the
letterbox, and bad inputs. Deterministic, CPU, no opencv-doc needed."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nbf_ros.config import DetectorConfig, NbfConfig, load_config, save_config
from nbf_ros.detection import make_detector
from nbf_ros.detection.nanodet import (INPUT_SIZE, MEAN_BGR, REG_BINS, STD_BGR, STRIDES, Letterbox,
                                       NanoDetDetector, cut_by_inner_edge, decode, decode_level,
                                       preprocess, tile_grid)
from nbf_ros.engines import EngineError
from nbf_ros.evaluation.detection import match
from nbf_ros.geometry.boxes import box_iou

CONFIG = DetectorConfig(kind="nanodet")
# skimage.data.astronaut() (512 x 512), labelled by hand on a 50-px grid: the astronaut from the top
# of her hair to the bottom edge, left edge of the suit to its right edge behind the helmet; the
# helmet she holds, and the flag at the left edge (neither is a person).
ASTRONAUT = (25.0, 15.0, 370.0, 511.0)
HELMET = (275.0, 345.0, 511.0, 511.0)
FLAG = (0.0, 0.0, 95.0, 400.0)
SCENE_SEEDS = (5020, 5022, 5024, 5025, 5028, 5029, 5030, 5031)
# Measured on these scenes with the default config: 15 of 21 people found (0.714), 1 false box;
# the 100-scene split gives 0.71 / 0.72 (80-200 / > 200 px, docs/detection.md). Margin: 2 people.
RECALL_MIN = 13 / 21
FALSE_MAX = 2


@pytest.fixture(scope="module")
def detector() -> NanoDetDetector:
    return make_detector(CONFIG)


def test_astronaut_found_helmet_and_flag_not(detector):
    from skimage import data

    found = detector.detect_scored(data.astronaut())
    assert box_iou([ASTRONAUT], found.boxes).max() > 0.5
    assert found.scores[0] > 0.6 and box_iou([ASTRONAUT], found.boxes[:1])[0, 0] > 0.5  # best = her
    assert (box_iou([HELMET, FLAG], found.boxes) < 0.3).all(), found.boxes


@pytest.fixture(scope="module")
def scenes():
    """The 8 scenes of seeds 5020-5031 (test split, scikit-image backgrounds only, so every machine
    renders the same pixels) with at least 2 people > 80 px not more than half hidden (21 people):
    (image, truth boxes clipped to the image, ignore = more than half hidden)."""
    from nbf_ros.body.model import BodyModel
    from nbf_ros.config import BodyConfig, SyntheticConfig, resolve_path
    from nbf_ros.data.scene import render_scene
    from nbf_ros.geometry.boxes import clip_boxes

    base = SyntheticConfig(split="test")
    cfg = dataclasses.replace(base, appearance=dataclasses.replace(base.appearance, opencv_doc_photos=False))
    body = BodyModel(resolve_path(BodyConfig().model_path))
    out = []
    for seed in SCENE_SEEDS:
        s = render_scene(seed, cfg, body)
        h, w = s.image.shape[:2]
        out.append((s.image, clip_boxes(np.stack([p.bbox for p in s.people]), w, h),
                    np.array([p.occluded_fraction > 0.5 for p in s.people])))
    return out


def test_rendered_people_taller_than_80px_are_found(detector, scenes):
    """Recall at IoU 0.5 of people > 80 px (not more than half hidden). The rendered people
    (odd poses, textures, occluders) are harder for NanoDet than real ones: far below the issue's 95 %."""
    found = total = false = 0
    for image, truth, ignore in scenes:
        d = detector.detect_scored(image)
        m = match(truth, d.boxes, d.scores, 0.5, ignore)
        tall = (truth[:, 3] - truth[:, 1] > 80) & ~ignore
        found += int((m.truth_hit & tall).sum())
        total += int(tall.sum())
        false += int((m.det_state == 0).sum())
    assert total >= 8
    assert found / total >= RECALL_MIN, (found, total)
    assert false <= FALSE_MAX, false


def _peaked(bins: np.ndarray) -> np.ndarray:
    """K x 4 bin indices -> K x 44 logits whose softmax puts all but ~1e-9 on those bins."""
    logits = np.full((len(bins), 4, REG_BINS), -30.0, np.float32)
    np.put_along_axis(logits, bins[:, :, None], 30.0, axis=2)
    return logits.reshape(len(bins), 4 * REG_BINS)


def _empty_outputs() -> dict[str, np.ndarray]:
    out = {}
    for s in STRIDES:
        n = INPUT_SIZE // s
        out[f"cls_stride{s}"] = np.zeros((1, n * n, 80), np.float32)
        out[f"reg_stride{s}"] = np.zeros((1, n * n, 4 * REG_BINS), np.float32)
    return out


def test_decode_known_geometry():
    """A person at stride 16, row 5, col 7 (centre (120, 88)) with distances l, t, r, b = 2, 3, 4, 5
    bins -> box (120 - 32, 88 - 48, 120 + 64, 88 + 80); a car (class 2) elsewhere is not a person."""
    out = _empty_outputs()
    n = INPUT_SIZE // 16
    i = 5 * n + 7
    out["cls_stride16"][0, i, 0] = 0.9
    out["reg_stride16"][0, i] = _peaked(np.array([[2, 3, 4, 5]]))[0]
    out["cls_stride8"][0, 100, 2] = 0.95
    boxes, scores = decode(out, 0.35)
    np.testing.assert_allclose(boxes, [[88.0, 40.0, 184.0, 168.0]], atol=1e-6)
    np.testing.assert_allclose(scores, [0.9], atol=1e-7)


def test_decode_matches_brute_force():
    rng = np.random.default_rng(3)
    stride, n = 32, INPUT_SIZE // 32
    cls = rng.random((n * n, 80)).astype(np.float32)
    reg = rng.normal(0, 3, (n * n, 4 * REG_BINS)).astype(np.float32)
    boxes, scores = decode_level(cls, reg, stride, 0.5)
    expected = []
    for i in range(n * n):
        if cls[i, 0] < 0.5:
            continue
        cx, cy = (i % n + 0.5) * stride, (i // n + 0.5) * stride
        d = []
        for side in range(4):
            z = reg[i, side * REG_BINS:(side + 1) * REG_BINS].astype(np.float64)
            p = np.exp(z) / np.exp(z).sum()
            d.append(sum(k * p[k] for k in range(REG_BINS)) * stride)
        expected.append([cx - d[0], cy - d[1], cx + d[2], cy + d[3], cls[i, 0]])
    expected = np.array(expected)
    np.testing.assert_allclose(boxes, expected[:, :4], atol=1e-9)
    np.testing.assert_allclose(scores, expected[:, 4], atol=1e-7)


def test_decode_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="stride 8"):
        decode_level(np.zeros((10, 80)), np.zeros((10, 44)), 8, 0.3)


@pytest.mark.parametrize("size", [(832, 416), (416, 832), (640, 480), (7, 3), (416, 416)])
def test_letterbox_round_trip_and_extent(size):
    width, height = size
    lb = Letterbox.fit(width, height)
    boxes = np.array([[-0.5, -0.5, width - 0.5, height - 0.5], [3.2, 1.1, 5.7, 2.9]])
    np.testing.assert_allclose(lb.to_image(lb.to_input(boxes)), boxes, atol=1e-12)
    # The whole image is the resized block at the input's top-left corner.
    np.testing.assert_allclose(lb.to_input(boxes[:1]), [[0, 0, lb.width, lb.height]], atol=1e-12)
    assert max(lb.width, lb.height) == INPUT_SIZE


def test_preprocess_places_the_image_top_left_bgr_normalised():
    img = np.zeros((208, 416, 3), np.uint8)
    img[..., 0] = 200  # red
    x = preprocess(img, Letterbox.fit(416, 208))
    assert x.shape == (1, 3, INPUT_SIZE, INPUT_SIZE) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], (np.array([0, 0, 200]) - MEAN_BGR) / STD_BGR, rtol=1e-6)
    np.testing.assert_allclose(x[0, :, 300, 0], -MEAN_BGR / STD_BGR, rtol=1e-6)  # black padding


def test_tile_grid_covers_the_image_with_overlap():
    tiles = tile_grid(640, 480, 2, 0.25)
    assert len(tiles) == 4
    covered = np.zeros((480, 640), bool)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    (ax0, _, ax1, _), (bx0, _, bx1, _) = tiles[0], tiles[1]
    assert (ax1 - bx0) >= 0.25 * (ax1 - ax0) - 1
    boxes = np.array([[10.0, 10.0, 100.0, 100.0], [300.0, 10.0, ax1 - 0.5, 100.0]])
    assert cut_by_inner_edge(boxes, tiles[0], 640, 480).tolist() == [False, True]


def test_tiled_pass_runs_and_keeps_the_astronaut():
    from skimage import data

    tiled = make_detector(dataclasses.replace(CONFIG, nanodet_tiles=2))
    boxes = tiled.detect(data.astronaut())
    assert box_iou([ASTRONAUT], boxes).max() > 0.5


def test_max_people_and_min_height_are_applied(scenes):
    image = scenes[0][0]
    one = make_detector(dataclasses.replace(CONFIG, max_people=1)).detect_scored(image)
    assert len(one.boxes) <= 1
    tall = make_detector(dataclasses.replace(CONFIG, min_height_px=10_000)).detect(image)
    assert len(tall) == 0


def test_a_crowd_comes_largest_first_and_max_people_keeps_the_largest(detector):
    """Thirty astronauts of 110-200 px on one 1280 x 960 frame (NanoDet, whose input is 416 px,
    finds the largest few): boxes come largest first, and max_people 2 keeps exactly the two
    largest of them, whatever their scores."""
    import cv2
    from skimage import data

    canvas, rng, x, y, row = np.full((960, 1280, 3), 90, np.uint8), np.random.default_rng(0), 0, 0, 0
    for _ in range(30):
        side = int(rng.integers(110, 200))
        if x + side > 1280:
            x, y, row = 0, y + row, 0
        canvas[y:y + side, x:x + side] = cv2.resize(data.astronaut(), (side, side),
                                                    interpolation=cv2.INTER_AREA)
        x, row = x + side, max(row, side)
    everyone = make_detector(dataclasses.replace(CONFIG, max_people=64)).detect(canvas)
    areas = (everyone[:, 2] - everyone[:, 0]) * (everyone[:, 3] - everyone[:, 1])
    assert len(everyone) >= 3 and np.all(np.diff(areas) <= 0)
    two = make_detector(dataclasses.replace(CONFIG, max_people=2)).detect(canvas)
    np.testing.assert_array_equal(two, everyone[:2])


def test_missing_and_corrupt_model_name_the_file_and_the_rebuild(tmp_path):
    with pytest.raises(EngineError, match=r"nope\.onnx.*python3 tools/build_pretrained_models\.py"):
        make_detector(dataclasses.replace(CONFIG, nanodet_model_path=str(tmp_path / "nope.onnx")))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(EngineError, match=r"bad\.onnx.*build_pretrained_models"):
        make_detector(dataclasses.replace(CONFIG, nanodet_model_path=str(bad)))


@pytest.mark.parametrize("image, message", [
    (np.zeros((0, 10, 3), np.uint8), "empty image"),
    (np.zeros((10, 0, 3), np.uint8), "empty image"),
    (np.zeros((40, 60), np.uint8), "H x W x 3"),
    (np.zeros((40, 60, 4), np.uint8), "H x W x 3"),
    (np.zeros((40, 60, 3), np.float32), "uint8"),
])
def test_bad_images_are_clear_errors(detector, image, message):
    with pytest.raises(ValueError, match=message):
        detector.detect(image)


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 2000, 3), (2000, 3, 3), (417, 415, 3)])
def test_odd_images_do_not_crash(detector, shape):
    d = detector.detect_scored(np.full(shape, 128, np.uint8))
    assert d.boxes.shape[1] == 4 and len(d.boxes) == len(d.scores)


@pytest.mark.parametrize("field, value", [("nanodet_score_threshold", 0.0), ("nanodet_nms_iou", 1.5),
                                          ("nanodet_tiles", 0), ("nanodet_tile_overlap", 0.5),
                                          ("nanodet_threads", -1)])
def test_bad_options_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        make_detector(dataclasses.replace(CONFIG, **{field: value}))


def test_config_round_trip_and_factory(tmp_path):
    cfg = dataclasses.replace(NbfConfig(), detector=dataclasses.replace(
        CONFIG, nanodet_tiles=2, nanodet_score_threshold=0.4, nanodet_threads=1))
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert isinstance(make_detector(cfg.detector), NanoDetDetector)
    assert NbfConfig().detector.kind == "nanodet"  # the default of the node, the CLI and the demo
