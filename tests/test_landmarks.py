"""BlazePose landmarks per person box through ONNX (nbf_ros/keypoints/landmarks.py).

Pure geometry first (ROI, affine, world-landmark rotation: known answers), then the shipped
BlazePose full model on people rendered by our generator (test split, fixed seeds, no opencv-doc
photos) against their truth 2D joints, with bounds from benchmarks/landmark_bench.py's numbers
plus margin (docs/landmarks.md).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nbf_ros.config import BlazePoseConfig, ConfigError, SyntheticConfig, from_dict, resolve_path
from nbf_ros.engines import EngineError
from nbf_ros.keypoints import landmarks as lm
from nbf_ros.keypoints.blazepose import LANDMARK_NAMES, map_confidence
from nbf_ros.keypoints.landmarks import (BlazePoseLandmarker, LandmarkModelError, Roi, mask_in_box,
                                         ray_rotation, roi_from_aux, roi_from_box, warp_crops,
                                         world_to_camera)
from nbf_ros.types import JOINT_NAMES, CameraIntrinsics

CAMERA = CameraIntrinsics(500.0, 500.0, 319.5, 239.5, 640, 480)


# --- geometry ------------------------------------------------------------------------------------
def test_box_roi_is_a_square_on_the_box_centre():
    roi = roi_from_box(np.array([100.0, 50.0, 140.0, 250.0]), 1.25)
    assert roi.side == pytest.approx(250.0) and roi.rotation == 0.0
    np.testing.assert_allclose(roi.centre, [119.5, 149.5])  # pixel-centre coordinates
    # The model's crop edges (0 and 256) land on the square's edges, its centre on the box's.
    corners = roi.model_to_image(np.array([[0.0, 0.0], [256.0, 256.0], [128.0, 128.0]]))
    np.testing.assert_allclose(corners, [[-5.5, 24.5], [244.5, 274.5], [119.5, 149.5]])


@pytest.mark.parametrize("rotation", [0.0, 0.4, -2.0, np.pi])
def test_affine_round_trip(rotation):
    roi = Roi(np.array([210.3, 95.7]), 180.0, rotation)
    points = np.random.default_rng(0).uniform(-50, 300, size=(20, 2))
    to_image, to_crop = roi.crop_to_image(), roi.image_to_crop()
    back = (points @ to_crop[:, :2].T + to_crop[:, 2]) @ to_image[:, :2].T + to_image[:, 2]
    np.testing.assert_allclose(back, points, atol=1e-9)
    # model coordinates are crop pixel indices + 0.5
    np.testing.assert_allclose(roi.model_to_image(points + 0.5),
                               points @ to_image[:, :2].T + to_image[:, 2], atol=1e-9)


def test_warp_samples_the_image_where_the_affine_says():
    """On a linear ramp, bilinear sampling is exact: crop pixel (j, i) holds the image value at
    crop_to_image(j, i)."""
    v, u = np.mgrid[0:200, 0:300].astype(np.float64)
    image = np.stack([u * 0.5, v, 0.25 * u + 0.5 * v], axis=2).astype(np.uint8)
    roi = Roi(np.array([150.0, 100.0]), 120.0, 0.3)
    crop = warp_crops(image, [roi])[0]
    j, i = np.meshgrid(np.arange(256.0), np.arange(256.0))
    uv = np.stack([j, i], axis=-1) @ roi.crop_to_image()[:, :2].T + roi.crop_to_image()[:, 2]
    expected = np.stack([uv[..., 0] * 0.5, uv[..., 1]], axis=-1)
    middle = (slice(60, 196), slice(60, 196))  # away from the ramp's uint8 steps at the edges
    assert crop.dtype == np.float32 and crop.shape == (256, 256, 3)
    assert np.abs(crop[middle][..., :2] * 255.0 - expected[middle]).max() < 1.0


def test_warp_is_black_outside_the_image():
    image = np.full((50, 50, 3), 200, np.uint8)
    crop = warp_crops(image, [Roi(np.array([0.0, 0.0]), 100.0)])[0]
    # image pixels 0..49 are crop pixels ~128..255: black before, the image well inside
    assert crop[:120, :120].max() == 0.0 and crop[140:240, 140:240].min() == pytest.approx(200 / 255.0)


def test_aux_roi_follows_mediapipe_rule():
    upright = roi_from_aux(np.array([100.0, 200.0]), np.array([100.0, 120.0]), 1.25)
    np.testing.assert_allclose(upright.centre, [100.0, 200.0])
    assert upright.side == pytest.approx(200.0) and upright.rotation == pytest.approx(0.0)
    lying = roi_from_aux(np.array([100.0, 200.0]), np.array([180.0, 200.0]), 1.25)  # head right
    assert lying.rotation == pytest.approx(np.pi / 2)
    # "up" in the crop (model y smaller than the centre) is towards the scale point in the image
    up = lying.model_to_image(np.array([128.0, 0.0]))
    np.testing.assert_allclose(up, [100.0 + 100.0, 200.0], atol=1e-9)


def test_ray_rotation_takes_z_onto_the_ray():
    for d in ([0.3, -0.2, 1.0], [0.0, 0.0, 1.0], [-1.0, 0.5, 0.2]):
        rot = ray_rotation(np.array(d))
        np.testing.assert_allclose(rot @ [0, 0, 1], np.array(d) / np.linalg.norm(d), atol=1e-12)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)


def test_world_landmarks_at_the_principal_point_only_undo_the_roi_rotation():
    world = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    centre = np.array([CAMERA.cx, CAMERA.cy])
    np.testing.assert_allclose(world_to_camera(world, Roi(centre, 100.0, 0.0), CAMERA), world, atol=1e-12)
    # ROI rotated by +90 deg: the crop's x axis is the image's down (+y), its y axis image left.
    turned = world_to_camera(world, Roi(centre, 100.0, np.pi / 2), CAMERA)
    np.testing.assert_allclose(turned, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-12)


def test_world_landmarks_off_axis_are_panned_onto_the_ray():
    """A person to the camera's right at angle a: the crop's camera looks at them, i.e. is the
    real camera panned by a about y. A body vector v (camera frame) is R_y(a)^T v in the crop's
    frame; world_to_camera must give v back."""
    a = np.deg2rad(30.0)
    u = CAMERA.cx + CAMERA.fx * np.tan(a)
    pan = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    body = np.random.default_rng(1).normal(size=(33, 3))
    crop_view = body @ pan  # rows: (pan^T v)^T
    np.testing.assert_allclose(world_to_camera(crop_view, Roi(np.array([u, CAMERA.cy]), 50.0), CAMERA),
                               body, atol=1e-9)


def test_heatmap_refinement_moves_to_the_peak():
    """A symmetric peak centred on heatmap cell (20, 30) (cell centre = model coords 4 x (c + 0.5)):
    a landmark 2 cells off moves onto it; a weak heatmap or a landmark off the map stays put."""
    rows, cols = np.mgrid[0:64, 0:64]
    peak = 12.0 - 20.0 * ((cols - 20) ** 2 + (rows - 30) ** 2)  # logits: ~1 at the peak only
    heatmaps = np.stack([peak, np.full((64, 64), -5.0), peak], axis=-1)
    xy = np.array([[4 * 22.5, 4 * 29.5], [100.0, 100.0], [300.0, 10.0]])
    out = lm.refine_from_heatmaps(xy, heatmaps)
    np.testing.assert_allclose(out[0], [4 * 20.5, 4 * 30.5], atol=0.01)
    np.testing.assert_allclose(out[1:], xy[1:])


# --- config and errors -------------------------------------------------------------------------
def test_config_section_is_strict():
    assert from_dict(BlazePoseConfig, {"variant": "lite"}).variant == "lite"
    with pytest.raises(ConfigError, match="variant"):
        from_dict(BlazePoseConfig, {"variant": "huge"})
    with pytest.raises(ValueError, match="min_pose_flag"):
        BlazePoseLandmarker(BlazePoseConfig(min_pose_flag=1.5), run_model=lambda b: {})


def test_heavy_not_shipped_says_how_to_build(monkeypatch, tmp_path):
    monkeypatch.setitem(lm.MODEL_PATHS, "heavy", str(tmp_path / "blazepose_heavy.onnx"))
    with pytest.raises(LandmarkModelError, match=r"build_pretrained_models.py --heavy") as info:
        BlazePoseLandmarker(BlazePoseConfig(variant="heavy"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [None, b"not an onnx file"])
def test_missing_or_corrupt_model_names_file_and_command(monkeypatch, tmp_path, content):
    path = tmp_path / "blazepose_full.onnx"
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setitem(lm.MODEL_PATHS, "full", str(path))
    with pytest.raises(EngineError) as info:
        BlazePoseLandmarker(BlazePoseConfig())
    message = str(info.value)
    assert str(path) in message and "build_pretrained_models.py" in message and "\n" not in message


# --- the shipped model on rendered people ------------------------------------------------------
DIRECT = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
          "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")
JOINTS = [JOINT_NAMES.index(n) for n in DIRECT]
LANDMARKS = [LANDMARK_NAMES.index(n) for n in DIRECT]
SWAP = [DIRECT.index(n.replace("left", "#").replace("right", "left").replace("#", "right")) for n in DIRECT]
SEEDS = (1, 2, 3, 4)  # 8 people, all found by full (default ROI)


@pytest.fixture(scope="module")
def scenes():
    from nbf_ros.body.model import BodyModel
    from nbf_ros.data.scene import body_labels, render_scene

    body = BodyModel(resolve_path("models/nbf_body.npz"))
    cfg = SyntheticConfig(split="test")
    cfg = dataclasses.replace(cfg, appearance=dataclasses.replace(cfg.appearance, opencv_doc_photos=False))
    labels = body_labels(body)
    return [render_scene(seed, cfg, body, labels) for seed in SEEDS]


@pytest.fixture(scope="module")
def model():
    return BlazePoseLandmarker(BlazePoseConfig())


def test_landmarks_match_truth_joints(scenes, model):
    errors, lr_ok, people = [], [], 0
    for scene in scenes:
        found = model.estimate(scene.image, np.array([p.bbox for p in scene.people]), scene.camera)
        for truth, est in zip(scene.people, found):
            people += 1
            assert est is not None and est.pose_flag >= 0.5
            assert est.landmarks.shape == (33, 3) and est.world.shape == (33, 3)
            assert ((est.visibility >= 0) & (est.visibility <= 1)).all()
            uv = truth.joints2d[JOINTS]
            err = np.linalg.norm(est.landmarks[LANDMARKS, :2] - uv, axis=1)
            swapped = np.linalg.norm(est.landmarks[LANDMARKS, :2][SWAP] - uv, axis=1)
            lr_ok.append(err.sum() <= swapped.sum())
            visible = truth.joint_state[JOINTS] == 0
            errors.append(err[visible] / (truth.bbox[3] - truth.bbox[1]))
    errors = np.concatenate(errors)
    assert people == 8
    # measured (defaults): mean 3.5 %, median 2.4 % of the box height on these 8 people, all L/R
    # right (docs/landmarks.md: 5.6 % mean on the benchmark's 69 people); bounds ~2x that
    assert errors.mean() < 0.07 and np.median(errors) < 0.05
    assert np.mean(lr_ok) >= 0.8


def test_world_landmarks_are_a_metric_upright_body(scenes, model):
    scene = scenes[1]
    est = model.estimate(scene.image, scene.people[0].bbox[None], scene.camera)[0]
    hips = est.world[[23, 24]].mean(axis=0)
    shoulders = est.world[[11, 12]].mean(axis=0)
    np.testing.assert_allclose(hips, 0.0, atol=0.05)  # origin at the hip centre
    torso = shoulders - hips
    truth = scene.people[0].joints3d
    true_torso = truth[JOINT_NAMES.index("neck")] - truth[0]
    cosine = torso @ true_torso / np.linalg.norm(torso) / np.linalg.norm(true_torso)
    assert 0.3 < np.linalg.norm(torso) < 0.7 and cosine > 0.9


def test_batch_equals_single_runs(scenes, model):
    scene = next(s for s in scenes if len(s.people) >= 2)
    boxes = np.array([p.bbox for p in scene.people])
    batch = model.estimate(scene.image, boxes, scene.camera)
    for i, box in enumerate(boxes):
        single = model.estimate(scene.image, box[None], scene.camera)[0]
        np.testing.assert_allclose(batch[i].landmarks, single.landmarks, atol=1e-3)
        np.testing.assert_allclose(batch[i].world, single.world, atol=1e-5)
        assert batch[i].pose_flag == pytest.approx(single.pose_flag, abs=1e-5)


def empty_box(scene) -> np.ndarray:
    """A person-free, occluder-free 120 x 160 window of the scene's background (x0, y0, x1, y1)."""
    rows, cols = np.nonzero(scene.person_index < 0)
    empty = next((c, r) for r, c in zip(rows[::97], cols[::97])
                 if r + 160 < scene.image.shape[0] and c + 120 < scene.image.shape[1]
                 and (scene.person_index[r:r + 160, c:c + 120] < 0).all()
                 and not scene.occluder_mask[r:r + 160, c:c + 120].any())
    return np.array([empty[0], empty[1], empty[0] + 120, empty[1] + 160], np.float64)


def test_background_box_is_not_a_person(scenes, model):
    scene = scenes[0]
    box = empty_box(scene)
    flagged = BlazePoseLandmarker(BlazePoseConfig(min_pose_flag=0.0)).estimate(scene.image, box[None])[0]
    assert flagged.pose_flag < 0.2
    assert model.estimate(scene.image, box[None]) == [None]


def test_keypoints_are_mapped_with_visibility_times_presence(scenes, model):
    scene = scenes[1]
    box = scene.people[0].bbox
    est = model.estimate(scene.image, box[None], scene.camera)[0]
    kp = model.keypoints(scene.image, box[None], scene.camera)[0]
    np.testing.assert_allclose(kp.confidence, map_confidence(est.visibility * est.presence))
    np.testing.assert_allclose(kp.box, box)
    assert kp.joints2d.shape == (24, 2) and kp.joints3d.shape == (24, 3)


def test_mask_pasted_into_the_box_covers_the_person(scenes, model):
    scene = scenes[1]
    truth = scene.people[0]
    est = model.estimate(scene.image, truth.bbox[None], scene.camera)[0]
    height, width = scene.image.shape[:2]
    mask, (col0, row0) = mask_in_box(est, truth.bbox, height, width)
    region = scene.person_index[row0:row0 + mask.shape[0], col0:col0 + mask.shape[1]]
    assert mask.shape == region.shape and mask.dtype == np.float32
    assert mask[region == 0].mean() > 0.7 and mask[region < 0].mean() < 0.3


def test_bad_inputs_never_crash(scenes, model):
    scene = scenes[0]
    image = scene.image
    height, width = image.shape[:2]
    assert model.estimate(image, np.zeros((0, 4))) == []
    bad = np.array([[width + 10.0, 0.0, width + 200.0, 300.0],   # right of the image
                    [-300.0, -300.0, -10.0, -10.0],               # above-left
                    [50.0, 50.0, 50.0, 200.0],                    # zero width
                    [80.0, 90.0, 40.0, 10.0],                     # inverted
                    [np.nan, 0.0, 10.0, 10.0]])                   # not finite
    assert model.estimate(image, bad) == [None] * 5
    gray = image.mean(axis=2).astype(np.uint8)
    box = scene.people[0].bbox[None]
    for variant in (gray, gray[:, :, None], np.dstack([image, np.full((height, width), 255, np.uint8)])):
        assert len(model.estimate(variant, box)) == 1
    assert model.keypoints(image, bad[:2]) == [None, None]
    mask, _ = mask_in_box(model.estimate(image, box)[0] or _any(model, scenes), bad[0], height, width)
    assert mask.shape == (0, 0)


def _any(model, scenes):
    scene = scenes[1]
    return model.estimate(scene.image, scene.people[0].bbox[None])[0]


def _stand_in(second_flag: float):
    """A model whose auxiliary landmarks put the body's top to the crop's right (33 at the
    centre, 34 100 px right of it): pose flag 1 on the first call, ``second_flag`` after."""
    calls = []

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        count = len(batch)
        raw = np.zeros((count, 39, 5), np.float32)
        raw[:, :, :2] = 128.0
        raw[:, 34, 0] = 228.0
        calls.append(count)
        flag = 1.0 if len(calls) == 1 else second_flag
        return {"landmarks": raw.reshape(count, -1), "world_landmarks": np.zeros((count, 117), np.float32),
                "pose_flag": np.full((count, 1), flag, np.float32),
                "segmentation": np.zeros((count, 256, 256, 1), np.float32)}
    return run, calls


def test_refinement_pass_reruns_on_mediapipes_tracking_roi():
    run, calls = _stand_in(second_flag=0.9)
    model = BlazePoseLandmarker(BlazePoseConfig(refine_roi=True), run_model=run)
    box = np.array([[100.0, 100.0, 150.0, 300.0], [400.0, 100.0, 450.0, 300.0]])
    found = model.estimate(np.zeros((480, 640, 3), np.uint8), box)
    assert calls == [2, 2]  # one batch per pass
    side = 200.0 * 1.25  # first ROI side: longer box side x roi_scale
    for est, b in zip(found, box):
        assert est.pose_flag == pytest.approx(0.9)
        assert est.roi.rotation == pytest.approx(np.pi / 2)  # upright = towards point 34
        np.testing.assert_allclose(est.roi.centre, [(b[0] + b[2]) / 2 - 0.5, (b[1] + b[3]) / 2 - 0.5])
        assert est.roi.side == pytest.approx(2 * 100.0 * side / 256 * 1.25)


def test_refinement_keeps_the_first_pass_when_the_second_loses_the_person():
    run, calls = _stand_in(second_flag=0.1)
    model = BlazePoseLandmarker(BlazePoseConfig(refine_roi=True), run_model=run)
    est = model.estimate(np.zeros((480, 640, 3), np.uint8), np.array([[100.0, 100.0, 150.0, 300.0]]))[0]
    assert calls == [1, 1] and est.pose_flag == 1.0 and est.roi.rotation == 0.0


def test_pipeline_fits_with_blazepose_keypoints(untrained_config, scenes):
    """fit.keypoint_source 'blazepose': the pipeline's keypoints come from the landmarker (any
    detector), mapped to the crop; a box without a person falls back to the heatmaps (None)."""
    from nbf_ros.inference.pipeline import Pipeline
    from nbf_ros.keypoints.blazepose import crop_keypoints

    cfg = untrained_config[0]
    cfg = dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, keypoint_source="blazepose"))
    pipeline = Pipeline.from_config(cfg)
    assert isinstance(pipeline.landmarker, BlazePoseLandmarker)
    scene = scenes[1]
    width = scene.image.shape[1]
    boxes = np.array([scene.people[0].bbox, [width + 10.0, 0.0, width + 90.0, 160.0]])  # 2nd: outside
    crops = pipeline.crop_people(scene.image, scene.camera, boxes)
    found = pipeline.external_keypoints(pipeline.landmarks(scene.image, boxes, scene.camera), crops)
    assert found[1] is None
    expected = crop_keypoints(pipeline.landmarker.keypoints(scene.image, boxes[:1], scene.camera)[0],
                              crops.crop_boxes[0], cfg.net.crop_size)
    for got, want in zip(found[0], expected):
        np.testing.assert_allclose(got.numpy(), want.numpy())
    result = pipeline.process(scene.image, scene.camera, boxes=boxes[:1], fit=True)
    assert len(result.people) == 1 and "landmarks" in result.timings_ms


def test_pipeline_starts_from_the_body_fitted_to_blazepose_landmarks(untrained_config, scenes):
    """fit.init_source 'landmarks': a person BlazePose finds starts from our body fitted to its
    landmarks (exactly what LandmarkBodyFitter gives for that person alone), with the turned
    reading as an extra start; a box without a person keeps the regression head's body, and
    every person's output says where its start came from."""
    from nbf_ros.fitting.confidence import confidence_cues
    from nbf_ros.fitting.from_landmarks import LandmarkBodyFitter
    from nbf_ros.inference.pipeline import Pipeline, initial_body

    cfg = untrained_config[0]
    cfg = dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, keypoint_source="blazepose",
                                                           init_source="landmarks"))
    pipeline = Pipeline.from_config(cfg)
    assert isinstance(pipeline.body_from_landmarks, LandmarkBodyFitter)
    scene = scenes[1]
    width = scene.image.shape[1]
    boxes = np.array([[width + 10.0, 0.0, width + 90.0, 160.0], scene.people[0].bbox])  # 1st: outside
    crops = pipeline.crop_people(scene.image, scene.camera, boxes)
    regression = initial_body(pipeline.backend.run(crops.pixels), crops.cameras, cfg.net.crop_size)
    landmarks = pipeline.landmarks(scene.image, boxes, scene.camera)
    start, alternatives, sources, cues = pipeline.start_bodies(regression, landmarks, scene.camera)
    alone = pipeline.body_from_landmarks.fit([landmarks[1]], [scene.camera])
    assert alone.ok[0] and sources == ["network (BlazePose found nobody in the box)", "landmarks"]
    for got, want, kept in zip(start.as_tuple(), alone.params.as_tuple(), regression.as_tuple()):
        torch.testing.assert_close(got[1:], want, atol=1e-5, rtol=0)  # batching is exact up to rounding
        torch.testing.assert_close(got[:1], kept[:1], atol=0, rtol=0)
    assert alternatives[0] == [] and len(alternatives[1]) == 1
    info = alone.info[0]  # the person-confidence cues of the start: flag, landmarks, fit objective
    assert cues[0] is None
    np.testing.assert_allclose(cues[1], confidence_cues(landmarks[1].pose_flag, landmarks[1].confidence,
                                                        info.losses[info.hypothesis]), rtol=1e-4)
    torch.testing.assert_close(alternatives[1][0].global_orient, alone.alternative.global_orient, atol=1e-5, rtol=0)
    result = pipeline.process(scene.image, scene.camera, boxes=boxes[1:], fit=False)
    assert [p.fit.start for p in result.people] == ["landmarks"]
    assert set(result.people[0].to_json()["fit"]) == {"iterations", "loss_init", "loss", "ms"}  # interfaces.md


def test_pipeline_drops_boxes_without_a_pose_unless_the_detector_is_sure(untrained_config, scenes):
    """Pipeline.people_boxes: a detector box where BlazePose finds nobody becomes a person only
    when the detector's score reaches detector.min_score_without_landmarks (a hidden person);
    weaker ones (a ball) are dropped and counted; boxes the caller gives are always people."""
    from nbf_ros.detection import Detections
    from nbf_ros.inference.pipeline import Pipeline

    cfg = untrained_config[0]
    floor = cfg.detector.min_score_without_landmarks
    pipeline = Pipeline.from_config(cfg)
    scene = scenes[0]
    person, empty = scene.people[0].bbox, empty_box(scene)
    boxes = np.array([person, empty, empty + [5.0, 5.0, 5.0, 5.0]])
    scores = np.array([floor - 0.1, floor - 0.01, floor])  # person unsure, background unsure, background sure

    class Stub:
        def detect_scored(self, image):
            return Detections(boxes, scores)

    pipeline.detector = Stub()
    landmarks = pipeline.landmarks(scene.image, boxes, scene.camera)
    assert landmarks[0] is not None and landmarks[1] is None and landmarks[2] is None
    assert pipeline.people_boxes(Detections(boxes, scores), landmarks) == [0, 2]
    result = pipeline.process(scene.image, scene.camera, fit=False)
    assert result.rejected_boxes == 1
    np.testing.assert_allclose([p.bbox for p in result.people], boxes[[0, 2]])
    assert [p.fit.start for p in result.people] == ["landmarks", "network (BlazePose found nobody in the box)"]
    given = pipeline.process(scene.image, scene.camera, fit=False, boxes=boxes)
    assert len(given.people) == 3 and given.rejected_boxes == 0
    pipeline.landmarker = None  # without BlazePose there is nothing to judge by: every box stays
    assert pipeline.people_boxes(Detections(boxes, scores), [None] * 3) == [0, 1, 2]
