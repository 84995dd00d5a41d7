"""BlazePose's pretrained landmark network as a frozen feature trunk (issue 13, docs/features.md).

The shipped ``models/blazepose_full.onnx`` is opened with some of its intermediate tensors added
as extra graph outputs ("taps"), edited in memory, so no second copy of the 13 MB model ships.
BlazePose was trained on real people; the NBV feature head (``nets/feature_head.py``) reads these
taps instead of the from-scratch U-Net's decoder.

Crop geometry. The fit's crop is the pipeline's axis-aligned square ``CropBox.around_bbox``
(``net.crop_size`` px, 128). The trunk sees that same crop resized to BlazePose's 256 x 256
input (bilinear), so every tap lies in the fit's crop camera: BlazePose's stride 8 is stride 4
of the 128 px crop, i.e. exactly the fit's 32 x 32 feature grid; its stride-4 taps (64 x 64) are
average-pooled 2 x 2 onto that grid, and coarser taps are upsampled by the head.

Taps are named by the graph's (TensorFlow-derived) tensor names, which the conversion keeps
stable (models/pretrained.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nbf_ros.config import resolve_path
from nbf_ros.engines import EngineError, EngineOptions
from nbf_ros.errors import NbfError

TRUNK_INPUT_SIZE = 256
TRUNK_INPUT = "image"
STANDARD_OUTPUTS = ("landmarks", "world_landmarks", "pose_flag", "segmentation", "heatmaps")
REBUILD = "python3 tools/build_pretrained_models.py"

TAP_ALIASES: dict[str, str] = {
    # name -> graph tensor; shapes at the 256 px input (channels @ side).
    "enc4": "model_1/model/add/add",        # 24 @ 64: encoder, stride 4
    "enc8": "model_1/model/add_1/add",      # 32 @ 32: encoder, stride 8
    "enc16": "model_1/model/add_5/add",     # 88 @ 16: encoder, stride 16
    "enc32": "model_1/model/add_8/add",     # 144 @ 8: encoder, stride 32
    "dec16": "model_1/model/add_9/add",     # 48 @ 16: decoder, stride 16
    "dec8": "model_1/model/add_10/add",     # 48 @ 32: decoder, stride 8
    "dec4": "model_1/model/add_11/add",     # 48 @ 64: decoder, stride 4 (under the heatmaps)
    "hm4": "tmp_0071",                      # 48 @ 64: the heatmap branch's hidden layer
}
"""Short names of the tensors worth tapping (measured in docs/features.md)."""


class TrunkError(NbfError, RuntimeError):
    """The trunk model cannot be opened, lacks a tap, or was fed the wrong crops."""


def tap_tensor(name: str) -> str:
    """The graph tensor of a tap given by alias (``TAP_ALIASES``) or by its full tensor name."""
    return TAP_ALIASES.get(name, name)


def parse_taps(spec: str) -> tuple[str, ...]:
    """'enc8,dec8' -> ('enc8', 'dec8'); the config stores taps as one comma-separated string."""
    taps = tuple(t.strip() for t in spec.split(",") if t.strip())
    if not taps:
        raise TrunkError("feature_head.taps names no tap")
    return taps


def add_tap_outputs(model, taps: Sequence[str]):
    """A copy of the ONNX ModelProto with the taps' tensors appended as graph outputs.

    The standard outputs keep their order and values (only outputs are added; no node changes).
    Raises TrunkError for a tap that no node produces.
    """
    import onnx

    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    produced = {out for node in edited.graph.node for out in node.output}
    existing = {o.name for o in edited.graph.output}
    for tap in taps:
        tensor = tap_tensor(tap)
        if tensor not in produced:
            raise TrunkError(f"no tensor {tensor!r} (tap {tap!r}) in the trunk graph")
        if tensor not in existing:
            edited.graph.output.append(onnx.helper.make_tensor_value_info(  # B x C x s x s
                tensor, onnx.TensorProto.FLOAT, ["batch", None, None, None]))
            existing.add(tensor)
    return edited


def crops_to_trunk_input(crops: np.ndarray) -> np.ndarray:
    """B x 3 x S x S float crops in [0, 1] -> B x 256 x 256 x 3 float32 (NHWC, bilinear resize).

    The same ``F.interpolate`` the exported graph uses, so the taps of the runtime trunk and
    of the one-graph export see identical pixels.
    """
    if crops.ndim != 4 or crops.shape[1] != 3 or crops.shape[2] != crops.shape[3]:
        raise TrunkError(f"crops must be B x 3 x S x S, got {crops.shape}")
    x = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))
    if x.shape[-1] != TRUNK_INPUT_SIZE:
        x = F.interpolate(x, size=(TRUNK_INPUT_SIZE, TRUNK_INPUT_SIZE), mode="bilinear",
                          align_corners=False)
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())


def pool_to_grid(tap: np.ndarray, side: int) -> np.ndarray:
    """B x C x s x s tap -> B x C x side x side by k x k mean pooling when s = k * side (finer
    taps), unchanged when s <= side (the head upsamples coarser ones)."""
    s = tap.shape[-1]
    if s <= side:
        return tap
    if s % side:
        raise TrunkError(f"tap side {s} is not a multiple of the feature grid {side}")
    k = s // side
    b, c = tap.shape[:2]
    return tap.reshape(b, c, side, k, side, k).mean(axis=(3, 5))


@dataclass
class TrunkOutput:
    """One trunk run on B crops.

    Attributes:
        taps: name -> B x C x s x s float32, s = min(native side, grid side) (``pool_to_grid``).
        standard: BlazePose's own outputs by name (landmarks B x 195, world_landmarks B x 117,
            pose_flag B x 1, segmentation B x 256 x 256, heatmaps B x 64 x 64 x 39).
    """

    taps: dict[str, np.ndarray]
    standard: dict[str, np.ndarray]


class BlazePoseTrunk:
    """BlazePose full (or lite/heavy) in onnxruntime with extra outputs at the chosen taps.

    run(crops B x 3 x S x S in [0, 1]) -> TrunkOutput on the fit's feature grid of side
    ``S / feature_stride``.
    """

    def __init__(self, model_path: str, taps: Sequence[str], grid_side: int,
                 threads: int = 1) -> None:
        import onnx

        from nbf_ros.engines.onnx import session_options

        path = resolve_path(model_path)
        if not path.is_file():
            raise TrunkError(f"{path}: trunk model not found; rebuild it with `{REBUILD}`")
        self.taps = tuple(taps)
        self.grid_side = grid_side
        model = add_tap_outputs(onnx.load(str(path)), self.taps)
        try:
            import onnxruntime as ort
            self.session = ort.InferenceSession(model.SerializeToString(),
                                                sess_options=session_options(EngineOptions(threads=threads)),
                                                providers=["CPUExecutionProvider"])
        except ImportError as exc:
            raise TrunkError("onnxruntime is not installed (pip install onnxruntime)") from exc
        except EngineError:
            raise
        except Exception as exc:  # onnxruntime raises its own types
            raise TrunkError(f"{path}: onnxruntime cannot load the tapped trunk ({exc})") from exc
        self.name = f"blazepose-trunk/{path.stem}"

    def run(self, crops: np.ndarray, standard: Sequence[str] = ()) -> TrunkOutput:
        """Taps (pooled to the grid) and any of BlazePose's ``standard`` outputs."""
        names = [tap_tensor(t) for t in self.taps] + list(standard)
        values = self.session.run(names, {TRUNK_INPUT: crops_to_trunk_input(crops)})
        taps = {t: pool_to_grid(v, self.grid_side) for t, v in zip(self.taps, values)}
        return TrunkOutput(taps, dict(zip(standard, values[len(self.taps):])))
