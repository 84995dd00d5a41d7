"""Feature targets of the contrast (nbf_ros/training/targets.py) against brute-force references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nbf_ros.training.losses import kernel_contrastive_loss
from nbf_ros.training.targets import (geodesic_patches, kernel_geodesic_distances,
                                      make_feature_target, soft_contrastive_loss,
                                      surface_soft_targets)


def _chain(points: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Adjacency of a path graph through the points, and the points as a tensor."""
    k = len(points)
    adj = torch.eye(k, dtype=torch.bool)
    for i in range(k - 1):
        adj[i, i + 1] = adj[i + 1, i] = True
    return adj, torch.tensor(points, dtype=torch.float32)


def test_geodesic_follows_the_surface_not_the_straight_line():
    # A "U": 0 -> 1 -> 2 -> 3 where 0 and 3 are 0.1 m apart in space but 2.1 m along the path.
    pts = np.array([[0, 0, 0], [0, 1, 0], [0.1, 1, 0], [0.1, 0, 0]], dtype=float)
    adj, sites = _chain(pts)
    g = kernel_geodesic_distances(adj, sites)
    assert g[0, 3] == pytest.approx(2.1, abs=1e-5)
    assert g[0, 2] == pytest.approx(1.1, abs=1e-5)
    assert torch.allclose(g, g.T)
    assert torch.all(torch.diagonal(g) == 0)


def test_disconnected_kernels_get_the_largest_finite_distance():
    pts = np.array([[0, 0, 0], [1, 0, 0], [5, 0, 0]], dtype=float)
    adj = torch.eye(3, dtype=torch.bool)
    adj[0, 1] = adj[1, 0] = True
    g = kernel_geodesic_distances(adj, torch.tensor(pts, dtype=torch.float32))
    assert torch.isfinite(g).all()
    assert g[0, 2] == g.max()


def test_soft_targets_are_normalised_gaussians_of_geodesic_distance():
    g = torch.tensor([[0.0, 0.1, 0.3], [0.1, 0.0, 0.2], [0.3, 0.2, 0.0]])
    q = surface_soft_targets(g, 0.1)
    assert torch.allclose(q.sum(1), torch.ones(3))
    expected = np.exp(-0.5 * (np.array([0.0, 0.1, 0.3]) / 0.1) ** 2)
    assert np.allclose(q[0].numpy(), expected / expected.sum(), atol=1e-6)
    with pytest.raises(ValueError):
        surface_soft_targets(g, 0.0)


def _random_problem(seed: int = 0, n: int = 7, k: int = 5, o: int = 3, d: int = 4, m: int = 2):
    gen = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=-1)
    bank = F.normalize(torch.randn(k, o, d, generator=gen, dtype=torch.float64), dim=-1)
    bg = F.normalize(torch.randn(m, d, generator=gen, dtype=torch.float64), dim=-1)
    kid = torch.randint(0, k, (n,), generator=gen)
    bins = torch.softmax(torch.randn(n, o, generator=gen, dtype=torch.float64), dim=1)
    return feats, kid, bins, bank, bg


def test_soft_contrastive_loss_matches_a_brute_force_loop():
    feats, kid, bins, bank, bg = _random_problem()
    k, o, _ = bank.shape
    q = torch.softmax(torch.randn(k, k, generator=torch.Generator().manual_seed(3),
                                  dtype=torch.float64), dim=1)
    temperature, bg_weight = 0.07, 5e-3
    got = soft_contrastive_loss(feats, kid, bins, bank, bg, q, temperature, bg_weight)
    total = 0.0
    for p in range(feats.shape[0]):
        logits = [float(feats[p] @ bank[j, b]) / temperature for j in range(k) for b in range(o)]
        logits += [float(feats[p] @ bg[i]) / temperature + math.log(bg_weight) for i in range(bg.shape[0])]
        lse = math.log(sum(math.exp(x) for x in logits))
        for j in range(k):
            for b in range(o):
                total -= float(q[kid[p], j] * bins[p, b]) * (logits[j * o + b] - lse)
    assert float(got) == pytest.approx(total / feats.shape[0], rel=1e-10)


def test_soft_loss_pulls_a_feature_towards_its_soft_target():
    feats, kid, bins, bank, bg = _random_problem(seed=1)
    k = bank.shape[0]
    q = torch.eye(k, dtype=torch.float64)  # sigma -> 0: the pixel's own kernel only
    x = feats.clone().requires_grad_(True)
    loss = soft_contrastive_loss(x, kid, bins, bank, bg, q, 0.07, 5e-3)
    loss.backward()
    # One small step against the gradient moves each feature closer to its own bank entry.
    moved = F.normalize(x.detach() - 1e-3 * x.grad, dim=-1)
    target = (bins[:, :, None] * bank[kid]).sum(1)
    assert torch.all((moved * target).sum(1) > (feats * target).sum(1))


def test_kernel_target_is_the_paper_contrast():
    feats, kid, bins, bank, bg = _random_problem(seed=2)
    k = bank.shape[0]
    adj = torch.eye(k, dtype=torch.bool)
    adj[0, 1] = adj[1, 0] = True
    sites = torch.rand(k, 3, generator=torch.Generator().manual_seed(0))
    target = make_feature_target("kernel", adj, sites, adj, 0.08, 2)
    got = target.loss(feats, kid, bins, bank, bg, 0.07, 5e-3)
    ref = kernel_contrastive_loss(feats, kid, bins, bank, bg, adj, 0.07, 5e-3)
    assert float(got) == pytest.approx(float(ref), rel=1e-12)


def test_patches_cover_every_kernel_with_its_geodesically_nearest_centre():
    rng = np.random.default_rng(0)
    pts = np.cumsum(rng.uniform(0.01, 0.05, size=(40, 1)) * np.array([[1.0, 0, 0]]), axis=0)
    adj, sites = _chain(pts)
    g = kernel_geodesic_distances(adj, sites)
    patches = geodesic_patches(g, 5)
    assert sorted(set(patches.tolist())) == list(range(5))
    # On a line, patches are contiguous runs.
    changes = int((patches[1:] != patches[:-1]).sum())
    assert changes == 4
    assert torch.equal(patches, geodesic_patches(g, 5))  # deterministic
    with pytest.raises(ValueError):
        geodesic_patches(g, 41)


def test_part_target_shares_one_bank_entry_per_patch():
    rng = np.random.default_rng(1)
    pts = np.cumsum(rng.uniform(0.01, 0.05, size=(12, 1)) * np.array([[1.0, 0, 0]]), axis=0)
    adj, sites = _chain(pts)
    target = make_feature_target("part", adj, sites, adj, 0.08, 3)
    assert target.num_classes == 3
    classes = F.normalize(torch.randn(3, 2, 4), dim=-1)
    bank = target.expand(classes)
    assert bank.shape == (12, 2, 4)
    for kernel in range(12):
        assert torch.equal(bank[kernel], classes[target.class_of_kernel[kernel]])
    assert torch.equal(target.class_bank(bank), classes)
    # The hard contrast over patches: same value as the kernel contrast on patch ids.
    feats, _, bins, _, bg = _random_problem(seed=4, k=3, o=2)
    kid = torch.randint(0, 12, (feats.shape[0],), generator=torch.Generator().manual_seed(5))
    got = target.loss(feats, kid, bins, bank.double(), bg, 0.07, 5e-3)
    ref = kernel_contrastive_loss(feats, target.class_of_kernel[kid], bins, classes.double(), bg,
                                  torch.eye(3, dtype=torch.bool), 0.07, 5e-3)
    assert float(got) == pytest.approx(float(ref), rel=1e-12)


def test_unknown_target_is_a_clear_error():
    adj, sites = _chain(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="feature_target"):
        make_feature_target("vertices", adj, sites, adj, 0.08, 2)
