"""Memory bank of kernel features (K x O x D, EMA) and background features (FIFO), as in CoKe.

Kernel features are not learned by gradient: each training step moves the bank entries of the
kernels seen in the batch towards the mean image feature sampled at those kernels (exponential
moving average, then re-normalised). The O orientation bins of a kernel share its observations
according to the NBV orientation weights of the sample's pose, so the bin that matches the
limb's current direction moves most.

It lives with the networks because the shipped weights carry it next to the network
(``nbf_ros.nets.weights``): training writes it, the fitting reads it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bank_statistics(features: torch.Tensor, kernel_ids: torch.Tensor, bin_weights: torch.Tensor,
                    num_kernels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-kernel sums that one EMA step needs (additive, so DDP ranks can all-reduce them).

    Args:
        features: N x D sampled image features.
        kernel_ids: (N,) int64 in [0, K).
        bin_weights: N x O non-negative, each row summing to 1.
        num_kernels: K.
    Returns:
        counts (K,) pixels per kernel; wsum K x O = sum_p w_po; fsum K x O x D = sum_p w_po f_p.
    """
    if features.dim() != 2 or bin_weights.dim() != 2:
        raise ValueError(f"features and bin_weights must be N x D and N x O, got "
                         f"{tuple(features.shape)} and {tuple(bin_weights.shape)}")
    n, d = features.shape
    o = bin_weights.shape[1]
    if kernel_ids.shape != (n,) or bin_weights.shape[0] != n:
        raise ValueError(f"kernel_ids must be ({n},) and bin_weights {n} x O, got "
                         f"{tuple(kernel_ids.shape)} and {tuple(bin_weights.shape)}")
    dtype, dev = features.dtype, features.device
    counts = torch.zeros(num_kernels, dtype=dtype, device=dev).index_add_(
        0, kernel_ids, torch.ones(n, dtype=dtype, device=dev))
    wsum = torch.zeros(num_kernels, o, dtype=dtype, device=dev).index_add_(0, kernel_ids, bin_weights)
    fsum = torch.zeros(num_kernels, o, d, dtype=dtype, device=dev).index_add_(
        0, kernel_ids, bin_weights[:, :, None] * features[:, None, :])
    return counts, wsum, fsum


def apply_ema(bank: torch.Tensor, counts: torch.Tensor, wsum: torch.Tensor, fsum: torch.Tensor,
              momentum: float) -> torch.Tensor:
    """New K x O x D bank from ``bank_statistics`` sums (see ``ema_bank_update``)."""
    seen = wsum > 0
    mean = fsum / wsum.clamp(min=1e-12)[..., None]
    alpha = (1.0 - momentum) * wsum / counts.clamp(min=1.0)[:, None]
    moved = F.normalize((1.0 - alpha)[..., None] * bank + alpha[..., None] * mean, dim=-1)
    return torch.where(seen[..., None], moved, bank)


def ema_bank_update(bank: torch.Tensor, features: torch.Tensor, kernel_ids: torch.Tensor,
                    bin_weights: torch.Tensor, momentum: float) -> torch.Tensor:
    """New kernel bank after one EMA step (pure function; the bank is not modified).

    For kernel k and bin o, with the n_k pixels that saw k and their bin weights w_po:
        mean_ko = sum_p w_po f_p / sum_p w_po
        alpha_ko = (1 - momentum) * sum_p w_po / n_k      (the bin's share of k's observations)
        bank_ko <- normalise((1 - alpha_ko) bank_ko + alpha_ko mean_ko)
    Entries whose weight sum is zero are unchanged. With one-hot weights and a single bin this is
    CoKe's update: bank <- normalise(momentum * bank + (1 - momentum) * mean feature).

    Args:
        bank: K x O x D unit features.
        features: N x D sampled image features (detached by the caller).
        kernel_ids: (N,) int64 in [0, K).
        bin_weights: N x O non-negative, each row summing to 1.
        momentum: in [0, 1).
    Returns:
        K x O x D.
    """
    k, o, d = bank.shape
    if features.dim() != 2 or features.shape[1] != d or bin_weights.shape[-1] != o:
        raise ValueError(f"features must be N x {d} and bin_weights N x {o}, got "
                         f"{tuple(features.shape)} and {tuple(bin_weights.shape)}")
    counts, wsum, fsum = bank_statistics(features, kernel_ids, bin_weights, k)
    return apply_ema(bank, counts, wsum, fsum, momentum)


class MemoryBank(nn.Module):
    """Kernel bank K x O x D and a FIFO of background features, held as buffers.

    Buffers (all saved in the state dict, so checkpoints and shipped weights carry the bank):
        kernel_features: K x O x D unit vectors.
        background_features: M x D unit vectors (rows beyond ``background_count`` are unused).
        background_count: () int64, number of valid rows (<= M).
        background_ptr: () int64, next row the FIFO overwrites.
    """

    def __init__(self, num_kernels: int, num_bins: int, dim: int, background_size: int,
                 seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        init = F.normalize(torch.randn(num_kernels, num_bins, dim, generator=gen), dim=-1)
        self.register_buffer("kernel_features", init)
        self.register_buffer("background_features", torch.zeros(background_size, dim))
        self.register_buffer("background_count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("background_ptr", torch.zeros((), dtype=torch.int64))

    @property
    def shape(self) -> tuple[int, int, int]:
        k, o, d = self.kernel_features.shape
        return int(k), int(o), int(d)

    @torch.no_grad()
    def update_kernels(self, features: torch.Tensor, kernel_ids: torch.Tensor,
                       bin_weights: torch.Tensor, momentum: float) -> None:
        """EMA step (see ``ema_bank_update``); features N x D are detached here."""
        self.kernel_features.copy_(ema_bank_update(self.kernel_features, features.detach(),
                                                   kernel_ids, bin_weights, momentum))

    @torch.no_grad()
    def apply_statistics(self, counts: torch.Tensor, wsum: torch.Tensor, fsum: torch.Tensor,
                         momentum: float) -> None:
        """EMA step from (possibly all-reduced) ``bank_statistics`` sums."""
        self.kernel_features.copy_(apply_ema(self.kernel_features, counts, wsum, fsum, momentum))

    @torch.no_grad()
    def push_background(self, features: torch.Tensor) -> None:
        """Append N x D background features to the FIFO (oldest rows are overwritten)."""
        size = self.background_features.shape[0]
        feats = features.detach()[-size:]
        n = feats.shape[0]
        if n == 0:
            return
        rows = (int(self.background_ptr) + torch.arange(n)) % size
        self.background_features[rows] = feats.to(self.background_features.dtype)
        self.background_ptr.fill_((int(self.background_ptr) + n) % size)
        self.background_count.fill_(min(size, int(self.background_count) + n))

    def valid_background(self) -> torch.Tensor:
        """M' x D filled background rows (M' may be 0)."""
        return self.background_features[: int(self.background_count)]

    def background_prototype(self) -> torch.Tensor:
        """(D,) unit mean background feature: the fitting's clutter feature (method.md step 6)."""
        valid = self.valid_background()
        if valid.shape[0] == 0:
            raise ValueError("the background bank is empty (no training step has filled it)")
        return F.normalize(valid.mean(0), dim=0)

