"""The network as ONNX (for onnxruntime and TensorRT), checked on export.

The exported graph has one input ``crops`` (B x 3 x S x S float32 in [0, 1], dynamic batch) and
the outputs of ``nbf_ros.nets.model.OUTPUT_NAMES``. After writing, the file is run once with
onnxruntime (when installed) and compared with torch, so a broken export never ships silently.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from nbf_ros.config import NbfConfig, resolve_path

LOG = logging.getLogger(__name__)
ONNX_OPSET = 17


def export_onnx(config: NbfConfig, out_path: str | Path, check: bool = True) -> Path:
    """Write the ONNX graph of the configured network; returns the path."""
    from nbf_ros.nets.model import INPUT_NAME, OUTPUT_NAMES, ExportWrapper
    from nbf_ros.nets.weights import load_network

    from nbf_ros.inference.pipeline import with_weights_config

    config = with_weights_config(config)
    net, _ = load_network(resolve_path(config.inference.weights_path), config.net)
    wrapper = ExportWrapper(net.eval())
    size = config.net.crop_size
    example = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}}
    torch.onnx.export(wrapper, (example,), str(out), input_names=[INPUT_NAME],
                      output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic, opset_version=ONNX_OPSET,
                      dynamo=False)
    if check:
        max_diff = check_onnx(out, wrapper, example)
        LOG.info("ONNX export checked with onnxruntime: max |torch - onnx| = %.2e", max_diff)
    return out


def check_onnx(path: Path, wrapper: torch.nn.Module, example: torch.Tensor, atol: float = 1e-3) -> float:
    """Run the ONNX file with onnxruntime and compare every output with torch."""
    import onnxruntime as ort

    from nbf_ros.nets.model import INPUT_NAME, OUTPUT_NAMES

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: example.numpy()})
    with torch.no_grad():
        want = [t.numpy() for t in wrapper(example)]
    worst = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want))
    if worst > atol:
        raise RuntimeError(f"{path}: onnxruntime output differs from torch by {worst:.3g} (> {atol})")
    return worst
