"""The pure-Python pipeline end to end (untrained weights: structure and conventions, not accuracy)."""
import dataclasses

import numpy as np
import pytest

from nbf_ros.config import NbfConfig, SyntheticConfig
from nbf_ros.data.scene import render_scene
from nbf_ros.inference.io import InputError
from nbf_ros.inference.pipeline import FrameBudget, Pipeline
from nbf_ros.types import CameraIntrinsics


@pytest.fixture(scope="module")
def pipeline(untrained_config):
    return Pipeline.from_config(untrained_config[0])


@pytest.fixture(scope="module")
def scene(pipeline):
    return render_scene(5, SyntheticConfig(split="test"), pipeline.body)


def test_people_in_the_camera_frame(pipeline, scene):
    boxes = np.stack([p.bbox for p in scene.people])
    result = pipeline.process(scene.image, scene.camera, boxes=boxes, fit=True)
    assert len(result.people) == len(scene.people)
    cam = scene.camera
    for person, box in zip(result.people, boxes):
        assert person.joints3d.shape == (24, 3) and np.all(np.isfinite(person.joints3d))
        assert np.all(person.joints3d[:, 2] > 0)  # in front of the camera
        # joints2d is the pinhole projection of joints3d with the image's intrinsics
        uv = person.joints3d[:, :2] / person.joints3d[:, 2:] * [cam.fx, cam.fy] + [cam.cx, cam.cy]
        np.testing.assert_allclose(person.joints2d, uv, atol=1e-3)
        np.testing.assert_array_equal(person.bbox, box)
        assert 0 < person.fit.iterations <= 3 and person.fit.ms > 0
        assert np.isfinite(person.fit.loss) and person.fit.loss <= person.fit.loss_init + 1e-6
        assert np.all((person.joint_visibility >= 0) & (person.joint_visibility <= 1))
        assert 0.0 <= person.confidence <= 1.0
    assert {"detect", "crop", "network", "init", "fit", "people"} <= set(result.timings_ms)


def test_regression_only_has_zero_iterations(pipeline, scene):
    boxes = np.stack([p.bbox for p in scene.people])[:1]
    result = pipeline.process(scene.image, scene.camera, boxes=boxes, fit=False)
    assert result.people[0].fit.iterations == 0
    assert result.people[0].fit.loss == result.people[0].fit.loss_init


def test_no_boxes_gives_no_people(pipeline, scene):
    assert pipeline.process(scene.image, scene.camera, boxes=np.zeros((0, 4))).people == []


@pytest.mark.parametrize("camera", [
    CameraIntrinsics(float("nan"), 500.0, 320.0, 240.0, 640, 480),
    CameraIntrinsics(0.0, 0.0, 320.0, 240.0, 640, 480),
])
def test_bad_intrinsics_are_rejected(pipeline, scene, camera):
    with pytest.raises(InputError):
        pipeline.process(scene.image, camera)


def test_bad_images_are_rejected(pipeline, scene):
    with pytest.raises(ValueError, match="uint8 RGB"):
        pipeline.process(scene.image.astype(np.float32), scene.camera)
    with pytest.raises(ValueError, match="uint8 RGB"):
        pipeline.process(scene.image[..., 0], scene.camera)


def test_tracker_gives_stable_ids(pipeline, scene):
    from nbf_ros.config import TrackerConfig
    from nbf_ros.tracking import Tracker

    tracker = Tracker(TrackerConfig())
    boxes = np.stack([p.bbox for p in scene.people])
    ids = [[p.id for p in pipeline.process(scene.image, scene.camera, tracker=tracker, boxes=boxes,
                                           fit=False, stamp_s=t * 0.1).people] for t in range(3)]
    assert ids[0] == ids[1] == ids[2] and len(set(ids[0])) == len(boxes)


def test_missing_weights_fail_with_one_line(untrained_config, tmp_path):
    cfg = untrained_config[0]
    cfg = dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference,
                                                                 weights_path=str(tmp_path / "nope.pt")))
    with pytest.raises(Exception) as info:
        Pipeline.from_config(cfg)
    assert "nope.pt" in str(info.value) and "\n" not in str(info.value)


# -- body surface (Person.surface_points) ------------------------------------------------------
def test_surface_points_are_the_posed_kernel_vertices_in_the_camera_frame(pipeline, scene):
    """Each person's surface = the smplx mesh posed with that person's own output parameters
    (translation included), at the NBV's kernel sites (farthest-point sampled on the template),
    and = the kernel centres the fitter's fast path (shaped_subset + pose_subset) compares."""
    import torch

    from nbf_ros.body.nbv import select_kernel_vertices
    from nbf_ros.types import BodyParams

    body = pipeline.body
    cfg = pipeline.config
    sites = select_kernel_vertices(body.smpl.v_template.double().numpy(), cfg.nbv.num_kernels)
    np.testing.assert_array_equal(pipeline.fitter.nbv.kernel_vertex_ids.numpy(), sites)
    ids = torch.from_numpy(sites)
    boxes = np.stack([p.bbox for p in scene.people])
    people = pipeline.process(scene.image, scene.camera, boxes=boxes, fit=True).people
    assert len(people) == len(boxes) >= 2  # several people: a batch-order mix-up would show
    for person in people:
        assert person.surface_points.shape == (cfg.nbv.num_kernels, 3)
        as_t = lambda a: torch.from_numpy(np.asarray(a, np.float32))[None]  # noqa: E731
        params = BodyParams(as_t(person.betas), as_t(person.global_orient), as_t(person.body_pose),
                            as_t(person.transl))
        with torch.no_grad():
            raw = body.smpl(betas=params.betas, global_orient=params.global_orient,
                            body_pose=params.body_pose, transl=params.transl)  # smplx itself
            fast = body.pose_subset(params, body.shaped_subset(params.betas, ids)).vertices
        np.testing.assert_allclose(person.surface_points, raw.vertices[0, ids].numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(person.surface_points, fast[0].numpy(), atol=1e-5, rtol=0)
        # In the optical frame: in front of the camera, around the person's own pelvis.
        assert np.all(person.surface_points[:, 2] > 0)
        assert np.linalg.norm(person.surface_points.mean(0) - person.joints3d[0]) < 0.3
        assert "surface_points" not in person.to_json()  # the frozen JSON record is unchanged


def test_surface_points_switch_off_gives_none(pipeline, scene):
    cfg = pipeline.config
    off = dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference, surface_points=False))
    quiet = Pipeline(off, pipeline.backend, pipeline.detector, pipeline.body, pipeline.fitter)
    boxes = np.stack([p.bbox for p in scene.people])[:2]
    people = quiet.process(scene.image, scene.camera, boxes=boxes, fit=False).people
    assert len(people) == 2 and all(p.surface_points is None for p in people)
    assert NbfConfig().inference.surface_points  # on by default


@pytest.fixture(scope="module")
def front_end(untrained_config):
    """The default front end (NanoDet-g boxes, BlazePose keypoints) on the untrained network."""
    cfg = untrained_config[0]
    return Pipeline.from_config(dataclasses.replace(cfg, detector=dataclasses.replace(cfg.detector,
                                                                                     kind="nanodet")))


def test_every_encoding_the_node_accepts_goes_through_the_default_front_end(front_end, scene):
    """The node decodes every supported sensor_msgs/Image encoding to RGB (ros/conversions.py):
    colour ones give back the very pixels (so the same people), grey ones a grey frame that goes
    through detector, network and BlazePose like any other."""
    from nbf_ros.ros.conversions import ENCODINGS, encode_image, image_to_rgb

    assert front_end.process(scene.image, scene.camera, fit=False).people, "NanoDet found nobody"
    grey: dict[bytes, np.ndarray] = {}
    for encoding, (_, channels, _) in ENCODINGS.items():
        rgb = image_to_rgb(encode_image(scene.image, encoding, row_padding=3))
        assert rgb.shape == scene.image.shape and rgb.dtype == np.uint8, encoding
        if channels >= 3:
            np.testing.assert_array_equal(rgb, scene.image, err_msg=encoding)
        else:
            grey.setdefault(rgb.tobytes(), rgb)
    assert len(grey) >= 1
    for rgb in grey.values():
        result = front_end.process(rgb, scene.camera, fit=False)
        assert all(np.isfinite(p.joints3d).all() for p in result.people)


@pytest.mark.parametrize("height, width", [(1, 1), (2, 3), (16, 4096), (4096, 16), (31, 17)])
def test_images_of_any_size_go_through(front_end, pipeline, height, width):
    """Tiny and extremely elongated frames (the node accepts 1 x 1 up to max_image_side): the
    detector finds nothing or something, a full-frame box too small for BlazePose falls back to
    the heatmaps; nothing raises."""
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    camera = CameraIntrinsics.default_for(width, height)
    for pipe, fit in ((front_end, False), (pipeline, True)):  # pipeline: full_frame, BlazePose on
        result = pipe.process(image, camera, fit=fit)
        assert all(np.isfinite(p.joints3d).all() for p in result.people)
    assert len(pipeline.process(image, camera, fit=False).people) == 1  # the full frame


class FakeClock:
    """perf_counter stand-in: returns the given times (seconds) one call after another."""

    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def test_frame_budget_is_shared_out_person_by_person():
    budget = FrameBudget(500.0, 250.0, FakeClock(0.0, 0.1, 0.35, 0.6))
    assert budget.next_person() == pytest.approx(250.0)  # 400 ms left: the per-person cap
    assert budget.next_person() == pytest.approx(150.0)  # what the first one left
    assert budget.next_person() is None  # spent
    unlimited = FrameBudget(0.0, 250.0, FakeClock(*range(1, 10)))
    assert [unlimited.next_person() for _ in range(3)] == [250.0] * 3


def test_people_past_the_frame_budget_keep_their_start_and_are_counted(untrained_config, scene):
    config = untrained_config[0]
    config = dataclasses.replace(config, fit=dataclasses.replace(config.fit, frame_budget_ms=1000.0))
    pipe = Pipeline.from_config(config)
    boxes = np.stack([p.bbox for p in scene.people])
    ticks = iter(range(0, 10_000, 2))  # every reading of the clock is 2 s later: spent after the first
    pipe.clock = lambda: float(next(ticks))
    result = pipe.process(scene.image, scene.camera, boxes=boxes, fit=True)
    assert result.unfitted_people == len(boxes)
    assert all(p.fit.iterations == 0 for p in result.people)
    pipe.clock = lambda: 0.0  # time stands still: every person gets the per-person budget (1e6 ms)
    pipe.config = dataclasses.replace(config, fit=dataclasses.replace(config.fit, frame_budget_ms=1e9))
    result = pipe.process(scene.image, scene.camera, boxes=boxes, fit=True)
    assert result.unfitted_people == 0 and all(p.fit.iterations > 0 for p in result.people)
    assert pipe.process(scene.image, scene.camera, boxes=boxes, fit=False).unfitted_people == 0


def test_a_frames_people_are_fitted_as_one_batch_in_their_order(pipeline, scene):
    """Every person of a frame goes through one ``fit_batch`` call (one render per iteration for
    all of them), and each person's output is that person's fit, in the boxes' order."""
    boxes = np.stack([p.bbox for p in scene.people])
    assert len(boxes) >= 2
    calls = []
    batch = pipeline.fitter.fit_batch

    def spy(net, requests, *args, **kwargs):
        calls.append([r.index for r in requests])
        return batch(net, requests, *args, **kwargs)

    pipeline.fitter.fit_batch = spy
    try:
        result = pipeline.process(scene.image, scene.camera, boxes=boxes, fit=True)
    finally:
        del pipeline.fitter.fit_batch
    assert calls == [list(range(len(boxes)))]
    for person, box in zip(result.people, boxes):
        np.testing.assert_allclose(person.bbox, box)
        inside = (person.joints2d[:, 0] > box[0] - 20) & (person.joints2d[:, 0] < box[2] + 20)
        assert inside.mean() > 0.5  # the fitted body of this box, not another person's


def test_overlapped_network_gives_the_same_people_and_its_errors(pipeline, scene):
    """``inference.overlap_network`` runs the network in a second thread beside the landmark
    starts: the people are exactly those of the sequential order, both stage times are reported,
    and an error of the network reaches the caller."""
    boxes = np.stack([p.bbox for p in scene.people])
    config = pipeline.config
    sequential = pipeline.process(scene.image, scene.camera, boxes=boxes, fit=True)
    try:
        pipeline.config = dataclasses.replace(config, inference=dataclasses.replace(config.inference,
                                                                                     overlap_network=True))
        overlapped = pipeline.process(scene.image, scene.camera, boxes=boxes, fit=True)
        assert {"network", "init"} <= set(overlapped.timings_ms)
        for a, b in zip(sequential.people, overlapped.people):
            np.testing.assert_array_equal(a.joints3d, b.joints3d)
            np.testing.assert_array_equal(a.joint_visibility, b.joint_visibility)

        def broken(pixels):
            raise RuntimeError("network failed")

        pipeline.backend.run = broken  # an instance attribute over the method
        try:
            with pytest.raises(RuntimeError, match="network failed"):
                pipeline.process(scene.image, scene.camera, boxes=boxes, fit=True)
        finally:
            del pipeline.backend.run
    finally:
        pipeline.config = config
