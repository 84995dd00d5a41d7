"""BlazePose's 33 landmarks -> SMPL's 24 joints (keypoints/blazepose.py): the mapping against our
body model, the confidence rule, root-relative 3D, crop keypoints against geometry/camera.py, and
the whole chain (in-process landmark model + mapping) on a real photo."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nbf_ros.config import BlazePoseConfig, resolve_path
from nbf_ros.geometry.camera import CropBox
from nbf_ros.keypoints import blazepose as bp
from nbf_ros.types import JOINT_NAMES, BodyParams

J = {name: i for i, name in enumerate(JOINT_NAMES)}
# Where our body model carries BlazePose's non-joint landmarks (smplx's extra joints).
EXTRA_FOR_LANDMARK = {"left_ear": "lear", "right_ear": "rear", "left_eye": "leye", "right_eye": "reye",
                      "nose": "nose", "left_heel": "LHeel", "right_heel": "RHeel",
                      "left_foot_index": "LBigToe", "right_foot_index": "RBigToe"}


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


def test_to_smpl_is_root_relative_with_the_mean_confidence_as_score():
    rng = np.random.default_rng(1)
    world = rng.normal(size=(33, 3))
    pixels = rng.uniform(100, 200, size=(33, 2))
    box = np.array([90.0, 95.0, 210.0, 205.0])
    kp = bp.to_smpl(bp.BlazePoseResult(pixels, np.full(33, 0.8), world), box)
    np.testing.assert_allclose(kp.joints3d[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(kp.joints3d, bp.map_points(world) - bp.map_points(world)[0])
    np.testing.assert_allclose(kp.joints2d, bp.map_points(pixels))
    np.testing.assert_array_equal(kp.box, box)
    assert kp.score == pytest.approx(0.8)
    with pytest.raises(ValueError, match="landmarks"):
        bp.BlazePoseResult(np.zeros((24, 2)), np.zeros(33), np.zeros((33, 3)))


def test_crop_keypoints_follow_the_crop_camera():
    rng = np.random.default_rng(2)
    kp = bp.SmplKeypoints(np.array([50, 40, 250, 400.0]), 1.0, rng.uniform(0, 300, (24, 2)),
                          rng.uniform(0, 1, 24), np.zeros((24, 3)), None)  # type: ignore[arg-type]
    crop = CropBox.around_bbox(kp.box, 1.2)
    uv, conf = bp.crop_keypoints(kp, crop, 128)
    assert uv.shape == (1, 24, 2) and conf.shape == (1, 24)
    np.testing.assert_allclose(crop.crop_to_image(uv[0].double().numpy(), 128), kp.joints2d, atol=1e-3)
    np.testing.assert_allclose(conf[0].numpy(), kp.confidence, atol=1e-6)


def test_astronaut_keypoints_and_3d_through_the_in_process_model():
    """The landmark model (models/blazepose_full.onnx) on a real photo, mapped to SMPL joints:
    left/right, head above neck, confidences, and a metric, upright, camera-axes 3D body."""
    from skimage import data

    from nbf_ros.keypoints.landmarks import BlazePoseLandmarker

    astronaut = np.ascontiguousarray(data.astronaut())  # 512 x 512, public domain, upper body
    box = np.array([[25.0, 15.0, 370.0, 511.0]])  # hand-labelled (tests/test_nanodet.py)
    (kp,) = BlazePoseLandmarker(BlazePoseConfig()).keypoints(astronaut, box)
    assert kp is not None
    left, right = kp.joints2d[J["left_shoulder"]], kp.joints2d[J["right_shoulder"]]
    assert left[0] > right[0]  # facing the camera: her left shoulder is on the image's right
    assert kp.joints2d[J["head"]][1] < kp.joints2d[J["neck"]][1] < left[1] + 10
    assert kp.confidence[J["left_shoulder"]] > 0.9 and kp.confidence[J["spine1"]] == 0.0
    # 3D: metres, camera axes (y down: head above pelvis; an adult's shoulder width).
    width = np.linalg.norm(kp.joints3d[J["left_shoulder"]] - kp.joints3d[J["right_shoulder"]])
    assert 0.2 < width < 0.5
    assert kp.joints3d[J["head"], 1] < -0.3 and np.allclose(kp.joints3d[J["pelvis"]], 0.0)
    assert kp.joints3d[J["left_shoulder"], 0] > kp.joints3d[J["right_shoulder"], 0]
