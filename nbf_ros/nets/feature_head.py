"""The NBV feature head on BlazePose's trunk taps, and its weights file (docs/features.md).

The trunk (``nets/trunk.py``) is frozen; only this head and the memory bank are trained, with the
paper's K x O kernel contrast (``training/head_train.py``). The head is small on purpose: the taps
already encode people (BlazePose was trained on real photos), the head only has to re-express
them as 3D-aware unit features, and it must train on one CPU thread within an hour.

Weights file (``models/nbf_trunk_head.pt``): a flat dict written by ``torch.save`` and read with
``torch.load(weights_only=True)``: ``head.*`` (this module's state dict), ``bank.*`` (the
MemoryBank), ``format`` = ``HEAD_FORMAT``, ``taps`` (comma-separated), ``tap_channels``,
``hidden_channels``, ``layers``, ``feature_dim``, ``grid_side``; floats stored as float16.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nbf_ros.nets.bank import MemoryBank
from nbf_ros.nets.heads import l2_normalize_channels
from nbf_ros.nets.weights import WeightsError, bank_from_state, load_state_strict, read_tensor_dict

HEAD_FORMAT = "nbf_ros.trunk_head.v1"
DILATIONS = (1, 2, 4)


def resample_to_grid(tap: torch.Tensor, side: int) -> torch.Tensor:
    """B x C x s x s -> B x C x side x side: bilinear up for coarser taps, k x k mean for finer
    (the same mean ``nets.trunk.pool_to_grid`` applies before caching, so cached and live taps
    meet the head identically)."""
    s = tap.shape[-1]
    if s == side:
        return tap
    if s > side:
        return F.avg_pool2d(tap, s // side)
    return F.interpolate(tap, size=(side, side), mode="bilinear", align_corners=False)


class ResidualConv(nn.Module):
    """x + ReLU(BN(conv3x3_dilated(x))): widens the receptive field without changing the grid."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.bn(self.conv(x)))


class TapMix(nn.Module):
    """One tap standardised (BatchNorm without affine) and mixed to ``hidden`` channels by a 1 x 1
    conv at the tap's own resolution: B x C x s x s -> B x hidden x s x s.

    Both are per-pixel linear maps, and bilinear upsampling and mean pooling are linear with
    weights summing to 1, so mixing before resampling to the grid equals mixing after it, at a
    fraction of the cost for the coarse taps (and without concatenating ~300 channels at 32 x 32).
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.conv = nn.Conv2d(channels, hidden, 1, bias=False)

    def forward(self, tap: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(tap))


class TrunkFeatureHead(nn.Module):
    """Taps -> unit features on the fit's grid.

    forward(taps: list of B x C_i x s_i x s_i, in ``tap_channels`` order) -> B x D x side x side,
    unit length along D. Each tap is standardised per channel (the taps' scales differ by ~50x:
    encoder adds vs decoder ReLU6 outputs), mixed to ``hidden`` channels (``TapMix``), resampled
    to the grid and summed; then BN-ReLU, ``layers`` dilated residual 3 x 3 convs, a 1 x 1
    projection to D and L2 normalisation.
    """

    def __init__(self, tap_channels: Sequence[int], side: int, hidden: int, layers: int,
                 dim: int) -> None:
        super().__init__()
        if hidden <= 0 or layers < 0 or dim <= 0 or not tap_channels:
            raise ValueError(f"bad head shape: taps {tap_channels}, hidden {hidden}, "
                             f"layers {layers}, dim {dim}")
        self.tap_channels = tuple(int(c) for c in tap_channels)
        self.side = side
        self.hidden = hidden
        self.mixes = nn.ModuleList(TapMix(c, hidden) for c in self.tap_channels)
        self.post = nn.Sequential(nn.BatchNorm2d(hidden), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*(ResidualConv(hidden, DILATIONS[i % len(DILATIONS)])
                                      for i in range(layers)))
        self.proj = nn.Conv2d(hidden, dim, 1)

    def forward(self, taps: Sequence[torch.Tensor]) -> torch.Tensor:
        if not torch.jit.is_tracing() and [t.shape[1] for t in taps] != list(self.tap_channels):
            raise ValueError(f"head expects taps with channels {self.tap_channels}, got "
                             f"{[tuple(t.shape) for t in taps]}")
        x = resample_to_grid(self.mixes[0](taps[0]), self.side)
        for mix, tap in zip(self.mixes[1:], taps[1:]):
            x = x + resample_to_grid(mix(tap), self.side)
        x = self.blocks(self.post(x))
        return l2_normalize_channels(self.proj(x))


def save_head(head: TrunkFeatureHead, bank: MemoryBank, taps: Sequence[str],
              path: str | Path) -> None:
    """Write the head + bank weights file (module doc), floats as float16."""
    def store(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        return t.half() if t.is_floating_point() else t.clone()

    flat: dict[str, Any] = {f"head.{k}": store(v) for k, v in head.state_dict().items()}
    flat.update({f"bank.{k}": store(v) for k, v in bank.state_dict().items()})
    flat.update({"format": HEAD_FORMAT, "taps": ",".join(taps),
                 "tap_channels": list(head.tap_channels), "hidden_channels": head.hidden,
                 "layers": len(head.blocks), "feature_dim": head.proj.out_channels,
                 "grid_side": head.side})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(flat, path)


def load_head(path: str | Path) -> tuple[TrunkFeatureHead, MemoryBank, tuple[str, ...]]:
    """(head in eval mode, bank, taps) from a weights file; WeightsError (one line) otherwise.

    The head's shape comes from the file (it must match the taps it was trained on, which the
    file names), so a config cannot silently pair weights with other taps.
    """
    flat = read_tensor_dict(Path(path), "feature-head weights")
    if flat.get("format") != HEAD_FORMAT:
        raise WeightsError(f"{path}: not a feature-head weights file (format "
                           f"{flat.get('format')!r}, expected {HEAD_FORMAT!r})")
    head = TrunkFeatureHead(flat["tap_channels"], int(flat["grid_side"]), int(flat["hidden_channels"]),
                            int(flat["layers"]), int(flat["feature_dim"]))
    load_state_strict(head, {k[5:]: v for k, v in flat.items() if k.startswith("head.")}, str(path))
    bank = bank_from_state({k[5:]: v for k, v in flat.items() if k.startswith("bank.")}, str(path))
    return head.eval(), bank.eval(), tuple(str(flat["taps"]).split(","))
