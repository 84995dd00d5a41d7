"""ResNet-style U-Net backbone: plain 3x3 convs, BatchNorm, ReLU, bilinear upsampling.

Every op here maps to one ONNX opset-17 node that TensorRT fuses well on a Jetson (Conv+BN+ReLU,
Add, Concat, Resize), and nothing in ``forward`` branches on tensor values, so the traced graph is
the whole network. Trained from scratch (no pretrained weights are reachable here), which is why
the encoder is ResNet-18-shaped but narrower: a small model learns faster on a CPU budget.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """k x k conv (no bias: BN follows) -> BatchNorm -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with an identity (or 1x1 projected) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(c_in, c_out, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(c_out))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


def _stage(c_in: int, c_out: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [BasicBlock(c_in, c_out, stride)] + [BasicBlock(c_out, c_out) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class UpBlock(nn.Module):
    """x2 bilinear upsampling, concatenation with the skip, two 3x3 ConvBNReLU."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.fuse = nn.Sequential(ConvBNReLU(c_in + c_skip, c_out), ConvBNReLU(c_out, c_out))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], dim=1))


class UNetBackbone(nn.Module):
    """Encoder at strides 2..32 and a decoder back to stride 4.

    Channels with base c: stem c (S/2), stages c, 2c, 4c, 8c (S/4 .. S/32); decoder 4c, 2c, 2c
    (S/16, S/8, S/4).

    forward(x: B x 3 x S x S) -> (decoded B x 2c x S/4 x S/4, deepest B x 8c x S/32 x S/32).
    """

    def __init__(self, base_channels: int, blocks: tuple[int, int, int, int]) -> None:
        super().__init__()
        c = base_channels
        self.stem = nn.Sequential(ConvBNReLU(3, c, 3, stride=2), ConvBNReLU(c, c))
        self.stage1 = _stage(c, c, blocks[0], 2)
        self.stage2 = _stage(c, 2 * c, blocks[1], 2)
        self.stage3 = _stage(2 * c, 4 * c, blocks[2], 2)
        self.stage4 = _stage(4 * c, 8 * c, blocks[3], 2)
        self.up3 = UpBlock(8 * c, 4 * c, 4 * c)
        self.up2 = UpBlock(4 * c, 2 * c, 2 * c)
        self.up1 = UpBlock(2 * c, c, 2 * c)
        self.out_channels = 2 * c
        self.deep_channels = 8 * c

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s1 = self.stage1(self.stem(x))
        s2 = self.stage2(s1)
        s3 = self.stage3(s2)
        s4 = self.stage4(s3)
        d = self.up1(self.up2(self.up3(s4, s3), s2), s1)
        return d, s4
