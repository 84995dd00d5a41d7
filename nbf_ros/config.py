"""Typed, frozen configuration: one dataclass per subsystem, one root ``NbfConfig``, YAML in/out.

No ROS, no argparse here. Loading is strict: an unknown key or a value of the wrong type is an
error that names the key, so a typo in a YAML file never silently falls back to a default.
Paths are relative to the repository/package root unless absolute (see ``resolve_path``).
"""
from __future__ import annotations

import dataclasses
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, TypeVar

import yaml

from nbf_ros.errors import NbfError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
"""Repository root in a source checkout (models/ and config/ live here)."""

LOG = logging.getLogger(__name__)

RETIRED_KEYS: dict[str, frozenset[str]] = {
    "DetectorConfig": frozenset({"mediapipe_python", "mediapipe_min_confidence",
                                 "mediapipe_box_padding", "mediapipe_tracking"}),
    # The joint-behind-the-surface step (0.3 m) became the depth_gap cue of visibility_logit_depth.
    "FitConfig": frozenset({"depth_joint_gap_m"}),
}
"""Keys of removed features (the MediaPipe package path, the depth joint-gap step), by dataclass:
skipped with a warning when a file still has them, so configs saved beside older weights or
checkpoints keep loading. Any other unknown key is an error."""


class ConfigError(NbfError, ValueError):
    """A configuration file or value is invalid; the message names the key and the problem."""


@dataclass(frozen=True)
class BodyConfig:
    """The SMPL-format body model (.npz, keys as smplx's SMPL expects)."""

    model_path: str = "models/nbf_body.npz"
    num_betas: int = 10


@dataclass(frozen=True)
class NBVConfig:
    """Neural Body Volume: Gaussian kernels attached to the body, with pose-dependent features."""

    num_kernels: int = 858
    # Number of orientation bins O per kernel: 1 (no pose dependence), 3 (released code:
    # camera-z of the limb, thresholds +-0.3) or 4+ (the paper's best, O=4: directions on a sphere).
    orientation_bins: int = 4
    orientation_scheme: Literal["sphere", "code3"] = "sphere"
    orientation_sharpness: float = 10.0
    covariance: Literal["isotropic", "anisotropic"] = "isotropic"
    # Isotropic precision of the density exp(-a |x - mu|^2), 1/m^2 (released code: 4000 = ~1.1 cm).
    isotropic_precision: float = 4000.0
    feature_dim: int = 32
    # Anisotropic kernels: tangent-plane standard deviation as a fraction of the local kernel
    # spacing (normal direction keeps isotropic_precision); see body/nbv.py rest_precisions.
    anisotropic_spacing_fraction: float = 0.25


@dataclass(frozen=True)
class RenderConfig:
    """VoGE-style volume rendering of Gaussian kernels (method.md step 5)."""

    max_kernels_per_pixel: int = 10
    # A kernel contributes to a ray only where its minimal activation q < threshold:
    # exp(-23.03) = 1e-10 of the peak (the released code's constant).
    activation_threshold: float = 23.03
    tile_size: int = 8


@dataclass(frozen=True)
class NetConfig:
    """U-Net feature extractor + regression head."""

    crop_size: int = 128
    feature_stride: int = 4
    feature_dim: int = 32
    base_channels: int = 32
    crop_scale: float = 1.2
    # Residual blocks per encoder stage (ResNet-18 has 2, 2, 2, 2; 1 each trains ~1.6x faster
    # on a CPU, docs/training.md).
    encoder_blocks: tuple[int, int, int, int] = (1, 1, 1, 1)
    # Hidden width of the dense heads (features, heatmaps) at stride 4.
    head_channels: int = 64
    # HMR-style regressor: 1x1 reduction of the stride-32 map, MLP width, refinement steps.
    regressor_reduced_channels: int = 32
    regressor_hidden: int = 512
    regressor_iterations: int = 3


@dataclass(frozen=True)
class FitConfig:
    """Bounded-iteration neural body fitting (method.md steps 6-8)."""

    # 15, not 30: from the body fitted to BlazePose's landmarks the second 15 iterations moved
    # MPJPE by at most 1.7 mm on the validation people (docs/fit_tuning.md, "Iterations"),
    # and cost half the fit.
    max_iters: int = 15
    # Iterations between fresh selections of the kernels each pixel keeps (1 = every
    # iteration); in between the last selection is reused with exact terms for the current
    # body (render_gaussians(kernel_ids=)): selection is a quarter of an iteration's cost.
    # 3: same MPJPE as 1 on the validation people (within 0.4 mm), 10 % less fit time
    # (docs/fit_tuning.md, "Reusing the kernel selection").
    reselect_every: int = 3
    # "lbfgs": L-BFGS with a strong-Wolfe line search on the same stages and objective, with
    # max_iters objective evaluations (the time-to-accuracy comparison of docs/fit_tuning.md).
    optimizer: Literal["adam", "lbfgs"] = "adam"
    # Wall-clock budget per person per frame; the best iterate so far is returned when it ends.
    budget_ms: float = 250.0
    # Wall-clock budget of a frame's whole fit stage (0 = none): people are fitted largest
    # first, each within budget_ms and what is left of this; once it is spent the remaining
    # people keep their start body and the node reports them (FrameResult.unfitted_people).
    # 500: two people at the full per-person budget, so a crowd never costs people x 250 ms.
    frame_budget_ms: float = 500.0
    # Share of the iterations spent on stage 1 (global orientation + translation only).
    stage1_fraction: float = 0.33
    # Adam step for rotations (radians). Tuned on a validation range of synthetic people
    # (docs/results.md, "Tuning"): 0.005 beat 0.01 and 0.02, as the feasibility probe found.
    lr: float = 0.005
    # Translation steps are scaled by depth (metres per step at 1 m), so far people move as much
    # on screen as near ones.
    transl_lr: float = 0.003
    # Weight of the feature likelihood; 0 gives keypoint-only fitting (SMPLify-style baseline).
    feature_weight: float = 1.0
    use_occlusion_model: bool = True
    # Where the 2D keypoints of the keypoint term come from: BlazePose GHUM run in-process through
    # ONNX on every person box of any detector ('blazepose': the `blazepose` section,
    # docs/landmarks.md), or the network's own heatmaps ('network'). BlazePose by default: a
    # pretrained real-image model with 4.9 px median error on visible joints (docs/landmarks.md)
    # that tells left from right, where the shipped network, trained 52 min on our renders,
    # cannot (docs/fit_tuning.md); a box where BlazePose finds nobody keeps the heatmaps.
    keypoint_source: Literal["network", "blazepose"] = "blazepose"
    # Where the fit starts: our body fitted to BlazePose's 2D and world landmarks ('landmarks':
    # the `landmark_fit` section, fitting/from_landmarks.py, docs/initial_body.md; needs
    # keypoint_source 'blazepose'), or the network's regression head ('network'). Landmarks by
    # default: on the benchmark's clean test people they start at 153.8 / 106.6 mm MPJPE /
    # PA-MPJPE with 10.5 % of bodies turned by more than 90 degrees, the regression head at
    # 240.6 / 154.2 mm with 38.9 % turned. People BlazePose does not find, or with too few
    # confident landmarks, start from the regression head (their output says so: fit.start).
    init_source: Literal["network", "landmarks"] = "landmarks"
    # Soft-maximum temperature of the occlusion (outlier) process (method.md: 0.1).
    occlusion_temperature: float = 0.1
    keypoint_weight: float = 0.1
    # Geman-McClure scale, as a fraction of the crop side (paper: 100 px at its scale).
    keypoint_sigma: float = 0.1
    keypoint_min_joints: int = 7
    joint_limit_weight: float = 0.1
    pose_prior_weight: float = 0.02
    # The Gaussian pose prior's file (mean and precision of the training poses), built by
    # tools/build_pose_prior.py (models/nbf_pose_prior.md); relative paths are from the package root.
    pose_prior_path: str = "models/nbf_pose_prior.npz"
    # Try the 180-degree rotated, left-right mirrored twin of the initial body (method.md step 8).
    flip_hypothesis: bool = True
    # Also try the initial body turned about its vertical axis in this many even steps (1 = off;
    # 4 adds 90, 180 and 270 degrees): one render each, the best start is then fitted. 4: with
    # BlazePose keypoints (the default source) the turns pay, since BlazePose tells left from
    # right; with the network's heatmaps they do not (docs/fit_tuning.md, "turn4"): config/hog.yaml
    # sets 1 with them.
    turn_hypotheses: int = 4
    # How the start is chosen among the hypotheses: by the whole objective, or (only when an
    # external 2D source such as BlazePose gives the keypoints) by the keypoint term and priors
    # alone: the shipped network cannot tell front from back (docs/fit_tuning.md), BlazePose can.
    hypothesis_score: Literal["objective", "keypoints"] = "objective"
    # Score and fit the front/back-turned starts (the flipped twin, BlazePose's turned reading)
    # against the 2D keypoints with left and right swapped: the labels they stand for. Then the
    # keypoint term no longer vetoes them and the image's features decide front from back.
    # Off: with the shipped features it is a wash (docs/initial_body.md, "Front/back with the
    # trunk features").
    mirrored_keypoints: bool = False
    # Kernels nearest to each joint (rest pose) that decide its visibility.
    kernels_per_joint: int = 8
    # Share of a joint's surrounding kernels that face the camera when nothing hides it.
    facing_fraction: float = 0.5
    # A joint counts as visible when its visibility is at least this.
    visible_threshold: float = 0.5
    # Joint visibility = P(visible), a logistic model of per-joint cues (fitting/visibility.py,
    # VISIBILITY_CUES), each weight's sign fixed (more evidence of being seen never lowers it).
    # visibility_logit (bias, w_self_visible, w_occluded, w_keypoint_confidence) serves the
    # network's heatmap keypoints (keypoint_source network: config/hog.yaml sets its own, 0.153,
    # 0, 0, 3.558, docs/visibility.md); the default's value is the earlier BlazePose calibration.
    visibility_logit: tuple[float, float, float, float] = (0.646, 0.248, 0.0, 1.027)
    # BlazePose's front end: bias + the weights of the 13 base and image cues (self_visible,
    # occluded, keypoint_confidence, mask, mask_at_joint, outlier_at_joint, inside, agreement,
    # outlier_kernels, keypoint_distance, outlier_at_keypoint, outlier_around_joint,
    # behind_render) without depth, and of all 16 (+ depth_occluded, depth_gap,
    # depth_gap_at_keypoint) with depth. Fitted by benchmarks/visibility_calibration.py on 100
    # validation people x 4 conditions (seeds from 900000), docs/visibility_landmarks.md: held
    # out, hidden-joint AUC 0.809 / 0.858 (monocular / depth), object-hidden 0.821 / 0.881, Brier
    # 0.129 / 0.113 (always visible 0.21). The mask cues got weight 0 (BlazePose's mask covers
    # the occluders on these images). Refit after retraining or changing the front end.
    visibility_logit_image: tuple[float, float, float, float, float, float, float, float, float, float,
                                  float, float, float, float] = (
        1.068, 0.194, -0.308, 0.577, 0.0, 0.0, -1.048, 0.379, 2.072, -0.736, 0.0, -1.249, 0.0, -1.336)
    visibility_logit_depth: tuple[float, float, float, float, float, float, float, float, float, float,
                                  float, float, float, float, float, float, float] = (
        1.873, 0.086, -0.194, 0.699, 0.0, 0.0, -1.347, 0.369, 1.814, -0.803, -0.168, -0.722, 0.0, -1.213,
        -0.379, -1.162, -0.967)
    # Confidence = P(MPJPE < 150 mm) as a logistic function of the feature agreement, fitted on
    # the occlusion benchmark with the shipped weights and the default front end (landmark start,
    # BlazePose keypoints; docs/results.md, "Calibration": 400 fits of 100 test people x 4
    # conditions, predicted 0.49 / 0.51 where 47 % / 53 % were within 150 mm: calibrated, but
    # nearly flat, the shipped features' agreement says little about the error). config/hog.yaml
    # keeps the network keypoints' own (0.13, 22.295; docs/results_network_keypoints.md). Refit
    # after retraining: the benchmark prints the new values.
    confidence_scale: float = 0.664
    confidence_offset: float = 0.803
    # Where a person's confidence comes from (fitting/confidence.py): "landmarks" = P(MPJPE <
    # 150 mm) = sigmoid(bias + w . (pose-flag logit, median landmark visibility x presence, log
    # body-from-landmarks objective)), fitted on 100 validation people x 4 conditions (benchmarks/
    # confidence_calibration.py, docs/confidence.md: held out,
    # Spearman with -MPJPE 0.60, AUC 0.82, Brier 0.169, against 0.08 / 0.56 / 0.248 for the
    # feature agreement above); people without landmarks (the regression head's start) get
    # confidence_without_landmarks: 2.8 % of them were within 150 mm. "features": the agreement
    # map above (config/hog.yaml, which runs without BlazePose).
    confidence_source: Literal["landmarks", "features"] = "landmarks"
    person_confidence: tuple[float, float, float, float] = (-6.737, 0.240, 2.610, -1.471)
    confidence_without_landmarks: float = 0.028
    # Aligned depth (docs/depth.md; used only when a frame comes with a depth image): move each
    # start body along its viewing ray onto the observed surface (depth_start), then fit with a
    # robust depth term (Geman-McClure, scale depth_sigma_m; 0 weight = off). Observed depth more
    # than depth_occluder_margin_m nearer than the body's surface is an occluder: explained by the
    # outlier model and a cue of the joints' visibility (visibility_logit_depth reads it and how
    # far each joint lies behind the observed surface). A person with fewer than
    # depth_min_pixels usable depth pixels on the feature grid is fitted monocular. Tuned and
    # measured in docs/depth.md.
    depth_start: bool = True
    depth_weight: float = 0.2
    depth_sigma_m: float = 0.1
    depth_occluder_margin_m: float = 0.15
    depth_min_pixels: int = 8
    # Inside BlazePose's person mask the start is placed on the farthest residual cluster with
    # at least this share of the strongest one's score (what lies in front of the person is an
    # occluder, which may hold more of the mask than the person does; fitting/depth.py).
    depth_far_share: float = 0.5


@dataclass(frozen=True)
class DetectorConfig:
    """Where person boxes come from."""

    # nanodet: the pretrained NanoDet-g (below; docs/detection.md: 10 of 10 real people where
    # HOG found 3, synthetic recall 0.71 vs 0.19-0.22). hog, fixed and full_frame stay selectable
    # (config/hog.yaml: the previous front end).
    kind: Literal["full_frame", "fixed", "hog", "nanodet"] = "nanodet"
    fixed_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    max_people: int = 5
    min_height_px: float = 48.0
    # A box in which BlazePose finds no person (pose flag below blazepose.min_pose_flag) is still
    # fitted as one when the detector's score reaches this (a person mostly hidden behind a cart,
    # whom BlazePose cannot read), and dropped below it (a basketball NanoDet scored 0.42). In the
    # detector's own units (NanoDet 0..1; fixed and full_frame boxes score 1). Only applies when
    # BlazePose runs. Chosen for NanoDet in docs/detection.md, "Which boxes are people"; HOG's SVM
    # margins do not tell a sure box (false 0.46-1.47, people 0.67-2.41 on the real frames): with
    # HOG and BlazePose set it above them (e.g. 10: the pose flag alone decides).
    min_score_without_landmarks: float = 0.5
    # HOG (Dalal-Triggs, OpenCV's default people SVM): images are resized so that their longer
    # side is at most hog_max_side before the scan (cost grows with the pixel count); boxes whose
    # SVM score is below hog_score_threshold are dropped, overlaps above nms_iou are suppressed.
    hog_max_side: int = 640
    hog_score_threshold: float = 0.3
    hog_scale_step: float = 1.05
    nms_iou: float = 0.45
    # NanoDet-g (models/pretrained.md, detection/nanodet.py; measured in docs/detection.md). The
    # shipped ONNX file; rebuilt by `python3 tools/build_pretrained_models.py`.
    nanodet_model_path: str = "models/nanodet_g.onnx"
    # Person score (NanoDet's IoU-aware quality score, 0..1) to keep a box. 0.35, NanoDet's demo
    # threshold: on docs/detection.md's frames it finds 10 of 10 real people with one false box
    # (a basketball); 0.45 drops that box but loses 9 points of synthetic recall, 0.25 adds 6
    # points and many false boxes.
    nanodet_score_threshold: float = 0.35
    # Greedy NMS overlap: the upper end of NanoDet's usual 0.5-0.6, so that two people side by
    # side or one behind the other keep their own boxes (not tuned further).
    nanodet_nms_iou: float = 0.6
    # Tiled pass for small people: n x n overlapping tiles run besides the full frame (1 = off).
    # Off: 2 x 2 tiles cost 5 network runs per frame (209 vs 39 ms) and, on the synthetic split,
    # add ~10 points of recall at a large loss of precision (docs/detection.md).
    nanodet_tiles: int = 1
    # Tile overlap as a fraction of a tile: a person this large fits whole in some tile.
    nanodet_tile_overlap: float = 0.25
    # onnxruntime intra-op threads (0 = one per core): 2 = this 2-core CPU, 39 vs 56 ms per
    # 640 x 480 frame at 1 thread (docs/detection.md); 1 leaves a core to the fitter.
    nanodet_threads: int = 2
    # onnxruntime (CPU) or tensorrt (NVIDIA GPU; engine cached in cache/engines by content).
    nanodet_runtime: Literal["onnxruntime", "tensorrt"] = "onnxruntime"


@dataclass(frozen=True)
class BlazePoseConfig:
    """BlazePose GHUM landmarks on person boxes, in-process through ONNX (keypoints/landmarks.py,
    docs/landmarks.md, models/pretrained.md)."""

    # full: the better 2D landmarks of the shipped two (visible joints 4.9 vs 5.9 px median,
    # docs/landmarks.md) for 17 vs 14 ms per person; heavy is not shipped
    # (python3 tools/build_pretrained_models.py --heavy builds it).
    variant: Literal["lite", "full", "heavy"] = "full"
    # onnxruntime intra-op threads (0 = one per core). 1: on this shared 2-core CPU 2 threads were
    # no faster (full: 17.1 ms per person with 1, 17.9 with 2; docs/landmarks.md) and 1 leaves
    # the other core to the rest of the node.
    num_threads: int = 1
    # Boxes whose pose flag (the model's probability of a person in the crop) is below this are
    # dropped as "not a person": MediaPipe's default min_tracking_confidence.
    min_pose_flag: float = 0.5
    # ROI side = longer box side x roi_scale, square, on the box centre. 1.25 (MediaPipe's scale
    # for its own ROIs) gave the smallest errors on truth boxes; 1.5 finds 5 % more people (87 vs
    # 82 of 100, pose flag >= 0.5) with larger errors (docs/landmarks.md).
    roi_scale: float = 1.25
    # Second pass on the ROI MediaPipe would track into the next frame (from the first pass's
    # auxiliary landmarks 33/34: centred on the hips, rotated upright). Off: with full it lowers
    # the visible-joint error 10.5 -> 9.0 px mean (4.9 -> 4.6 median) but runs the model twice
    # (34 vs 17 ms per person), past the 70 ms detector + landmarks budget (docs/landmarks.md).
    refine_roi: bool = False
    # Move each landmark to the confidence-weighted mean of its 7 x 7 heatmap window, as MediaPipe
    # does: measured better on every configuration (full: visible-joint median 5.7 -> 4.9 px) for
    # ~1.4 ms per person (docs/landmarks.md).
    heatmap_refine: bool = True


@dataclass(frozen=True)
class LandmarkFitConfig:
    """Settings of the body-from-landmarks fit (chosen on validation seeds, docs/initial_body.md)."""

    # The pose prior is the NBF fit's (``fit.pose_prior_path``): one file, one setting.
    regressor_path: str = "models/nbf_landmark_regressor.npz"
    # Adam iterations and steps: rotations (radians), shape (units of the shape space) and
    # translation (x/z, y/z and log z: fractions of the depth, so near and far people move alike
    # on screen; a step of 0.08 x depth would jump 0.35 m at 4.4 m and lose the 2D term).
    optimizer: Literal["adam", "lbfgs"] = "adam"
    iterations: int = 30
    lr: float = 0.04
    shape_lr: float = 0.04
    transl_lr: float = 0.005
    # The step decays linearly to lr x lr_end over the iterations (large first moves, then settle).
    lr_end: float = 0.1
    # Aim hips, shoulders, knees and elbows at the world landmarks before iterating.
    limb_init: bool = True
    # 2D term: Geman-McClure on the reprojection error in units of the person's 2D size.
    weight_2d: float = 1.0
    sigma_2d: float = 0.04
    # World-landmark term: Geman-McClure on hip-centred 3D differences (metres). BlazePose's
    # world landmarks are off by ~0.12-0.15 m per landmark on our renders (depth most), hence
    # the wide scale; it still decides each limb's depth sign, which 2D alone leaves open.
    weight_3d: float = 1.0
    sigma_3d: float = 0.3
    # The world landmarks' offsets along the viewing ray (depth within the body) are multiplied
    # by this before fitting: BlazePose's depth is its weakest output (on our train renders it
    # correlates 0.64 with the truth; the least-squares gain truth ~ world is 0.70).
    world_depth_gain: float = 0.7
    # A landmark's weight is visibility x presence, floored here so occluded guesses count a little.
    confidence_floor: float = 0.05
    pose_prior_weight: float = 0.03
    joint_limit_weight: float = 0.1
    shape_weight: float = 0.01
    fit_shape: bool = True
    # Fewer landmarks with visibility x presence >= min_confidence than this (or a missing
    # torso landmark) -> flagged, the caller falls back to the regression head.
    min_confidence: float = 0.5
    min_landmarks: int = 8
    # Fit the front/back-turned reading too, as ``LandmarkFitResult.alternative`` (else only
    # BlazePose's reading is fitted and the alternative repeats it).
    turned_hypothesis: bool = True
    # Which reading becomes ``params``: "blazepose" keeps BlazePose's own; "score" takes the one
    # with the lower score = objective_weight x final objective - mask_weight x silhouette IoU
    # with BlazePose's mask, + turn_margin for the turned one (it must explain the landmarks
    # clearly better). "score" with margin 0.02 replaced 2-3 readings per 100 people and gained
    # 3-4 mm with these defaults on validation and test, but lost 4-6 mm with 60 iterations or
    # no depth gain: evidence too weak to be the default (docs/initial_body.md). The turned
    # reading stays available as ``alternative`` for image evidence later in the pipeline.
    hypothesis_choice: Literal["blazepose", "score"] = "blazepose"
    objective_weight: float = 1.0
    mask_weight: float = 0.0
    turn_margin: float = 0.02


@dataclass(frozen=True)
class InferenceConfig:
    """Which backend runs the network and where its weights live."""

    backend: Literal["torch", "onnxruntime", "tensorrt"] = "torch"
    device: str = "cpu"
    # torch CPU threads (0 = torch's default). On a CPU shared with other busy processes, 1 is
    # often much faster than 2 (docs/performance.md: 11.5 vs 89 ms per render under load).
    num_threads: int = 0
    weights_path: str = "models/nbf_net.pt"
    # Where the fit's features come from: "blazepose" = BlazePose's frozen trunk + the head of
    # feature_head.weights_path (docs/features.md: within 10 cm 67.9 vs 21.7 % of kernels on
    # held-out crops; on the occlusion benchmark the fit with them improves on its start in all
    # four conditions, with the U-Net's it got worse in two; +31 ms per person); the U-Net (the
    # network of weights_path) still gives the regression body for people BlazePose misses.
    # "unet" = the U-Net's own features (config/hog.yaml: no ONNX model needed).
    features: Literal["unet", "blazepose"] = "blazepose"
    onnx_path: str = ""
    engine_path: str = ""
    enable_fp16: bool = True
    # Give each person its body surface (Person.surface_points: the K kernel centres of the fitted
    # body, drawn as a marker in RViz). Costs an index into the mesh the pipeline poses anyway
    # (~0.04 ms per person) and the marker (~2.5 ms, ~37 kB per person per frame, docs/ros_node.md);
    # off = no points, no surface marker.
    surface_points: bool = True
    # Run the network (features, and the fallback body) in a second thread while the main one
    # fits the start bodies to BlazePose's landmarks: the two stages need each other's results
    # only afterwards, and on two or more cores they overlap. On the idle 2-core machine: one
    # tracked person 8.2 instead of 6.5 frames/s, the same people; with the other core busy
    # about 3 % slower (docs/performance.md, "Overlapping the network and the start").
    overlap_network: bool = True


@dataclass(frozen=True)
class FeatureHeadConfig:
    """3D-aware features on BlazePose's frozen trunk: which tensors are tapped and the head on them
    (nets/trunk.py, nets/feature_head.py, docs/features.md); training reads the trunk caches."""

    trunk_path: str = "models/blazepose_full.onnx"
    # Comma-separated taps: aliases of nets/trunk.py TAP_ALIASES or graph tensor names.
    taps: str = "enc8,dec8,dec4,enc16,dec16,enc32"
    trunk_threads: int = 1
    hidden_channels: int = 128
    # 3 x 3 residual layers after the 1 x 1 mix of the taps; dilations cycle 1, 2, 4.
    layers: int = 3
    weights_path: str = "models/nbf_trunk_head.pt"
    # Trunk caches (python -m nbf_ros.apps.cache_trunk) the head trains and validates on.
    train_cache: str = "cache/trunk/train"
    val_cache: str = "cache/trunk/val"
    # Horizontal flips of the cached train crops with left/right-swapped labels (cached too).
    mirror_cache: str = ""


@dataclass(frozen=True)
class TrackerConfig:
    """Track ids across frames (nbf_ros/tracking.py): gated assignment on box IoU and 3D distance."""

    # A box may continue a track only if IoU >= iou_gate OR the 3D root moved <= distance_gate_m
    # (either gate admits the pair); the cost mixes both, so a pair that overlaps well still
    # matches when the 3D estimate jumps, and an occluded (shrunken) box still matches in 3D.
    iou_gate: float = 0.1
    distance_gate_m: float = 0.75
    iou_weight: float = 1.0
    distance_weight: float = 1.0
    # Tracks not seen for timeout_s (image-stamp seconds) AND missing from at least
    # min_missed_frames processed frames are dropped (ids are never reused): the frame count keeps
    # a pipeline slower than the timeout from dropping every track between its own frames.
    timeout_s: float = 1.0
    min_missed_frames: int = 3
    # A stamp earlier than the last update by more than this is a clock reset (bag loop, sim
    # restart): all tracks are dropped. Smaller steps back (reordered frames) are ignored.
    max_backward_jump_s: float = 0.5


@dataclass(frozen=True)
class TrackingModeConfig:
    """Tracking mode (issue 14), as MediaPipe runs BlazePose on video: with a tracker, a tracked
    person's next box comes from their BlazePose landmarks, the detector runs only now and then,
    and tracked people get a warm-started, shorter fit (``Pipeline.process``; measured in
    docs/performance.md, "Tracking mode"). Off: every frame is processed on its own (detector,
    full fit), the tracker only carries ids and warm starts. On by default: on the rendered
    walking sequences it lost far fewer people than per-frame processing at the same MPJPE,
    ~1.5x faster (root error: same for one person, +4 cm for three)."""

    enabled: bool = True
    # The detector runs when no track is live, when BlazePose loses a tracked person (pose flag
    # below blazepose.min_pose_flag in the tracked box), and otherwise once every detect_every
    # frames: how long a person entering the view may go unseen.
    detect_every: int = 10
    # A tracked person's next box: the box around their 33 landmarks, each side moved out by
    # roi_margin x the landmarks' longer extent. NanoDet's boxes on the demo sequence reach past
    # that box by a median 0.02-0.03 at the sides, 0.10 at the top (the head's top is no
    # landmark) and 0.00 at the bottom: 0.05 all round gives a standing person the detector's
    # box height, 4 % lower (docs/performance.md, "Tracking mode").
    roi_margin: float = 0.05
    # On a detection frame a detector box is a tracked person (dropped; the tracked box is kept)
    # when it, or the box around the landmarks BlazePose reads in it, overlaps a tracked box by
    # this IoU, or, when BlazePose reads no pose in it, this much of it lies inside a tracked
    # box (tracking.already_tracked); two tracked boxes overlapping this much are one person
    # (the older track is kept).
    merge_iou: float = 0.5
    # Fit iterations of a tracked person (warm-started from the previous frame, no flipped twin
    # or turned starts: the track settled its facing); detected people get fit.max_iters. 3 is
    # the fewest whose MPJPE stayed within a standard error of per-frame processing's (15
    # iterations) on both rendered walking sequences; 5 and 10 were no better
    # (docs/performance.md, "Tracking mode").
    fit_iterations: int = 3
    # Iterations of a tracked person's body-from-landmarks start, without the turned reading
    # (detected people: landmark_fit.iterations, both readings): 10 kept the fit's accuracy on a
    # walking person, 5 did not (docs/performance.md, "Tracking mode").
    start_iterations: int = 10


@dataclass(frozen=True)
class TrainLossWeights:
    """Weights of the training loss terms (regression weights follow PARE/3DNBF's configs:
    3D joints 300, 2D joints 300, rotation matrices 60, betas 0.06; 2D in normalised crop units)."""

    contrastive: float = 1.0
    background: float = 1.0
    joints3d: float = 300.0
    joints2d: float = 300.0
    rotations: float = 60.0
    betas: float = 0.06
    cam: float = 10.0
    heatmaps: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """Training of the network and its memory bank (nbf_ros/training, docs/training.md)."""

    seed: int = 0
    # Checkpoints, logs (metrics.jsonl) and the config copy go here.
    out_dir: str = "out/train"
    # Synthetic crops per epoch (crop i uses seed data_seed + i; cached under cache/crops).
    num_train_images: int = 20000
    data_seed: int = 0
    # Training-crop cache directory; empty = cache/crops/<hash of the generator config>. Set it to
    # reuse crops rendered by an earlier generator version (valid crops, other settings).
    cache_dir: str = ""
    # Held-out crops (test split) evaluated at every checkpoint and logged to metrics.jsonl.
    val_images: int = 64
    num_workers: int = 0
    batch_size: int = 32
    steps: int = 2000
    # Stop cleanly (with a checkpoint) after this many minutes; 0 = no limit.
    time_limit_min: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 5.0
    # CoKe contrast (method.md Training).
    temperature: float = 0.07
    bank_momentum: float = 0.9
    background_bank_size: int = 2000
    background_negative_weight: float = 5e-3
    # Kernels within this rest-pose distance (metres) are not negatives of each other, besides the
    # 1-hop mesh neighbours (0 = the paper's 1-hop rule only). See docs/training.md.
    neighbour_radius_m: float = 0.0
    # What the contrast teaches a foreground pixel's feature (docs/training.md, "Feature targets"):
    #   "kernel":  its own kernel among all K x O bank entries (the paper's CoKe contrast);
    #   "surface": a continuous surface embedding: soft targets over the K x O entries, Gaussian in
    #              geodesic distance on the rest-pose surface (surface_sigma_m), so neighbouring
    #              kernels are taught similar features instead of being pushed apart;
    #   "part":    its surface patch among part_count geodesic patches; a patch's kernels share
    #              one bank entry per orientation bin (a coarser, easier contrast).
    # The shipped bank is K x O x D in every case, so the fitting does not depend on the choice.
    feature_target: Literal["kernel", "surface", "part"] = "kernel"
    surface_sigma_m: float = 0.08
    part_count: int = 64
    # Foreground pixels per batch in the contrast (random subset; bounds the N x K x O logits).
    max_contrast_pixels: int = 2048
    background_pixels_per_image: int = 16
    # Heatmap target Gaussian sigma, in feature pixels.
    heatmap_sigma: float = 1.0
    log_every: int = 20
    checkpoint_every: int = 200
    loss: TrainLossWeights = field(default_factory=TrainLossWeights)


@dataclass(frozen=True)
class SyntheticCameraConfig:
    """Robot-like cameras and where people stand in front of them (nbf_ros/data/scene.py)."""

    # Image sizes (width, height) drawn uniformly; repeat an entry to weight it.
    image_sizes: tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]] = (
        (640, 480), (848, 480), (1280, 720), (640, 360))
    hfov_deg: tuple[float, float] = (50.0, 100.0)
    # fy = fx * (1 + N(0, aspect_jitter)); principal point off-centre by N(0, centre_jitter) * size.
    aspect_jitter: float = 0.01
    centre_jitter: float = 0.02
    height_m: tuple[float, float] = (0.3, 1.8)
    # Camera pitch (positive = looking down) and roll, degrees.
    pitch_deg: tuple[float, float] = (-10.0, 20.0)
    roll_deg: float = 4.0
    # Horizontal distance from the camera to the person, metres (log-uniform).
    distance_m: tuple[float, float] = (0.5, 8.0)
    # Probability that a person may be cut by the image border (at least min_joints_in_frame of
    # the 24 joints inside); otherwise every joint is inside with a margin.
    truncation_prob: float = 0.15
    min_joints_in_frame: float = 0.6
    min_person_height_px: float = 40.0
    max_placement_tries: int = 30


@dataclass(frozen=True)
class SyntheticPoseConfig:
    """Pose and shape sampling (nbf_ros/data/poses.py)."""

    noise_std_rad: float = 0.12
    interp_prob: float = 0.5
    random_pose_prob: float = 0.05
    betas_std: float = 1.0
    betas_clip: float = 2.5
    # Person lean (pitch/roll about their own axes) ~ N(0, std), degrees; yaw is uniform.
    lean_std_deg: float = 5.0


@dataclass(frozen=True)
class SyntheticAppearanceConfig:
    """Clothing, skin, light, background and camera artefacts (nbf_ros/data/appearance.py)."""

    photo_background_prob: float = 0.6
    texture_prob: float = 0.6
    ambient: tuple[float, float] = (0.25, 0.6)
    blur_prob: float = 0.3
    blur_sigma_px: tuple[float, float] = (0.3, 1.5)
    noise_std: tuple[float, float] = (0.0, 0.04)
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (30, 95)
    # Per-channel gain/offset jitter and global brightness/contrast jitter (fractions).
    colour_jitter: float = 0.1
    # Emulate inference-time upsampling of small people: a crop whose image side is below the
    # crop size is rendered, downsampled to that side and upsampled back (bilinear).
    emulate_resolution: bool = True
    # Add the Debian opencv-doc sample photos to the background pool when that package is
    # installed (never committed). Off by default: a seed must render the same image on every
    # machine (with the package installed the pool, and so every later random draw, changes);
    # the training config turns it on for more varied backgrounds.
    opencv_doc_photos: bool = False
    # Paint a face (eyes, brows, nostrils, mouth) on the front of each rendered head. Pretrained
    # models read front from back by the face (BlazePose turns faceless renders round; real
    # people have faces): docs/data.md, "Faces". No random draw is added, so every other pixel
    # of a seed's scene stays the same with it on or off.
    faces: bool = False


@dataclass(frozen=True)
class SyntheticOcclusionConfig:
    """Occluders (textured boxes, bars, blobs, other bodies) placed in front of people."""

    enabled: bool = True
    # Probability that a training crop / a scene person gets occluders, and how many (1..max).
    prob: float = 0.5
    max_occluders: int = 2
    # Occluder size as a fraction of the person's box height (uniform in the range).
    size_frac: tuple[float, float] = (0.2, 0.6)
    # Relative frequency of each kind.
    weight_box: float = 1.0
    weight_bar: float = 1.0
    weight_blob: float = 1.0
    weight_body: float = 0.5


@dataclass(frozen=True)
class SyntheticConfig:
    """Synthetic people with exact ground truth (nbf_ros/data, docs/data.md).

    ``split`` picks the train or held-out textures and background photos; sample seeds are mixed
    with the split, so the same seed gives different scenes in the two splits.
    """

    split: Literal["train", "test"] = "train"
    camera: SyntheticCameraConfig = field(default_factory=SyntheticCameraConfig)
    pose: SyntheticPoseConfig = field(default_factory=SyntheticPoseConfig)
    appearance: SyntheticAppearanceConfig = field(default_factory=SyntheticAppearanceConfig)
    occlusion: SyntheticOcclusionConfig = field(default_factory=SyntheticOcclusionConfig)
    # People per full scene (render_scene), uniform in 1..max_people.
    max_people: int = 3
    # Crop box around the person: the projected full body clipped to the image, or (with this
    # probability) the box of its visible pixels, as a detector that sees only the unoccluded
    # part would give; then jittered: centre by N(0, shift) x side, side by exp(N(0, scale)).
    visible_box_prob: float = 0.3
    box_jitter_shift: float = 0.05
    box_jitter_scale: float = 0.08
    # Surface points count as seen when within this depth of the z-buffer (metres).
    visibility_tolerance_m: float = 0.02
    # A joint's "nearby surface" (rest pose, metres): outer-surface vertices within (distance to
    # the nearest one + surface margin) of the joint, plus those it skins most within (nearest +
    # skinned margin), so that the torso's front counts for the spine joints.
    joint_surface_margin_m: float = 0.06
    joint_skinned_margin_m: float = 0.18
    # Feature-resolution labels: majority of each stride x stride block, or its centre sample.
    label_downsample: Literal["majority", "foreground", "center"] = "majority"
    # Kernel layout used for kernel labels when none is passed (NBV's defaults).
    num_kernels: int = 858
    kernel_seed: int = 0


@dataclass(frozen=True)
class NbfConfig:
    """Root configuration; every subsystem's settings in one tree."""

    body: BodyConfig = field(default_factory=BodyConfig)
    nbv: NBVConfig = field(default_factory=NBVConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    net: NetConfig = field(default_factory=NetConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    blazepose: BlazePoseConfig = field(default_factory=BlazePoseConfig)
    landmark_fit: LandmarkFitConfig = field(default_factory=LandmarkFitConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    feature_head: FeatureHeadConfig = field(default_factory=FeatureHeadConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    tracking: TrackingModeConfig = field(default_factory=TrackingModeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


T = TypeVar("T")


def resolve_path(path: str | Path) -> Path:
    """Absolute paths stay; relative ones are taken from the package root (models/, config/)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else PACKAGE_ROOT / p


def from_dict(cls: type[T], data: Optional[dict[str, Any]], where: str = "") -> T:
    """Build dataclass ``cls`` from a nested dict, strictly (unknown keys and bad types raise)."""
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    retired = sorted(set(data) & RETIRED_KEYS.get(cls.__name__, frozenset()))
    if retired:
        LOG.warning("%s: ignoring key(s) of a removed feature: %s", where or cls.__name__, retired)
        data = {k: v for k, v in data.items() if k not in retired}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; valid: {sorted(names)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}" if where else name)
              for name, value in data.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(hint))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain dict (tuples as lists) suitable for YAML."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(config))


def load_config(path: Optional[str | Path] = None, cls: type[T] = NbfConfig) -> T:  # type: ignore[assignment]
    """Load a YAML file into ``cls`` (defaults where keys are absent). ``None`` gives the defaults."""
    if path is None:
        return cls()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
    return from_dict(cls, data, "")


def apply_overrides(config: T, overrides: Mapping[str, Any]) -> T:
    """A copy of ``config`` with dotted keys replaced, e.g. ``{"fit.max_iters": 5}``.

    The one place where a command-line option or a node parameter changes a loaded config: each
    value is checked by the same rules as a YAML file (``from_dict``), so an unknown key, a
    section given as a value or a value of the wrong type raises ConfigError naming the key.
    """
    for key, value in overrides.items():
        config = _override(config, key.split("."), value, key, "")
    return config


def _override(node: T, path: list[str], value: Any, key: str, where: str) -> T:
    """``node`` with the field at ``path`` set to ``value`` (``where``: the path walked so far)."""
    name, rest = path[0], path[1:]
    here = f"{where}.{name}" if where else name
    names = [f.name for f in dataclasses.fields(node)]  # type: ignore[arg-type]
    if name not in names:
        raise ConfigError(f"{key}: unknown key {here!r}; valid in {where or 'the root'}: {sorted(names)}")
    current = getattr(node, name)
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{key}: {here} is a value, not a section")
        new = _override(current, rest, value, key, here)
    elif dataclasses.is_dataclass(current):
        raise ConfigError(f"{key}: {here} is a section; override one of its keys ({here}.KEY)")
    else:
        new = getattr(from_dict(type(node), {name: value}, where), name)
    return dataclasses.replace(node, **{name: new})  # type: ignore[type-var]


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
