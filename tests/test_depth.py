"""Aligned depth (issue 15) without ROS: units and encodings, edge cleaning and resampling, the
metric position of a body placed at a known depth, the depth term's gradient, occluders in
front of the body, and the synthetic sensor's effects."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nbf_ros.config import resolve_path
from nbf_ros.data.depth_sensor import DepthSensor, sensor_depth
from nbf_ros.data.raster import rasterize_mesh
from nbf_ros.fitting.depth import DepthCrop, along_ray, depth_term, metric_offset, residual_mode
from nbf_ros.fitting.fitter import OCCLUDED_BY_OBJECT, Fitter
from nbf_ros.fitting.pose_prior import load_pose_prior
from nbf_ros.geometry.camera import CropBox
from nbf_ros.geometry.depth import (DepthError, check_registered, depth_for_crop, depth_to_metres,
                                    drop_flying_pixels, metres_to_millimetres, sample_on_crop)
from nbf_ros.inference.backends import NetArrays
from nbf_ros.render import RenderCamera, render_gaussians
from nbf_ros.ros import conversions as conv
from nbf_ros.types import BodyParams, CameraIntrinsics

SIZE, GRID = 128, 32


# -- units, encodings, cleaning, resampling ------------------------------------------------------
def test_16uc1_millimetres_and_32fc1_metres_convert_exactly_with_no_data_as_nan():
    mm = np.array([[0, 1, 1234], [65535, 500, 0]], np.uint16)
    m = depth_to_metres(mm)
    assert m.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(m), mm == 0)
    np.testing.assert_array_equal(m[mm > 0], (mm[mm > 0].astype(np.float32) / np.float32(1000.0)))
    f = np.array([[1.5, 0.0, -1.0], [np.nan, np.inf, 7.25]], np.float32)
    out = depth_to_metres(f)
    np.testing.assert_array_equal(np.isnan(out), [[False, True, True], [True, True, False]])
    assert out[0, 0] == np.float32(1.5) and out[1, 2] == np.float32(7.25)
    assert metres_to_millimetres(depth_to_metres(mm)).tolist() == mm.tolist()  # exact round trip
    with pytest.raises(DepthError) as err:
        depth_to_metres(np.zeros((2, 2), np.int32))
    assert err.value.reason == "encoding"


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
@pytest.mark.parametrize("big_endian", [False, True])
def test_depth_messages_round_trip_through_the_wire_format(encoding, big_endian):
    depth = np.array([[0.5, np.nan, 2.345], [9.999, 1.0, np.nan]], np.float32)
    fields = conv.encode_depth(depth, encoding)
    data = fields.data
    if big_endian:  # a big-endian publisher: same values, swapped bytes
        item = 2 if encoding == "16UC1" else 4
        data = np.frombuffer(data, np.uint8).reshape(-1, item)[:, ::-1].tobytes()
    msg = SimpleNamespace(encoding=encoding, height=fields.height, width=fields.width, step=fields.step,
                          data=data, is_bigendian=int(big_endian))
    out = conv.depth_image_to_metres(msg)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(depth))
    np.testing.assert_allclose(out[~np.isnan(depth)], depth[~np.isnan(depth)], atol=0 if encoding == "32FC1" else 5e-4)
    with pytest.raises(conv.ImageError) as err:
        conv.depth_image_to_metres(SimpleNamespace(**{**msg.__dict__, "encoding": "rgb8"}))
    assert err.value.reason == "encoding"
    with pytest.raises(conv.ImageError) as err:
        conv.depth_image_to_metres(SimpleNamespace(**{**msg.__dict__, "data": msg.data[:-1]}))
    assert err.value.reason == "data_size"


def test_a_depth_image_of_another_size_than_the_colour_image_is_rejected_with_a_reason():
    check_registered(np.zeros((480, 640), np.float32), 640, 480)
    with pytest.raises(DepthError) as err:
        check_registered(np.zeros((240, 320), np.float32), 640, 480)
    assert err.value.reason == "size" and "registered" in str(err.value)


def test_flying_pixels_on_a_depth_edge_are_dropped_and_flat_surfaces_kept():
    depth = np.full((6, 8), 4.0, np.float32)
    depth[:, :4] = 2.0  # a person in front of a wall
    depth[2, 6] = np.nan  # a hole stays a hole and makes no edge
    out = drop_flying_pixels(depth)
    assert np.isnan(out[:, 3]).all() and np.isnan(out[:, 4]).all()  # both sides of the step
    assert (out[:, :3] == 2.0).all() and np.isnan(out[2, 6]) and out[0, 6] == 4.0
    slope = np.tile(np.linspace(3.0, 3.56, 8, dtype=np.float32), (4, 1))  # 0.08 m steps: a slope
    assert np.isfinite(drop_flying_pixels(slope)).all()


def test_resampling_onto_the_crop_grid_takes_the_median_and_ignores_holes():
    image = np.full((16, 16), 3.0, np.float32)
    image[:4, :4] = np.nan
    image[0, 0] = 1.0  # the first cell's only valid sample
    image[4:8, 4:8] = np.nan  # a whole cell without data
    grid = sample_on_crop(image, CropBox(0.0, 0.0, 16.0), 16, 4, samples=2)
    assert grid.shape == (4, 4) and grid[0, 0] == 1.0 and np.isnan(grid[1, 1]) and grid[3, 3] == 3.0
    # A crop half outside the image: cells outside are NaN (no data), not zero.
    grid = sample_on_crop(np.full((16, 16), 3.0, np.float32), CropBox(-8.0, 0.0, 16.0), 16, 4, samples=2)
    assert np.isnan(grid[:, :2]).all() and np.isfinite(grid[:, 2:]).all()
    depth, mask = depth_for_crop(image, CropBox(0.0, 0.0, 16.0), 16, 4, np.ones((16, 16), np.float32))
    assert mask.shape == (4, 4) and (mask == 1.0).all()


def test_the_person_cluster_wins_over_an_occluder_and_a_wall_unless_they_clearly_dominate():
    rng = np.random.default_rng(0)
    person = rng.normal(0.30, 0.02, 40)  # the start is 0.3 m too near
    occluder = rng.normal(-1.6, 0.02, 55)  # a larger, tighter cluster 1.6 m in front
    wall = rng.normal(1.2, 0.01, 30)
    residual = np.concatenate([person, occluder, wall])
    assert residual_mode(residual, prior_sigma_m=0.15 * 5.0) == pytest.approx(0.30, abs=0.02)
    assert residual_mode(residual) == pytest.approx(-1.6, abs=0.02)  # without the prior, count decides


# -- a body at a known depth -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def setup(random_nbv):
    config, body, nbv, background = random_nbv
    fit = dataclasses.replace(config.fit, budget_ms=1e9, max_iters=6, turn_hypotheses=1, flip_hypothesis=False)
    config = dataclasses.replace(config, fit=fit)
    fitter = Fitter(config, body, nbv, background, load_pose_prior(resolve_path(config.fit.pose_prior_path)))
    return config, body, nbv, background, fitter


def truth() -> BodyParams:
    return BodyParams(torch.zeros(1, 10), torch.tensor([[np.pi, 0.0, 0.0]]), torch.zeros(1, 69),
                      torch.tensor([[0.1, 0.2, 3.0]]))


def camera() -> CameraIntrinsics:
    return CameraIntrinsics(180.0, 180.0, 63.5, 63.5, SIZE, SIZE)


def network_output(setup, params: BodyParams) -> NetArrays:
    """Ideal features: the NBV's own render at the true body, background elsewhere."""
    config, body, nbv, background, _ = setup
    with torch.no_grad():
        state = nbv(body(params))
        r = render_gaussians(state.means, state.precisions, nbv.kernel_features(state),
                             RenderCamera.from_intrinsics(camera().scaled(0.25)), GRID, GRID, config.render)
    feats = torch.where(r.coverage[..., None] > 0.05, F.normalize(r.features, dim=-1), background)[0]
    return NetArrays(features=feats.permute(2, 0, 1)[None].numpy(), pose6d=np.zeros((1, 24, 6), np.float32),
                     betas=np.zeros((1, 10), np.float32), cam=np.zeros((1, 3), np.float32),
                     heatmaps=np.zeros((1, 24, GRID, GRID), np.float32))


def sensor_view(setup, params: BodyParams, wall_m: float = 5.0, occluder_rows: int = 0,
                occluder_m: float = 2.0) -> np.ndarray:
    """The exact depth of the body's mesh over a wall (SIZE x SIZE metres), optionally with a
    flat occluder at ``occluder_m`` over the top ``occluder_rows`` rows."""
    _, body, _, _, _ = setup
    with torch.no_grad():
        vertices = body(params).vertices[0].double().numpy()
    z = rasterize_mesh(vertices, body.faces, camera()).depth.astype(np.float32)
    z[~np.isfinite(z)] = wall_m
    z[:occluder_rows] = occluder_m
    return z


def depth_crop(depth: np.ndarray) -> DepthCrop:
    return DepthCrop.from_numpy(*depth_for_crop(drop_flying_pixels(depth), CropBox(0.0, 0.0, SIZE), SIZE, GRID))


def pelvis(setup, params: BodyParams) -> np.ndarray:
    with torch.no_grad():
        return setup[1](params).joints[0, 0].double().numpy()


def test_a_start_at_the_wrong_depth_is_moved_onto_the_observed_body_along_its_ray(setup):
    fitter = setup[4]
    true = truth()
    start = along_ray(true, torch.from_numpy(pelvis(setup, true)).float()[None], 0.45)  # 45 cm too far
    moved = pelvis(setup, start)
    assert moved[2] - pelvis(setup, true)[2] == pytest.approx(0.45, abs=1e-4)
    assert moved[0] / moved[2] == pytest.approx(pelvis(setup, true)[0] / pelvis(setup, true)[2], abs=1e-6)
    net = network_output(setup, true)
    result = fitter.fit(net, 0, camera(), start, iterate=False, depth=depth_crop(sensor_view(setup, true)))
    assert np.linalg.norm(pelvis(setup, result.params) - pelvis(setup, true)) < 0.02
    assert result.depth_offset_m == pytest.approx(-0.45, abs=0.02)
    mono = fitter.fit(net, 0, camera(), start, iterate=False)
    assert np.linalg.norm(pelvis(setup, mono.params) - pelvis(setup, true)) > 0.4
    # Too few depth pixels (all holes): monocular, unchanged.
    holes = fitter.fit(net, 0, camera(), start, iterate=False, depth=depth_crop(np.full((SIZE, SIZE), np.nan)))
    np.testing.assert_allclose(pelvis(setup, holes.params), moved, atol=1e-6)


def test_a_metric_offset_needs_enough_usable_pixels():
    observed = torch.full((1, 4, 4), float("nan"))
    observed[0, 0, :3] = 3.0
    rendered, coverage = torch.full((1, 4, 4), 2.5), torch.ones(1, 4, 4)
    assert metric_offset(observed, rendered, coverage, min_pixels=4) is None
    assert metric_offset(observed, rendered, coverage, min_pixels=3) == pytest.approx(0.5)


def test_depth_term_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(1)
    observed = 3.0 + 0.1 * torch.randn(1, 5, 6, generator=g, dtype=torch.float64)
    observed[0, 0, 0] = float("nan")  # a hole
    observed[0, 1, 1] = 1.0  # an occluder: saturated, but still in the term
    coverage = torch.rand(1, 5, 6, generator=g, dtype=torch.float64) * 0.4 + 0.55
    coverage[0, 4] = 0.1  # off the silhouette
    rendered = (3.0 + 0.1 * torch.randn(1, 5, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda r: depth_term(r, coverage, observed, 0.05), (rendered,))
    loss = depth_term(rendered, coverage, observed, 0.05)
    loss.backward()
    assert rendered.grad[0, 4].abs().max() == 0 and rendered.grad[0, 0, 0] == 0  # off-body, hole
    assert 0 <= float(loss.detach()) < 1
    inf_render = rendered.detach().clone()
    inf_render[0, 2, 2] = float("inf")  # nothing rendered at a covered pixel: no nan anywhere
    inf_render.requires_grad_(True)
    depth_term(inf_render, coverage, observed, 0.05).backward()
    assert torch.isfinite(inf_render.grad).all()


def test_an_object_in_front_hides_the_joints_behind_it_and_says_how_far_it_is(setup):
    fitter = setup[4]
    true = truth()
    net = network_output(setup, true)
    clear = fitter.fit(net, 0, camera(), true, iterate=False, depth=depth_crop(sensor_view(setup, true)))
    # A board at 2.0 m over the top 40 % of the crop: head, neck and shoulders are behind it.
    board = depth_crop(sensor_view(setup, true, occluder_rows=int(0.4 * SIZE), occluder_m=2.0))
    hidden = fitter.fit(net, 0, camera(), true, iterate=False, depth=board)
    head, ankles = 15, [7, 8]
    # The shipped depth model (calibrated on validation people, where fitted joints can be off)
    # calls the head hidden, well below its clear visibility.
    assert hidden.joint_visibility[head] < 0.5 < clear.joint_visibility[head]
    assert clear.joint_visibility[head] - hidden.joint_visibility[head] > 0.4
    assert hidden.joint_state[head] == OCCLUDED_BY_OBJECT
    assert hidden.occluder_distance_m[head] == pytest.approx(2.0, abs=0.05)
    assert np.isnan(hidden.occluder_distance_m[ankles]).all()
    np.testing.assert_allclose(hidden.joint_visibility[ankles], clear.joint_visibility[ankles], atol=0.05)
    # The board does not pull the body: placement and fit stay on the person.
    fitted = fitter.fit(net, 0, camera(), true, iterate=True, depth=board)
    assert np.linalg.norm(pelvis(setup, fitted.params) - pelvis(setup, true)) < 0.05


# -- the synthetic sensor -------------------------------------------------------------------------
def test_the_synthetic_sensor_is_seeded_quantises_more_with_distance_and_has_holes_and_a_min_range():
    z = np.concatenate([np.full((60, 200), 1.0), np.full((60, 200), 6.0), np.full((10, 200), 0.2)]).astype(np.float32)
    sensor = DepthSensor(hole_blobs=(1, 1), dropout=0.02, disparity_noise_px=0.0)
    a = sensor_depth(z, 600.0, np.random.default_rng(5), sensor)
    b = sensor_depth(z, 600.0, np.random.default_rng(5), sensor)
    np.testing.assert_array_equal(a, b)
    assert np.isnan(a[121:]).all()  # below the minimum range (row 120: flying pixels of the edge)
    assert 0.01 < np.isnan(a[:120]).mean() < 0.5  # holes and dropout, not everything
    inner = lambda rows: np.unique(rows[np.isfinite(rows)])  # noqa: E731 - away from the edges' flying pixels
    near, far = inner(a[:58]), inner(a[62:118])
    # 1/8 px disparity steps at f b = 30 px m: ~4 mm at 1 m, ~15 cm at 6 m.
    assert abs(near[0] - 1.0) < 0.005 and abs(far[0] - 6.0) < 0.1
    step_near = 1.0 - 30.0 / (30.0 / 1.0 + 0.125)
    step_far = 30.0 / (30.0 / 6.0 - 0.125) - 6.0
    assert step_far / step_near > 25
    edge = np.full((20, 20), 5.0, np.float32)
    edge[:, :10] = 2.0
    flying = sensor_depth(edge, 600.0, np.random.default_rng(1),
                          DepthSensor(hole_blobs=(0, 0), dropout=0.0, disparity_noise_px=0.0, flying_prob=1.0))
    between = (flying > 2.1) & (flying < 4.9)
    assert between[:, 9:11].mean() > 0.5 and not between[:, :8].any() and not between[:, 12:].any()


# -- files and the CLI -------------------------------------------------------------------------------
def test_depth_files_16bit_png_millimetres_and_npy_metres_load_exactly(tmp_path):
    import cv2

    from nbf_ros.inference.depth_io import load_depth
    from nbf_ros.inference.io import InputError

    mm = np.array([[0, 1500], [2345, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), mm)
    np.testing.assert_array_equal(metres_to_millimetres(load_depth(tmp_path / "d.png")), mm)
    metres = np.array([[np.nan, 1.25], [0.0, 3.5]], np.float32)
    np.save(tmp_path / "d.npy", metres)
    out = load_depth(tmp_path / "d.npy")
    assert np.isnan(out[0, 0]) and np.isnan(out[1, 0]) and out[0, 1] == np.float32(1.25)
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((4, 4, 3), np.uint8))
    np.save(tmp_path / "int.npy", np.zeros((4, 4), np.int64))
    for bad, words in (("rgb.png", "16-bit single-channel"), ("int.npy", "float metres"), ("none.png", "no such")):
        with pytest.raises(InputError, match=words):
            load_depth(tmp_path / bad)


def test_cli_needs_one_registered_depth_per_image_and_says_so_in_one_line(tmp_path, capsys):
    import cv2

    from nbf_ros.apps.cli import main

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((48, 64, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "d.png"), np.full((24, 32), 2000, np.uint16))
    base = ["estimate", "--image", str(tmp_path / "a.png"), "--json", str(tmp_path / "o.json")]
    assert main(base + ["--depth", str(tmp_path / "d.png"), "--depth", str(tmp_path / "d.png")]) == 1
    assert "one --depth per --image" in capsys.readouterr().err
    assert main(base + ["--depth", str(tmp_path / "d.png")]) == 1  # 32 x 24 depth for a 64 x 48 image
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "registered" in err


# -- the pipeline -------------------------------------------------------------------------------------
def test_the_pipeline_puts_people_on_the_observed_depth_and_rejects_unregistered_depth(untrained_config):
    """A rendered scene and its exact depth (a wall behind): with depth every person's pelvis is
    at the right distance; without, the start's own guess; a depth of another size is refused."""
    from nbf_ros.config import SyntheticConfig
    from nbf_ros.data.scene import render_scene
    from nbf_ros.inference.pipeline import Pipeline

    pipeline = Pipeline.from_config(untrained_config[0])
    scene = render_scene(5, SyntheticConfig(split="test"), pipeline.body)
    boxes = np.stack([p.bbox for p in scene.people])
    truth = np.stack([p.joints3d[0] for p in scene.people])
    wall = float(truth[:, 2].max()) + 2.0
    depth = np.where(np.isfinite(scene.depth), scene.depth, wall).astype(np.float32)
    with_depth = pipeline.process(scene.image, scene.camera, boxes=boxes, fit=False, depth=depth)
    without = pipeline.process(scene.image, scene.camera, boxes=boxes, fit=False)
    z_err = lambda result: np.abs(np.stack([p.joints3d[0] for p in result.people])[:, 2] - truth[:, 2])  # noqa: E731
    assert "depth" in with_depth.timings_ms
    assert np.all(z_err(with_depth) < 0.1), z_err(with_depth)  # measured 0.6-5 cm
    assert z_err(without).mean() > 3 * z_err(with_depth).mean()  # measured 36-62 cm
    with pytest.raises(DepthError) as err:
        pipeline.process(scene.image, scene.camera, boxes=boxes, fit=False, depth=depth[::2, ::2])
    assert err.value.reason == "size"
