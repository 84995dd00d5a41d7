"""Body from BlazePose landmarks (nbf_ros/fitting/from_landmarks.py): geometry stages against
references, recovery of a known body from landmarks synthesised by the regressor, batching,
determinism and the fallback flag."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from nbf_ros.body.landmark_regressor import LandmarkRegressorError
from nbf_ros.body.model import BodyModel
from nbf_ros.config import resolve_path
from nbf_ros.fitting.from_landmarks import (LandmarkBodyFitter, LandmarkFitConfig, geman_mcclure, kabsch,
                                            ray_translation, rotation_between)
from nbf_ros.geometry.rotations import axis_angle_to_matrix
from nbf_ros.types import JOINT_NAMES, BodyParams, CameraIntrinsics

CAMERA = CameraIntrinsics(600.0, 600.0, 320.0, 240.0, 640, 480)
LIMBS = [JOINT_NAMES.index(n) - 1 for n in JOINT_NAMES
         if any(part in n for part in ("hip", "knee", "shoulder", "elbow"))]


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel(resolve_path("models/nbf_body.npz"))


@pytest.fixture(scope="module")
def fitter(body) -> LandmarkBodyFitter:
    # Exact synthetic landmarks: no depth shrinkage of the world landmarks.
    return LandmarkBodyFitter.from_config(body, LandmarkFitConfig(world_depth_gain=1.0))


def known_body(fitter: LandmarkBodyFitter, seed: int, turn: float, transl: tuple[float, float, float]) -> BodyParams:
    """The prior's mean pose with hips, knees, shoulders and elbows moved, upright and turned by
    ``turn`` radians about the vertical from facing the camera."""
    gen = torch.Generator().manual_seed(seed)
    pose = fitter.prior.mean.clone().reshape(23, 3)
    pose[LIMBS] += 0.3 * torch.randn(len(LIMBS), 3, generator=gen)
    orient = (Rotation.from_euler("x", np.pi) * Rotation.from_euler("y", turn)).as_rotvec()
    return BodyParams(0.5 * torch.randn(1, 10, generator=gen), torch.tensor(orient, dtype=torch.float32)[None],
                      pose.reshape(1, 69), torch.tensor([transl], dtype=torch.float32))


def observe(fitter: LandmarkBodyFitter, params: BodyParams, camera: CameraIntrinsics = CAMERA,
            visibility: np.ndarray | None = None) -> SimpleNamespace:
    """BlazePose-like observation of a body: the regressor's landmarks projected and hip-centred."""
    with torch.no_grad():
        points = fitter.landmarks(params)[0].double().numpy()
    uv = np.stack([camera.fx * points[:, 0] / points[:, 2] + camera.cx,
                   camera.fy * points[:, 1] / points[:, 2] + camera.cy], -1)
    world = points - points[[23, 24]].mean(0)
    return SimpleNamespace(landmarks=np.hstack([uv, np.zeros((33, 1))]),
                           visibility=np.ones(33) if visibility is None else visibility,
                           presence=np.ones(33), world=world)


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    rel = axis_angle_to_matrix(a.double()).transpose(-1, -2) @ axis_angle_to_matrix(b.double())
    cos = ((torch.diagonal(rel, dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return float(torch.rad2deg(torch.arccos(cos)).max())


def test_fast_landmarks_match_the_reference_forward_and_backward(fitter):
    gen = torch.Generator().manual_seed(1)
    leaves = [torch.randn(3, 10, generator=gen), torch.randn(3, 3, generator=gen),
              0.4 * torch.randn(3, 69, generator=gen), torch.randn(3, 3, generator=gen)]
    weights = torch.randn(3, 33, 3, generator=gen)
    grads = []
    for forward in (fitter.landmarks, fitter.landmarks_reference):
        params = BodyParams(*(t.clone().requires_grad_(True) for t in leaves))
        out = forward(params)
        (out * weights).sum().backward()
        grads.append((out.detach(), [t.grad for t in params.as_tuple()]))
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-5, rtol=1e-5)
    for fast, slow in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(fast, slow, atol=2e-4, rtol=1e-4)


def test_kabsch_recovers_a_known_rotation_like_scipy():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(2, 6, 3))
    truth = Rotation.random(2, random_state=1)
    target = np.stack([truth[i].apply(source[i]) for i in range(2)]) + rng.normal(size=(2, 1, 3))
    rot = kabsch(torch.from_numpy(source), torch.from_numpy(target)).numpy()
    np.testing.assert_allclose(rot, truth.as_matrix(), atol=1e-9)
    noisy = target + 0.05 * rng.normal(size=target.shape)
    rot = kabsch(torch.from_numpy(source), torch.from_numpy(noisy)).numpy()
    for i in range(2):
        reference, _ = Rotation.align_vectors(noisy[i] - noisy[i].mean(0), source[i] - source[i].mean(0))
        np.testing.assert_allclose(rot[i], reference.as_matrix(), atol=1e-8)


def test_rotation_between_is_the_smallest_rotation_onto_the_target():
    rng = np.random.default_rng(3)
    source, target = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    target[3] = -2.0 * source[3]  # opposite: any half turn will do
    rot = rotation_between(torch.from_numpy(source), torch.from_numpy(target)).numpy()
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(np.einsum("bij,bj->bi", rot, unit(source)), unit(target), atol=1e-9)
    for i in range(3):
        angle = np.arccos(np.clip(unit(source[i]) @ unit(target[i]), -1, 1))
        assert np.isclose(Rotation.from_matrix(rot[i]).magnitude(), angle, atol=1e-9)


def test_ray_translation_puts_points_on_their_rays():
    rng = np.random.default_rng(2)
    points = torch.from_numpy(rng.normal(scale=0.5, size=(1, 10, 3)))
    truth = torch.tensor([[0.4, -0.2, 4.0]], dtype=torch.float64)
    moved = points + truth[:, None]
    intr = torch.tensor([[600.0, 610.0, 320.0, 240.0]], dtype=torch.float64)
    uv = torch.stack([600.0 * moved[..., 0] / moved[..., 2] + 320.0, 610.0 * moved[..., 1] / moved[..., 2] + 240.0], -1)
    found = ray_translation(points, uv, intr, torch.ones(1, 10, dtype=torch.float64))
    torch.testing.assert_close(found, truth, atol=1e-6, rtol=0)


def test_geman_mcclure_gradient_matches_finite_differences():
    residual = torch.tensor([0.0, 0.01, 0.3, 2.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda r: geman_mcclure(r, 0.2), (residual,))


def test_fit_recovers_a_known_body_from_its_landmarks(fitter, body):
    truth = known_body(fitter, seed=3, turn=0.6, transl=(0.3, 0.2, 3.5))
    result = fitter.fit([observe(fitter, truth)], [CAMERA])
    info = result.info[0]
    assert info.ok and info.hypothesis == 0 and info.confident == 33
    assert info.losses[0] < info.losses[1], "the turned reading explains exact landmarks worse"
    assert info.facing[0] > 0.5 > -0.5 > info.facing[1], "0.6 rad off facing the camera; turned: away"
    assert angle_deg(result.params.global_orient, truth.global_orient) < 8.0
    with torch.no_grad():
        fitted, true = body(result.params).joints[0], body(truth).joints[0]
    assert ((fitted - fitted[0]) - (true - true[0])).norm(dim=-1).mean() < 0.03  # MPJPE < 30 mm
    assert (fitted[0] - true[0]).norm() < 0.15  # the root, 3.5 m away: metric translation
    # The alternative is the other reading: a body facing 0.6 rad off the camera, seen from
    # behind, faces pi - 0.6 rad off it: turned by pi - 1.2 rad (111 degrees) from the truth.
    assert angle_deg(result.alternative.global_orient, truth.global_orient) > 90.0


def test_torso_orientation_in_closed_form_before_any_iteration(fitter):
    for turn in (0.0, 1.2, 2.8):
        truth = known_body(fitter, seed=4, turn=turn, transl=(0.0, 0.0, 3.0))
        obs, _ = fitter.observations([observe(fitter, truth)], [CAMERA])
        start = fitter.initialise(obs)
        assert angle_deg(start.global_orient, truth.global_orient) < 20.0, turn
        assert abs(float(start.transl[0, 2]) - 3.0) < 0.3


def test_batch_equals_one_by_one_and_is_deterministic(fitter):
    # 10 iterations are enough for a batched reduction to drift from a single one if it could
    quick = LandmarkBodyFitter(fitter.body, fitter.regressor, fitter.prior,
                               LandmarkFitConfig(world_depth_gain=1.0, iterations=10, hypothesis_choice="score"))
    truths = [known_body(fitter, seed=s, turn=t, transl=(x, 0.1, z))
              for s, t, x, z in ((5, 0.3, -0.5, 3.0), (6, 2.5, 0.4, 5.0), (7, -1.0, 0.0, 2.2))]
    people = [observe(fitter, t) for t in truths]
    together = quick.fit(people, [CAMERA] * 3)
    again = quick.fit(people, [CAMERA] * 3)
    for a, b in zip(together.params.as_tuple(), again.params.as_tuple()):
        assert torch.equal(a, b)
    for i, person in enumerate(people):
        alone = quick.fit([person], [CAMERA])
        assert alone.info[0].hypothesis == together.info[i].hypothesis
        for a, b in zip(alone.params.as_tuple(), together.params.index(i).as_tuple()):
            torch.testing.assert_close(a, b, atol=2e-3, rtol=1e-3)


def test_too_few_confident_landmarks_flag_the_person_for_the_fallback(fitter):
    truth = known_body(fitter, seed=8, turn=0.0, transl=(0.0, 0.0, 3.0))
    few = np.zeros(33)
    few[[11, 12, 23, 24]] = 0.9  # the torso alone
    people = [observe(fitter, truth), observe(fitter, truth, visibility=few)]
    result = fitter.fit(people, [CAMERA, CAMERA])
    assert result.ok.tolist() == [True, False]
    assert "confident landmarks" in result.info[1].reason
    fallback = BodyParams.zeros(2)
    merged = result.with_fallback(fallback)
    assert torch.equal(merged.index(1).transl, fallback.index(1).transl)
    assert torch.equal(merged.index(0).transl, result.params.index(0).transl)
    assert fitter.fit([], []).params.batch_size == 0


def test_turned_observation_is_its_own_inverse_and_keeps_the_image(fitter):
    truth = known_body(fitter, seed=9, turn=0.4, transl=(0.2, 0.0, 3.0))
    obs, _ = fitter.observations([observe(fitter, truth)], [CAMERA])
    turned = fitter.turned(obs)
    back = fitter.turned(turned)
    torch.testing.assert_close(back.world, obs.world, atol=1e-6, rtol=0)
    torch.testing.assert_close(turned.uv[:, fitter.mirror], obs.uv)


def test_silhouette_score_runs_on_a_mask_over_the_roi(fitter):
    from nbf_ros.keypoints.landmarks import Roi

    truth = known_body(fitter, seed=10, turn=0.2, transl=(0.0, 0.0, 3.0))
    person = observe(fitter, truth)
    uv = person.landmarks[:, :2]
    person.roi = Roi(uv.mean(0), float(np.ptp(uv, axis=0).max() * 1.5))
    person.mask_logits = np.full((256, 256), -10.0, np.float32)
    person.mask_logits[64:192, 96:160] = 10.0
    iou = fitter.silhouette_iou(BodyParams.cat([truth, truth]), [person], [CAMERA], 2)
    assert iou.shape == (2, 1) and np.isfinite(iou).all() and (iou > 0).all() and (iou <= 1).all()


def test_missing_regressor_file_is_a_one_line_error(body, tmp_path):
    with pytest.raises(LandmarkRegressorError, match="build_landmark_regressor"):
        LandmarkBodyFitter.from_config(body, LandmarkFitConfig(regressor_path=str(tmp_path / "none.npz")))


def test_a_front_back_flipped_reading_is_undone_by_the_turned_hypothesis(fitter):
    """BlazePose's front/back confusion: left/right labels swapped, depth mirrored along the ray.
    The turned hypothesis of that reading is the true body, and the score finds it on exact data."""
    truth = known_body(fitter, seed=11, turn=0.5, transl=(0.1, 0.0, 3.0))
    person = observe(fitter, truth)
    perm = fitter.regressor.mirror_permutation()
    uv = person.landmarks[perm]
    ray = np.array([(uv[[23, 24], 0].mean() - CAMERA.cx) / CAMERA.fx,
                    (uv[[23, 24], 1].mean() - CAMERA.cy) / CAMERA.fy, 1.0])
    ray /= np.linalg.norm(ray)
    world = person.world[perm]
    flipped = SimpleNamespace(landmarks=uv, visibility=person.visibility, presence=person.presence,
                              world=world - 2.0 * (world @ ray)[:, None] * ray)
    scored = LandmarkBodyFitter(fitter.body, fitter.regressor, fitter.prior,
                                LandmarkFitConfig(world_depth_gain=1.0, hypothesis_choice="score"))
    result = scored.fit([flipped], [CAMERA])
    assert result.info[0].hypothesis == 1
    assert result.info[0].losses[1] + scored.config.turn_margin < result.info[0].losses[0]
    assert angle_deg(result.params.global_orient, truth.global_orient) < 10.0
    kept = fitter.fit([flipped], [CAMERA])  # the default keeps BlazePose's reading first
    assert kept.info[0].hypothesis == 0
    assert angle_deg(kept.alternative.global_orient, truth.global_orient) < 10.0


def test_lbfgs_option_lowers_the_objective(fitter):
    truth = known_body(fitter, seed=12, turn=0.3, transl=(0.0, 0.0, 3.0))
    config = LandmarkFitConfig(world_depth_gain=1.0, optimizer="lbfgs", iterations=10, turned_hypothesis=False)
    lbfgs = LandmarkBodyFitter(fitter.body, fitter.regressor, fitter.prior, config)
    obs, _ = lbfgs.observations([observe(fitter, truth)], [CAMERA])
    start = lbfgs.initialise(obs)
    _, loss = lbfgs.optimise(start, obs)
    with torch.no_grad():
        assert float(loss[0]) < float(lbfgs.objective(start, obs)[0])


def test_blazepose_on_rendered_scenes_gives_bodies_on_the_right_side(fitter, body):
    """End to end on full images: BlazePose's PoseLandmarks and the image camera go in as the
    pipeline would pass them (8 people of 4 test-split scenes, all found by BlazePose)."""
    import dataclasses

    from nbf_ros.config import BlazePoseConfig, SyntheticConfig
    from nbf_ros.data.scene import body_labels, render_scene
    from nbf_ros.keypoints.landmarks import BlazePoseLandmarker

    cfg = SyntheticConfig(split="test")
    cfg = dataclasses.replace(cfg, appearance=dataclasses.replace(cfg.appearance, opencv_doc_photos=False))
    labels = body_labels(body)
    landmarker = BlazePoseLandmarker(BlazePoseConfig())
    shipped = LandmarkBodyFitter.from_config(body)  # the defaults, depth gain included
    errors, angles = [], []
    for seed in (1, 2, 3, 4):
        scene = render_scene(seed, cfg, body, labels)
        found = landmarker.estimate(scene.image, np.array([p.bbox for p in scene.people]), scene.camera)
        result = shipped.fit(found, [scene.camera] * len(found))
        assert result.ok.all()
        with torch.no_grad():
            joints = body(result.params).joints.double().numpy()
        for i, truth in enumerate(scene.people):
            rel = (joints[i] - joints[i, 0]) - (truth.joints3d - truth.joints3d[0])
            errors.append(np.linalg.norm(rel, axis=-1).mean())
            angles.append(angle_deg(result.params.global_orient[i:i + 1], torch.from_numpy(truth.global_orient)[None]))
            # metric position: the root within 15 % of its distance (measured: at most 10 %)
            assert np.linalg.norm(joints[i, 0] - truth.joints3d[0]) < 0.15 * np.linalg.norm(truth.joints3d[0])
    # measured: MPJPE 86-234 mm, mean 131; orientation 11-26 degrees off
    assert len(errors) == 8 and np.mean(errors) < 0.2 and max(angles) < 45.0
