"""An initial body from BlazePose's landmarks: our body model fitted to its 2D and world landmarks.

Why: the regression head's body starts the fit on the wrong side of the person in ~40 % of clean
crops (docs/fit_tuning.md); BlazePose knows left from right far more often and gives metric 3D
world landmarks. This module turns one frame's ``PoseLandmarks`` into ``BodyParams`` (docs/
initial_body.md), in named stages, batched over people x hypotheses:

1. ``observations``: per person the 2D landmarks (pixels), world landmarks (metres, hip-centre
   origin, camera axes, already rotated onto the ray through the crop centre by
   ``keypoints/landmarks.py``) and per-landmark weights (visibility x presence); too few
   confident landmarks -> the person is flagged for the caller's fallback (the regression head).
2. ``turned``: the second hypothesis of each person: left/right labels swapped and the world
   landmarks reflected front-to-back along the viewing ray. Both readings project to the same
   image; keypoints alone cannot tell which is right (BlazePose confuses them at facing angles
   near front or back on our face-less renders).
3. ``initialise``: the prior's mean pose; global orientation in closed form from the torso
   (``kabsch`` of hips + shoulders onto the world landmarks); thighs, upper arms, shins and
   forearms aimed along their world landmarks (``_aim_limbs``: smallest rotations, so a short
   optimisation suffices); full-perspective translation from the 2D landmarks and the world
   landmarks' metric positions (linear least squares on the ray constraints
   (u - cx) Z - fx X = 0, (v - cy) Z - fy Y = 0) with the real intrinsics.
4. ``optimise``: a short deterministic Adam run on orientation, body pose, shape and translation
   (depth in log units): robust 2D reprojection + robust world-landmark terms (both through the
   learned landmark regressor, ``body/landmark_regressor.py``) + the stored pose prior + joint
   limits + a shape prior. Adam updates each element alone, so people never influence each
   other (batch == one by one); L-BFGS couples them through its line search and converged worse
   here (docs/initial_body.md), so it is only an option.
5. ``choose``: BlazePose's reading, the turned one as ``alternative``; with
   ``hypothesis_choice: score`` the turned one when its final objective is lower by a margin
   (optionally with the silhouette overlap with BlazePose's mask, ``silhouette_iou``). Each
   person's info carries the evidence for a later decision (objectives, IoU, face-landmark
   visibility, facing direction).

Input is duck-typed (``LandmarkObservation``) so this runtime unit does not import keypoints/.
Settings: ``config.LandmarkFitConfig`` (the pipeline's ``landmark_fit`` section), re-exported here.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence

import numpy as np
import torch

from nbf_ros.body.landmark_regressor import LandmarkRegressor, load_landmark_regressor
from nbf_ros.body.model import BodyModel
from nbf_ros.body.pose_limits import joint_limit_violation
from nbf_ros.config import FitConfig, LandmarkFitConfig, resolve_path
from nbf_ros.fitting.losses import GaussianPosePrior
from nbf_ros.fitting.pose_prior import load_pose_prior
from nbf_ros.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from nbf_ros.types import NUM_BETAS, BodyParams, CameraIntrinsics

TORSO = ("left_hip", "right_hip", "left_shoulder", "right_shoulder")
HIPS = ("left_hip", "right_hip")
FACE = ("nose", "left_eye", "right_eye", "mouth_left", "mouth_right")
# Limb bones aimed at the world landmarks before the optimisation (``_aim_limbs``): per stage,
# (SMPL joint whose rotation moves the bone, (start landmark, end landmark)); a stage's joints
# are independent of each other, the second stage's parents are the first stage's.
LIMB_STAGES: tuple[tuple[tuple[int, tuple[str, str]], ...], ...] = (
    ((1, ("left_hip", "left_knee")), (2, ("right_hip", "right_knee")),
     (16, ("left_shoulder", "left_elbow")), (17, ("right_shoulder", "right_elbow"))),
    ((4, ("left_knee", "left_ankle")), (5, ("right_knee", "right_ankle")),
     (18, ("left_elbow", "left_wrist")), (19, ("right_elbow", "right_wrist"))),
)
MASK_GRID = 64  # silhouettes are compared on a 64 x 64 grid over BlazePose's crop
MIN_DEPTH_M = 0.3


class LandmarkObservation(Protocol):
    """What the fit reads of one person (``keypoints.landmarks.PoseLandmarks`` has it all).

    landmarks: 33 x 3 (u, v image pixels; z unused). visibility, presence: (33,) in [0, 1].
    world: 33 x 3 metres, hip-centre origin, camera optical axes. roi: has ``centre`` (2,),
    ``side`` and ``image_to_crop()`` (2 x 3), for the mask. mask_logits: 256 x 256 over the ROI
    crop, or None.
    """

    landmarks: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    world: np.ndarray


@dataclass
class LandmarkFitInfo:
    """What the fit did for one person.

    ok: False -> ``params`` holds no usable fit for this person (use the fallback; ``reason``
    says why). hypothesis: which reading ``params`` holds, 0 = BlazePose's, 1 = the turned one.
    Per hypothesis (H,), in the order BlazePose's, turned: scores (lower = chosen under
    ``hypothesis_choice: score``), losses (final objectives), iou (silhouette IoU with the mask,
    nan without one or when not computed), facing (cosine between the body's front and the
    direction to the camera). confident: landmarks with confidence >= min_confidence.
    face_visibility: mean visibility of the nose, eyes and mouth corners (real faces raise it
    when a person faces the camera; on our face-less renders it is ~1 whatever the facing).
    """

    ok: bool
    reason: str = ""
    confident: int = 0
    hypothesis: int = 0
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iou: np.ndarray = field(default_factory=lambda: np.zeros(0))
    facing: np.ndarray = field(default_factory=lambda: np.zeros(0))
    face_visibility: float = float("nan")


@dataclass
class LandmarkFitResult:
    """Bodies for N people (rows of people flagged not ok hold a fit to too few landmarks and
    must be replaced: ``with_fallback``).

    params: the chosen hypothesis per person (batch N). alternative: the other one (batch N;
    equal to ``params`` when only one was fitted). info: per person. ms: wall time of ``fit``.
    """

    params: BodyParams
    alternative: BodyParams
    info: list[LandmarkFitInfo]
    ms: float = 0.0

    @property
    def ok(self) -> np.ndarray:
        """(N,) bool: the person got a body from the landmarks."""
        return np.array([i.ok for i in self.info], bool)

    def with_fallback(self, fallback: BodyParams) -> BodyParams:
        """``params`` with the rows of flagged people taken from ``fallback`` (batch N)."""
        if fallback.batch_size != self.params.batch_size:
            raise ValueError(f"fallback has {fallback.batch_size} bodies, expected {self.params.batch_size}")
        keep = torch.as_tensor(self.ok, device=self.params.transl.device)[:, None]
        pick = lambda a, b: torch.where(keep, a, b.to(a))  # noqa: E731
        return BodyParams(*(pick(a, b) for a, b in zip(self.params.as_tuple(), fallback.as_tuple())))


@dataclass
class Observations:
    """Stage 1's tensors for B = people x hypotheses (float32).

    uv: B x 33 x 2 pixels. weight: B x 33. world: B x 33 x 3 hip-centred metres.
    intrinsics: B x 4 (fx, fy, cx, cy). scale: (B,) the person's 2D size in pixels.
    """

    uv: torch.Tensor
    weight: torch.Tensor
    world: torch.Tensor
    intrinsics: torch.Tensor
    scale: torch.Tensor


def kabsch(source: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Rotation R (B x 3 x 3) minimising sum_k w_k |R (s_k - s_bar) - (t_k - t_bar)|^2.

    Args:
        source, target: B x K x 3 (K >= 3, not collinear). weight: B x K (default 1).
    The weighted centroids are removed; the reflection case is fixed by the determinant sign.
    """
    if source.shape != target.shape or source.ndim != 3 or source.shape[-1] != 3:
        raise ValueError(f"source and target must both be B x K x 3, got {tuple(source.shape)}, {tuple(target.shape)}")
    w = torch.ones(source.shape[:2], dtype=source.dtype) if weight is None else weight
    w = w / w.sum(1, keepdim=True).clamp(min=1e-12)
    s = source - (w[..., None] * source).sum(1, keepdim=True)
    t = target - (w[..., None] * target).sum(1, keepdim=True)
    cov = torch.einsum("bk,bki,bkj->bij", w, t, s)  # sum_k w_k t_k s_k^T
    u, _, vh = torch.linalg.svd(cov)
    d = torch.ones(source.shape[0], 3, dtype=source.dtype)
    d[:, 2] = torch.sign(torch.linalg.det(u @ vh))
    return u @ torch.diag_embed(d) @ vh


def ray_translation(points: torch.Tensor, uv: torch.Tensor, intrinsics: torch.Tensor,
                    weight: torch.Tensor) -> torch.Tensor:
    """Translation t (B x 3) that puts camera-frame points P_k + t on the rays of pixels uv_k.

    Linear least squares on ((u - cx) / fx) (Z + tz) - (X + tx) = 0 and the same in y (metric
    residuals at the point's depth), weighted by ``weight`` (B x K). points: B x K x 3.
    """
    fx, fy, cx, cy = intrinsics.unbind(-1)
    rx = (uv[..., 0] - cx[:, None]) / fx[:, None]  # B x K
    ry = (uv[..., 1] - cy[:, None]) / fy[:, None]
    zero, one = torch.zeros_like(rx), torch.ones_like(rx)
    # rows: [-1, 0, rx] t = X - rx Z ; [0, -1, ry] t = Y - ry Z
    a = torch.cat([torch.stack([-one, zero, rx], -1), torch.stack([zero, -one, ry], -1)], 1)  # B x 2K x 3
    b = torch.cat([points[..., 0] - rx * points[..., 2], points[..., 1] - ry * points[..., 2]], 1)
    sw = torch.cat([weight, weight], 1).clamp(min=0).sqrt()
    a, b = a * sw[..., None], b * sw
    normal = a.transpose(1, 2) @ a + 1e-9 * torch.eye(3, dtype=a.dtype)
    return torch.linalg.solve(normal, (a.transpose(1, 2) @ b[..., None]))[..., 0]


def rotation_between(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """B x 3 x 3 smallest rotations taking the directions of B x 3 ``source`` onto ``target``
    (identity where either is zero; an arbitrary half turn for opposite directions)."""
    u = source / source.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    v = target / target.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    axis = torch.cross(u, v, dim=-1)
    sin, cos = axis.norm(dim=-1, keepdim=True), (u * v).sum(-1, keepdim=True)
    angle = torch.atan2(sin, cos)
    fallback = torch.cross(u, torch.tensor([1.0, 0.0, 0.0], dtype=u.dtype).expand_as(u), dim=-1)
    fallback = torch.where(fallback.norm(dim=-1, keepdim=True) > 1e-3, fallback,
                           torch.cross(u, torch.tensor([0.0, 1.0, 0.0], dtype=u.dtype).expand_as(u), dim=-1))
    direction = torch.where(sin > 1e-6, axis, fallback)
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return axis_angle_to_matrix(direction * angle)


def _ancestor_jumps(parents: list[int]) -> list[torch.Tensor]:
    """Index tensors (25,) of pointer jumping over a kinematic tree with J joints: round r maps
    each entry to its 2^r-th ancestor (J = the identity entry past the root, its own ancestor)."""
    count = len(parents)
    ancestor = np.array([p if p >= 0 else count for p in parents] + [count])
    jumps = []
    while (ancestor[:count] != count).any():
        jumps.append(torch.from_numpy(ancestor.copy()))
        ancestor = ancestor[ancestor]
    jumps.append(torch.from_numpy(ancestor.copy()))  # the last round composes the root paths
    return jumps


def geman_mcclure(residual_sq: torch.Tensor, sigma: float) -> torch.Tensor:
    """rho(r) = r^2 / (r^2 + sigma^2) of squared residuals (elementwise, in [0, 1)): bounded,
    so a wrong BlazePose landmark (a guessed wrist, a swapped foot) pulls with limited force."""
    return residual_sq / (residual_sq + sigma * sigma)


class LandmarkBodyFitter:
    """Fits our body model to BlazePose's landmarks, for all people of a frame at once.

    Stateless across calls (every call starts from the landmarks); holds only the body model,
    the landmark regressor, the pose prior and precomputed shape bases of the regressor's vertices.
    """

    def __init__(self, body: BodyModel, regressor: LandmarkRegressor, prior: GaussianPosePrior,
                 config: LandmarkFitConfig = LandmarkFitConfig()) -> None:
        self.body, self.regressor, self.prior, self.config = body, regressor, prior, config
        names = regressor.names
        self.torso = torch.tensor([names.index(n) for n in TORSO])
        self.hips = torch.tensor([names.index(n) for n in HIPS])
        self.face = np.array([names.index(n) for n in FACE])
        self.mirror = torch.from_numpy(regressor.mirror_permutation())
        dtype = body.smpl.v_template.dtype
        ids = torch.from_numpy(regressor.vertex_ids)
        self.vertex_ids = ids
        self.landmark_matrix = torch.from_numpy(regressor.subset_matrix()).to(dtype)  # 33 x N
        # The subset's shape-independent bases (the slow twin ``landmarks_reference`` poses them
        # with BodyModel.pose_subset; the fast path folds them below).
        self.basis = body.subset_basis(ids)
        basis = self.basis
        # Fast path (``landmarks``): LBS is linear in the vertices, so the landmark rows fold
        # into sums per (landmark k, joint j) pair: a_kj = sum_n M_kn W_nj and the rest points
        # c_kj = sum_n M_kn W_nj v_n with their shape and pose-corrective bases. Then
        # L_k = sum_j R_j (c_kj + d_kj(theta)) + a_kj t_j, with (R_j, t_j) the joints' LBS
        # transforms: one small kinematic chain per iteration instead of skinning N vertices.
        # Only pairs with a_kj > 0 are kept (a landmark's vertices follow a few joints).
        mw = torch.einsum("kn,nj->kjn", self.landmark_matrix, basis.lbs_weights)  # 33 x 24 x N
        pairs = torch.nonzero(mw.sum(-1) > 1e-8)  # P x 2 (landmark, joint)
        k_idx, j_idx = pairs[:, 0], pairs[:, 1]
        mw = mw[k_idx, j_idx]  # P x N
        self.pair_joint = j_idx
        self.pair_a = mw.sum(-1)  # (P,)
        self.pair_to_landmark = torch.zeros(len(regressor.names), len(pairs), dtype=dtype)
        self.pair_to_landmark[k_idx, torch.arange(len(pairs))] = 1.0  # 33 x P
        self.pair_c = mw @ basis.v_template  # P x 3
        self.pair_c_shape = torch.einsum("pn,ncb->bpc", mw, basis.v_shapedirs).reshape(body.num_betas, -1)
        self.pair_d_pose = torch.einsum("pn,qnc->qpc", mw, basis.posedirs).reshape(basis.posedirs.shape[0], -1)
        self.parents = [int(p) for p in body.parents]
        count = len(self.parents)
        self.parent_index = torch.tensor([p if p >= 0 else count for p in self.parents])
        self.is_root = self.parent_index == count
        self.jumps = _ancestor_jumps(self.parents)

    @classmethod
    def from_config(cls, body: BodyModel, config: LandmarkFitConfig = LandmarkFitConfig(),
                    pose_prior: Optional[GaussianPosePrior] = None) -> "LandmarkBodyFitter":
        """Load the regressor the config names (one-line errors if unusable). ``pose_prior``: the
        NBF fitter's (``Fitter.pose_prior``, from ``fit.pose_prior_path``), shared rather than
        read twice; loaded from the default ``fit.pose_prior_path`` when not given."""
        regressor = load_landmark_regressor(resolve_path(config.regressor_path), body.num_vertices)
        if pose_prior is None:
            pose_prior = load_pose_prior(resolve_path(FitConfig().pose_prior_path))
        return cls(body, regressor, pose_prior, config)

    # -- the model's landmarks ----------------------------------------------------------------
    def landmarks(self, params: BodyParams) -> torch.Tensor:
        """B x 33 x 3 regressed landmarks of posed bodies (camera frame, metres, differentiable).

        The fast path (folded LBS, level-by-level kinematic chain); ``landmarks_reference`` is
        its slow twin through ``BodyModel.pose_subset`` (same numbers, tests/test_from_landmarks.py).
        """
        batch = params.batch_size
        betas = params.betas
        rest_joints = self.basis.rest_joints(betas)  # B x 24 x 3
        full_pose = torch.cat([params.global_orient, params.body_pose], 1).reshape(batch, -1, 3)
        local = axis_angle_to_matrix(full_pose)  # B x 24 x 3 x 3
        rot, joints = self._chain(local, rest_joints)
        shift = joints - (rot @ rest_joints[..., None])[..., 0]  # B x 24 x 3: t_j of the LBS transform
        eye = torch.eye(3, dtype=local.dtype)
        pose_feature = (local[:, 1:] - eye).reshape(batch, -1)  # B x 207
        pairs = len(self.pair_joint)
        rest = (self.pair_c + (betas @ self.pair_c_shape + pose_feature @ self.pair_d_pose).reshape(batch, pairs, 3))
        # per pair p = (k, j): R_j rest_p + a_p t_j, then summed into its landmark k
        moved = (rot[:, self.pair_joint] @ rest[..., None])[..., 0] + self.pair_a[:, None] * shift[:, self.pair_joint]
        return self.pair_to_landmark @ moved + params.transl[:, None]

    def _chain(self, local: torch.Tensor, rest_joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward kinematics: B x 24 x 3 x 3 global rotations and B x 24 x 3 posed joints (no
        translation) from local rotations and rest joints.

        By pointer jumping: every joint holds the transform from its current ancestor's frame,
        (R, t) composed with the ancestor's own, then the ancestor jumps to its ancestor. After
        ceil(log2(depth + 1)) rounds every joint holds its global transform: 4 rounds of 24-joint
        products for SMPL instead of 23 sequential steps (the per-op cost dominates on a CPU).
        A 25th entry, the identity, is every path's end.
        """
        batch = local.shape[0]
        parent = self.parent_index  # (24,), the root's parent = the identity entry
        t = rest_joints - torch.where(self.is_root[:, None], torch.zeros_like(rest_joints[:1]),
                                      rest_joints[:, parent.clamp(max=local.shape[1] - 1)])
        eye = torch.eye(3, dtype=local.dtype).expand(batch, 1, 3, 3)
        rot = torch.cat([local, eye], 1)  # B x 25 x 3 x 3
        t = torch.cat([t, torch.zeros_like(t[:, :1])], 1)  # B x 25 x 3
        for ancestor in self.jumps:
            rot_a, t_a = rot[:, ancestor], t[:, ancestor]
            t = t_a + (rot_a @ t[..., None])[..., 0]
            rot = rot_a @ rot
        return rot[:, :-1], t[:, :-1]

    def landmarks_reference(self, params: BodyParams) -> torch.Tensor:
        """B x 33 x 3 landmarks through ``BodyModel.pose_subset`` (the slow twin of ``landmarks``)."""
        out = self.body.pose_subset(params, self.basis.shaped(params.betas))
        return torch.einsum("kn,bnc->bkc", self.landmark_matrix, out.vertices)

    # -- stages ---------------------------------------------------------------------------------
    def observations(self, people: Sequence[LandmarkObservation], cameras: Sequence[CameraIntrinsics]
                     ) -> tuple[Observations, list[LandmarkFitInfo]]:
        """Stage 1: per person tensors and who has enough confident landmarks."""
        cfg = self.config
        if len(people) != len(cameras):
            raise ValueError(f"{len(people)} people but {len(cameras)} cameras")
        uv, weight, world, intr, scale, info = [], [], [], [], [], []
        for person, cam in zip(people, cameras):
            lm = np.asarray(person.landmarks, np.float64)
            wl = np.asarray(person.world, np.float64)
            conf = np.clip(np.asarray(person.visibility, np.float64) * np.asarray(person.presence, np.float64), 0, 1)
            if lm.shape[0] != 33 or wl.shape != (33, 3) or conf.shape != (33,):
                raise ValueError(f"landmarks must be 33 x 2+, world 33 x 3, visibility/presence (33,); got "
                                 f"{lm.shape}, {wl.shape}, {conf.shape}")
            finite = np.isfinite(lm[:, :2]).all(1) & np.isfinite(wl).all(1) & np.isfinite(conf)
            conf = np.where(finite, conf, 0.0)
            lm, wl = np.where(finite[:, None], lm[:, :2], 0.0), np.where(finite[:, None], wl, 0.0)
            confident = int((conf >= cfg.min_confidence).sum())
            torso_ok = bool((conf[self.torso.numpy()] >= cfg.min_confidence).all())
            ok = confident >= cfg.min_landmarks and torso_ok and cam.is_valid()
            reason = "" if ok else ("invalid camera" if not cam.is_valid() else
                                    f"{confident} confident landmarks (< {cfg.min_landmarks})"
                                    if confident < cfg.min_landmarks else "a torso landmark is not confident")
            info.append(LandmarkFitInfo(ok=ok, reason=reason, confident=confident))
            w = np.maximum(conf, cfg.confidence_floor) * finite
            seen = lm[conf >= cfg.min_confidence] if confident >= 2 else lm[finite]
            extent = np.ptp(seen, axis=0).max() if len(seen) >= 2 else 1.0
            wl = wl - wl[self.hips.numpy()].mean(0)
            if cfg.world_depth_gain != 1.0:
                ray = np.array([(lm[self.hips.numpy(), 0].mean() - cam.cx) / cam.fx,
                                (lm[self.hips.numpy(), 1].mean() - cam.cy) / cam.fy, 1.0])
                ray /= np.linalg.norm(ray)
                wl = wl + (cfg.world_depth_gain - 1.0) * (wl @ ray)[:, None] * ray
            uv.append(lm), weight.append(w), world.append(wl)
            intr.append([cam.fx, cam.fy, cam.cx, cam.cy]), scale.append(max(float(extent), 1.0))
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        return Observations(t(uv).reshape(-1, 33, 2), t(weight).reshape(-1, 33), t(world).reshape(-1, 33, 3),
                            t(intr).reshape(-1, 4), t(scale).reshape(-1)), info

    def turned(self, obs: Observations) -> Observations:
        """Stage 2: the front/back-turned reading: left/right labels swapped and the world
        landmarks reflected along the viewing ray through the hip centre (same projection)."""
        perm = self.mirror
        world = obs.world[:, perm]
        fx, fy, cx, cy = obs.intrinsics.unbind(-1)
        hips_uv = obs.uv[:, self.hips].mean(1)
        ray = torch.stack([(hips_uv[:, 0] - cx) / fx, (hips_uv[:, 1] - cy) / fy, torch.ones_like(fx)], -1)
        ray = ray / ray.norm(dim=-1, keepdim=True)
        along = (world * ray[:, None]).sum(-1, keepdim=True)
        return Observations(obs.uv[:, perm], obs.weight[:, perm], world - 2.0 * along * ray[:, None],
                            obs.intrinsics, obs.scale)

    def initialise(self, obs: Observations) -> BodyParams:
        """Stage 3: mean pose, torso orientation (Kabsch) and ray translation, batch B."""
        batch = obs.uv.shape[0]
        dtype = self.basis.v_template.dtype
        pose = self.prior.mean.to(dtype).expand(batch, -1).clone()
        zero = BodyParams(torch.zeros(batch, NUM_BETAS, dtype=dtype), torch.zeros(batch, 3, dtype=dtype),
                          pose, torch.zeros(batch, 3, dtype=dtype))
        with torch.no_grad():
            rest = self.landmarks(zero)  # B x 33 x 3, orientation 0
            rest_rel = rest - rest[:, self.hips].mean(1, keepdim=True)
            torso_w = obs.weight[:, self.torso]
            rot = kabsch(rest_rel[:, self.torso], obs.world[:, self.torso], torso_w)
            orient = matrix_to_axis_angle(rot)
            posed = zero.replace(global_orient=orient)
            if self.config.limb_init:
                posed = self._aim_limbs(posed, obs)
            model = self.landmarks(posed)  # rotated about the pelvis, no translation
            hip_model = model[:, self.hips].mean(1)
            # Where the hip centre goes: the world landmarks (metric, full pose) on the rays.
            hip_at = ray_translation(obs.world, obs.uv, obs.intrinsics, obs.weight)
            depth_ok = hip_at[:, 2:3] >= MIN_DEPTH_M
            fallback = self._depth_from_scale(obs)
            hip_at = torch.where(depth_ok, hip_at, fallback)
        return posed.replace(transl=hip_at - hip_model)

    def _aim_limbs(self, params: BodyParams, obs: Observations) -> BodyParams:
        """Turn hips and shoulders, then knees and elbows, so that each limb bone points along
        its world landmarks (smallest rotation, twist kept): a start near the observed limbs lets
        a short optimisation converge. Bones whose two landmarks are not confident keep the
        prior's mean pose."""
        batch = params.batch_size
        pose = params.body_pose.reshape(batch, -1, 3).clone()
        confident = obs.weight >= self.config.min_confidence
        for bones in LIMB_STAGES:
            current = params.replace(body_pose=pose.reshape(batch, -1))
            points = self.landmarks(current)
            rest_joints = self.basis.rest_joints(current.betas)
            full = torch.cat([current.global_orient[:, None], pose], 1)
            rot, _ = self._chain(axis_angle_to_matrix(full), rest_joints)
            for joint, (start, end) in bones:
                a, b = self.regressor.index_of(start), self.regressor.index_of(end)
                swing = rotation_between(points[:, b] - points[:, a], obs.world[:, b] - obs.world[:, a])
                local = rot[:, self.parents[joint]].transpose(1, 2) @ swing @ rot[:, joint]
                use = (confident[:, a] & confident[:, b])[:, None]
                pose[:, joint - 1] = torch.where(use, matrix_to_axis_angle(local), pose[:, joint - 1])
        return params.replace(body_pose=pose.reshape(batch, -1))

    def _depth_from_scale(self, obs: Observations) -> torch.Tensor:
        """B x 3 hip-centre position from the 2D size alone (a 1.7 m person), for degenerate rays."""
        fx, fy, cx, cy = obs.intrinsics.unbind(-1)
        depth = (0.5 * (fx + fy) * 1.7 / obs.scale).clamp(min=MIN_DEPTH_M)
        hips = obs.uv[:, self.hips].mean(1)
        return torch.stack([(hips[:, 0] - cx) / fx * depth, (hips[:, 1] - cy) / fy * depth, depth], -1)

    def objective(self, params: BodyParams, obs: Observations) -> torch.Tensor:
        """(B,) the fit's objective: robust 2D + world-landmark terms and the priors."""
        cfg = self.config
        pts = self.landmarks(params)
        fx, fy, cx, cy = (v[:, None] for v in obs.intrinsics.unbind(-1))
        z = pts[..., 2].clamp(min=1e-3)
        uv = torch.stack([fx * pts[..., 0] / z + cx, fy * pts[..., 1] / z + cy], -1)
        r2 = ((uv - obs.uv) ** 2).sum(-1) / (obs.scale[:, None] ** 2)
        rel = pts - pts[:, self.hips].mean(1, keepdim=True)
        r3 = ((rel - obs.world) ** 2).sum(-1)
        norm = obs.weight.sum(1).clamp(min=1e-6)
        data = (cfg.weight_2d * (obs.weight * geman_mcclure(r2, cfg.sigma_2d)).sum(1)
                + cfg.weight_3d * (obs.weight * geman_mcclure(r3, cfg.sigma_3d)).sum(1)) / norm
        priors = (cfg.pose_prior_weight * self.prior.nll(params.body_pose)
                  + cfg.joint_limit_weight * joint_limit_violation(params.body_pose)
                  + cfg.shape_weight * (params.betas ** 2).mean(-1))
        return data + priors

    def optimise(self, start: BodyParams, obs: Observations) -> tuple[BodyParams, torch.Tensor]:
        """Stage 4: Adam (or L-BFGS) on orientation, pose, shape and translation (x/z, y/z,
        log z); returns the last iterate and its (B,) objective."""
        cfg = self.config
        depth0 = start.transl[:, 2:3].clamp(min=MIN_DEPTH_M)
        orient = start.global_orient.clone().requires_grad_(True)
        pose = start.body_pose.clone().requires_grad_(True)
        betas = start.betas.clone().requires_grad_(cfg.fit_shape)
        xy = (start.transl[:, :2] / depth0).clone().requires_grad_(True)
        log_depth = torch.zeros_like(depth0, requires_grad=True)
        groups = [{"params": [orient, pose], "lr": cfg.lr}, {"params": [xy, log_depth], "lr": cfg.transl_lr}]
        if cfg.fit_shape:
            groups.append({"params": [betas], "lr": cfg.shape_lr})

        def params() -> BodyParams:
            depth = depth0 * torch.exp(log_depth)
            return BodyParams(betas, orient, pose, torch.cat([xy * depth, depth], 1))

        if cfg.optimizer == "lbfgs":
            lbfgs = torch.optim.LBFGS([v for g in groups for v in g["params"]], lr=1.0,
                                      max_iter=cfg.iterations, history_size=20,
                                      tolerance_grad=1e-10, tolerance_change=1e-12,
                                      line_search_fn="strong_wolfe")

            def closure() -> torch.Tensor:
                lbfgs.zero_grad(set_to_none=True)
                loss = self.objective(params(), obs).sum()
                loss.backward()
                return loss

            lbfgs.step(closure)
        else:
            optim = torch.optim.Adam(groups, betas=(0.9, 0.99), fused=True)  # one kernel per step, not per tensor
            base_lr = [g["lr"] for g in groups]
            for it in range(cfg.iterations):
                frac = it / max(cfg.iterations - 1, 1)
                for group, lr in zip(optim.param_groups, base_lr):
                    group["lr"] = lr * (1.0 - (1.0 - cfg.lr_end) * frac)
                optim.zero_grad(set_to_none=True)
                self.objective(params(), obs).sum().backward()
                optim.step()
        with torch.no_grad():
            final = params().detach()
            return final, self.objective(final, obs)

    # -- entry -----------------------------------------------------------------------------------
    def fit(self, people: Sequence[LandmarkObservation], cameras: Sequence[CameraIntrinsics]) -> LandmarkFitResult:
        """Bodies for N people from their BlazePose landmarks and per-person intrinsics.

        Deterministic: no random numbers; the same inputs give the same bodies, batched or alone.
        """
        start = time.perf_counter()
        obs, info = self.observations(people, cameras)
        n = len(info)
        if n == 0:
            empty = BodyParams.zeros(0)
            return LandmarkFitResult(empty, empty, [], 0.0)
        hyps = [obs, self.turned(obs)] if self.config.turned_hypothesis else [obs]
        both = Observations(*(torch.cat([getattr(h, f) for h in hyps]) for f in
                              ("uv", "weight", "world", "intrinsics", "scale")))
        fitted, losses = self.optimise(self.initialise(both), both)
        count = len(hyps)
        losses = losses.reshape(count, n)
        iou = torch.full((count, n), math.nan)
        if self.config.mask_weight > 0:
            iou = torch.from_numpy(self.silhouette_iou(fitted, people, cameras, count)).float()
        scores = self.config.objective_weight * losses - self.config.mask_weight * torch.nan_to_num(iou, nan=0.0)
        if count > 1:
            scores[1:] += self.config.turn_margin
        choice = scores.argmin(0)  # (n,)
        if self.config.hypothesis_choice == "blazepose":
            choice = torch.zeros_like(choice)
        rows = torch.arange(n)
        chosen = BodyParams(*(t.reshape(count, n, -1)[choice, rows] for t in fitted.as_tuple()))
        other = BodyParams(*(t.reshape(count, n, -1)[(choice + 1) % count, rows] for t in fitted.as_tuple()))
        facing = self.facing_camera(fitted).reshape(count, n)
        for i, (item, person) in enumerate(zip(info, people)):
            item.hypothesis = int(choice[i])
            item.scores, item.losses = scores[:, i].numpy(), losses[:, i].numpy()
            item.iou, item.facing = iou[:, i].numpy(), facing[:, i]
            item.face_visibility = float(np.mean(np.asarray(person.visibility, np.float64)[self.face]))
        return LandmarkFitResult(chosen, other, info, (time.perf_counter() - start) * 1e3)

    # -- image evidence ----------------------------------------------------------------------------
    def silhouette_iou(self, fitted: BodyParams, people: Sequence[LandmarkObservation],
                       cameras: Sequence[CameraIntrinsics], count: int) -> np.ndarray:
        """count x N IoU of each hypothesis' projected mesh with BlazePose's mask (> 0.5), on a
        MASK_GRID grid over the person's ROI crop; nan where a person has no mask.

        The mesh is splatted as its vertices (dense enough at this grid, then closed by a 3 x 3
        dilation): cheap, and the two readings differ where the body is not front/back symmetric
        (feet, bent knees and elbows, the head's tilt).
        """
        import cv2

        n = len(people)
        out = np.full((count, n), np.nan)
        with torch.no_grad():
            verts = self.body(fitted).vertices.double().numpy()  # (count n) x V x 3
        kernel = np.ones((3, 3), np.uint8)
        for i, (person, cam) in enumerate(zip(people, cameras)):
            logits = getattr(person, "mask_logits", None)
            roi = getattr(person, "roi", None)
            if logits is None or roi is None:
                continue
            size = logits.shape[0]
            mask = cv2.resize((np.asarray(logits) > 0).astype(np.float32), (MASK_GRID, MASK_GRID),
                              interpolation=cv2.INTER_AREA) > 0.5
            to_crop = roi.image_to_crop(size)  # image pixel -> crop pixel index
            for h in range(count):
                v = verts[h * n + i]
                z = np.maximum(v[:, 2], 1e-3)
                uv = np.stack([cam.fx * v[:, 0] / z + cam.cx, cam.fy * v[:, 1] / z + cam.cy], -1)
                crop = (uv @ to_crop[:, :2].T + to_crop[:, 2] + 0.5) * (MASK_GRID / size)
                cell = np.floor(crop).astype(np.int64)
                inside = (cell >= 0).all(1) & (cell < MASK_GRID).all(1)
                sil = np.zeros((MASK_GRID, MASK_GRID), np.uint8)
                sil[cell[inside, 1], cell[inside, 0]] = 1
                sil = cv2.dilate(sil, kernel) > 0
                union = (sil | mask).sum()
                out[h, i] = (sil & mask).sum() / union if union else np.nan
        return out

    def facing_camera(self, params: BodyParams) -> np.ndarray:
        """(B,) cosine between each body's forward direction and the direction to the camera
        (1 = facing it): the rest pose faces +z of the body frame."""
        rot = axis_angle_to_matrix(params.global_orient)
        forward = rot[..., 2]  # B x 3, body +z in the camera frame
        to_camera = -params.transl / params.transl.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        return (forward * to_camera).sum(-1).numpy()
