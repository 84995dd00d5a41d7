"""Tracking mode (issue 14): tracked boxes from the previous frame's landmarks, the detector only
when due or when a track is lost, detections merged with tracked people, stable ids.

A short rendered walking sequence (benchmarks/tracking_bench.py ``walk_sequence``) through the
real front end (BlazePose) with a stub detector that returns the truth boxes and records on which
frames it was called; untrained network, regression only unless a test fits.
"""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from nbf_ros.config import TrackingModeConfig
from nbf_ros.detection.base import Detections
from nbf_ros.geometry.boxes import box_iou
from nbf_ros.tracking import Tracker, box_from_landmarks, check_tracking_config, duplicate_boxes
from nbf_ros.types import BOX_DETECTED, BOX_TRACKED, DETECT_NO_TRACKS, DETECT_PERIODIC, DETECT_TRACK_LOST

from script_loader import load_script

BENCH = load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "tracking_bench.py", "tracking_bench")
FRAMES = 7
WALKERS = (BENCH.Walker(3.0, -1.1, 0.12, -0.9), BENCH.Walker(3.4, 0.9, -0.04, 0.6))
"""Two people 2 m apart; the first walks 12 cm per frame to the right (about 12 px per frame)."""


class StubDetector:
    """The truth boxes of the frame set in ``frame`` (score 0.9), plus ``extra`` boxes; records
    the frames it was called on."""

    def __init__(self, frames) -> None:
        self.frames, self.frame, self.calls, self.extra = frames, 0, [], np.zeros((0, 4))

    def detect_scored(self, image):
        self.calls.append(self.frame)
        boxes = np.concatenate([np.stack(self.frames[self.frame].boxes), self.extra])
        return Detections(boxes, np.full(len(boxes), 0.9))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tracking_pipeline(untrained_config):
    from nbf_ros.inference.pipeline import Pipeline

    cfg = untrained_config[0]
    cfg = dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, enabled=True, detect_every=3,
                                                                fit_iterations=1, start_iterations=5),
                              landmark_fit=dataclasses.replace(cfg.landmark_fit, iterations=5))
    return Pipeline.from_config(cfg)


@pytest.fixture(scope="module")
def walk(tracking_pipeline):
    return BENCH.walk_sequence(WALKERS, FRAMES, tracking_pipeline.body, width=480, height=360)


def run(pipeline, camera, frames, detector, tracker, indices, fit=False, images=None):
    """Process the frames ``indices`` (stamps 1/30 s apart); the FrameResults."""
    pipeline.detector = detector
    out = []
    for i in indices:
        detector.frame = i
        image = frames[i].image if images is None else images[i]
        out.append(pipeline.process(image, camera, tracker=tracker, fit=fit, stamp_s=i / 30.0))
    return out


def truth_of(person, frame) -> int:
    """Index of the truth person whose box ``person``'s box overlaps most."""
    return int(np.argmax(box_iou(person.bbox[None], np.stack(frame.boxes))[0]))


def test_detector_runs_only_when_due_and_tracked_people_skip_it(tracking_pipeline, walk):
    camera, frames = walk
    detector = StubDetector(frames)
    results = run(tracking_pipeline, camera, frames, detector, Tracker(), range(FRAMES))
    assert detector.calls == [0, 3, 6]  # detect_every 3, nobody lost
    assert [r.detector_reason for r in results] == [DETECT_NO_TRACKS, "", "", DETECT_PERIODIC, "", "",
                                                    DETECT_PERIODIC]
    assert results[0].box_sources == [BOX_DETECTED] * 2
    for r in results[1:]:
        assert r.box_sources == [BOX_TRACKED] * 2 and r.tracked_people == 2 and r.lost_tracks == 0
    assert all(r.timings_ms["detect"] == 0.0 for i, r in enumerate(results) if i % 3)


def test_tracked_boxes_follow_the_walking_person_and_keep_their_ids(tracking_pipeline, walk):
    camera, frames = walk
    tracker = Tracker()
    results = run(tracking_pipeline, camera, frames, StubDetector(frames), tracker, range(FRAMES))
    ids: dict[int, set] = {0: set(), 1: set()}
    centres = []
    for frame, result in zip(frames, results):
        assert len(result.people) == 2
        for person in result.people:
            k = truth_of(person, frame)
            ids[k].add(person.id)
            # The box is last frame's landmarks': a frame late, and the stride swings the legs
            # (IoU 0.53-0.88 here); its centre stays on the person.
            truth = frame.boxes[k]
            assert box_iou(person.bbox[None], truth[None])[0, 0] > 0.4
            centre, truth_centre = 0.5 * (person.bbox[:2] + person.bbox[2:]), 0.5 * (truth[:2] + truth[2:])
            assert np.all(np.abs(centre - truth_centre) < 0.25 * (truth[3] - truth[1]))
            if k == 0:
                centres.append(0.5 * (person.bbox[0] + person.bbox[2]))
    assert all(len(v) == 1 for v in ids.values()) and ids[0] != ids[1]  # one id each, all along
    steps = np.diff(centres)
    truth_steps = np.diff([0.5 * (f.boxes[0][0] + f.boxes[0][2]) for f in frames])
    assert np.all(steps > 0) and np.allclose(steps.mean(), truth_steps.mean(), rtol=0.5)


def test_a_lost_track_makes_the_detector_run_on_the_same_frame(tracking_pipeline, walk):
    """The first person is painted over in frame 2 (flat grey, their box and 20 px around it):
    BlazePose finds nobody in the tracked box, and the detector runs on that frame."""
    camera, frames = walk
    detector = StubDetector(frames)
    image = frames[2].image.copy()
    x0, y0, x1, y1 = (int(round(v)) for v in frames[2].boxes[0] + [-20, -20, 20, 20])
    image[max(y0, 0):y1, max(x0, 0):x1] = 128
    truth = list(frames[2].boxes)
    frames_with_gap = list(frames)
    frames_with_gap[2] = BENCH.WalkFrame(2, image, frames[2].joints3d[1:], frames[2].joints2d[1:], truth[1:])
    detector.frames = frames_with_gap
    results = run(tracking_pipeline, camera, frames_with_gap, detector, Tracker(), range(3))
    assert detector.calls == [0, 2]
    assert results[2].detector_reason == DETECT_TRACK_LOST and results[2].lost_tracks == 1
    assert len(results[2].people) == 1 and results[2].box_sources == [BOX_TRACKED]
    assert results[2].people[0].id == [p.id for p in results[1].people if truth_of(p, frames[1]) == 1][0]


def test_detections_of_tracked_people_are_merged_not_duplicated(tracking_pipeline, walk):
    """On a detection frame the detector returns both people plus the upper 40 % of each one's
    box (as when an occluder hides the legs; IoU 0.4 with the whole): nobody is added twice."""
    camera, frames = walk
    detector = StubDetector(frames)
    halves = np.stack(frames[3].boxes).copy()
    halves[:, 3] = halves[:, 1] + 0.4 * (halves[:, 3] - halves[:, 1])
    assert box_iou(halves, np.stack(frames[3].boxes)).max() < tracking_pipeline.config.tracking.merge_iou
    tracker = Tracker()
    run(tracking_pipeline, camera, frames, detector, tracker, range(3))
    detector.extra = halves
    result = run(tracking_pipeline, camera, frames, detector, tracker, [3])[0]
    assert result.detector_reason == DETECT_PERIODIC
    assert len(result.people) == 2 and result.box_sources == [BOX_TRACKED] * 2
    first = run(tracking_pipeline, camera, frames, detector, Tracker(), [3])[0]  # nobody tracked yet
    assert first.detector_reason == DETECT_NO_TRACKS
    assert len(first.people) == 2 and first.box_sources == [BOX_DETECTED] * 2


def test_tracked_people_get_the_short_warm_fit(tracking_pipeline, walk):
    camera, frames = walk
    results = run(tracking_pipeline, camera, frames, StubDetector(frames), Tracker(), range(2), fit=True)
    max_iters = tracking_pipeline.config.fit.max_iters
    assert all(0 < p.fit.iterations <= max_iters for p in results[0].people)
    assert results[1].tracked_people == 2
    assert all(p.fit.iterations == tracking_pipeline.config.tracking.fit_iterations for p in results[1].people)


def test_without_tracking_mode_the_detector_runs_every_frame(tracking_pipeline, walk):
    camera, frames = walk
    config = tracking_pipeline.config
    tracking_pipeline.config = dataclasses.replace(config, tracking=dataclasses.replace(config.tracking,
                                                                                        enabled=False))
    try:
        detector = StubDetector(frames)
        results = run(tracking_pipeline, camera, frames, detector, Tracker(), range(3))
    finally:
        tracking_pipeline.config = config
    assert detector.calls == [0, 1, 2]
    assert all(r.box_sources == [BOX_DETECTED] * 2 and r.detector_reason == "every_frame" for r in results)
    ids = [sorted(p.id for p in r.people) for r in results]
    assert ids[0] == ids[1] == ids[2]


# -- pieces --------------------------------------------------------------------------------------
def test_box_from_landmarks_grows_and_clips():
    points = np.array([[10.0, 20.0], [30.0, 120.0], [np.nan, 5.0]])
    # Pixel edges (geometry/boxes.py): the landmark pixels' outer edges, grown by 0.1 x 101 px,
    # clipped to the image's extent [-0.5, W - 0.5].
    np.testing.assert_allclose(box_from_landmarks(points, 0.1, 640, 480), [-0.5, 9.4, 40.6, 130.6])
    np.testing.assert_allclose(box_from_landmarks(points, 0.0, 20, 480), [9.5, 19.5, 19.5, 120.5])
    assert box_from_landmarks(points + 1000.0, 0.1, 640, 480) is None  # left the image
    assert box_from_landmarks(np.full((3, 2), np.nan), 0.1, 640, 480) is None


def test_duplicate_boxes_keep_the_first():
    boxes = np.array([[0, 0, 10, 20], [1, 1, 11, 21], [50, 0, 60, 20], [0, 0, 10, 19]], float)
    assert duplicate_boxes(boxes, 0.5) == [1, 3]
    assert duplicate_boxes(boxes[:1], 0.5) == [] and duplicate_boxes(boxes, 1.0) == []


def test_tracker_known_ids_and_detection_schedule():
    from nbf_ros.types import Person

    def person(pid, box):
        z = np.zeros
        return Person(pid, np.asarray(box, float), z((24, 3)), z((24, 2)), z(24), 0.5, z(10), z(3), z(69),
                      np.array([0.0, 0.0, 3.0]))

    tracker = Tracker()
    assert tracker.detection_due(3)
    ids, _ = tracker.assign(np.array([[0, 0, 10, 20], [40, 0, 50, 20]], float), None, 0.0)
    tracker.detector_ran()
    tracker.update([person(ids[0], [0, 0, 10, 20]), person(ids[1], [40, 0, 50, 20])], 0.0,
                   [np.array([1, 0, 11, 20.0]), None])
    tracked_ids, boxes = tracker.tracked_boxes()
    assert tracked_ids == [ids[0]] and np.allclose(boxes, [[1, 0, 11, 20]])
    assert not tracker.detection_due(3)
    # A box known to continue track ids[1] keeps it although it overlaps ids[0]'s box.
    again, warm = tracker.assign(np.array([[0, 0, 10, 20]], float), None, 0.1, known=[ids[1]])
    assert again == [ids[1]] and warm[0].id == ids[1]
    for t in (0.1, 0.2):
        tracker.update([], t)
    assert tracker.detection_due(3)
    tracker.reset()
    assert tracker.detection_due(100) and tracker.tracked_boxes()[0] == []


@pytest.mark.parametrize("bad", [dict(detect_every=0), dict(roi_margin=-0.1), dict(merge_iou=0.0),
                                 dict(fit_iterations=-1), dict(start_iterations=0)])
def test_bad_tracking_settings_are_rejected(bad):
    with pytest.raises(ValueError, match="tracking"):
        check_tracking_config(TrackingModeConfig(**bad))


def test_already_tracked_by_overlap_landmarks_or_containment():
    from nbf_ros.tracking import already_tracked

    tracked = np.array([[100, 100, 200, 400]], float)
    upper = np.array([100, 100, 200, 220], float)  # IoU 0.4, all of it inside
    assert not already_tracked(upper, None, np.zeros((0, 4)), 0.5)
    assert already_tracked(tracked[0] + 5, None, tracked, 0.5)  # plain overlap
    assert already_tracked(upper, None, tracked, 0.5)  # no pose read: lies inside
    assert already_tracked(upper, tracked[0] + [0, 0, 0, 10], tracked, 0.5)  # its landmarks: the whole body
    beside = np.array([150, 100, 260, 400], float)  # another person half over the tracked one
    assert not already_tracked(upper, beside, tracked, 0.5) and not already_tracked(beside, beside, tracked, 0.5)


# -- node: parameters and diagnostics -------------------------------------------------------------
def test_node_parameters_switch_tracking_mode():
    from nbf_ros.ros import params as P

    values = {spec.name: spec.default for spec in P.PARAMS}
    assert "tracking.enabled" not in P.config_overrides(values)  # "" = the config file's
    assert P.pipeline_config(values).tracking == TrackingModeConfig()
    for mode, enabled in (("on", True), ("off", False)):
        config = P.pipeline_config(values | {"tracking_mode": mode, "detect_every": 4})
        assert config.tracking.enabled is enabled and config.tracking.detect_every == 4
    assert P.validate("tracking_mode", "sometimes", "unconfigured") is not None
    assert "read at configure" in P.validate("detect_every", 5, "active")


def test_diagnostics_say_who_was_tracked_and_when_the_detector_ran():
    from nbf_ros.ros.stats import NodeStats, Thresholds, processing_status

    stats = NodeStats()
    stats.frame_published(20.0, {"detect": 30.0}, 2, tracked_people=0, detector_ran=True)
    stats.frame_published(20.0, {"detect": 0.0}, 2, tracked_people=2, detector_ran=False)
    stats.frame_published(20.0, {"detect": 30.0}, 2, tracked_people=1, detector_ran=True, lost_tracks=1)
    snap = stats.snapshot(state="active", configure_error=None, backend="x", dropped=0, camera_info="ok",
                          camera_info_error=None, qos="q", tracking_mode="on")
    values = processing_status(snap, Thresholds(), "p").values
    assert (values["tracking_mode"], values["people_tracked"], values["people_detected"]) == ("on", "1", "1")
    assert (values["detector_runs"], values["tracks_lost"], values["frames_processed"]) == ("2", "1", "3")
