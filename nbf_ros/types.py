"""Dataclasses passed between pipeline stages (image -> features -> init -> fit -> people).

Torch-side containers (``BodyParams``) carry a leading batch dimension B; output containers
(``Person``, ``FrameResult``) are plain numpy so that the ROS layer and the CLI never import torch
maths. Joint order everywhere is SMPL's 24 (``JOINT_NAMES``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
import torch

NUM_JOINTS = 24
NUM_BETAS = 10

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)

# SMPL kinematic tree: parent of each joint (-1 for the root).
JOINT_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an image in pixels (OpenCV convention, no distortion).

    The optical frame is REP-103's: x right, y down, z forward, origin at the camera centre.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @staticmethod
    def default_for(width: int, height: int) -> "CameraIntrinsics":
        """Documented default when no calibration is given: focal = image diagonal, centre = middle."""
        focal = float(np.hypot(width, height))
        return CameraIntrinsics(focal, focal, width / 2.0, height / 2.0, int(width), int(height))

    def is_valid(self) -> bool:
        values = np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)
        return bool(np.all(np.isfinite(values)) and self.fx > 0 and self.fy > 0
                    and self.width > 0 and self.height > 0)

    def matrix(self) -> np.ndarray:
        """3 x 3 calibration matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, sx: float, sy: Optional[float] = None) -> "CameraIntrinsics":
        """Intrinsics of the same camera after resizing the image by (sx, sy)."""
        sy = sx if sy is None else sy
        # Pixel centres: u' + 0.5 = s (u + 0.5)  ->  c' = s (c + 0.5) - 0.5
        return CameraIntrinsics(self.fx * sx, self.fy * sy, sx * (self.cx + 0.5) - 0.5,
                                sy * (self.cy + 0.5) - 0.5,
                                int(round(self.width * sx)), int(round(self.height * sy)))


@dataclass
class BodyParams:
    """SMPL-format body parameters, batch B, axis-angle rotations, metres.

    Attributes:
        betas: B x 10 shape coefficients.
        global_orient: B x 3 root rotation (axis-angle) in the camera optical frame.
        body_pose: B x 69 (23 joints x axis-angle).
        transl: B x 3 translation in metres, camera optical frame.
    """

    betas: torch.Tensor
    global_orient: torch.Tensor
    body_pose: torch.Tensor
    transl: torch.Tensor

    def __post_init__(self) -> None:
        batch = self.betas.shape[0]
        expected = {"betas": (batch, NUM_BETAS), "global_orient": (batch, 3),
                    "body_pose": (batch, 3 * (NUM_JOINTS - 1)), "transl": (batch, 3)}
        for name, shape in expected.items():
            value = getattr(self, name)
            if tuple(value.shape) != shape:
                raise ValueError(f"BodyParams.{name} has shape {tuple(value.shape)}, expected {shape}")

    @property
    def batch_size(self) -> int:
        return int(self.betas.shape[0])

    @staticmethod
    def zeros(batch: int = 1, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu") -> "BodyParams":
        z = lambda n: torch.zeros(batch, n, dtype=dtype, device=device)  # noqa: E731
        return BodyParams(z(NUM_BETAS), z(3), z(3 * (NUM_JOINTS - 1)), z(3))

    def detach(self) -> "BodyParams":
        return BodyParams(*(t.detach().clone() for t in self.as_tuple()))

    def to(self, *args, **kwargs) -> "BodyParams":
        return BodyParams(*(t.to(*args, **kwargs) for t in self.as_tuple()))

    def as_tuple(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.betas, self.global_orient, self.body_pose, self.transl)

    def index(self, i: int) -> "BodyParams":
        """The i-th element as a batch of one."""
        return BodyParams(*(t[i:i + 1] for t in self.as_tuple()))

    @staticmethod
    def cat(items: list["BodyParams"]) -> "BodyParams":
        return BodyParams(*(torch.cat(parts, 0) for parts in zip(*(p.as_tuple() for p in items))))

    def replace(self, **changes: torch.Tensor) -> "BodyParams":
        return replace(self, **changes)


@dataclass
class FitInfo:
    """What the fitting stage did for one person (interfaces.md ``fit``)."""

    iterations: int = 0
    loss_init: float = float("nan")
    loss: float = float("nan")
    ms: float = 0.0
    # Where the fit's start came from: "landmarks" (our body fitted to BlazePose's landmarks),
    # "landmarks (turned reading)", or "network" with the reason the landmarks were not used.
    # Python API and logs only: the JSON's "fit" object keeps the documented four keys.
    start: str = "network"
    # Which start hypothesis the fit optimised: "start", "alternative" (e.g. the landmarks'
    # turned reading), "flipped twin", "turned 90 deg" ..., "previous frame".
    hypothesis: str = "start"


@dataclass
class Person:
    """One estimated person in one image; numpy only (consumed by CLI JSON and ROS messages).

    Attributes:
        id: track id (stable across frames in the node; index in the image for single images).
        bbox: (4,) x0, y0, x1, y1 in pixels.
        joints3d: 24 x 3 metres, camera optical frame.
        joints2d: 24 x 2 pixels.
        joint_visibility: (24,) 0 = occluded .. 1 = visible.
        confidence: overall confidence 0 .. 1.
        joint_confidence: (24,) per-joint confidence 0 .. 1.
        surface_points: K x 3 metres, camera optical frame: the Neural Body Volume's kernel
            centres of the fitted body (what RViz draws as the body surface), or None when not
            computed (``inference.surface_points`` off, or a stand-in pipeline). Not part of the
            JSON record (interfaces.md freezes it).
    """

    id: int
    bbox: np.ndarray
    joints3d: np.ndarray
    joints2d: np.ndarray
    joint_visibility: np.ndarray
    confidence: float
    betas: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    joint_confidence: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))
    fit: FitInfo = field(default_factory=FitInfo)
    surface_points: Optional[np.ndarray] = None

    def to_json(self) -> dict:
        """The interfaces.md person record (plain Python types)."""
        as_list = lambda a: np.asarray(a, dtype=np.float64).tolist()  # noqa: E731
        return {
            "id": int(self.id),
            "bbox": as_list(self.bbox),
            "joints3d": as_list(self.joints3d),
            "joints2d": as_list(self.joints2d),
            "joint_visibility": as_list(self.joint_visibility),
            "confidence": float(self.confidence),
            "betas": as_list(self.betas),
            "global_orient": as_list(self.global_orient),
            "body_pose": as_list(self.body_pose),
            "transl": as_list(self.transl),
            "fit": {"iterations": int(self.fit.iterations), "loss_init": float(self.fit.loss_init),
                    "loss": float(self.fit.loss), "ms": float(self.fit.ms)},
        }


@dataclass
class FrameResult:
    """Everything the pipeline found in one image, with per-stage wall times in milliseconds."""

    people: list[Person]
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Detector boxes dropped as "not a person" (no BlazePose pose and a low detector score;
    # Pipeline.people_boxes): the node reports them in its diagnostics.
    rejected_boxes: int = 0
    # People left at their start body (no fit iterations) because the frame's fit budget
    # (fit.frame_budget_ms) was spent on the larger people before them.
    unfitted_people: int = 0
    # Where each person's box came from, in ``people``'s order: BOX_TRACKED (tracking mode: from
    # the track's landmarks in the previous frame; warm-started short fit), BOX_DETECTED (the
    # person detector) or BOX_GIVEN (the caller's boxes). Empty for stand-in pipelines.
    box_sources: list[str] = field(default_factory=list)
    # Why the person detector ran on this frame (DETECT_* below), "" when it did not (tracking
    # mode between detections, or boxes given by the caller).
    detector_reason: str = ""
    # Tracked people BlazePose no longer found in their tracked box this frame (pose flag below
    # blazepose.min_pose_flag): they make the detector run on the same frame.
    lost_tracks: int = 0

    @property
    def detector_ran(self) -> bool:
        return bool(self.detector_reason)

    @property
    def tracked_people(self) -> int:
        return sum(source == BOX_TRACKED for source in self.box_sources)


BOX_TRACKED, BOX_DETECTED, BOX_GIVEN = "tracked", "detected", "given"
"""``FrameResult.box_sources`` values."""
DETECT_EVERY_FRAME, DETECT_NO_TRACKS, DETECT_PERIODIC, DETECT_TRACK_LOST = (
    "every_frame", "no_tracks", "periodic", "track_lost")
"""``FrameResult.detector_reason`` values: per-frame processing (tracking mode off); no live track
to follow; ``tracking.detect_every`` frames since the last detection (someone may have entered);
BlazePose lost a tracked person."""
