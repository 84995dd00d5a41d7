"""Fitting loss functions: limits, the occlusion model's behaviour, robust keypoints, priors."""
import math

import pytest
import torch
import torch.nn.functional as F

from nbf_ros.fitting.losses import (GaussianPosePrior, feature_loss, feature_scores,
                                    outlier_probability, robust_keypoint_loss)


def unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def scores_for(rendered_match: bool, occluded: bool):
    """One 4x4 image, body covering the left half; right half background."""
    d = 8
    body_feat, bg = unit(d, seed=1), unit(d, seed=2)
    observed = bg.expand(1, 4, 4, d).clone()
    observed[:, :, :2] = body_feat
    if occluded:  # an occluder showing background-like clutter over the body
        observed[:, :, :2] = bg
    coverage = torch.zeros(1, 4, 4, dtype=torch.float64)
    coverage[:, :, :2] = 1.0
    rendered = coverage[..., None] * (body_feat if rendered_match else unit(d, seed=3))
    return feature_scores(rendered, coverage, observed, bg)


def test_perfect_explanation_scores_best():
    good, bad = scores_for(True, False), scores_for(False, False)
    for occlusion_model in (True, False):
        assert feature_loss(good, occlusion_model) < feature_loss(bad, occlusion_model)
    assert feature_loss(good, False).item() == pytest.approx(0.0, abs=1e-12)


def test_occluded_pixels_cost_little_with_the_occlusion_model():
    clean, occ = scores_for(True, False), scores_for(True, True)
    with_model = feature_loss(occ, True) - feature_loss(clean, True)
    without = feature_loss(occ, False) - feature_loss(clean, False)
    assert with_model.item() < 0.5 * without.item()
    # ... because the occluded pixels are explained by the outlier model.
    assert outlier_probability(occ, 0.1)[0, :, :2].min() > 0.99
    assert outlier_probability(clean, 0.1)[0, :, :2].max() < 0.01


def test_feature_loss_gradient_matches_finite_differences():
    rendered = unit(1, 3, 3, 4, seed=5).requires_grad_(True)
    observed = unit(1, 3, 3, 4, seed=6)
    cov = torch.full((1, 3, 3), 0.7, dtype=torch.float64)
    bg = unit(4, seed=7)
    for occ in (True, False):
        fn = lambda r: feature_loss(feature_scores(r, cov, observed, bg), occ)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (rendered,))


def test_robust_keypoints_saturate_and_ignore_few_joints():
    target = torch.zeros(1, 24, 2, dtype=torch.float64)
    conf = torch.ones(1, 24, dtype=torch.float64)
    near = robust_keypoint_loss(target + 1.0, target, conf, sigma=10.0, min_joints=7)
    far = robust_keypoint_loss(target + 1e4, target, conf, sigma=10.0, min_joints=7)
    assert near.item() == pytest.approx(2.0 / (100 + 2.0))
    assert far.item() < 1.0 and far.item() > 0.99  # bounded: an outlier cannot dominate
    few = conf.clone()
    few[:, 6:] = 0.0
    assert robust_keypoint_loss(target + 5.0, target, few, 10.0, 7).item() == 0.0


def test_gaussian_pose_prior_is_mahalanobis():
    g = torch.Generator().manual_seed(0)
    samples = torch.randn(20000, 69, generator=g, dtype=torch.float64) * 0.3 + 0.1
    prior = GaussianPosePrior.fit(samples, ridge=0.0)
    assert prior.nll(samples).mean().item() == pytest.approx(1.0, rel=0.02)
    assert prior.nll(torch.full((1, 69), 0.1, dtype=torch.float64)).item() < 0.01
    assert math.isfinite(prior.nll(torch.full((1, 69), 5.0, dtype=torch.float64)).item())
