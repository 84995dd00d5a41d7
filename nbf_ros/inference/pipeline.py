"""The pure-Python pipeline: image -> boxes -> crops -> network -> initial body -> fit -> people.

No ROS here: the node, the CLI and the benchmarks all call :meth:`Pipeline.process`.
Stages are small methods so each one is timed (``FrameResult.timings_ms``) and testable.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import numpy as np
import torch

from nbf_ros.config import NbfConfig, resolve_path
from nbf_ros.detection.base import Detections
from nbf_ros.fitting.confidence import confidence_cues, person_confidence
from nbf_ros.fitting.fitter import FitRequest
from nbf_ros.geometry.boxes import box_area, box_iou
from nbf_ros.geometry.camera import CropBox, extract_crop, project_points, weak_perspective_to_translation
from nbf_ros.geometry.rotations import matrix_to_axis_angle, rotation_6d_to_matrix
from nbf_ros.inference.backends import NetArrays, NetworkBackend, load_backend
from nbf_ros.inference.io import validate_intrinsics
from nbf_ros.types import (BOX_DETECTED, BOX_GIVEN, BOX_TRACKED, DETECT_EVERY_FRAME, DETECT_NO_TRACKS,
                           DETECT_PERIODIC, DETECT_TRACK_LOST, BodyParams, CameraIntrinsics, FrameResult,
                           Person)

if TYPE_CHECKING:
    from nbf_ros.body.model import BodyOutput
    from nbf_ros.keypoints.landmarks import PoseLandmarks

LOG = logging.getLogger(__name__)


@dataclass
class CropBatch:
    """Crops of the people in one image.

    Attributes:
        boxes: N x 4 person boxes [x0, y0, x1, y1] in image pixels.
        crop_boxes: the N square crops (image coordinates).
        pixels: N x 3 x S x S float32 in [0, 1].
        cameras: the N crop cameras (crop pixels, size S).
    """

    boxes: np.ndarray
    crop_boxes: list[CropBox]
    pixels: np.ndarray
    cameras: list[CameraIntrinsics]


@dataclass
class FrontEnd:
    """The people of one frame before the network: their boxes, BlazePose's reading of each, and
    where each box came from.

    Attributes:
        boxes: N x 4 person boxes [x0, y0, x1, y1] in image pixels, largest first.
        landmarks: N PoseLandmarks (None where BlazePose found nobody, or is not configured).
        track_ids: per box the track it continues (tracking mode: a box from that track's
            landmarks), or None for detected and given boxes.
        sources: per box ``BOX_TRACKED``, ``BOX_DETECTED`` or ``BOX_GIVEN``.
        rejected: detector boxes dropped as not a person (``people_boxes``).
        detector_reason: why the detector ran (``DETECT_*``), "" when it did not.
        lost: tracked boxes in which BlazePose found nobody.
    """

    boxes: np.ndarray
    landmarks: list
    track_ids: list[Optional[int]]
    sources: list[str]
    rejected: int = 0
    detector_reason: str = ""
    lost: int = 0

    def largest_first(self) -> "FrontEnd":
        """The same people ordered by box area, largest first (the detector's order, which the
        frame's fit budget relies on)."""
        order = [int(i) for i in np.argsort(-box_area(self.boxes), kind="stable")]
        pick = lambda items: [items[i] for i in order]  # noqa: E731
        return FrontEnd(self.boxes[order].reshape(-1, 4), pick(self.landmarks), pick(self.track_ids),
                        pick(self.sources), self.rejected, self.detector_reason, self.lost)


def _timed_call(fn: Callable, *args) -> tuple[object, float]:
    """(fn(*args), its wall time in ms), for a stage run in another thread."""
    start = time.perf_counter()
    result = fn(*args)
    return result, (time.perf_counter() - start) * 1e3


def _timer(timings: dict[str, float]):
    @contextmanager
    def stage(name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            timings[name] = timings.get(name, 0.0) + (time.perf_counter() - start) * 1e3
    return stage


def initial_body(net: NetArrays, cameras: list[CameraIntrinsics], crop_size: int) -> BodyParams:
    """Regression output -> BodyParams in the camera optical frame (batch N).

    The translation comes from the weak-perspective crop camera and the *real* crop intrinsics
    (full perspective), so it is metric whatever the image's focal length.
    """
    pose6d = torch.from_numpy(net.pose6d).float()  # N x 24 x 6
    axis_angle = matrix_to_axis_angle(rotation_6d_to_matrix(pose6d))  # N x 24 x 3
    focal = torch.tensor([0.5 * (c.fx + c.fy) for c in cameras], dtype=torch.float32)
    principal = torch.tensor([[c.cx, c.cy] for c in cameras], dtype=torch.float32)
    transl = weak_perspective_to_translation(torch.from_numpy(net.cam).float(), focal, principal,
                                             crop_size)
    return BodyParams(betas=torch.from_numpy(net.betas).float(),
                      global_orient=axis_angle[:, 0], body_pose=axis_angle[:, 1:].reshape(-1, 69),
                      transl=transl)


def people_boxes(landmarks: list, scores: np.ndarray, min_score_without_landmarks: float) -> list[int]:
    """Indices of the detector boxes that hold people, given BlazePose's answer per box (None =
    no person: pose flag below ``blazepose.min_pose_flag``) and the detector's (N,) scores.

    A box where BlazePose finds a person is one; a box where it finds nobody is kept only when
    the detector is sure enough: a person mostly hidden behind an object gives BlazePose too
    little to read but still scores high with the detector, while the detector's weak false
    boxes (a ball, a pattern) get no pose either. Measured in docs/detection.md, "Which boxes
    are people" (benchmarks/person_gate_bench.py).
    """
    return [i for i, (person, score) in enumerate(zip(landmarks, scores))
            if person is not None or score >= min_score_without_landmarks]


def with_weights_config(config: NbfConfig) -> NbfConfig:
    """``config`` with the network architecture of the weights file it names.

    The trainer saves the full config beside the weights (``nbf_net.pt`` -> ``nbf_net.yaml``);
    the architecture (``net``) is taken from there, loaded strictly, so a user config never has
    to repeat it and cannot silently disagree with it. NBV settings the weights fix (kernel count,
    feature size, orientation bins; O = 1 is the allowed pose-independent ablation) must match.
    """
    from nbf_ros.config import ConfigError, load_config

    weights = resolve_path(config.inference.weights_path)
    beside = weights.with_suffix(".yaml")
    if not beside.is_file():
        return config
    stored = load_config(beside)
    for name in ("num_kernels", "feature_dim", "orientation_bins"):
        mine, theirs = getattr(config.nbv, name), getattr(stored.nbv, name)
        if mine != theirs and not (name == "orientation_bins" and mine == 1):
            raise ConfigError(f"nbv.{name} is {mine} but {weights.name} was trained with {theirs} "
                              f"({beside}); remove it from your config or retrain")
    return dataclasses.replace(config, net=stored.net)


class FrameBudget:
    """The fit stage's wall-clock budget for one frame, shared out batch by batch.

    ``fit.frame_budget_ms`` bounds the whole fit stage, so that a crowd costs a bounded time
    instead of people x ``fit.budget_ms``: a batch of n people fitted together gets at most
    n x ``per_person_ms`` and at most what the batches before it left; once nothing is left
    the rest are not fitted (they keep their start body, scored and assessed) and the node
    reports them. 0 = no frame budget.
    """

    def __init__(self, total_ms: float, per_person_ms: float, clock: Callable[[], float] = time.perf_counter):
        self.per_person_ms = per_person_ms
        self.clock = clock
        self.deadline = clock() + total_ms / 1e3 if total_ms > 0 else math.inf

    def next_batch(self, people: int) -> Optional[float]:
        """The budget in ms of the next batch of ``people``, or None when the frame's is spent."""
        left_ms = (self.deadline - self.clock()) * 1e3
        return min(self.per_person_ms * people, left_ms) if left_ms > 0 else None

    def next_person(self) -> Optional[float]:
        """The next single person's budget in ms, or None when the frame's budget is spent."""
        return self.next_batch(1)


class Pipeline:
    """Occlusion-robust 3D people from one RGB image.

    Build with :meth:`from_config`; call :meth:`process` per frame. Not thread-safe: one caller
    at a time (the node's worker thread).
    """

    def __init__(self, config: NbfConfig, backend: NetworkBackend, detector, body, fitter,
                 landmarker=None, body_from_landmarks=None, tracked_body_from_landmarks=None) -> None:
        self.config = config
        self.backend = backend
        self.detector = detector
        self.body = body
        self.fitter = fitter
        # BlazePose landmarks on every box (fit.keypoint_source 'blazepose' or fit.init_source
        # 'landmarks'), else None.
        self.landmarker = landmarker
        # Our body fitted to those landmarks as the fit's start (fit.init_source 'landmarks'),
        # and the shorter, single-reading fit for tracked people (tracking.start_iterations).
        self.body_from_landmarks = body_from_landmarks
        self.tracked_body_from_landmarks = tracked_body_from_landmarks or body_from_landmarks
        self.backend_name = backend.name
        self.clock = time.perf_counter  # the frame budget's clock (tests replace it)
        self._pool: Optional[ThreadPoolExecutor] = None  # inference.overlap_network's thread

    @classmethod
    def from_config(cls, config: NbfConfig) -> "Pipeline":
        """Load the detector, BlazePose, body model, network backend and fitter; raises on bad
        files (a missing or corrupt ONNX model: one-line EngineError naming the file and the
        command that rebuilds it).

        The pretrained ONNX front end is opened first: it fails fastest, before seconds are
        spent loading the network.
        """
        from nbf_ros.body.model import BodyModel
        from nbf_ros.detection import make_detector
        from nbf_ros.fitting.fitter import Fitter
        from nbf_ros.tracking import check_tracking_config

        config = with_weights_config(config)
        check_tracking_config(config.tracking)
        detector = make_detector(config.detector)
        landmarker = None
        if config.fit.keypoint_source == "blazepose" or config.fit.init_source == "landmarks":
            from nbf_ros.keypoints.landmarks import BlazePoseLandmarker

            landmarker = BlazePoseLandmarker(config.blazepose)
        if config.inference.num_threads > 0:
            torch.set_num_threads(config.inference.num_threads)
        body = BodyModel(resolve_path(config.body.model_path), num_betas=config.body.num_betas)
        backend, bank = load_backend(config)  # one read of the weights file for both
        fitter = Fitter.from_config(config, body, bank)
        body_from_landmarks = tracked = None
        if config.fit.init_source == "landmarks":
            from nbf_ros.fitting.from_landmarks import LandmarkBodyFitter

            body_from_landmarks = LandmarkBodyFitter.from_config(body, config.landmark_fit, fitter.pose_prior)
            tracked = LandmarkBodyFitter(body, body_from_landmarks.regressor, fitter.pose_prior, dataclasses.replace(
                config.landmark_fit, iterations=config.tracking.start_iterations, turned_hypothesis=False))
        return cls(config, backend, detector, body, fitter, landmarker, body_from_landmarks, tracked)

    def model_info(self) -> dict[str, str]:
        return {"body_model": str(self.config.body.model_path),
                "weights": str(self.config.inference.weights_path), "backend": self.backend_name}

    # -- stages -------------------------------------------------------------------------------
    def crop_people(self, image_rgb: np.ndarray, camera: CameraIntrinsics, boxes: np.ndarray) -> CropBatch:
        size = self.config.net.crop_size
        crop_boxes = [CropBox.around_bbox(b, self.config.net.crop_scale) for b in boxes]
        pixels = np.zeros((len(boxes), 3, size, size), dtype=np.float32)
        for i, box in enumerate(crop_boxes):
            pixels[i] = extract_crop(image_rgb, box, size).transpose(2, 0, 1) / 255.0
        cameras = [box.crop_intrinsics(camera, size) for box in crop_boxes]
        return CropBatch(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), crop_boxes, pixels, cameras)

    def detect(self, image_rgb: np.ndarray, boxes: Optional[np.ndarray] = None) -> Detections:
        """The detector's boxes (largest first) with their scores, at most ``max_people``; boxes
        given by the caller are taken as people (score +inf: never dropped by ``people_boxes``)."""
        if boxes is None:
            found = self.detector.detect_scored(image_rgb)
        else:
            boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            found = Detections(boxes, np.full(len(boxes), np.inf))
        count = self.config.detector.max_people
        return Detections(found.boxes[:count], found.scores[:count])

    def people_boxes(self, found: Detections, landmarks: list) -> list[int]:
        """Indices of the boxes that hold people (``people_boxes``); every box without BlazePose."""
        if self.landmarker is None:
            return list(range(len(found.boxes)))
        return people_boxes(landmarks, found.scores, self.config.detector.min_score_without_landmarks)

    def landmarks(self, image_rgb: np.ndarray, boxes: np.ndarray,
                  camera: CameraIntrinsics) -> list[Optional["PoseLandmarks"]]:
        """BlazePose on every box, one batch (keypoints/landmarks.py); None per box where it
        found nobody, and all None when BlazePose is not configured."""
        if self.landmarker is None:
            return [None] * len(boxes)
        return self.landmarker.estimate(image_rgb, boxes, camera)

    def external_keypoints(self, landmarks: list, crops: CropBatch) -> list:
        """Per person (1 x 24 x 2 crop pixels, 1 x 24 confidence) from BlazePose's landmarks
        (``fit.keypoint_source`` 'blazepose'), or None (the fitter then uses the network's
        heatmaps: source 'network', or no person found in that box)."""
        if self.config.fit.keypoint_source != "blazepose":
            return [None] * len(crops.boxes)
        from nbf_ros.keypoints.blazepose import crop_keypoints

        size = self.config.net.crop_size
        return [None if p is None else crop_keypoints(p.to_smpl(), box, size)
                for p, box in zip(landmarks, crops.crop_boxes)]

    def start_bodies(self, regression: BodyParams, landmarks: list, camera: CameraIntrinsics,
                     tracked: Optional[list[bool]] = None
                     ) -> tuple[BodyParams, list[list[BodyParams]], list[str], list[Optional[np.ndarray]]]:
        """The fit's start per person: (bodies (N), extra start hypotheses per person, where
        each start came from, the person-confidence cues of the start (``confidence_cues``;
        None for people not started from landmarks)).

        With ``fit.init_source`` 'landmarks', people BlazePose found get our body fitted to its
        landmarks (one batched call for the frame), and the front/back-turned reading as an
        extra hypothesis for the NBF objective to rule on; the others, and people with too few
        confident landmarks, keep the regression head's body and say why. ``tracked`` people
        (tracking mode) get the shorter fit of BlazePose's own reading only
        (``tracking.start_iterations``): their facing comes from the track.
        """
        return self.merge_starts(regression, landmarks, self.landmark_fits(landmarks, camera, tracked))

    def landmark_fits(self, landmarks: list, camera: CameraIntrinsics, tracked: Optional[list[bool]] = None
                      ) -> list[tuple[object, list[int], object]]:
        """The body-from-landmarks fits of ``start_bodies`` (which need no network output):
        (fitter, people, ``LandmarkFitResult``) per batch, detected and tracked people apart."""
        if self.body_from_landmarks is None:
            return []
        tracked = tracked if tracked is not None else [False] * len(landmarks)
        batches = []
        for fitter, is_tracked in ((self.body_from_landmarks, False), (self.tracked_body_from_landmarks, True)):
            found = [i for i, p in enumerate(landmarks) if p is not None and tracked[i] == is_tracked]
            if found:
                batches.append((fitter, found, fitter.fit([landmarks[i] for i in found], [camera] * len(found))))
        return batches

    def merge_starts(self, regression: BodyParams, landmarks: list, fits: list
                     ) -> tuple[BodyParams, list[list[BodyParams]], list[str], list[Optional[np.ndarray]]]:
        """``start_bodies``' result from the regression head's bodies and the ``landmark_fits``:
        the landmark body where its fit succeeded, the regression's elsewhere (and why)."""
        count = regression.batch_size
        alternatives: list[list[BodyParams]] = [[] for _ in range(count)]
        cues: list[Optional[np.ndarray]] = [None] * count
        if self.body_from_landmarks is None:
            return regression, alternatives, ["network"] * count, cues
        sources = ["network (BlazePose found nobody in the box)"] * count  # overwritten where found
        merged = [t.clone() for t in regression.as_tuple()]
        for fitter, found, result in fits:
            index = torch.as_tensor(found)
            chosen = result.with_fallback(BodyParams(*(t[index] for t in regression.as_tuple())))
            for full, part in zip(merged, chosen.as_tuple()):
                full[index] = part.to(full)
            for row, (i, info) in enumerate(zip(found, result.info)):
                if info.ok:
                    sources[i] = "landmarks" if info.hypothesis == 0 else "landmarks (turned reading)"
                    if fitter.config.turned_hypothesis:
                        alternatives[i] = [result.alternative.index(row)]
                    cues[i] = confidence_cues(landmarks[i].pose_flag, landmarks[i].confidence,
                                              info.losses[info.hypothesis])
                else:
                    sources[i] = f"network ({info.reason})"
        return BodyParams(*merged), alternatives, sources, cues

    def network_and_starts(self, crops: CropBatch, landmarks: list, camera: CameraIntrinsics,
                           tracked: list[bool], timings: dict[str, float]) -> tuple:
        """(network outputs, ``start_bodies``' four results). With ``inference.overlap_network``
        the network runs in a second thread while this one fits the landmark starts (they meet
        only in ``merge_starts``); the "network" time is then measured in that thread, so it
        overlaps the "init" time instead of adding to it."""
        stage = _timer(timings)
        if not self.config.inference.overlap_network or self.body_from_landmarks is None:
            with stage("network"):
                net = self.backend.run(crops.pixels)
            with stage("init"):
                regression = initial_body(net, crops.cameras, self.config.net.crop_size)
                return (net, *self.start_bodies(regression, landmarks, camera, tracked))
        pending = self._network_thread().submit(_timed_call, self.backend.run, crops.pixels)
        with stage("init"):
            fits = self.landmark_fits(landmarks, camera, tracked)
        net, network_ms = pending.result()  # re-raises the network's error in this thread
        timings["network"] = timings.get("network", 0.0) + network_ms
        with stage("init"):
            regression = initial_body(net, crops.cameras, self.config.net.crop_size)
            return (net, *self.merge_starts(regression, landmarks, fits))

    def _network_thread(self) -> ThreadPoolExecutor:
        """The one worker thread of ``inference.overlap_network`` (made on first use)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbf_network")
        return self._pool

    def people_from_params(self, params: BodyParams, boxes: np.ndarray, camera: CameraIntrinsics,
                           ids: list[int], fits: list) -> list[Person]:
        with torch.no_grad():
            body = self.body(params)
            joints = body.joints  # N x 24 x 3
            uv = project_points(joints, camera.fx, camera.fy, camera.cx, camera.cy)
        surface = self.surface_points(body)
        people = []
        for i in range(params.batch_size):
            fit = fits[i]
            people.append(Person(
                id=ids[i], bbox=boxes[i], joints3d=joints[i].numpy().astype(np.float64),
                joints2d=uv[i].numpy().astype(np.float64),
                joint_visibility=fit.joint_visibility, confidence=float(fit.confidence),
                joint_confidence=fit.joint_confidence,
                betas=params.betas[i].numpy().astype(np.float64),
                global_orient=params.global_orient[i].numpy().astype(np.float64),
                body_pose=params.body_pose[i].numpy().astype(np.float64),
                transl=params.transl[i].numpy().astype(np.float64), fit=fit.info,
                surface_points=surface[i]))
        return people

    def surface_points(self, body: BodyOutput) -> list[Optional[np.ndarray]]:
        """Per person its K x 3 kernel centres (metres, camera optical frame), or Nones when
        ``inference.surface_points`` is off.

        The kernel centres are the posed mesh's vertices at the NBV's kernel sites (as in
        ``NeuralBodyVolume.forward``). They are taken from the full-mesh forward that
        ``people_from_params`` runs for the joints anyway, so they cost an index, not a second
        skinning (``BodyModel.shaped_subset`` + ``pose_subset`` would pose the kernels again).
        """
        if not self.config.inference.surface_points:
            return [None] * int(body.vertices.shape[0])
        ids = self.fitter.nbv.kernel_vertex_ids.to(body.vertices.device)
        return list(body.vertices.index_select(1, ids).cpu().double().numpy())

    def person_masks(self, crops: CropBatch, landmarks: list, size: tuple[int, int]) -> list:
        """Per person BlazePose's segmentation mask on the fitter's feature grid (1 x h x w
        tensor), None where it found nobody: the joint visibility reads it, and with depth the
        placement trusts the surface inside it."""
        from nbf_ros.geometry.depth import sample_on_crop
        from nbf_ros.keypoints.landmarks import mask_in_box

        height, width = size
        crop_size = self.config.net.crop_size
        grid = crop_size // self.config.net.feature_stride
        out = []
        for box, found, crop in zip(crops.boxes, landmarks, crops.crop_boxes):
            if found is None:
                out.append(None)
                continue
            patch, (col0, row0) = mask_in_box(found, box, height, width)
            mask = np.zeros((height, width), np.float32)
            mask[row0:row0 + patch.shape[0], col0:col0 + patch.shape[1]] = patch
            out.append(torch.from_numpy(sample_on_crop(mask, crop, crop_size, grid, reduce="mean"))[None])
        return out

    def depth_crops(self, depth: Optional[np.ndarray], crops: CropBatch, masks: list,
                    size: tuple[int, int]) -> list:
        """Per person its observed depth on the fitter's feature grid (``DepthCrop``, with
        the person's mask from ``person_masks``), or all None without depth."""
        if depth is None:
            return [None] * len(crops.boxes)
        from nbf_ros.fitting.depth import DepthCrop
        from nbf_ros.geometry.depth import check_registered, depth_for_crop, drop_flying_pixels

        height, width = size
        check_registered(depth, width, height)
        clean = drop_flying_pixels(depth)
        crop_size = self.config.net.crop_size
        grid = crop_size // self.config.net.feature_stride
        return [DepthCrop(DepthCrop.from_numpy(depth_for_crop(clean, crop, crop_size, grid)[0]).depth, mask)
                for crop, mask in zip(crops.crop_boxes, masks)]

    # -- front end: who is in the frame ------------------------------------------------------
    def tracking_active(self, tracker, boxes: Optional[np.ndarray]) -> bool:
        """Tracking mode applies: switched on (``tracking.enabled``), a tracker carries the
        tracks, the detector (not the caller) finds people, and BlazePose is there to follow
        them (without it there are no landmarks to derive the next box from)."""
        return (self.config.tracking.enabled and tracker is not None and boxes is None
                and self.landmarker is not None)

    def per_frame_front_end(self, image_rgb: np.ndarray, camera: CameraIntrinsics,
                            boxes: Optional[np.ndarray], stage) -> FrontEnd:
        """Every frame on its own: the detector's boxes (or the caller's), BlazePose on each."""
        with stage("detect"):
            found = self.detect(image_rgb, boxes)
        with stage("landmarks"):
            landmarks = self.landmarks(image_rgb, found.boxes, camera)
            keep = self.people_boxes(found, landmarks)
        source = BOX_DETECTED if boxes is None else BOX_GIVEN
        return FrontEnd(found.boxes[keep], [landmarks[i] for i in keep], [None] * len(keep),
                        [source] * len(keep), rejected=len(found.boxes) - len(keep),
                        detector_reason=DETECT_EVERY_FRAME if boxes is None else "")

    def tracking_front_end(self, image_rgb: np.ndarray, camera: CameraIntrinsics, tracker, stage) -> FrontEnd:
        """Tracking mode (MediaPipe's BlazePose on video): BlazePose in each tracked box (from the
        track's landmarks last frame; of two boxes framing one person the older track's), then
        the detector only when no track is live, a tracked person was lost, or
        ``tracking.detect_every`` frames passed; its people are added unless already tracked."""
        from nbf_ros.tracking import duplicate_boxes

        cfg = self.config.tracking
        ids, boxes = tracker.tracked_boxes()
        duplicates = set(duplicate_boxes(boxes, cfg.merge_iou))
        keep = [i for i in range(len(ids)) if i not in duplicates][:self.config.detector.max_people]
        ids, boxes = [ids[i] for i in keep], boxes[keep].reshape(-1, 4)
        with stage("landmarks"):
            landmarks = self.landmarks(image_rgb, boxes, camera)
        held = [i for i, p in enumerate(landmarks) if p is not None]
        tracked = FrontEnd(boxes[held], [landmarks[i] for i in held], [ids[i] for i in held],
                           [BOX_TRACKED] * len(held), lost=len(ids) - len(held))
        reason = (DETECT_NO_TRACKS if not ids else DETECT_TRACK_LOST if tracked.lost
                  else DETECT_PERIODIC if tracker.detection_due(cfg.detect_every) else "")
        if not reason:
            return tracked
        tracker.detector_ran()
        new = self.untracked_people(image_rgb, camera, tracked.boxes, stage)
        return FrontEnd(np.concatenate([tracked.boxes, new.boxes]), tracked.landmarks + new.landmarks,
                        tracked.track_ids + new.track_ids, tracked.sources + new.sources,
                        rejected=new.rejected, detector_reason=reason, lost=tracked.lost).largest_first()

    def untracked_people(self, image_rgb: np.ndarray, camera: CameraIntrinsics, tracked_boxes: np.ndarray,
                         stage) -> FrontEnd:
        """The detector's people who are not tracked yet (``tracking.already_tracked``: by box
        overlap before BlazePose runs on them, then by the box around the landmarks it reads),
        at most ``detector.max_people`` with the tracked ones. A detection already taken this
        frame counts as tracked for the ones after it (largest first): the detector's box of a
        whole person and its box of that person's upper body become one person."""
        from nbf_ros.tracking import already_tracked, box_from_landmarks

        cfg = self.config.tracking
        height, width = image_rgb.shape[:2]
        with stage("detect"):
            found = self.detect(image_rgb)
            fresh = np.ones(len(found.boxes), bool)
            if len(tracked_boxes) and len(found.boxes):  # plainly tracked: no BlazePose run for them
                fresh = box_iou(found.boxes, tracked_boxes).max(axis=1) < cfg.merge_iou
            room = max(self.config.detector.max_people - len(tracked_boxes), 0)
            found = Detections(found.boxes[fresh][:room], found.scores[fresh][:room])
        with stage("landmarks"):
            landmarks = self.landmarks(image_rgb, found.boxes, camera)
            people = self.people_boxes(found, landmarks)
            around = [None if landmarks[i] is None else
                      box_from_landmarks(landmarks[i].landmarks[:, :2], cfg.roi_margin, width, height) for i in people]
            keep, taken = [], [np.asarray(tracked_boxes, np.float64).reshape(-1, 4)]
            for i, box in zip(people, around):
                if not already_tracked(found.boxes[i], box, np.concatenate(taken), cfg.merge_iou):
                    keep.append(i)
                    taken.append((found.boxes[i] if box is None else box).reshape(1, 4))
        return FrontEnd(found.boxes[keep].reshape(-1, 4), [landmarks[i] for i in keep], [None] * len(keep),
                        [BOX_DETECTED] * len(keep), rejected=len(found.boxes) - len(people))

    def next_boxes(self, front: FrontEnd, size: tuple[int, int]) -> list[Optional[np.ndarray]]:
        """Per person the box to look for them in next frame (tracking mode): the box around
        BlazePose's landmarks grown by ``tracking.roi_margin``; a person BlazePose did not read
        keeps their box (BlazePose then misses them again, and the detector runs)."""
        from nbf_ros.tracking import box_from_landmarks

        height, width = size
        margin = self.config.tracking.roi_margin
        return [box if found is None else box_from_landmarks(found.landmarks[:, :2], margin, width, height)
                for box, found in zip(front.boxes, front.landmarks)]

    # -- entry ---------------------------------------------------------------------------------
    def process(self, image_rgb: np.ndarray, camera: CameraIntrinsics, tracker=None, fit: bool = True,
                boxes: Optional[np.ndarray] = None, stamp_s: float = 0.0,
                depth: Optional[np.ndarray] = None) -> FrameResult:
        """Find, regress and fit every person in ``image_rgb`` (H x W x 3 uint8 RGB).

        Args:
            camera: intrinsics of this image (validated; InputError when unusable).
            tracker: optional ``nbf_ros.tracking.Tracker``: ids and warm starts across frames;
                with ``tracking.enabled`` also tracking mode (``tracking_front_end``): tracked
                people are looked for where their landmarks were, the detector runs now and then,
                and their fit is warm-started and shorter (``tracking.fit_iterations``).
            fit: False gives the regression-only estimate (same outputs, fit.iterations = 0).
            boxes: N x 4 person boxes to use instead of the detector (no tracking mode).
            depth: optional H x W depth registered to the image (metres, NaN = no data; see
                ``geometry/depth.py``; DepthError when its size differs): metric position,
                a depth term and occluders in the fit (docs/depth.md).
        """
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f"image must be H x W x 3 uint8 RGB, got {image_rgb.shape} {image_rgb.dtype}")
        validate_intrinsics(camera, "camera")
        timings: dict[str, float] = {"detect": 0.0}  # reported also on frames the detector skips
        stage = _timer(timings)
        tracking = self.tracking_active(tracker, boxes)
        front = (self.tracking_front_end(image_rgb, camera, tracker, stage) if tracking
                 else self.per_frame_front_end(image_rgb, camera, boxes, stage))
        summary = dict(rejected_boxes=front.rejected, box_sources=list(front.sources),
                       detector_reason=front.detector_reason, lost_tracks=front.lost)
        boxes, landmarks = front.boxes, front.landmarks
        if len(boxes) == 0:
            if tracker is not None:
                tracker.update([], stamp_s)
            return FrameResult(people=[], timings_ms=timings, **summary)
        tracked = [source == BOX_TRACKED for source in front.sources]
        with stage("crop"):
            crops = self.crop_people(image_rgb, camera, boxes)
        net, init, alternatives, sources, cues = self.network_and_starts(crops, landmarks, camera, tracked,
                                                                         timings)
        ids, previous = list(range(len(boxes))), [None] * len(boxes)
        if tracker is not None:
            ids, previous = tracker.assign(boxes, init.transl.numpy(), stamp_s, known=front.track_ids)
        keypoints = self.external_keypoints(landmarks, crops)
        with stage("depth"):
            masks = self.person_masks(crops, landmarks, image_rgb.shape[:2])
            depths = self.depth_crops(depth, crops, masks, image_rgb.shape[:2])
        with stage("fit"):
            fits, unfitted = self.fit_people(net, crops, init, previous, fit, keypoints, alternatives, depths,
                                             tracked, masks)
            for result, source, person_cues in zip(fits, sources, cues):
                result.info.start = source
                if self.config.fit.confidence_source == "landmarks":
                    result.confidence = person_confidence(person_cues, self.config.fit.person_confidence,
                                                          self.config.fit.confidence_without_landmarks)
            params = BodyParams.cat([f.params for f in fits])
        with stage("people"):
            people = self.people_from_params(params, boxes, camera, ids, fits)
        if tracker is not None:
            tracker.update(people, stamp_s, self.next_boxes(front, image_rgb.shape[:2]) if tracking else None)
        return FrameResult(people=people, timings_ms=timings, unfitted_people=unfitted, **summary)

    def fit_people(self, net: NetArrays, crops: CropBatch, init: BodyParams, previous: list,
                   fit: bool, keypoints: list, alternatives: list, depths: list,
                   tracked: Optional[list[bool]] = None, masks: Optional[list] = None) -> tuple[list, int]:
        """Fit the frame's people in at most two batches (``Fitter.fit_batch``: one render and one
        backward per iteration for the whole batch) within the frame's budget (``FrameBudget``);
        returns (FitResults in the people's order, people left at their start because it was
        spent). First the detected people, with every start hypothesis and ``fit.max_iters``;
        then the tracked ones (tracking mode, with a warm start): ``tracking.fit_iterations`` and
        no flipped or turned starts, since the previous frame's body is close and its facing was
        settled by the frames before."""
        budget = FrameBudget(self.config.fit.frame_budget_ms, self.config.fit.budget_ms, self.clock)
        tracked = tracked if tracked is not None else [False] * len(crops.boxes)
        masks = masks if masks is not None else [None] * len(crops.boxes)
        short = [bool(t) and p is not None for t, p in zip(tracked, previous)]
        fits: list = [None] * len(crops.boxes)
        unfitted = 0
        for is_short in (False, True):
            members = [i for i, s in enumerate(short) if s == is_short]
            if not members:
                continue
            allowed_ms = budget.next_batch(len(members)) if fit else None
            unfitted += len(members) if fit and allowed_ms is None else 0
            requests = [FitRequest(i, crops.cameras[i], init.index(i), warm_start=previous[i],
                                   keypoints=keypoints[i], alternatives=[] if is_short else alternatives[i],
                                   alternatives_mirrored=True,
                                   depth=depths[i], turns=not is_short, mask=masks[i]) for i in members]
            results = self.fitter.fit_batch(net, requests, iterate=allowed_ms is not None, budget_ms=allowed_ms,
                                            max_iters=self.config.tracking.fit_iterations if is_short else None)
            for i, result in zip(members, results):
                fits[i] = result
        return fits, unfitted
