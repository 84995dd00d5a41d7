"""Neural body fitting on features rendered from a known body (exact truth, no network).

The observed feature map is the NBV's own render at the true body, with the background feature
where the body is absent: the fit must move a perturbed body back towards the truth, keep its
best iterate, respect its budget, and not be dragged by occluded pixels.
"""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nbf_ros.body.pose_limits import MIRROR_JOINTS
from nbf_ros.config import NbfConfig, resolve_path
from nbf_ros.fitting.fitter import FitRequest, Fitter, flipped_twin, turn_hypotheses, turned_about_vertical
from nbf_ros.fitting.pose_prior import load_pose_prior
from nbf_ros.geometry.camera import project_points
from nbf_ros.inference.backends import NetArrays
from nbf_ros.render import RenderCamera, render_gaussians
from nbf_ros.types import BodyParams, CameraIntrinsics

SIZE = 128  # crop pixels; features at 32 x 32


@pytest.fixture(scope="module")
def setup(random_nbv):
    return random_nbv


def shipped_prior():
    return load_pose_prior(resolve_path(NbfConfig().fit.pose_prior_path))


def make_fitter(setup, **fit_changes) -> Fitter:
    config, body, nbv, background = setup
    config = dataclasses.replace(config, fit=dataclasses.replace(config.fit, budget_ms=1e9, **fit_changes))
    return Fitter(config, body, nbv, background, shipped_prior())


def truth() -> BodyParams:
    pose = torch.zeros(1, 69)
    pose[0, 15 * 3 + 2] = -1.0  # left shoulder down
    pose[0, 16 * 3 + 2] = 1.0
    return BodyParams(torch.zeros(1, 10), torch.tensor([[np.pi, 0.0, 0.0]], dtype=torch.float32),
                      pose, torch.tensor([[0.0, 0.2, 3.0]]))


def crop_camera() -> CameraIntrinsics:
    return CameraIntrinsics(180.0, 180.0, 63.5, 63.5, SIZE, SIZE)  # 1.7 m person ~ 100 px at 3 m


def observed(setup, params: BodyParams, occlude_rows: slice | None = None) -> NetArrays:
    config, body, nbv, background = setup
    cam = crop_camera().scaled(0.25)
    with torch.no_grad():
        state = nbv(body(params))
        r = render_gaussians(state.means, state.precisions, nbv.kernel_features(state),
                             RenderCamera.from_intrinsics(cam), 32, 32, config.render)
    # The network's ideal output: the body's feature wherever the body is, background elsewhere.
    feats = torch.where(r.coverage[..., None] > 0.05, F.normalize(r.features, dim=-1), background)[0]
    if occlude_rows is not None:
        feats[occlude_rows] = background
    heatmaps = np.zeros((1, 24, 32, 32), np.float32)  # flat: keypoints carry no information
    return NetArrays(features=feats.permute(2, 0, 1)[None].numpy(), pose6d=np.zeros((1, 24, 6), np.float32),
                     betas=np.zeros((1, 10), np.float32), cam=np.zeros((1, 3), np.float32), heatmaps=heatmaps)


def perturbed(params: BodyParams, seed: int, scale: float = 0.15) -> BodyParams:
    g = torch.Generator().manual_seed(seed)
    return params.replace(body_pose=params.body_pose + scale * torch.randn(1, 69, generator=g),
                          global_orient=params.global_orient + 0.1 * torch.randn(1, 3, generator=g),
                          transl=params.transl + torch.tensor([[0.05, -0.05, 0.2]]))


def mpjpe(body, a: BodyParams, b: BodyParams) -> float:
    with torch.no_grad():
        ja, jb = body(a).joints[0], body(b).joints[0]
    return float(((ja - ja[:1]) - (jb - jb[:1])).norm(dim=-1).mean())


def test_fit_moves_towards_the_truth_and_keeps_the_best_iterate(setup):
    body = setup[1]
    gt = truth()
    fitter = make_fitter(setup, max_iters=30, keypoint_weight=0.0, flip_hypothesis=False)
    init = perturbed(gt, 0)
    result = fitter.fit(observed(setup, gt), 0, crop_camera(), init)
    assert result.info.iterations == 30
    assert result.info.loss <= result.info.loss_init
    assert mpjpe(body, result.params, gt) < 0.9 * mpjpe(body, init, gt)


def test_occlusion_model_keeps_occluded_pixels_from_dragging(setup):
    body = setup[1]
    gt = truth()
    init = perturbed(gt, 1)
    occluded = observed(setup, gt, occlude_rows=slice(16, 32))  # lower half hidden
    errors = {}
    for occ in (True, False):
        fitter = make_fitter(setup, max_iters=30, keypoint_weight=0.0, flip_hypothesis=False,
                             use_occlusion_model=occ)
        errors[occ] = mpjpe(body, fitter.fit(occluded, 0, crop_camera(), init).params, gt)
    assert errors[True] < errors[False]


# A visibility model that trusts the render and the occlusion map (what ideal features deserve):
# seen and not explained away -> visible. The shipped values are calibrated for the shipped
# network (docs/visibility.md), whose occlusion map is far from ideal.
TRUSTING_VISIBILITY = (-3.0, 6.0, -6.0, 0.0)


def test_visibility_marks_hidden_joints(setup):
    gt = truth()
    fitter = make_fitter(setup, max_iters=0, visibility_logit=TRUSTING_VISIBILITY, keypoint_source="network")
    result = fitter.fit(observed(setup, gt, occlude_rows=slice(20, 32)), 0, crop_camera(), gt)
    vis = result.joint_visibility
    ankles, head = [7, 8], 15
    assert vis[ankles].max() < 0.5 <= vis[head]
    assert result.joint_state[ankles].tolist() == [1, 1]  # occluded by an object, not self-occluded
    assert 0.0 <= result.confidence <= 1.0


def test_budget_and_iteration_limits(setup):
    gt = truth()
    obs = observed(setup, gt)
    few = make_fitter(setup, max_iters=3).fit(obs, 0, crop_camera(), perturbed(gt, 2))
    assert few.info.iterations == 3
    config, body, nbv, background = setup
    tight = dataclasses.replace(config, fit=dataclasses.replace(config.fit, max_iters=500, budget_ms=1.0))
    result = Fitter(config=tight, body=body, nbv=nbv, background=background,
                    pose_prior=shipped_prior()).fit(obs, 0, crop_camera(), perturbed(gt, 2))
    assert result.info.iterations < 500
    assert np.isfinite(result.info.loss)


def test_flipped_hypothesis_wins_for_a_back_to_front_start(setup):
    body = setup[1]
    gt = truth()
    fitter = make_fitter(setup, max_iters=0)
    backwards = flipped_twin(gt)
    obs = observed(setup, gt)
    assert fitter.fit(obs, 0, crop_camera(), backwards).info.loss_init > \
        fitter.fit(obs, 0, crop_camera(), gt).info.loss_init
    twin_of_twin = flipped_twin(backwards)
    assert mpjpe(body, twin_of_twin, gt) < 1e-4
    shaped = gt.replace(betas=torch.linspace(-1.5, 1.5, 10)[None])  # the pelvis stays for any shape
    with torch.no_grad():
        pelvis, twin_pelvis = body(shaped).joints[0, 0], body(flipped_twin(shaped)).joints[0, 0]
    torch.testing.assert_close(twin_pelvis, pelvis, atol=1e-5, rtol=0)


def test_turn_about_the_vertical_axis_keeps_the_pelvis_and_composes(setup):
    body = setup[1]
    gt = truth()
    quarter = turned_about_vertical(gt, np.pi / 2)
    with torch.no_grad():
        a, b = body(gt).joints[0], body(quarter).joints[0]
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=0)  # same pelvis
    # The body's own up axis (pelvis -> neck) does not move; a quarter turn moves the shoulders.
    up = lambda j: F.normalize(j[12] - j[0], dim=0)  # noqa: E731
    assert float(up(a) @ up(b)) > 0.999
    assert mpjpe(body, quarter, gt) > 0.1
    full = turned_about_vertical(turned_about_vertical(quarter, np.pi), np.pi / 2)
    assert mpjpe(body, full, gt) < 1e-4
    assert len(turn_hypotheses(gt, 4)) == 3 and turn_hypotheses(gt, 1) == []


def test_turn_hypotheses_recover_a_side_on_start(setup):
    """A regressor that read the body a quarter turn wrong: a local fit cannot undo 90 degrees,
    the turn hypotheses can (the truth is among them)."""
    body = setup[1]
    gt = truth()
    side_on = turned_about_vertical(gt, -np.pi / 2)
    obs = observed(setup, gt)
    without = make_fitter(setup, max_iters=10, keypoint_weight=0.0, flip_hypothesis=False,
                          turn_hypotheses=1)
    with_turns = make_fitter(setup, max_iters=10, keypoint_weight=0.0, flip_hypothesis=False,
                             turn_hypotheses=4)
    stuck = mpjpe(body, without.fit(obs, 0, crop_camera(), side_on).params, gt)
    found = mpjpe(body, with_turns.fit(obs, 0, crop_camera(), side_on).params, gt)
    assert found < 0.02 < stuck


def test_visibility_is_the_logistic_of_its_cues_and_monotone():
    from nbf_ros.fitting.fitter import visibility_from_cues

    logit = (-1.0, 3.0, -4.0, 2.0)
    cues = torch.tensor([[0.2, 0.5, 0.9], [1.0, 0.0, 0.0]], dtype=torch.float64)
    expected = torch.sigmoid(torch.tensor([-1 + 0.6 - 2.0 + 1.8, -1 + 3.0], dtype=torch.float64))
    torch.testing.assert_close(visibility_from_cues(cues, logit), expected)
    base = visibility_from_cues(cues, logit)
    for column, sign in ((0, 1), (1, -1), (2, 1)):
        more = cues.clone()
        more[:, column] += 0.1
        assert torch.all(sign * (visibility_from_cues(more, logit) - base) > 0)


# An image model that reads the person mask alone (bias + the 13 weights of the image model).
MASK_ONLY_VISIBILITY = (-3.0, 0.0, 0.0, 0.0, 6.0) + (0.0,) * 9


def test_a_joint_inside_the_silhouette_but_outside_the_person_mask_is_hidden_by_an_object(setup):
    """BlazePose's person mask leaves an occluder out: where the fitted body renders a joint in
    front but the mask does not cover it, the joint is hidden by an object (the features here are
    unoccluded, so only the mask can say so)."""
    gt = truth()
    fitter = make_fitter(setup, max_iters=0, visibility_logit_image=MASK_ONLY_VISIBILITY)
    net = observed(setup, gt)
    whole = torch.ones(1, 32, 32)
    cut = whole.clone()
    cut[:, 20:] = 0.0  # an object over the lower third: legs outside the mask
    covered = fitter.fit(net, 0, crop_camera(), gt, mask=whole)
    masked = fitter.fit(net, 0, crop_camera(), gt, mask=cut)
    ankles, head = [7, 8], 15
    assert covered.joint_visibility[ankles].min() > 0.9 and masked.joint_visibility[ankles].max() < 0.1
    assert masked.joint_visibility[head] == pytest.approx(covered.joint_visibility[head], abs=1e-6)
    assert masked.joint_state[ankles].tolist() == [1, 1]  # occluded by an object
    from nbf_ros.fitting.visibility import VISIBILITY_CUES
    mask_cue = VISIBILITY_CUES.index("mask")
    assert masked.visibility_cues.shape == (24, len(VISIBILITY_CUES))
    assert masked.visibility_cues[ankles, mask_cue].max() < 0.1 < 0.9 < covered.visibility_cues[ankles, mask_cue].min()
    # With the network's heatmap keypoints the base model decides (its own calibration).
    heatmaps = make_fitter(setup, max_iters=0, keypoint_source="network")
    base = heatmaps.fit(net, 0, crop_camera(), gt, mask=cut)
    expected = torch.sigmoid(torch.tensor(fitter.cfg.visibility_logit[0]
                                          + np.dot(fitter.cfg.visibility_logit[1:], base.visibility_cues[:, :3].T)))
    np.testing.assert_allclose(base.joint_visibility, expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("field", ["visibility_logit", "visibility_logit_image", "visibility_logit_depth"])
def test_each_shipped_visibility_model_is_monotone_in_every_cue(field):
    """More evidence of being seen (a cue moved in its sign's direction) never lowers the
    visibility, for the shipped models and for every cue they read."""
    from nbf_ros.fitting.visibility import CUE_SIGNS, visibility_from_cues

    logit = getattr(NbfConfig().fit, field)
    count = len(logit) - 1
    assert all(s * w >= 0 for s, w in zip(CUE_SIGNS, logit[1:])), "a shipped weight has the wrong sign"
    cues = torch.rand(64, len(CUE_SIGNS), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    base = visibility_from_cues(cues, logit)
    for column in range(count):
        more = cues.clone()
        more[:, column] += 0.2 * CUE_SIGNS[column]
        assert torch.all(visibility_from_cues(more, logit) >= base)
    unread = cues.clone()
    unread[:, count:] += 1.0  # cues past the model's prefix are not read
    torch.testing.assert_close(visibility_from_cues(unread, logit), base)


def test_hypothesis_score_keypoints_follows_the_external_keypoints(setup):
    """With an external 2D source, ``hypothesis_score: keypoints`` picks the start the keypoints
    support even when the features say otherwise; ``objective`` lets the features decide."""

    body = setup[1]
    gt = truth()
    twin = flipped_twin(gt)
    cam = crop_camera()
    with torch.no_grad():
        uv = project_points(body(twin).joints, cam.fx, cam.fy, cam.cx, cam.cy)
    keypoints = (uv.float(), torch.ones(1, 24))
    obs = observed(setup, gt)  # the features are those of gt
    picked = {}
    for score in ("objective", "keypoints"):
        fitter = make_fitter(setup, max_iters=0, hypothesis_score=score)
        picked[score] = fitter.fit(obs, 0, cam, gt, keypoints=keypoints).params
    assert mpjpe(body, picked["objective"], gt) < 1e-4
    assert mpjpe(body, picked["keypoints"], twin) < 1e-4


def test_alternative_starts_compete_with_the_init(setup):
    """A caller's alternative start (e.g. the turned reading of BlazePose's landmarks) is scored
    like the built-in hypotheses: the features pick it when it is the truth, and it is ignored
    without iterating (``iterate=False`` evaluates ``init`` only)."""
    body = setup[1]
    gt = truth()
    wrong = turned_about_vertical(gt, np.pi)
    obs = observed(setup, gt)
    fitter = make_fitter(setup, max_iters=0, flip_hypothesis=False, turn_hypotheses=1, keypoint_weight=0.0)
    assert mpjpe(body, fitter.fit(obs, 0, crop_camera(), wrong).params, wrong) < 1e-4
    assert mpjpe(body, fitter.fit(obs, 0, crop_camera(), wrong, alternatives=[gt]).params, gt) < 1e-4
    kept = fitter.fit(obs, 0, crop_camera(), wrong, alternatives=[gt], iterate=False).params
    assert mpjpe(body, kept, wrong) < 1e-4


def test_a_turned_reading_is_scored_against_the_keypoints_it_stands_for(setup):
    """BlazePose swapped left and right (its keypoints carry the mirrored labels of the true
    body) and its turned reading is the truth: scored against its own labels (left and right
    swapped back, ``fit.mirrored_keypoints``) the turned reading wins and names itself; scored
    against BlazePose's labels the keypoint term vetoes it."""
    body = setup[1]
    gt = truth()
    blazepose_reading = turned_about_vertical(gt, np.pi)
    cam = crop_camera()
    with torch.no_grad():
        uv = project_points(body(gt).joints, cam.fx, cam.fy, cam.cx, cam.cy)
    swapped = (uv[:, MIRROR_JOINTS].float(), torch.ones(1, 24))
    obs = observed(setup, gt)
    fit = {}
    for mirrored in (False, True):
        fitter = make_fitter(setup, max_iters=0, flip_hypothesis=False, turn_hypotheses=1, keypoint_weight=10.0,
                             mirrored_keypoints=mirrored)
        fit[mirrored] = fitter.fit(obs, 0, cam, blazepose_reading, keypoints=swapped, alternatives=[gt],
                                   alternatives_mirrored=True)
    assert fit[True].info.hypothesis == "alternative"
    assert mpjpe(body, fit[True].params, gt) < 1e-4
    assert fit[False].info.hypothesis == "start"
    assert mpjpe(body, fit[False].params, blazepose_reading) < 1e-4


def concat_nets(*nets: NetArrays) -> NetArrays:
    """One network batch holding the people of several."""
    return NetArrays(*(np.concatenate(parts, 0) for parts in zip(*(dataclasses.astuple(n) for n in nets))))


def test_a_batched_fit_gives_each_person_its_own_fit(setup):
    """Two people fitted together get what each gets alone: hypotheses scored per person, the
    optimisation's steps independent per person (only float rounding differs, so few iterations),
    visibility and losses from the person's own observation."""
    body = setup[1]
    gt = truth()
    other = gt.replace(transl=gt.transl + torch.tensor([[0.3, 0.0, 0.5]]),
                       global_orient=torch.tensor([[np.pi, 0.4, 0.0]]))
    net = concat_nets(observed(setup, gt), observed(setup, other, occlude_rows=slice(20, 32)))
    fitter = make_fitter(setup, max_iters=3, keypoint_weight=0.0)
    starts = [perturbed(gt, 5), perturbed(other, 6)]
    alone = [fitter.fit(net, i, crop_camera(), starts[i]) for i in range(2)]
    together = fitter.fit_batch(net, [FitRequest(i, crop_camera(), starts[i]) for i in range(2)])
    for a, b in zip(alone, together):
        assert b.info.iterations == a.info.iterations == 3
        assert mpjpe(body, a.params, b.params) < 1e-4
        torch.testing.assert_close(b.params.transl, a.params.transl, atol=1e-4, rtol=0)
        np.testing.assert_allclose(b.joint_visibility, a.joint_visibility, atol=1e-4)
        assert b.info.loss_init == pytest.approx(a.info.loss_init, abs=1e-5)
        assert b.info.loss == pytest.approx(a.info.loss, abs=1e-4)
    assert together[1].joint_visibility[[7, 8]].max() < together[0].joint_visibility[[7, 8]].min()
    assert fitter.fit_batch(net, []) == []
