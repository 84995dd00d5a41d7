"""BlazePose trunk + NBV feature head as one ONNX graph (docs/features.md).

One onnxruntime session (or TensorRT engine) per batch of people then gives BlazePose's own
outputs (landmarks, world landmarks, pose flag, segmentation, heatmaps) and the fit's features
from the same crops. Three graphs joined with ``onnx.compose.merge_models``:

    crops B x 3 x S x S in [0, 1] --(resize to 256, NCHW -> NHWC)--> BlazePose (tapped)
    taps --(feature head: per-tap mix, resample to the grid, residual convs)--> features

The resize and the head are exported from the same torch code the runtime pieces use
(``nets.trunk.crops_to_trunk_input``, ``nets.feature_head.TrunkFeatureHead``), so the one graph
and the pieces agree (tests/test_feature_head.py checks it).
"""
from __future__ import annotations

import io
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nbf_ros.config import resolve_path
from nbf_ros.nets.feature_head import TrunkFeatureHead
from nbf_ros.nets.trunk import STANDARD_OUTPUTS, TRUNK_INPUT, TRUNK_INPUT_SIZE, add_tap_outputs, tap_tensor

CROPS_INPUT = "crops"
FEATURES_OUTPUT = "features"
OPSET = 17


class _ToTrunkInput(nn.Module):
    """B x 3 x S x S -> B x 256 x 256 x 3 (bilinear, as ``crops_to_trunk_input``)."""

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(crops, size=(TRUNK_INPUT_SIZE, TRUNK_INPUT_SIZE), mode="bilinear",
                          align_corners=False)
        return x.permute(0, 2, 3, 1)


def _to_onnx(module: nn.Module, args: tuple, inputs: list[str], outputs: list[str]):
    """torch module -> ModelProto (opset 17, dynamic batch), exported in memory."""
    import onnx

    buffer = io.BytesIO()
    axes = {name: {0: "batch"} for name in inputs + outputs}
    torch.onnx.export(module.eval(), args, buffer, input_names=inputs, output_names=outputs,
                      dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def _match_versions(model, like) -> None:
    """merge_models needs equal IR versions and opsets; the graphs here use plain opset-17 ops."""
    model.ir_version = like.ir_version
    del model.opset_import[:]
    model.opset_import.extend(like.opset_import)


def trunk_head_graph(trunk_path: str, head: TrunkFeatureHead, taps: Sequence[str], crop_size: int):
    """The one ModelProto: input ``crops`` B x 3 x S x S, outputs BlazePose's standard outputs
    and ``features`` B x D x h x w."""
    import onnx
    from onnx import compose

    trunk = add_tap_outputs(onnx.load(str(resolve_path(trunk_path))), taps)
    pre = _to_onnx(_ToTrunkInput(), (torch.rand(1, 3, crop_size, crop_size),), [CROPS_INPUT], ["trunk_image"])
    probe = [torch.rand(1, c, s, s) for c, s in zip(head.tap_channels, _tap_sides(trunk_path, taps))]
    names = [f"tap_{i}" for i in range(len(taps))]

    class _Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = head

        def forward(self, *x: torch.Tensor) -> torch.Tensor:
            return self.head(list(x))

    head_graph = _to_onnx(_Head(), tuple(probe), names, [FEATURES_OUTPUT])
    for m in (pre, head_graph):
        _match_versions(m, trunk)
    joined = compose.merge_models(pre, trunk, io_map=[("trunk_image", TRUNK_INPUT)],
                                  outputs=list(STANDARD_OUTPUTS) + [tap_tensor(t) for t in taps])
    return compose.merge_models(joined, head_graph, io_map=list(zip([tap_tensor(t) for t in taps], names)),
                                outputs=list(STANDARD_OUTPUTS) + [FEATURES_OUTPUT])


def _tap_sides(trunk_path: str, taps: Sequence[str]) -> list[int]:
    """Native side of each tap at the 256 px input (one onnxruntime run of the tapped trunk)."""
    import numpy as np

    from nbf_ros.nets.trunk import BlazePoseTrunk

    trunk = BlazePoseTrunk(trunk_path, taps, grid_side=TRUNK_INPUT_SIZE)  # no pooling
    out = trunk.run(np.zeros((1, 3, TRUNK_INPUT_SIZE, TRUNK_INPUT_SIZE), np.float32))
    return [out.taps[t].shape[-1] for t in taps]
