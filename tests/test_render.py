"""VoGE renderer: references are finite differences, the dense twin, a numerical ray march and
closed-form geometry. All float64 unless a test says otherwise."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nbf_ros.config import RenderConfig
from nbf_ros.geometry.camera import CropBox
from nbf_ros.render import RenderCamera, render_gaussians, sample_to_kernels
from nbf_ros.render.culling import screen_bounds
from nbf_ros.render.voge import kernel_table, pixel_coordinates, ray_kernel_terms
from nbf_ros.types import CameraIntrinsics

F64 = torch.float64
METHODS = ("dense", "culled")


def _camera(batch: int, fx: float, fy: float, cx: float, cy: float, dtype=F64) -> RenderCamera:
    return RenderCamera(*(torch.full((batch,), v, dtype=dtype) for v in (fx, fy, cx, cy)))


def _random_scene(batch: int, kernels: int, channels: int, seed: int, dtype=F64,
                  spread=(0.12, 0.2, 0.08), precision=(1000.0, 6000.0)):
    """Anisotropic kernels in a body-sized blob 3 m in front of the camera."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(batch, kernels, 3, generator=g, dtype=dtype) * torch.tensor(spread, dtype=dtype)
    means = means + torch.tensor([0.0, 0.0, 3.0], dtype=dtype)
    rot = torch.linalg.qr(torch.randn(batch, kernels, 3, 3, generator=g, dtype=dtype)).Q
    lo, hi = precision
    scales = torch.rand(batch, kernels, 3, generator=g, dtype=dtype) * (hi - lo) + lo
    precisions = rot @ torch.diag_embed(scales) @ rot.transpose(-1, -2)
    features = torch.randn(batch, kernels, channels, generator=g, dtype=dtype)
    return means, precisions, features


def _isotropic(means: torch.Tensor, value: float = 4000.0) -> torch.Tensor:
    eye = torch.eye(3, dtype=means.dtype)
    return (value * eye).expand(*means.shape[:2], 3, 3).clone()


# ---------------------------------------------------------------- gradients vs finite differences
@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_all_inputs(method: str) -> None:
    means, precisions, features = _random_scene(1, 6, 2, seed=0, spread=(0.04, 0.04, 0.05))
    cam = _camera(1, 50.0, 54.0, 3.7, 3.2)
    config = RenderConfig(max_kernels_per_pixel=3)

    def fn(mu, prec, feat, fx, fy, cx, cy):
        out = render_gaussians(mu, prec, feat, RenderCamera(fx, fy, cx, cy), 8, 7, config, method)
        assert (out.kernel_ids[..., -1] >= 0).sum() > 5  # real overlaps, some pixels truncated
        return out.features, out.weights

    inputs = tuple(t.clone().requires_grad_() for t in (means, precisions, features, cam.fx, cam.fy,
                                                        cam.cx, cam.cy))
    # fast_mode compares v^T J u for random u, v against finite differences (full-Jacobian
    # mode checks the same maths but needs one backward per output element).
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


# ---------------------------------------------------------------- dense twin
def _render_both(means, precisions, features, cam, height, width, config):
    outs, grads = [], []
    for method in METHODS:
        leaves = [t.clone().requires_grad_() for t in (means, precisions, features, cam.fx, cam.cx)]
        camera = RenderCamera(leaves[3], cam.fy, leaves[4], cam.cy)
        out = render_gaussians(*leaves[:3], camera, height, width, config, method)
        g = torch.Generator().manual_seed(7)
        loss = (out.features * torch.randn(out.features.shape, generator=g, dtype=out.features.dtype)).sum()
        (loss + out.coverage.sum() + out.kernel_visibility.sum()).backward()
        outs.append(out)
        grads.append([t.grad for t in leaves])
    return outs, grads


def test_dense_and_culled_agree_float64_with_truncation() -> None:
    means, precisions, features = _random_scene(2, 80, 4, seed=1)
    cam = RenderCamera(torch.tensor([300.0, 280.0], dtype=F64), torch.tensor([310.0, 300.0], dtype=F64),
                       torch.tensor([20.3, 18.0], dtype=F64), torch.tensor([22.1, 25.0], dtype=F64))
    config = RenderConfig(max_kernels_per_pixel=4)
    (dense, culled), (g_dense, g_culled) = _render_both(means, precisions, features, cam, 44, 40, config)
    assert (dense.kernel_ids[..., -1] >= 0).sum() > 50  # many pixels are truncated to M
    assert torch.equal(dense.kernel_ids, culled.kernel_ids)
    for name in ("features", "coverage", "weights", "kernel_visibility"):
        torch.testing.assert_close(getattr(culled, name), getattr(dense, name), rtol=0, atol=1e-12)
    for gd, gc in zip(g_dense, g_culled):
        torch.testing.assert_close(gc, gd, rtol=1e-9, atol=1e-9)
    assert culled.pairs_evaluated < dense.pairs_evaluated / 4


def test_dense_and_culled_agree_float32() -> None:
    means, precisions, features = _random_scene(1, 300, 8, seed=2, dtype=torch.float32)
    cam = _camera(1, 250.0, 250.0, 31.5, 31.5, dtype=torch.float32)
    (dense, culled), (g_dense, g_culled) = _render_both(means, precisions, features, cam, 64, 64,
                                                        RenderConfig())
    assert torch.equal(dense.kernel_ids, culled.kernel_ids)
    torch.testing.assert_close(culled.features, dense.features, rtol=0, atol=1e-5)
    for gd, gc in zip(g_dense, g_culled):
        torch.testing.assert_close(gc, gd, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("depth", [0.01, -0.02])
def test_kernel_around_or_behind_camera(depth: float) -> None:
    """Outline unbounded (kernel reaches z <= 0): the culled path falls back to the whole image."""
    means, precisions, features = _random_scene(1, 30, 3, seed=3)
    means[0, 0] = torch.tensor([0.01, -0.02, depth], dtype=F64)
    (dense, culled), (g_dense, g_culled) = _render_both(means, precisions, features,
                                                        _camera(1, 40.0, 40.0, 9.5, 9.5), 20, 20,
                                                        RenderConfig())
    assert torch.equal(dense.kernel_ids, culled.kernel_ids)
    torch.testing.assert_close(culled.features, dense.features, rtol=0, atol=1e-12)
    for gd, gc in zip(g_dense, g_culled):
        torch.testing.assert_close(gc, gd, rtol=1e-9, atol=1e-9)


def test_screen_bounds_are_conservative_and_tight() -> None:
    means, precisions, _ = _random_scene(1, 40, 1, seed=4)
    height = width = 160
    cam = _camera(1, 900.0, 950.0, 80.2, 79.6)
    bounds = screen_bounds(means, precisions, cam.fx, cam.fy, cam.cx, cam.cy, height, width, 23.03)
    v, u = torch.meshgrid(torch.arange(height, dtype=F64), torch.arange(width, dtype=F64), indexing="ij")
    px, py = pixel_coordinates(u, v, cam.fx, cam.fy, cam.cx, cam.cy)
    table = kernel_table(means, precisions)[:, 0]  # 9 x K
    _, l, q = ray_kernel_terms(table[:, :, None, None], px, py)  # K x H x W
    hit = (q < 23.03) & (l > 0)
    for k in range(means.shape[1]):
        rows, cols = hit[k].nonzero(as_tuple=True)
        if rows.numel() == 0:
            continue
        box = [int(getattr(bounds, n)[0, k]) for n in ("u0", "u1", "v0", "v1")]
        assert box[0] <= cols.min() and cols.max() <= box[1]
        assert box[2] <= rows.min() and rows.max() <= box[3]
        interior = cols.min() > 0 and cols.max() < width - 1 and rows.min() > 0 and rows.max() < height - 1
        if interior:  # exact box: at most one pixel of slack per side from pixel sampling
            assert cols.min() - box[0] <= 1 and box[1] - cols.max() <= 1
            assert rows.min() - box[2] <= 1 and box[3] - rows.max() <= 1


# ---------------------------------------------------------------- numerical ray march
def _ray_march(means, precisions, features, d, threshold, samples=100_001, t_range=(2.0, 4.0)):
    """Brute force along one ray x = t d (t = depth; the kernels lie well inside t_range, so the
    density outside it is below 1e-300); convention of voge.py: each kernel's density is scaled
    so that its line integral equals its peak value exp(-q)."""
    t = torch.linspace(*t_range, samples, dtype=F64)
    x = t[:, None] * d[None]
    diff = x[None] - means[:, None]  # K x S x 3
    g = torch.exp(-torch.einsum("ksi,kij,ksj->ks", diff, precisions, diff))
    peak = g.max(dim=1).values
    mass = torch.trapezoid(g, t, dim=1)
    centre = torch.trapezoid(g * t, t, dim=1) / mass  # where the peak is (a Gaussian in t)
    sigma = g * (peak / mass)[:, None]
    total = sigma.sum(0)
    tau = torch.cat([torch.zeros(1, dtype=F64), torch.cumsum((total[1:] + total[:-1]) / 2 * (t[1] - t[0]), 0)])
    tau_at_centre = torch.from_numpy(np.interp(centre.numpy(), t.numpy(), tau.numpy()))
    weights = torch.exp(-tau_at_centre) * peak * math.exp(0.5)
    keep = (peak > math.exp(-threshold)) & (centre > 0)
    return (weights[keep, None] * features[keep]).sum(0), weights * keep


def test_matches_numerical_ray_march() -> None:
    means, precisions, features = _random_scene(1, 25, 3, seed=5, spread=(0.03, 0.03, 0.05))
    cam = _camera(1, 100.0, 100.0, 3.5, 3.5)
    config = RenderConfig(max_kernels_per_pixel=25)  # no truncation: the march keeps everything
    out = render_gaussians(means, precisions, features, cam, 8, 8, config, "culled")
    assert (out.kernel_ids >= 0).sum(-1).max() >= 5  # rays cross several kernels
    for v, u in [(3, 3), (4, 2), (2, 5), (5, 5), (1, 3)]:
        d = torch.tensor([(u - 3.5) / 100.0, (v - 3.5) / 100.0, 1.0], dtype=F64)
        feature, weights = _ray_march(means[0], precisions[0], features[0], d, config.activation_threshold)
        torch.testing.assert_close(out.features[0, v, u], feature, rtol=0, atol=1e-6)
        ids = out.kernel_ids[0, v, u]
        got = torch.zeros_like(weights).index_add(0, ids[ids >= 0], out.weights[0, v, u][ids >= 0])
        torch.testing.assert_close(got, weights, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- closed-form geometry
@pytest.mark.parametrize("method", METHODS)
def test_single_kernel_through_its_centre_has_weight_one(method: str) -> None:
    # Alone on the ray: tau = exp(-0) * (1 + erf(0)) / 2 = 1/2, W = exp(-1/2) * 1 / exp(-1/2) = 1.
    means = torch.tensor([[[0.2, -0.1, 2.5]]], dtype=F64)
    precisions = torch.tensor([[[[3000.0, 200.0, -100.0], [200.0, 5000.0, 50.0],
                                 [-100.0, 50.0, 2000.0]]]], dtype=F64)
    features = torch.tensor([[[0.3, -2.0]]], dtype=F64)
    fx = 120.0
    cx, cy = 10.0 - fx * 0.2 / 2.5, 9.0 + fx * 0.1 / 2.5  # pixel (10, 9) looks through the centre
    out = render_gaussians(means, precisions, features, _camera(1, fx, fx, cx, cy), 20, 21,
                           RenderConfig(), method)
    assert out.weights[0, 9, 10, 0].item() == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(out.features[0, 9, 10], features[0, 0], rtol=0, atol=1e-12)
    assert out.coverage[0, 9, 10].item() == pytest.approx(1.0, abs=1e-12)
    assert out.kernel_visibility[0, 0].item() == pytest.approx(1.0, abs=1e-12)
    assert out.weights.max().item() <= 1.0 + 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_nearer_of_two_kernels_dominates(method: str) -> None:
    gap, a = 0.02, 4000.0
    means = torch.tensor([[[0.0, 0.0, 3.0 + gap], [0.0, 0.0, 3.0]]], dtype=F64)  # back listed first
    features = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=F64)
    out = render_gaussians(means, _isotropic(means, a), features, _camera(1, 50.0, 50.0, 2.0, 2.0),
                           5, 5, RenderConfig(), method)
    s = gap * math.sqrt(a)
    w_front = math.exp(-0.5 - 0.5 * (1 + math.erf(-s))) * math.exp(0.5)
    w_back = math.exp(-0.5 - 0.5 * (1 + math.erf(s))) * math.exp(0.5)
    assert out.kernel_ids[0, 2, 2, :2].tolist() == [1, 0]  # front to back
    torch.testing.assert_close(out.weights[0, 2, 2, :2], torch.tensor([w_front, w_back], dtype=F64),
                               rtol=0, atol=1e-12)
    assert w_front > 2.5 * w_back
    torch.testing.assert_close(out.features[0, 2, 2], torch.tensor([w_back, w_front], dtype=F64),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_scaling_scene_about_camera_leaves_image_unchanged(method: str) -> None:
    """x -> s x maps every pixel ray to itself; with A -> A / s^2 every kernel's q and
    (l_m - l_k) sqrt(a_k) are unchanged, so the image is exactly invariant (this holds because
    the sqrt(pi/a) factor is dropped; with it the optical depths would scale by s)."""
    means, precisions, features = _random_scene(1, 60, 3, seed=6)
    cam = _camera(1, 200.0, 200.0, 15.5, 15.5)
    base = render_gaussians(means, precisions, features, cam, 32, 32, RenderConfig(), method)
    scaled = render_gaussians(means * 1.7, precisions / 1.7 ** 2, features, cam, 32, 32,
                              RenderConfig(), method)
    assert torch.equal(base.kernel_ids, scaled.kernel_ids)
    torch.testing.assert_close(scaled.features, base.features, rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_rotating_scene_half_turn_about_optical_axis_flips_image(method: str) -> None:
    means, precisions, features = _random_scene(1, 60, 3, seed=7)
    flip = torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=F64))
    cam = _camera(1, 200.0, 200.0, 15.5, 12.0)  # principal point at the grid centre
    base = render_gaussians(means, precisions, features, cam, 25, 32, RenderConfig(), method)
    turned = render_gaussians(means @ flip, flip @ precisions @ flip, features, cam, 25, 32,
                              RenderConfig(), method)
    torch.testing.assert_close(turned.features, base.features.flip(1, 2), rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_crop_intrinsics_render_the_crop_window(method: str) -> None:
    means, precisions, features = _random_scene(1, 80, 3, seed=8)
    full_cam = CameraIntrinsics(220.0, 230.0, 19.7, 20.4, 40, 40)
    full = render_gaussians(means, precisions, features, full_cam, 40, 40, RenderConfig(), method)
    box = CropBox(x0=12.0, y0=7.0, side=20.0)
    crop = render_gaussians(means, precisions, features, box.crop_intrinsics(full_cam, 20), 20, 20,
                            RenderConfig(), method)
    assert (crop.kernel_ids >= 0).any()
    torch.testing.assert_close(crop.features, full.features[:, 7:27, 12:32], rtol=0, atol=1e-10)
    # Half resolution: the same scene, four times fewer pixels, same weights near the centre of mass.
    half = full_cam.scaled(0.5)
    small = render_gaussians(means, precisions, features, half, 20, 20, RenderConfig(), method)
    assert small.features.shape == (1, 20, 20, 3)


# ---------------------------------------------------------------- inverse rendering, validation
def test_sample_to_kernels_recovers_constant_features() -> None:
    means, precisions, features = _random_scene(2, 50, 3, seed=9)
    cam = _camera(2, 200.0, 200.0, 15.5, 15.5)
    out = render_gaussians(means, precisions, features, cam, 32, 32, RenderConfig())
    constant = torch.tensor([0.5, -1.0, 2.0, 4.0], dtype=F64)
    sampled, mass = sample_to_kernels(out, constant.expand(2, 32, 32, 4))
    seen = mass > 0
    assert seen.sum() > 40 and (~seen).sum() > 0  # some kernels fall outside the small image
    torch.testing.assert_close(sampled[seen], constant.expand(int(seen.sum()), 4), rtol=0, atol=1e-12)
    assert torch.all(sampled[~seen] == 0)
    # The weight sums are the per-kernel totals of the rendered weights.
    ids, w = out.kernel_ids, out.weights
    expected = torch.stack([torch.zeros(50, dtype=F64).index_add(0, ids[b][ids[b] >= 0], w[b][ids[b] >= 0])
                            for b in range(2)])
    torch.testing.assert_close(mass, expected, rtol=0, atol=1e-12)


def test_sample_to_kernels_is_weighted_mean() -> None:
    means = torch.tensor([[[0.0, 0.0, 3.0]]], dtype=F64)
    out = render_gaussians(means, _isotropic(means, 300.0), torch.ones(1, 1, 1, dtype=F64),
                           _camera(1, 30.0, 30.0, 3.0, 3.0), 7, 7, RenderConfig())
    image = torch.arange(49, dtype=F64).reshape(1, 7, 7, 1)
    sampled, mass = sample_to_kernels(out, image)
    w = out.weights[0, ..., 0]
    assert sampled[0, 0, 0].item() == pytest.approx(float((w * image[0, ..., 0]).sum() / w.sum()), abs=1e-12)


def test_input_validation() -> None:
    means, precisions, features = _random_scene(1, 5, 2, seed=10)
    cam = _camera(1, 50.0, 50.0, 4.0, 4.0)
    with pytest.raises(ValueError):
        render_gaussians(means[0], precisions, features, cam, 8, 8)
    with pytest.raises(ValueError):
        render_gaussians(means, precisions[:, :3], features, cam, 8, 8)
    with pytest.raises(ValueError):
        render_gaussians(means, precisions, features.float(), cam, 8, 8)
    with pytest.raises(ValueError):
        render_gaussians(means, precisions, features, _camera(2, 50.0, 50.0, 4.0, 4.0), 8, 8)
    with pytest.raises(ValueError):
        render_gaussians(means, precisions, features, cam, 8, 8, method="fast")
    with pytest.raises(ValueError):
        render_gaussians(means, precisions, features, CameraIntrinsics(50, 50, 4, 4, 16, 16), 8, 8)
    out = render_gaussians(means, precisions, features, cam, 8, 8)
    with pytest.raises(ValueError):
        sample_to_kernels(out, torch.zeros(1, 8, 9, 2, dtype=F64))


@pytest.mark.parametrize("method", METHODS)
def test_nothing_in_view_renders_empty(method: str) -> None:
    means = torch.tensor([[[5.0, 0.0, 3.0], [0.0, 0.0, -3.0]]], dtype=F64)  # off-screen, behind
    features = torch.randn(1, 2, 4, dtype=F64, requires_grad=True)
    out = render_gaussians(means, _isotropic(means), features, _camera(1, 50.0, 50.0, 8.0, 8.0),
                           16, 16, RenderConfig(), method)
    out.features.sum().backward()
    assert out.features.abs().sum() == 0 and out.coverage.abs().sum() == 0
    assert torch.all(out.kernel_ids == -1) and torch.all(out.kernel_visibility == 0)
    assert torch.all(features.grad == 0)
    if method == "culled":
        assert out.pairs_evaluated == 0


# ---------------------------------------------------------------- reused selection
def test_reused_selection_is_exact_for_its_kernels_and_close_after_a_small_move() -> None:
    """A render given its own kernel ids reproduces itself and its gradients bit for bit; after
    a small move of the kernels, the earlier selection gives the current terms exactly for the
    kept pairs (equal to a fresh render wherever the choice did not change) and the images stay
    close; a wrong selection is refused."""
    means, precisions, features = _random_scene(2, 80, 4, seed=3)
    cam = _camera(2, 300.0, 300.0, 20.0, 22.0)
    config = RenderConfig(max_kernels_per_pixel=4)

    def render(mu, ids=None):
        leaves = [t.clone().requires_grad_() for t in (mu, features)]
        out = render_gaussians(leaves[0], precisions, leaves[1], cam, 44, 40, config, kernel_ids=ids)
        (out.features.sum() + out.coverage.sum()).backward()
        return out, [t.grad for t in leaves]

    fresh, g_fresh = render(means)
    again, g_again = render(means, fresh.kernel_ids)
    assert torch.equal(again.kernel_ids, fresh.kernel_ids)
    for name in ("features", "coverage", "weights"):
        assert torch.equal(getattr(again, name), getattr(fresh, name))
    for a, b in zip(g_again, g_fresh):
        assert torch.equal(a, b)
    moved = means + 0.002 * torch.randn(means.shape, generator=torch.Generator().manual_seed(4), dtype=means.dtype)
    new, _ = render(moved)
    stale, _ = render(moved, fresh.kernel_ids)
    same = (new.kernel_ids == fresh.kernel_ids).all(-1)
    assert same.float().mean() > 0.8  # the move changes few pixels' choice
    torch.testing.assert_close(stale.features[same], new.features[same], rtol=0, atol=1e-12)
    assert float((stale.coverage - new.coverage).abs().mean().detach()) < 0.02
    with pytest.raises(ValueError, match="kernel_ids"):
        render_gaussians(means, precisions, features, cam, 44, 40, config, kernel_ids=fresh.kernel_ids[..., :2])
    with pytest.raises(ValueError, match="kernel_ids"):
        render_gaussians(means, precisions, features, cam, 44, 40, config, kernel_ids=fresh.kernel_ids + 80)
