"""Pure loss functions of neural body fitting (method.md steps 6-7); no state, no optimiser.

Feature maps are channel-last here (B x H x W x D), like the renderer's output.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

COVERAGE_RAMP = 0.05


@dataclass
class FeatureScores:
    """Per-pixel agreement terms, all B x H x W.

    Attributes:
        obj: cosine of the rendered and observed features where the body is rendered, fading
            to 0 where it is not (see COVERAGE_RAMP): high only where the body is and matches.
        obj_cos: cosine of the normalised rendered feature with the observed one (mask-free).
        clu: cosine of the background/clutter feature with the observed one.
        mask: rendered coverage in [0, 1].
    """

    obj: torch.Tensor
    obj_cos: torch.Tensor
    clu: torch.Tensor
    mask: torch.Tensor


def feature_scores(rendered: torch.Tensor, coverage: torch.Tensor, observed: torch.Tensor,
                   background: torch.Tensor) -> FeatureScores:
    """Compare rendered and observed features.

    Args:
        rendered: B x H x W x D rendered features (weighted sums of unit kernel features).
        coverage: B x H x W rendered coverage.
        observed: B x H x W x D observed features, L2-normalised along D.
        background: D (or B x D) background feature; normalised here.
    """
    if rendered.shape != observed.shape:
        raise ValueError(f"rendered {tuple(rendered.shape)} and observed {tuple(observed.shape)} differ")
    bg = F.normalize(background, dim=-1)
    if bg.dim() == 1:
        bg = bg.expand(rendered.shape[0], -1)
    obj_cos = (F.normalize(rendered, dim=-1, eps=1e-6) * observed).sum(-1)
    # As in the released code, any pixel the body touches is scored by the cosine of the
    # normalised rendered feature; a ramp over the first COVERAGE_RAMP of coverage (instead of a
    # hard "rendered != 0" test) keeps the score and its gradient continuous at the silhouette.
    obj = obj_cos * (coverage / COVERAGE_RAMP).clamp(0.0, 1.0)
    clu = torch.einsum("bhwd,bd->bhw", observed, bg)
    return FeatureScores(obj=obj, obj_cos=obj_cos, clu=clu, mask=coverage.clamp(0.0, 1.0))


def outlier_probability(scores: FeatureScores, temperature: float) -> torch.Tensor:
    """B x H x W probability that a pixel is explained by the outlier (occluder/clutter) model.

    The soft choice between the body model and the outlier model in the occlusion process.
    """
    body = 0.5 * scores.obj + 0.5
    clutter = 0.5 * scores.clu + 0.5
    return torch.sigmoid((clutter - body) / temperature)


def feature_loss(scores: FeatureScores, occlusion_model: bool, temperature: float = 0.1) -> torch.Tensor:
    """B feature-likelihood losses in [0, 1] (lower is better).

    With the occlusion model each pixel takes a soft maximum (softmax-weighted mean at
    ``temperature``) of the body score 0.5 obj + 0.5 and the outlier score 0.5 clu + 0.5, so a
    pixel hidden by an occluder is explained by the outlier model and does not drag the body.
    Without it, covered pixels must match the body and uncovered ones the background:
    1 - mean(mask obj_cos + (1 - mask) clu).
    """
    if occlusion_model:
        body = 0.5 * scores.obj + 0.5
        clutter = 0.5 * scores.clu + 0.5
        both = torch.stack([body, clutter], dim=-1)
        score = (torch.softmax(both / temperature, dim=-1) * both).sum(-1)
        return (1.0 - score).flatten(1).mean(1)
    agree = scores.mask * scores.obj_cos + (1.0 - scores.mask) * scores.clu
    return 1.0 - agree.flatten(1).mean(1)


def robust_keypoint_loss(projected: torch.Tensor, target: torch.Tensor, confidence: torch.Tensor,
                         sigma: float, min_joints: int) -> torch.Tensor:
    """Geman-McClure 2D keypoint term, B.

    Args:
        projected: B x J x 2 projected model joints (pixels of the fitting resolution).
        target: B x J x 2 detected keypoints (same pixels).
        confidence: B x J in [0, 1]; joints below 0.1 count as missing.
        sigma: robustness scale in pixels.
        min_joints: fewer confident joints than this -> the term is 0 (as in the paper: too few
            keypoints constrain nothing and only add noise).
    Returns:
        B, mean over joints of conf * sigma^2 r^2 / (sigma^2 + r^2), divided by sigma^2 so it is
        in [0, 1) per joint.
    """
    residual_sq = ((projected - target) ** 2).sum(-1)
    rho = residual_sq / (sigma ** 2 + residual_sq)
    confident = (confidence > 0.1).sum(-1) >= min_joints
    per_image = (confidence * rho).sum(-1) / confidence.sum(-1).clamp(min=1e-6)
    return torch.where(confident, per_image, torch.zeros_like(per_image))


def shape_prior(betas: torch.Tensor) -> torch.Tensor:
    """B, mean squared shape coefficient (betas are unit-variance by construction)."""
    return (betas ** 2).mean(-1)


@dataclass
class GaussianPosePrior:
    """Gaussian prior over the 69 body-pose parameters, learned from the training pose sampler.

    No VPoser weights exist here; a full-covariance Gaussian of the poses the network was trained
    on is the honest substitute. ``nll`` is the Mahalanobis distance squared divided by 69.
    """

    mean: torch.Tensor  # 69
    precision_cholesky: torch.Tensor  # 69 x 69, L with L L^T = Sigma^-1

    @staticmethod
    def fit(samples: torch.Tensor, ridge: float = 1e-3) -> "GaussianPosePrior":
        """samples: N x 69 -> prior (covariance regularised by ``ridge`` rad^2)."""
        mean = samples.mean(0)
        centred = samples - mean
        cov = centred.T @ centred / max(samples.shape[0] - 1, 1)
        cov = cov + ridge * torch.eye(cov.shape[0], dtype=cov.dtype)
        precision = torch.linalg.inv(cov)
        return GaussianPosePrior(mean, torch.linalg.cholesky(precision))

    def nll(self, body_pose: torch.Tensor) -> torch.Tensor:
        """B x 69 -> B."""
        z = (body_pose - self.mean) @ self.precision_cholesky
        return (z * z).mean(-1)
