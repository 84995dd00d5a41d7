"""MediaPipe BlazePose: the 33 -> 24 mapping against our body model, the helper's wire format,
boxes and crop keypoints against geometry/camera.py, the clear error when MediaPipe is absent,
and (when MediaPipe is set up) the real model on a real photo."""
from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nbf_ros.config import DetectorConfig, resolve_path
from nbf_ros.inference.pipeline import make_person_detector
from nbf_ros.geometry.camera import CropBox
from nbf_ros.keypoints import blazepose as bp
from nbf_ros.keypoints.mediapipe_worker import (MAGIC, ProtocolError, read_message,
                                                write_message)
from nbf_ros.keypoints.runtime import (MediaPipeUnavailable, SubprocessRunner, helper_python,
                                       mediapipe_importable)
from nbf_ros.types import JOINT_NAMES, BodyParams

J = {name: i for i, name in enumerate(JOINT_NAMES)}
# Where our body model carries BlazePose's non-joint landmarks (smplx's extra joints).
EXTRA_FOR_LANDMARK = {"left_ear": "lear", "right_ear": "rear", "left_eye": "leye", "right_eye": "reye",
                      "nose": "nose", "left_heel": "LHeel", "right_heel": "RHeel",
                      "left_foot_index": "LBigToe", "right_foot_index": "RBigToe"}


# -- mapping ------------------------------------------------------------------------------------
def test_mapping_is_affine_and_copies_measured_joints():
    np.testing.assert_allclose(bp.SMPL_FROM_BLAZEPOSE.sum(axis=1), 1.0, atol=1e-12)
    rng = np.random.default_rng(0)
    points = rng.normal(size=(5, 33, 3))
    shift = rng.normal(size=3)
    # Affine: translating every landmark translates every joint (so root-relative is well defined).
    np.testing.assert_allclose(bp.map_points(points + shift), bp.map_points(points) + shift, atol=1e-12)
    for name in ("left_hip", "right_knee", "left_ankle", "right_shoulder", "left_elbow", "right_wrist"):
        np.testing.assert_array_equal(bp.map_points(points)[:, J[name]],
                                      points[:, bp.LANDMARK_NAMES.index(name)])
    with pytest.raises(ValueError, match="33"):
        bp.map_points(np.zeros((24, 2)))


def test_confidence_rule():
    vis = np.full(33, 0.9)
    vis[bp.LANDMARK_NAMES.index("left_ear")] = 0.2
    vis[bp.LANDMARK_NAMES.index("right_knee")] = 0.4
    conf = bp.map_confidence(vis)
    assert conf[J["right_knee"]] == pytest.approx(0.4)  # measured: its own visibility
    assert conf[J["left_knee"]] == pytest.approx(0.9)
    assert conf[J["head"]] == pytest.approx(0.2)  # derived: the least visible source
    assert conf[J["pelvis"]] == pytest.approx(0.9)
    assert conf[J["left_foot"]] == pytest.approx(0.45)  # semantic mismatch: halved
    for name in ("spine1", "spine2", "spine3", "left_collar", "right_collar"):
        assert conf[J[name]] == 0.0  # interpolated along the torso: never an observation


def _body_landmarks(body_pose: np.ndarray, betas: np.ndarray):
    """BlazePose-like landmarks placed on our body model: B x 33 x 3, and its B x 24 x 3 joints."""
    from nbf_ros.body.model import EXTRA_JOINT_NAMES, BodyModel

    body = BodyModel(resolve_path("models/nbf_body.npz"))
    n = len(body_pose)
    params = BodyParams(torch.tensor(betas).float(), torch.zeros(n, 3),
                        torch.tensor(body_pose).float(), torch.zeros(n, 3))
    with torch.no_grad():
        out = body(params)
    joints, extra = out.joints.double().numpy(), out.extra_joints.double().numpy()
    marks = np.repeat(extra[:, EXTRA_JOINT_NAMES.index("nose")][:, None], 33, axis=1)
    for k, name in enumerate(bp.LANDMARK_NAMES):
        if name in J:
            marks[:, k] = joints[:, J[name]]
        elif name in EXTRA_FOR_LANDMARK:
            marks[:, k] = extra[:, EXTRA_JOINT_NAMES.index(EXTRA_FOR_LANDMARK[name])]
    return marks, joints


def test_derived_joints_match_the_body_model():
    """The ratios were measured on the rest pose of models/nbf_body.npz; check them there and on
    sampled poses and shapes (landmarks placed on the body where BlazePose puts them)."""
    from nbf_ros.data.poses import PoseSampler

    sampler, rng = PoseSampler(), np.random.default_rng(0)
    poses = np.stack([np.zeros(69)] + [sampler.sample_body_pose(rng)[0] for _ in range(24)])
    betas = np.stack([np.zeros(10)] + [sampler.sample_betas(rng) for _ in range(24)])
    marks, joints = _body_landmarks(poses, betas)
    err_mm = np.linalg.norm(bp.map_points(marks) - joints, axis=-1) * 1e3
    rest, posed = err_mm[0], err_mm[1:].mean(axis=0)
    # Rest pose: along-segment ratios are exact; what is left is depth (the spine lies behind
    # the hip-shoulder line) and the toe landmark's lateral offset.
    limits_rest = {"pelvis": 8, "neck": 20, "head": 15, "left_collar": 8, "spine1": 25,
                   "spine2": 25, "spine3": 50, "left_foot": 35}
    limits_posed = {"pelvis": 10, "neck": 30, "head": 20, "left_collar": 25, "spine1": 40,
                    "spine2": 40, "spine3": 60, "left_foot": 40}
    for name, limit in limits_rest.items():
        assert rest[J[name]] < limit, (name, rest[J[name]])
        assert posed[J[name]] < limits_posed[name], (name, posed[J[name]])
    # The ratios are the rest pose's own, to the precision they are written with.
    hips = marks[0, [23, 24]].mean(0)
    shoulders = marks[0, [11, 12]].mean(0)
    ears = marks[0, [7, 8]].mean(0)

    def ratio(point, a, b):
        return float(np.dot(point - a, b - a) / np.dot(b - a, b - a))

    assert ratio(joints[0, J["pelvis"]], hips, shoulders) == pytest.approx(bp.PELVIS_ON_HIPS_TO_SHOULDERS, abs=0.01)
    assert ratio(joints[0, J["spine2"]], hips, shoulders) == pytest.approx(bp.SPINE2_ON_HIPS_TO_SHOULDERS, abs=0.01)
    assert ratio(joints[0, J["neck"]], shoulders, ears) == pytest.approx(bp.NECK_ON_SHOULDERS_TO_EARS, abs=0.02)
    assert ratio(joints[0, J["head"]], shoulders, ears) == pytest.approx(bp.HEAD_ON_SHOULDERS_TO_EARS, abs=0.02)


def test_to_smpl_root_relative_and_box():
    rng = np.random.default_rng(1)
    world = rng.normal(size=(33, 3))
    pixels = rng.uniform(100, 200, size=(33, 2))
    result = bp.BlazePoseResult(pixels, np.full(33, 0.8), world)
    box = bp.pose_box(result, 400, 300, padding=0.1)
    lo, hi = pixels.min(0), pixels.max(0)
    pad = 0.1 * (hi - lo).max()
    np.testing.assert_allclose(box, [lo[0] - pad, lo[1] - pad, hi[0] + pad, hi[1] + pad])
    kp = bp.to_smpl(result, box)
    np.testing.assert_allclose(kp.joints3d[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(kp.joints3d, bp.map_points(world) - bp.map_points(world)[0])
    assert kp.score == pytest.approx(0.8)
    # Clipped to the image.
    far = bp.BlazePoseResult(pixels + [250, 0], np.ones(33), world)
    assert bp.pose_box(far, 400, 300, padding=0.0)[2] == 399.5
    with pytest.raises(ValueError, match="landmarks"):
        bp.BlazePoseResult(np.zeros((24, 2)), np.zeros(33), np.zeros((33, 3)))


def test_normalised_coordinates_are_pixel_edges():
    """MediaPipe's x = 0 / 1 are the image's left / right edges: pixel centres -0.5 / W - 0.5."""
    norm = np.zeros((33, 3))
    norm[0, :2] = [0.0, 0.0]
    norm[1, :2] = [1.0, 1.0]
    norm[2, :2] = [0.5, 0.25]
    res = bp.BlazePoseResult.from_normalised(norm, np.ones(33), np.zeros((33, 3)), 640, 480)
    np.testing.assert_allclose(res.landmarks[:3], [[-0.5, -0.5], [639.5, 479.5], [319.5, 119.5]])


def test_crop_keypoints_follow_the_crop_camera():
    rng = np.random.default_rng(2)
    kp = bp.SmplKeypoints(np.array([50, 40, 250, 400.0]), 1.0, rng.uniform(0, 300, (24, 2)),
                          rng.uniform(0, 1, 24), np.zeros((24, 3)), None)  # type: ignore[arg-type]
    crop = CropBox.around_bbox(kp.box, 1.2)
    uv, conf = bp.crop_keypoints(kp, crop, 128)
    assert uv.shape == (1, 24, 2) and conf.shape == (1, 24)
    np.testing.assert_allclose(crop.crop_to_image(uv[0].double().numpy(), 128), kp.joints2d, atol=1e-3)
    np.testing.assert_allclose(conf[0].numpy(), kp.confidence, atol=1e-6)


# -- wire format --------------------------------------------------------------------------------
def test_protocol_roundtrip_and_rejections():
    stream = io.BytesIO()
    arrays = {"image": np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3),
              "world": np.linspace(0, 1, 99, dtype=np.float32).reshape(33, 3)}
    write_message(stream, {"cmd": "process"}, arrays)
    write_message(stream, {"ok": True})
    stream.seek(0)
    header, got = read_message(stream)
    assert header == {"cmd": "process"}
    for name, value in arrays.items():
        np.testing.assert_array_equal(got[name], value)
        assert got[name].dtype == value.dtype
    assert read_message(stream) == ({"ok": True}, {})
    assert read_message(stream) is None  # clean end
    with pytest.raises(ProtocolError, match="dtype"):
        write_message(io.BytesIO(), {}, {"x": np.zeros(2, dtype=object)})
    with pytest.raises(ProtocolError, match="start"):
        read_message(io.BytesIO(b"PICKLE\x00\x00"))

    def framed(header: bytes) -> io.BytesIO:
        return io.BytesIO(MAGIC + struct.pack("<I", len(header)) + header)

    with pytest.raises(ProtocolError, match="dtype|spec"):
        read_message(framed(b'{"arrays": [{"name": "x", "dtype": "object", "shape": [1]}]}'))
    with pytest.raises(ProtocolError, match="exceeds"):
        read_message(framed(b'{"arrays": [{"name": "x", "dtype": "float64", "shape": [65536, 65536]}]}'))
    with pytest.raises(ProtocolError, match="ended"):
        read_message(framed(b'{"arrays": [{"name": "x", "dtype": "uint8", "shape": [10]}]}'))


class _FakeRunner:
    """Stands in for BlazePose: 'finds' a person whose landmarks sit at fixed crop pixels."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def estimate(self, image_rgb: np.ndarray):
        self.shapes.append(image_rgb.shape)
        h, w = image_rgb.shape[:2]
        marks = np.tile([[w / 2.0, h / 3.0]], (33, 1)) + np.arange(33)[:, None]
        return bp.BlazePoseResult(marks, np.full(33, 0.7), np.zeros((33, 3)))

    def close(self) -> None:
        pass


def test_detector_regions_and_cache_with_a_fake_model():
    """Geometry of the detector without MediaPipe: one box from the full image (cached per
    image content), other boxes estimated on their region grown by 25% and mapped back."""
    from nbf_ros.keypoints.detector import BOX_CONTEXT, MediaPipeDetector

    runner = _FakeRunner()
    det = MediaPipeDetector(DetectorConfig(kind="mediapipe", min_height_px=0.0), runner=runner)
    image = np.zeros((300, 400, 3), np.uint8)
    (box,) = det.detect(image)
    det.detect(image)
    assert runner.shapes == [(300, 400, 3)]  # the second call hit the cache
    (same,) = det.keypoints(image, box[None])
    assert len(runner.shapes) == 1 and same.score == pytest.approx(0.7)
    other = np.array([300.0, 150.0, 340.0, 230.0])  # far from the found person
    (kp,) = det.keypoints(image, other[None])
    margin = BOX_CONTEXT * 80.0
    c0, r0 = int(np.floor(300 - margin + 0.5)), int(np.floor(150 - margin + 0.5))
    c1, r1 = min(400, int(np.ceil(340 + margin + 0.5))), min(300, int(np.ceil(230 + margin + 0.5)))
    assert runner.shapes[-1] == (r1 - r0, c1 - c0, 3)
    expected = np.array([(c1 - c0) / 2.0 + c0, (r1 - r0) / 3.0 + r0]) + np.arange(33)[:, None]
    np.testing.assert_allclose(kp.source.landmarks, expected)
    np.testing.assert_array_equal(kp.box, other)
    image[0, 0] = 1  # new content: estimated again
    det.detect(image)
    assert runner.shapes[-1] == (300, 400, 3) and len(runner.shapes) == 3


# -- without MediaPipe --------------------------------------------------------------------------
@pytest.mark.skipif(mediapipe_importable(), reason="mediapipe is importable in this interpreter")
def test_absent_mediapipe_gives_one_line_setup_error(tmp_path: Path):
    config = DetectorConfig(kind="mediapipe", mediapipe_python=str(tmp_path / "nope" / "python"))
    with pytest.raises(ImportError) as info:
        make_person_detector(config)
    message = str(info.value)
    assert "\n" not in message and "pip install mediapipe==0.10.21" in message


@pytest.mark.skipif(mediapipe_importable(), reason="mediapipe is importable in this interpreter")
def test_helper_without_mediapipe_reports_through_the_pipe():
    """The real worker script under an interpreter that lacks mediapipe (this one)."""
    runner = SubprocessRunner(Path(sys.executable), DetectorConfig(kind="mediapipe"))
    with pytest.raises(MediaPipeUnavailable, match="mediapipe==0.10.21"):
        runner.estimate(np.zeros((8, 8, 3), np.uint8))
    runner.close()


# -- with MediaPipe -----------------------------------------------------------------------------
HAVE_MEDIAPIPE = mediapipe_importable() or helper_python(DetectorConfig()) is not None
needs_mediapipe = pytest.mark.skipif(
    not HAVE_MEDIAPIPE, reason="MediaPipe not set up (docs/mediapipe.md: .venv-mediapipe)")


@pytest.fixture(scope="module")
def detector():
    det = make_person_detector(DetectorConfig(kind="mediapipe", min_height_px=0.0))
    yield det
    det.close()


@pytest.fixture(scope="module")
def astronaut():
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(data.astronaut())  # 512 x 512, public domain, upper body


@needs_mediapipe
def test_astronaut_box_keypoints_and_3d(detector, astronaut):
    boxes = detector.detect(astronaut)
    assert boxes.shape == (1, 4)
    x0, y0, x1, y1 = boxes[0]
    # Her face is around (220, 120) and her shoulders span most of the lower image.
    assert x0 < 150 and x1 > 330 and y0 < 60 and y1 > 400
    (kp,) = detector.keypoints(astronaut, boxes)
    left, right = kp.joints2d[J["left_shoulder"]], kp.joints2d[J["right_shoulder"]]
    assert left[0] > right[0]  # facing the camera: her left shoulder is on the image's right
    assert kp.joints2d[J["head"]][1] < kp.joints2d[J["neck"]][1] < left[1] + 10
    assert kp.confidence[J["left_shoulder"]] > 0.9 and kp.confidence[J["spine1"]] == 0.0
    # 3D: metres, camera axes (y down: head above pelvis; shoulder width of an adult).
    width = np.linalg.norm(kp.joints3d[J["left_shoulder"]] - kp.joints3d[J["right_shoulder"]])
    assert 0.2 < width < 0.5
    assert kp.joints3d[J["head"], 1] < -0.3 and np.allclose(kp.joints3d[J["pelvis"]], 0.0)
    assert kp.joints3d[J["left_shoulder"], 0] > kp.joints3d[J["right_shoulder"], 0]


@needs_mediapipe
def test_two_people_one_box_each(detector, astronaut):
    """BlazePose finds one person per image; a box it did not pick is estimated on the region
    around it (mapped back to image pixels) and agrees with the estimate on the photo alone."""
    (alone,) = detector.keypoints(astronaut, detector.detect(astronaut))
    gap = 160  # the region around one person (its box + 25% per side) must not reach the other
    canvas = np.zeros((512, 2 * 512 + gap, 3), np.uint8)
    offsets = (0, 512 + gap)
    for x in offsets:
        canvas[:, x:x + 512] = astronaut
    assert len(detector.detect(canvas)) == 1
    boxes = np.stack([alone.box + [x, 0, x, 0] for x in offsets])
    nose = bp.LANDMARK_NAMES.index("nose")
    for kp, x, box in zip(detector.keypoints(canvas, boxes), offsets, boxes):
        assert kp is not None
        np.testing.assert_array_equal(kp.box, box)
        # The nose is sharp; her shoulders inside the suit move by 30-70 px with the context
        # (measured with black borders of any size), so only their order is checked.
        assert np.linalg.norm(kp.source.landmarks[nose] - [x, 0] - alone.source.landmarks[nose]) < 10
        assert kp.joints2d[J["left_shoulder"], 0] > kp.joints2d[J["right_shoulder"], 0]


@needs_mediapipe
def test_empty_image_finds_nobody(detector):
    blank = np.full((256, 256, 3), 127, np.uint8)
    assert detector.detect(blank).shape == (0, 4)
    assert detector.keypoints(blank, np.array([[10, 10, 100, 200.0]])) == [None]
