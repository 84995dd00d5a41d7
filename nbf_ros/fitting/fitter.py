"""Bounded-iteration neural body fitting (method.md steps 6-8).

The :class:`Fitter` owns the optimisation of a batch of people (the people of a frame, or one
person's start hypotheses when they are scored): the variables (global orientation,
translation, body pose; shape stays at the regressor's estimate), the Adam optimiser, the
two-stage schedule, the iteration and wall-clock budget and the "keep the best iterate" rule.
The maths lives in pure functions (``losses.py``); the body model, the Neural Body Volume and
the renderer are stateless modules it calls.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from nbf_ros.body.model import BodyModel, ShapedSubset
from nbf_ros.body.nbv import NeuralBodyVolume
from nbf_ros.body.pose_limits import MIRROR_JOINTS, joint_limit_violation, mirror_body_pose
from nbf_ros.config import NbfConfig, resolve_path
from nbf_ros.fitting.depth import DepthCrop, along_ray, depth_term, metric_offset, occluder_map
from nbf_ros.fitting.losses import (GaussianPosePrior, feature_loss, feature_scores,
                                    outlier_probability, robust_keypoint_loss)
from nbf_ros.fitting.pose_prior import load_pose_prior
from nbf_ros.fitting.visibility import (VISIBILITY_CUES, behind_render_cue, depth_gap_cue, fit_cues,
                                        image_cues, model_for, visibility_from_cues)
from nbf_ros.geometry.camera import project_points
from nbf_ros.geometry.rotations import turn_about_local_axis
from nbf_ros.nets.bank import MemoryBank
from nbf_ros.nets.model import heatmap_keypoints
from nbf_ros.render import RenderCamera, RenderOutput, render_gaussians
from nbf_ros.types import NUM_JOINTS, BodyParams, CameraIntrinsics, FitInfo, Person

LOG = logging.getLogger(__name__)

# Joint visibility classes (FitResult.joint_state).
VISIBLE, OCCLUDED_BY_OBJECT, SELF_OCCLUDED = 0, 1, 2
# Soft z-test of a kernel against the rendered surface: visible when it is at most this far behind.
SURFACE_TOLERANCE_M = 0.05
SURFACE_SOFTNESS_M = 0.01


class _Exhausted(Exception):
    """The L-BFGS fit has used its evaluations or its time (``Fitter._optimise_lbfgs``)."""


class _Iterates:
    """The variables of an optimisation of B bodies and their best evaluated iterate.

    Orientation and body pose are optimised as they are; translation in depth-normalised units
    (x/z, y/z, 1 at the start's depth), so a step moves far and near people alike on screen;
    shape stays. The best iterate is tracked with tensor ops only (no host sync per iteration on
    a GPU); a non-finite loss is never "better", so a diverging step cannot be returned, and a
    body not ``active`` (B bool) keeps its start.
    """

    def __init__(self, start: BodyParams, active: Optional[torch.Tensor]) -> None:
        self.orient = start.global_orient.detach().clone().requires_grad_(True)
        self.pose = start.body_pose.detach().clone().requires_grad_(True)
        self.depth = start.transl[:, 2:3].detach().clamp(min=0.3)
        self.transl_n = (start.transl.detach() / self.depth).requires_grad_(True)
        self.betas = start.betas.detach()
        self.active = active
        self.best_loss = torch.full((start.batch_size,), math.inf, device=start.transl.device)
        self.best = [t.detach().clone() for t in (self.orient, self.pose, self.transl_n)]

    def params(self) -> BodyParams:
        """The current bodies (differentiable in the variables)."""
        return BodyParams(self.betas, self.orient, self.pose, self.transl_n * self.depth)

    def record(self, loss: torch.Tensor) -> None:
        """Keep each body's current variables where its (B,) ``loss`` is its best so far."""
        loss = loss.detach()
        better = torch.isfinite(loss) & (loss < self.best_loss)
        if self.active is not None:
            better &= self.active
        self.best_loss = torch.where(better, loss, self.best_loss)
        current = (self.orient, self.pose, self.transl_n)
        self.best = [torch.where(better[:, None], t.detach(), b) for t, b in zip(current, self.best)]

    def best_params(self) -> BodyParams:
        return BodyParams(self.betas, self.best[0], self.best[1], self.best[2] * self.depth)


@dataclass
class Observation:
    """What the image says about B people (or B start hypotheses), at the fitting resolution.

    One fit optimises a batch: the people of a frame, or one person's start hypotheses, go
    through each render and backward together, since per-op overhead, not arithmetic, is what
    an iteration costs on a CPU (docs/performance.md).

    Attributes:
        features: B x h x w x D observed unit features (channel-last).
        keypoints: B x 24 x 2 2D joints in crop pixels; keypoint_conf B x 24 in [0, 1].
        cameras: the B crop cameras at crop resolution (one crop size); feature_cameras: the
            same at feature resolution.
        shaped: the kernel vertices shaped with the batch's betas (set by the first evaluation).
        depth: observed depth on the feature grid (B x h x w), when the frame has one.
        mask: 1 x h x w BlazePose person probability on the feature grid (one person's
            observation only: the joint visibility reads it, the optimisation does not).
    """

    features: torch.Tensor
    keypoints: torch.Tensor
    keypoint_conf: torch.Tensor
    cameras: list[CameraIntrinsics]
    feature_cameras: list[CameraIntrinsics]
    shaped: Optional[ShapedSubset] = None
    depth: Optional[DepthCrop] = None
    mask: Optional[torch.Tensor] = None
    _render_camera: Optional[RenderCamera] = field(default=None, init=False, repr=False)
    _crop_intrinsics: Optional[torch.Tensor] = field(default=None, init=False, repr=False)

    @property
    def batch_size(self) -> int:
        return int(self.features.shape[0])

    @property
    def camera(self) -> CameraIntrinsics:
        """The first (for one person: the) crop camera."""
        return self.cameras[0]

    @property
    def feature_camera(self) -> CameraIntrinsics:
        return self.feature_cameras[0]

    def render_camera(self) -> RenderCamera:
        """The feature cameras as the renderer's (B,) tensors (built once)."""
        if self._render_camera is None:
            self._render_camera = RenderCamera.from_intrinsics(self.feature_cameras)
        return self._render_camera

    def crop_intrinsics(self) -> torch.Tensor:
        """B x 1 x 4 (fx, fy, cx, cy) of the crop cameras, broadcastable over joints."""
        if self._crop_intrinsics is None:
            self._crop_intrinsics = torch.tensor([[[c.fx, c.fy, c.cx, c.cy]] for c in self.cameras])
        return self._crop_intrinsics

    def select(self, rows: Sequence[int]) -> "Observation":
        """The observations of ``rows`` (repeats allowed), without the shaped subset."""
        index = torch.as_tensor(list(rows), dtype=torch.long)
        depth = None
        if self.depth is not None:
            mask = None if self.depth.mask is None else self.depth.mask.index_select(0, index)
            depth = DepthCrop(self.depth.depth.index_select(0, index), mask)
        return Observation(self.features.index_select(0, index), self.keypoints.index_select(0, index),
                           self.keypoint_conf.index_select(0, index), [self.cameras[i] for i in rows],
                           [self.feature_cameras[i] for i in rows], depth=depth)

    def mirror_keypoints(self, rows: torch.Tensor) -> None:
        """Swap left and right in the 2D keypoints (and their confidences) of the B bool
        ``rows``: the labels a front/back-turned reading of the same image gives them."""
        if bool(rows.any()):
            swap = torch.as_tensor(MIRROR_JOINTS)
            self.keypoints = torch.where(rows[:, None, None], self.keypoints[:, swap], self.keypoints)
            self.keypoint_conf = torch.where(rows[:, None], self.keypoint_conf[:, swap], self.keypoint_conf)

    @staticmethod
    def stack(items: Sequence["Observation"]) -> "Observation":
        """One batch of single-person observations (same feature grid and crop size). People
        without depth get an all-NaN depth when others have one: no depth term, no occluder."""
        depth = None
        if any(o.depth is not None for o in items):
            h, w = items[0].features.shape[1:3]
            maps = [o.depth.depth if o.depth is not None else torch.full((1, h, w), math.nan) for o in items]
            masks = [o.depth.mask if o.depth is not None else None for o in items]
            depth = DepthCrop(torch.cat(maps), None if any(m is None for m in masks) else torch.cat(masks))
        cat = lambda name: torch.cat([getattr(o, name) for o in items])  # noqa: E731
        return Observation(cat("features"), cat("keypoints"), cat("keypoint_conf"),
                           [c for o in items for c in o.cameras],
                           [c for o in items for c in o.feature_cameras], depth=depth)


@dataclass
class FitRequest:
    """One person of a batched fit (``Fitter.fit_batch``); see ``Fitter.fit`` for the fields."""

    index: int
    camera: CameraIntrinsics
    init: BodyParams
    warm_start: Optional[Person] = None
    keypoints: Optional[tuple[torch.Tensor, torch.Tensor]] = None
    alternatives: Sequence[BodyParams] = ()
    depth: Optional[DepthCrop] = None
    turns: bool = True
    # 1 x h x w BlazePose person mask on the feature grid (``depth.mask`` when depth has one).
    mask: Optional[torch.Tensor] = None
    # The alternatives are front/back-turned readings of the same 2D keypoints (BlazePose's
    # turned reading): with ``fit.mirrored_keypoints`` they are scored and fitted against the
    # keypoints with left and right swapped, the labels they stand for.
    alternatives_mirrored: bool = False


@dataclass
class StartHypothesis:
    """One start of a person's fit: the body, what it is (``FitInfo.hypothesis``), and whether
    it reads the 2D keypoints with left and right swapped."""

    params: BodyParams
    name: str
    mirrored: bool = False


@dataclass
class FitResult:
    """The fitted body of one person and what the fit says about each joint."""

    params: BodyParams
    info: FitInfo
    joint_visibility: np.ndarray  # (24,) 0 = hidden .. 1 = visible
    joint_state: np.ndarray  # (24,) VISIBLE / OCCLUDED_BY_OBJECT / SELF_OCCLUDED
    joint_confidence: np.ndarray  # (24,) 0 .. 1
    confidence: float
    # Mean cosine agreement of observed and model features over the visible joints' kernels
    # (what confidence is calibrated from); nan when no joint is visible.
    agreement: float = float("nan")
    # 24 x 3 per-joint cues the visibility is computed from (self-visible share, occluded share,
    # 2D keypoint confidence); kept for calibration (benchmarks/visibility_calibration.py).
    visibility_cues: Optional[np.ndarray] = None
    # With depth: how far the start (``init``) was moved along its ray onto the observed surface
    # (metres, nan: not moved), and per joint the observed distance of the object hiding it
    # (nan: none).
    depth_offset_m: float = float("nan")
    occluder_distance_m: Optional[np.ndarray] = None


@dataclass
class Evaluation:
    """B objective evaluations: total losses (B,), feature losses (B,), the render and scores."""

    total: torch.Tensor
    feature: torch.Tensor
    render: RenderOutput
    outlier: Optional[torch.Tensor]  # B x h x w; None when not asked for (inside the optimisation)
    means: torch.Tensor  # B x K x 3 kernel centres
    kernel_features: torch.Tensor  # B x K x D
    joints: torch.Tensor  # B x 24 x 3 posed joints (camera frame)
    depth: Optional[torch.Tensor] = None  # B x h x w rendered body depth, when depth is observed

    def select(self, i: int) -> "Evaluation":
        """Element ``i`` as a batch of one."""
        one = lambda t: None if t is None else t[i:i + 1]  # noqa: E731
        render = RenderOutput(*(one(t) for t in (self.render.features, self.render.coverage,
                                                  self.render.kernel_ids, self.render.weights,
                                                  self.render.kernel_visibility)),
                              pairs_evaluated=self.render.pairs_evaluated)
        return Evaluation(one(self.total), one(self.feature), render, one(self.outlier),
                          one(self.means), one(self.kernel_features), one(self.joints), one(self.depth))


def turned_about_vertical(params: BodyParams, angle: float) -> BodyParams:
    """The body turned by ``angle`` radians about its own vertical axis (same pelvis position).

    SMPL's rest pose stands along +y, so the turn is R_root * R_y(angle). The root rotation
    turns the body about its own pelvis joint (LBS), so the pelvis stays where it was with the
    same translation: no body evaluation is needed (tests/test_fitting.py checks it on the model).
    """
    turned = turn_about_local_axis(params.global_orient.detach().double().numpy(), "y", angle)
    return params.replace(global_orient=torch.from_numpy(turned).to(params.transl))


def flipped_twin(params: BodyParams) -> BodyParams:
    """The 180-degree turned, left-right mirrored twin of a body (same pelvis position).

    Regressors often confuse front and back views; the twin is the other reading (method.md
    step 8). The turn is about the body's own vertical axis; mirroring the body pose moves no
    pelvis either.
    """
    pose = mirror_body_pose(params.body_pose.detach().double().numpy())
    mirrored = params.replace(body_pose=torch.from_numpy(pose).to(params.transl))
    return turned_about_vertical(mirrored, np.pi)


def turn_hypotheses(params: BodyParams, count: int) -> list[BodyParams]:
    """``count - 1`` copies of the body turned about its vertical axis by k * 360 / count degrees
    (k = 1 .. count - 1); the regressor's own reading (k = 0) is not repeated.

    Why: a front/back or side-on confusion of the regressor is a turn of 90-180 degrees, which
    a bounded local fit (a few degrees per iteration) cannot undo; evaluating the objective at a
    few turns costs one render each and lets the keypoints and features pick the reading.
    """
    return [turned_about_vertical(params, 2.0 * np.pi * k / count) for k in range(1, max(count, 1))]


def joint_kernel_neighbours(rest_joints: np.ndarray, kernel_sites: np.ndarray, count: int) -> np.ndarray:
    """24 x count indices of the kernels nearest to each joint in the rest pose."""
    count = min(count, len(kernel_sites))
    _, idx = cKDTree(kernel_sites).query(rest_joints, k=count)
    return np.asarray(idx, dtype=np.int64).reshape(len(rest_joints), count)


class Fitter:
    """Fits the Neural Body Volume to observed features, a batch of people at a time
    (``fit_batch``; ``fit`` is a batch of one).

    ``fit`` never raises for a numerically bad start: a non-finite loss stops the optimisation
    and the best finite iterate (at worst the initial body) is returned, flagged in the log.
    """

    def __init__(self, config: NbfConfig, body: BodyModel, nbv: NeuralBodyVolume,
                 background: torch.Tensor, pose_prior: GaussianPosePrior) -> None:
        self.config = config
        self.cfg = config.fit
        self.body = body
        self.nbv = nbv
        self.background = background
        self.pose_prior = pose_prior
        with torch.no_grad():
            zero = BodyParams.zeros(1)
            rest = body(zero)
            sites = rest.vertices[0, nbv.kernel_vertex_ids].numpy()
            self.joint_kernels = torch.from_numpy(joint_kernel_neighbours(
                rest.joints[0].numpy(), sites, self.cfg.kernels_per_joint))

    @classmethod
    def from_config(cls, config: NbfConfig, body: BodyModel, bank: MemoryBank) -> "Fitter":
        """Build the NBV with the trained kernel features and background of ``bank`` (read with
        the network from the weights file, ``inference.backends.load_backend``) and the stored
        pose prior (``fit.pose_prior_path``)."""
        nbv = NeuralBodyVolume(body, config.nbv)
        nbv.set_feature_bank(bank_for_bins(bank.kernel_features, config.nbv.orientation_bins))
        prior = load_pose_prior(resolve_path(config.fit.pose_prior_path))
        return cls(config, body, nbv, bank.background_prototype(), prior)

    # -- observation ---------------------------------------------------------------------------
    def observe(self, features: np.ndarray, heatmaps: np.ndarray, camera: CameraIntrinsics) -> Observation:
        """Network outputs of one crop (D x h x w, 24 x h x w) -> Observation (batch of one)."""
        stride = self.config.net.feature_stride
        feats = torch.from_numpy(np.ascontiguousarray(features)).float().permute(1, 2, 0).contiguous()[None]
        uv, conf = heatmap_keypoints(torch.from_numpy(np.ascontiguousarray(heatmaps)).float()[None], stride)
        h, w = feats.shape[1:3]
        feature_camera = camera.scaled(w / camera.width, h / camera.height)
        return Observation(feats, uv, conf, [camera], [feature_camera])

    # -- objective -----------------------------------------------------------------------------
    def evaluate(self, params: BodyParams, obs: Observation, keypoint_weight: float,
                 outlier: bool = True, kernel_ids: Optional[torch.Tensor] = None) -> Evaluation:
        """The objective of B bodies against their B observations (one render call).

        ``outlier=False`` skips the per-pixel outlier probability, which only the final
        assessment reads (the optimisation loop asks for the loss alone). ``kernel_ids``: an
        earlier evaluation's ``render.kernel_ids`` to render with (``render_gaussians``).
        """
        if obs.shaped is None or obs.shaped.vertices.shape[0] != params.batch_size:
            obs.shaped = self.body.shaped_subset(params.betas, self.nbv.kernel_vertex_ids)
        out = self.body.pose_subset(params, obs.shaped)
        state = self.nbv.kernel_state(out.vertices, out)
        kernel_feats = self.nbv.kernel_features(state)
        h, w = obs.features.shape[1:3]
        render = render_gaussians(state.means, state.precisions, kernel_feats, obs.render_camera(),
                                  h, w, self.config.render, kernel_ids=kernel_ids)
        scores = feature_scores(render.features, render.coverage, obs.features, self.background)
        depth = None
        if obs.depth is not None:
            depth = rendered_depth(render, state.means)
            scores = self._explain_occluders(scores, obs.depth.depth, depth)
        feat = feature_loss(scores, self.cfg.use_occlusion_model, self.cfg.occlusion_temperature)
        total = self.cfg.feature_weight * feat
        if depth is not None and self.cfg.depth_weight > 0:
            total = total + self.cfg.depth_weight * depth_term(depth, render.coverage, obs.depth.depth,
                                                               self.cfg.depth_sigma_m)
        if keypoint_weight > 0:
            fx, fy, cx, cy = obs.crop_intrinsics().unbind(-1)  # B x 1 each
            uv = project_points(out.joints, fx, fy, cx, cy)
            sigma = self.cfg.keypoint_sigma * obs.camera.width
            total = total + keypoint_weight * robust_keypoint_loss(
                uv, obs.keypoints, obs.keypoint_conf, sigma, self.cfg.keypoint_min_joints)
        total = total + self.cfg.joint_limit_weight * joint_limit_violation(params.body_pose)
        total = total + self.cfg.pose_prior_weight * self.pose_prior.nll(params.body_pose)
        probability = outlier_probability(scores, self.cfg.occlusion_temperature) if outlier else None
        return Evaluation(total, feat, render, probability, state.means, kernel_feats, out.joints, depth)

    def _explain_occluders(self, scores, observed: torch.Tensor, rendered: torch.Tensor):
        """Pixels where the sensor sees something clearly in front of the body are given to the
        outlier model (clutter score 1): they neither pull the body nor count as its evidence."""
        occluded = occluder_map(observed, rendered, self.cfg.depth_occluder_margin_m)
        if not bool(occluded.any()):
            return scores
        return dataclasses.replace(scores, clu=torch.where(occluded, torch.ones_like(scores.clu), scores.clu))

    # -- metric position from depth ------------------------------------------------------------
    def place_by_depth(self, params: BodyParams, obs: Observation, passes: int = 2
                       ) -> tuple[BodyParams, float]:
        """``params`` moved along its pelvis ray onto the observed surface (``metric_offset``),
        and the total move in metres (nan when the depth gave no evidence: unchanged)."""
        total = 0.0
        for _ in range(passes):
            with torch.no_grad():
                ev = self.evaluate(params, obs, 0.0)
                offset = metric_offset(obs.depth.depth, ev.depth, ev.render.coverage, obs.depth.mask,
                                       self.cfg.depth_min_pixels, self.cfg.depth_far_share)
                if offset is None:
                    break
                params = along_ray(params, self.body(params).joints[:, 0], offset)
            total += offset
            if abs(offset) < 0.01:
                break
        return params, (total if total != 0.0 else float("nan"))

    # -- the fit -------------------------------------------------------------------------------
    def fit(self, net, index: int, camera: CameraIntrinsics, init: BodyParams,
            warm_start: Optional[Person] = None, iterate: bool = True,
            keypoints: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
            alternatives: Sequence[BodyParams] = (), depth: Optional[DepthCrop] = None,
            budget_ms: Optional[float] = None, max_iters: Optional[int] = None,
            turns: bool = True, mask: Optional[torch.Tensor] = None,
            alternatives_mirrored: bool = False) -> FitResult:
        """Fit person ``index`` of a network batch (``NetArrays``), starting from ``init`` (1).

        Hypotheses: ``init``, the caller's ``alternatives`` (e.g. the front/back-turned reading
        of BlazePose's landmarks, which only image evidence can rule out), ``init``'s flipped
        twin and turns, and the track's previous body (warm start); the one with the lowest
        score is optimised. ``keypoints`` (1 x 24 x 2 crop pixels, 1 x 24 confidence) replace
        the network's heatmap keypoints when given. With ``iterate=False`` only ``init`` is
        evaluated (the start's output with fit-based visibility). ``depth``: the person's
        observed depth on the feature grid (``DepthCrop``): every start is first moved onto it
        along its ray (``fit.depth_start``), and the fit gets the depth term; with fewer than
        ``fit.depth_min_pixels`` depth pixels the person is fitted monocular. ``budget_ms``:
        this call's wall-clock budget (default ``fit.budget_ms``; the pipeline passes what is
        left of the frame's ``fit.frame_budget_ms``). ``max_iters``: this call's iteration cap
        (default ``fit.max_iters``); ``turns=False`` leaves out the flipped twin and the turned
        copies of ``init`` (a tracked person whose facing the previous frames settled).
        ``mask``: 1 x h x w BlazePose person mask on the feature grid, for the joint visibility
        (``fitting/visibility.py``). ``alternatives_mirrored``: the alternatives are front/back-
        turned readings of the keypoints (``FitRequest.alternatives_mirrored``).
        """
        request = FitRequest(index, camera, init, warm_start, keypoints, alternatives, depth, turns, mask,
                             alternatives_mirrored)
        return self.fit_batch(net, [request], iterate, budget_ms, max_iters)[0]

    def fit_batch(self, net, requests: Sequence[FitRequest], iterate: bool = True,
                  budget_ms: Optional[float] = None, max_iters: Optional[int] = None) -> list[FitResult]:
        """Fit several people of one network batch together (see ``fit`` for each field).

        Every start hypothesis of every person is scored in one evaluation, and the chosen
        starts are optimised as one batch within one budget: the people are independent terms
        of a summed loss, so each gets exactly the steps it would get alone (Adam is
        elementwise), while each iteration's op overhead is paid once. ``FitInfo.ms`` of each
        person is its share of the batch's wall time.
        """
        start = time.perf_counter()
        if not requests:
            return []
        people = [self._observation(net, r) for r in requests]
        offsets, candidates = zip(*(self._candidates(r, obs, iterate) for r, obs in zip(requests, people)))
        kp_weight = self.cfg.keypoint_weight
        counts = [len(c) for c in candidates]
        flat = [c for cs in candidates for c in cs]
        scoring = Observation.stack(people).select([i for i, n in enumerate(counts) for _ in range(n)])
        scoring.mirror_keypoints(torch.tensor([c.mirrored for c in flat]))
        with torch.no_grad():
            scored = self.evaluate(BodyParams.cat([c.params for c in flat]), scoring, kp_weight, outlier=False)
        score = scored.total
        if self.cfg.hypothesis_score == "keypoints":  # keypoints and priors alone, for external keypoints
            external = torch.tensor([r.keypoints is not None for r, n in zip(requests, counts) for _ in range(n)])
            score = torch.where(external, score - self.cfg.feature_weight * scored.feature, score)
        score = torch.nan_to_num(score, nan=math.inf)
        first = np.cumsum([0] + counts[:-1])
        chosen = [int(first[i]) + int(torch.argmin(score[first[i]:first[i] + n])) for i, n in enumerate(counts)]
        params = BodyParams.cat([flat[k].params for k in chosen])
        for person, k in zip(people, chosen):  # the fit and the visibility read the chosen labels
            person.mirror_keypoints(torch.tensor([flat[k].mirrored]))
        obs = Observation.stack(people)
        loss_init = [float(scored.total[k]) for k in first]
        finite = torch.isfinite(scored.total[chosen])
        iters = self.cfg.max_iters if max_iters is None else max_iters
        iterations = 0
        obs.shaped = self.body.shaped_subset(params.betas, self.nbv.kernel_vertex_ids)
        if iterate and iters > 0 and bool(finite.any()):
            budget = self.cfg.budget_ms if budget_ms is None else budget_ms
            optimise = self._optimise_lbfgs if self.cfg.optimizer == "lbfgs" else self._optimise
            params, iterations = optimise(params, obs, kp_weight, start, budget, iters, finite)
        with torch.no_grad():
            final = self.evaluate(params, obs, kp_weight)
        ms = (time.perf_counter() - start) * 1e3 / len(requests)
        results = []
        for i, offset in enumerate(offsets):
            result = self._assess(params.index(i), people[i], final.select(i))
            result.depth_offset_m = offset
            result.info = FitInfo(iterations=iterations if bool(finite[i]) else 0, loss_init=loss_init[i],
                                  loss=float(final.total[i]), ms=ms, hypothesis=flat[chosen[i]].name)
            results.append(result)
        return results

    def _observation(self, net, request: FitRequest) -> Observation:
        """One person's Observation: network outputs, external keypoints, usable depth."""
        obs = self.observe(net.features[request.index], net.heatmaps[request.index], request.camera)
        if request.keypoints is not None:  # an external 2D source (e.g. BlazePose) replaces the heatmaps
            obs.keypoints, obs.keypoint_conf = request.keypoints
        depth = request.depth
        if depth is not None and depth.valid_pixels >= self.cfg.depth_min_pixels:
            obs.depth = depth
        obs.mask = request.mask if request.mask is not None else (None if depth is None else depth.mask)
        return obs

    def _candidates(self, request: FitRequest, obs: Observation, iterate: bool
                    ) -> tuple[float, list[StartHypothesis]]:
        """(metres ``init`` was moved along its ray by depth, nan if not; the start hypotheses,
        ``init`` first). With ``fit.mirrored_keypoints`` the front/back-turned ones (the flipped
        twin, a caller's turned reading) read the keypoints with left and right swapped."""
        place = obs.depth is not None and self.cfg.depth_start
        mirror = self.cfg.mirrored_keypoints
        init, offset = request.init, float("nan")
        if place:  # the flipped twin and the turns keep init's pelvis: placed with it
            init, offset = self.place_by_depth(init, obs)
        candidates = [StartHypothesis(init, "start")]
        if iterate:
            candidates.extend(StartHypothesis(self.place_by_depth(a, obs)[0] if place else a, "alternative",
                                              mirror and request.alternatives_mirrored)
                              for a in request.alternatives)
            if request.turns and self.cfg.flip_hypothesis:
                candidates.append(StartHypothesis(flipped_twin(init), "flipped twin", mirror))
            if request.turns:
                candidates.extend(StartHypothesis(t, f"turned {360 * (k + 1) // self.cfg.turn_hypotheses} deg")
                                  for k, t in enumerate(turn_hypotheses(init, self.cfg.turn_hypotheses)))
            if request.warm_start is not None:
                warm = warm_from_person(request.warm_start, init)
                candidates.append(StartHypothesis(self.place_by_depth(warm, obs)[0] if place else warm,
                                                  "previous frame"))
        return offset, candidates

    def _optimise(self, params: BodyParams, obs: Observation, kp_weight: float,
                  start: float, budget_ms: float, max_iters: int,
                  active: Optional[torch.Tensor] = None) -> tuple[BodyParams, int]:
        """Two-stage Adam of B bodies within ``max_iters`` and the time budget; returns each
        body's best iterate (a body not ``active``, B bool, keeps its start).

        Stage 1 moves global orientation + translation, stage 2 global orientation + body pose
        (shape stays at the regressor's estimate, as in the paper). Which kernels each pixel
        keeps is selected afresh every ``fit.reselect_every`` iterations and reused in between
        (the terms are always exact for the current body; docs/performance.md).
        """
        cfg = self.cfg
        run = _Iterates(params, active)
        groups = [{"params": [run.orient], "lr": cfg.lr},
                  {"params": [run.transl_n], "lr": cfg.transl_lr},
                  {"params": [run.pose], "lr": 0.0}]
        optim = torch.optim.Adam(groups, betas=(0.9, 0.99), fused=True)  # one kernel per step, not per tensor
        stage1 = int(round(max_iters * cfg.stage1_fraction))
        done, selection = 0, None
        for it in range(max_iters):
            if time.perf_counter() - start > budget_ms / 1e3:
                break
            if it == stage1:
                optim.param_groups[1]["lr"] = 0.0
                optim.param_groups[2]["lr"] = cfg.lr
            optim.zero_grad(set_to_none=True)
            reuse = selection if it % max(cfg.reselect_every, 1) else None
            ev = self.evaluate(run.params(), obs, kp_weight, outlier=False, kernel_ids=reuse)
            selection = ev.render.kernel_ids
            run.record(ev.total)
            ev.total.sum().backward()
            optim.step()
            done = it + 1
        # The last step's result has not been evaluated; the best *evaluated* iterate is returned.
        return run.best_params(), done

    def _optimise_lbfgs(self, params: BodyParams, obs: Observation, kp_weight: float,
                        start: float, budget_ms: float, max_iters: int,
                        active: Optional[torch.Tensor] = None) -> tuple[BodyParams, int]:
        """The same two stages and objective as ``_optimise`` with L-BFGS (strong-Wolfe line
        search) instead of Adam (``fit.optimizer: lbfgs``), for the time-to-accuracy comparison
        of issue 14. ``max_iters`` counts objective evaluations (each one forward + backward, as
        one Adam iteration), split between the stages like Adam's iterations; the best
        evaluated iterate is returned. One line search serves the whole batch."""
        run = _Iterates(params, active)
        evaluations = 0
        stage1 = int(round(max_iters * self.cfg.stage1_fraction))
        for variables, limit in (([run.orient, run.transl_n], stage1), ([run.orient, run.pose], max_iters)):
            if evaluations >= limit or time.perf_counter() - start > budget_ms / 1e3:
                continue
            optim = torch.optim.LBFGS(variables, lr=1.0, max_iter=limit, max_eval=limit, history_size=10,
                                      line_search_fn="strong_wolfe")

            def closure() -> torch.Tensor:
                nonlocal evaluations
                if evaluations >= limit or time.perf_counter() - start > budget_ms / 1e3:
                    raise _Exhausted  # the line search may ask for more than max_eval
                optim.zero_grad(set_to_none=True)
                ev = self.evaluate(run.params(), obs, kp_weight, outlier=False)
                run.record(ev.total)
                evaluations += 1
                total = ev.total.sum()
                total.backward()
                return total

            try:
                optim.step(closure)
            except _Exhausted:
                pass
        return run.best_params(), evaluations

    # -- what the fit says about each joint ----------------------------------------------------
    def _assess(self, params: BodyParams, obs: Observation, ev: Evaluation) -> FitResult:
        """Per-joint visibility, occlusion class and confidence from the final render.

        Per kernel, at the pixel its centre projects to (feature resolution):
        - self-visibility: its depth is not behind the rendered surface depth there (a soft
          z-test), and it is inside the image. Resolution-independent, unlike peak render weights,
          which for centimetre kernels on coarse feature maps depend on sub-pixel position;
        - occlusion: the outlier probability of that pixel (the occluder explains it better);
        - agreement: cosine of the observed feature there with the kernel's model feature.
        A joint averages its nearest kernels (rest pose). Its visibility is a calibrated logistic
        function of those shares, its 2D keypoint confidence and, where the observation has them,
        BlazePose's person mask and the depth (``_visibility_cues``, ``fitting/visibility.py``).
        Confidence is a logistic function of the agreement at the visible joints (calibrated on
        the benchmark, docs/results.md).
        """
        cfg = self.cfg
        means = ev.means[0]  # K x 3
        cam = obs.feature_camera
        h, w = obs.features.shape[1:3]
        uv = project_points(means, cam.fx, cam.fy, cam.cx, cam.cy)
        surface = (rendered_depth(ev.render, ev.means) if ev.depth is None else ev.depth)[0]  # h x w
        selfvis = self._self_visible(means, uv, surface)
        occ = sample_at(ev.outlier[0][..., None], uv, h, w)[:, 0]
        agree = (sample_at(obs.features[0], uv, h, w) * ev.kernel_features[0]).sum(-1)
        nbrs = self.joint_kernels
        cues, distance = self._visibility_cues(obs, ev, uv, surface, selfvis, occ, agree)
        logit = model_for(cfg.keypoint_source, obs.depth is not None, cfg.visibility_logit,
                          cfg.visibility_logit_image, cfg.visibility_logit_depth)
        visibility = visibility_from_cues(cues, logit)
        seen = selfvis[nbrs] * (1.0 - occ[nbrs])
        joint_agree = (agree[nbrs] * seen).sum(1) / seen.sum(1).clamp(min=1e-6)
        joint_conf = torch.sigmoid(cfg.confidence_scale * (joint_agree - cfg.confidence_offset)) * visibility
        state = joint_states(visibility, cues, cfg.visible_threshold)
        seen_joints = visibility >= cfg.visible_threshold
        agreement = float(joint_agree[seen_joints].mean()) if bool(seen_joints.any()) else float("nan")
        confidence = confidence_from_agreement(agreement, cfg.confidence_scale, cfg.confidence_offset)
        return FitResult(params=params.detach(), info=FitInfo(),
                         joint_visibility=visibility.double().numpy(), joint_state=state,
                         joint_confidence=joint_conf.double().numpy(), confidence=confidence,
                         agreement=agreement, visibility_cues=cues.double().numpy(),
                         occluder_distance_m=distance)

    @staticmethod
    def _self_visible(means: torch.Tensor, uv: torch.Tensor, surface: torch.Tensor) -> torch.Tensor:
        """K soft z-test of each kernel (K x 3 centres at K x 2 pixels) against the rendered
        surface depth (h x w) at its pixel (0 outside the image)."""
        h, w = surface.shape
        depth_gap = sample_at(surface[..., None], uv, h, w)[:, 0] - means[:, 2]
        return torch.sigmoid((depth_gap + SURFACE_TOLERANCE_M) / SURFACE_SOFTNESS_M) * inside_grid(uv, h, w)

    def _visibility_cues(self, obs: Observation, ev: Evaluation, uv: torch.Tensor, surface: torch.Tensor,
                         selfvis: torch.Tensor, occ: torch.Tensor, agree: torch.Tensor
                         ) -> tuple[torch.Tensor, Optional[np.ndarray]]:
        """24 x ``len(VISIBILITY_CUES)`` cues (``fitting/visibility.py``) and, with depth, the
        occluder distance per joint (``_depth_occlusion``; None without depth). ``surface``: the
        rendered body's depth (h x w) of ``ev``."""
        cfg = self.cfg
        h, w = obs.features.shape[1:3]
        nbrs = self.joint_kernels
        sv = (selfvis[nbrs].mean(1) / cfg.facing_fraction).clamp(0, 1)  # 24
        # Around an unhidden joint about half of the surface faces the camera (the rest is its own
        # back side), so the self-visible fraction is normalised by that before combining.
        occluded = (selfvis[nbrs] * occ[nbrs]).sum(1) / selfvis[nbrs].sum(1).clamp(min=1e-6)
        cam = obs.feature_camera
        joints = ev.joints[0].detach()  # 24 x 3, as the evaluation posed them
        juv = project_points(joints, cam.fx, cam.fy, cam.cx, cam.cy)
        inside = inside_grid(juv, h, w).to(sv)
        joint_outlier = sample_at(ev.outlier[0][..., None], juv, h, w)[:, 0]
        kernel_mask = joint_mask = None
        if obs.mask is not None:
            mask = obs.mask[0][..., None].to(sv)
            kernel_mask = sample_at(mask, uv, h, w)[:, 0][nbrs]
            joint_mask = sample_at(mask, juv, h, w)[:, 0]
        image = image_cues(obs.mask, kernel_mask, joint_mask, joint_outlier, inside, selfvis[nbrs])
        crop = obs.camera
        projected = project_points(joints, crop.fx, crop.fy, crop.cx, crop.cy)
        fit = fit_cues(agree[nbrs], occ[nbrs], selfvis[nbrs], obs.keypoints[0].to(sv), projected, crop.width)
        # Where the 2D detector puts the joint, on the feature grid (the fit's joint can be off).
        kuv = (obs.keypoints[0].to(sv) - torch.tensor([crop.cx, crop.cy])) / torch.tensor([crop.fx, crop.fy])
        kuv = kuv * torch.tensor([cam.fx, cam.fy]) + torch.tensor([cam.cx, cam.cy])
        around = torch.nn.functional.max_pool2d(ev.outlier[0][None, None], 3, 1, 1)[0, 0]
        where = torch.stack([sample_at(ev.outlier[0][..., None], kuv, h, w)[:, 0],
                             sample_at(around[..., None], juv, h, w)[:, 0],
                             behind_render_cue(joints[:, 2], sample_at(surface[..., None], juv, h, w)[:, 0])], -1)
        blocked, distance = self._depth_occlusion(obs, ev.means[0], uv, selfvis)
        gaps = [self._joints_behind_surface(joints, at, obs) for at in (juv, kuv)]
        cues = torch.cat([torch.stack([sv, occluded, obs.keypoint_conf[0].to(sv)], -1), image, fit, where,
                          torch.stack([blocked] + gaps, -1)], -1)
        return cues, distance

    def _joints_behind_surface(self, joints: torch.Tensor, at: torch.Tensor, obs: Observation) -> torch.Tensor:
        """Per joint (24 x 3 camera-frame centres) how far, in metres, it lies behind the surface
        the sensor sees at feature pixel ``at`` (24 x 2: its projection or its 2D keypoint; its own
        body's surface or an object's; ``depth_gap_cue``); zeros without depth."""
        if obs.depth is None:
            return torch.zeros(NUM_JOINTS)
        return depth_gap_cue(joints[:, 2], sample_nearest(obs.depth.depth[0], at))

    def _depth_occlusion(self, obs: Observation, means: torch.Tensor, uv: torch.Tensor,
                         selfvis: torch.Tensor) -> tuple[torch.Tensor, Optional[np.ndarray]]:
        """Per joint (24) the share of its self-visible kernels behind which the sensor sees a
        surface more than ``fit.depth_occluder_margin_m`` nearer (an object in front), and the
        median distance of that surface (24, nan where none); zeros and None without depth."""
        if obs.depth is None:
            return torch.zeros(NUM_JOINTS), None
        seen = sample_nearest(obs.depth.depth[0], uv)  # K observed depth at each kernel
        blocked = (torch.isfinite(seen) & (seen < means[:, 2] - self.cfg.depth_occluder_margin_m)).to(selfvis)
        nbrs = self.joint_kernels
        weight = selfvis[nbrs]
        share = (weight * blocked[nbrs]).sum(1) / weight.sum(1).clamp(min=1e-6)
        distance = np.full(NUM_JOINTS, np.nan)
        for j in torch.nonzero(share >= 0.5).flatten().tolist():
            distance[j] = float(seen[nbrs[j]][blocked[nbrs[j]] > 0].median())
        return share, distance


def joint_states(visibility: torch.Tensor, cues: torch.Tensor, threshold: float) -> np.ndarray:
    """Per joint VISIBLE / OCCLUDED_BY_OBJECT / SELF_OCCLUDED from its visibility and cues
    (``VISIBILITY_CUES``): a hidden joint is hidden by an object when its own surface faces the
    camera (self-visible), when the outlier map explains its pixel away, or when depth sees
    something in front of it; else by the body. (BlazePose's mask is no help here: on the
    benchmark it covers what hides the person too, docs/visibility_landmarks.md.)"""
    col = {name: cues[:, i] for i, name in enumerate(VISIBILITY_CUES)}
    state = np.full(NUM_JOINTS, VISIBLE)
    hidden = (visibility < threshold).numpy()
    state[hidden] = SELF_OCCLUDED
    by_object = ((col["self_visible"] >= threshold) | (col["outlier_at_joint"] >= 0.5)
                 | (col["depth_occluded"] >= 0.5)).numpy()
    state[by_object & hidden] = OCCLUDED_BY_OBJECT
    return state


def inside_grid(uv: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """N bool: the N x 2 pixel positions fall on the height x width grid (pixel centres at
    integers, so a pixel spans -0.5 .. +0.5 around its index)."""
    return (uv[:, 0] > -0.5) & (uv[:, 0] < width - 0.5) & (uv[:, 1] > -0.5) & (uv[:, 1] < height - 0.5)


def rendered_depth(render: RenderOutput, means: torch.Tensor) -> torch.Tensor:
    """B x H x W weighted depth of the kept kernels (inf where nothing is rendered)."""
    ids = render.kernel_ids.clamp(min=0)  # B x H x W x M
    batch = means.shape[0]
    z = means[..., 2]  # B x K
    depth = torch.gather(z, 1, ids.reshape(batch, -1)).reshape(ids.shape)
    weight = render.weights * (render.kernel_ids >= 0)
    total = weight.sum(-1)
    return torch.where(total > 1e-6, (weight * depth).sum(-1) / total.clamp(min=1e-6),
                       torch.full_like(total, math.inf))


def sample_at(image: torch.Tensor, uv: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear samples of an H x W x C image at N x 2 pixel positions (border-clamped) -> N x C.

    Non-finite image values (e.g. inf depth) are replaced by a large finite number first.
    """
    grid = torch.stack([(uv[:, 0] + 0.5) / width * 2 - 1, (uv[:, 1] + 0.5) / height * 2 - 1], -1)
    img = torch.nan_to_num(image, posinf=1e6).permute(2, 0, 1)[None]
    out = torch.nn.functional.grid_sample(img, grid[None, :, None, :].to(img.dtype), mode="bilinear",
                                          padding_mode="border", align_corners=False)
    return out[0, :, :, 0].T


def sample_nearest(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Nearest-pixel samples of an h x w map at N x 2 pixel positions -> N (nan outside)."""
    h, w = image.shape
    col, row = torch.round(uv[:, 0]).long(), torch.round(uv[:, 1]).long()
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    values = image[row.clamp(0, h - 1), col.clamp(0, w - 1)]
    return torch.where(inside, values, torch.full_like(values, float("nan")))


def confidence_from_agreement(agreement: float, scale: float, offset: float) -> float:
    """Logistic map of feature agreement to confidence; 0 when nothing of the body is visible."""
    if not math.isfinite(agreement):
        return 0.0
    return 1.0 / (1.0 + math.exp(-scale * (agreement - offset)))


def bank_for_bins(bank: torch.Tensor, bins: int) -> torch.Tensor:
    """A trained K x O x D bank for an NBV with ``bins`` orientation bins.

    Equal O passes through; ``bins == 1`` averages the O bins of each kernel (renormalised), the
    pose-independent ablation of a model trained with orientation bins. Other changes of O need
    a model trained for them.
    """
    if bank.shape[1] == bins:
        return bank
    if bins == 1:
        return torch.nn.functional.normalize(bank.mean(1, keepdim=True), dim=-1)
    raise ValueError(f"the weights have {bank.shape[1]} orientation bins; NBVConfig.orientation_bins="
                     f"{bins} needs a model trained with {bins} bins")


def warm_from_person(person: Person, init: BodyParams) -> BodyParams:
    """The previous frame's body of a track as a start hypothesis (shape from this frame)."""
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=init.transl.dtype)[None]  # noqa: E731
    return BodyParams(init.betas.clone(), as_t(person.global_orient), as_t(person.body_pose),
                      as_t(person.transl))

