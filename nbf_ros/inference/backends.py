"""Network backends: torch (CPU/CUDA), onnxruntime (CPU/CUDA) and TensorRT (NVIDIA GPUs, Jetson).

All backends take the same input (B x 3 x S x S float32 crops in [0, 1]) and return the same
:class:`NetArrays` (numpy), so the pipeline never knows which one ran. Optional runtimes are
imported on use; a missing one raises :class:`BackendError` naming the package to install.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from nbf_ros.errors import NbfError
from nbf_ros.config import NbfConfig, resolve_path

if TYPE_CHECKING:
    from nbf_ros.nets.bank import MemoryBank
    from nbf_ros.nets.model import NBFNet

LOG = logging.getLogger(__name__)

OUTPUT_NAMES = ("features", "pose6d", "betas", "cam", "heatmaps")


class BackendError(NbfError, RuntimeError):
    """A backend cannot be created or run (missing runtime, corrupt model/engine, bad device)."""


@dataclass
class NetArrays:
    """Network outputs for a batch of B crops (numpy, float32).

    Attributes:
        features: B x D x h x w, L2-normalised along D.
        pose6d: B x 24 x 6 (global orientation + 23 joints, 6D rotations).
        betas: B x 10.
        cam: B x 3 weak-perspective camera (s, tx, ty) for the crop.
        heatmaps: B x 24 x h x w joint heatmaps.
    """

    features: np.ndarray
    pose6d: np.ndarray
    betas: np.ndarray
    cam: np.ndarray
    heatmaps: np.ndarray


class NetworkBackend(Protocol):
    name: str

    def run(self, crops: np.ndarray) -> NetArrays:
        """crops: B x 3 x S x S float32 in [0, 1]."""


def _check_crops(crops: np.ndarray, size: int) -> np.ndarray:
    if crops.ndim != 4 or crops.shape[1:] != (3, size, size):
        raise ValueError(f"crops must be B x 3 x {size} x {size}, got {crops.shape}")
    return np.ascontiguousarray(crops, dtype=np.float32)


class TorchBackend:
    """Runs ``NBFNet`` with torch on CPU or CUDA.

    Takes the network already loaded (``load_backend`` reads the weights file once and hands
    the memory bank to the fitter), so the file is never read twice.
    """

    def __init__(self, config: NbfConfig, net: "NBFNet") -> None:
        self.device = torch.device(config.inference.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("inference.device is 'cuda' but torch sees no CUDA device "
                               "(install a CUDA build of torch, or use device: cpu)")
        self.crop_size = config.net.crop_size
        self.net = net.to(self.device).eval()
        self.name = f"torch/{self.device.type}"

    @torch.inference_mode()
    def run(self, crops: np.ndarray) -> NetArrays:
        x = torch.from_numpy(_check_crops(crops, self.crop_size)).to(self.device)
        out = self.net(x)
        return NetArrays(*(getattr(out, n).float().cpu().numpy() for n in OUTPUT_NAMES))


class OnnxRuntimeBackend:
    """Runs the exported ONNX graph with onnxruntime (CPU, or CUDA where its GPU build is installed)."""

    def __init__(self, config: NbfConfig) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError("backend 'onnxruntime' needs the onnxruntime package "
                               "(pip install onnxruntime, or onnxruntime-gpu)") from exc
        path = resolve_path(config.inference.onnx_path or "models/nbf_net.onnx")
        if not path.is_file():
            raise BackendError(f"{path}: ONNX model not found; create it with "
                               f"`nbf-ros export --onnx {path}`")
        providers = ["CPUExecutionProvider"]
        if config.inference.device.startswith("cuda"):
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"{path}: onnxruntime cannot load it ({exc}); re-export it") from exc
        self.crop_size = config.net.crop_size
        self.name = f"onnxruntime/{self.session.get_providers()[0]}"

    def run(self, crops: np.ndarray) -> NetArrays:
        outputs = self.session.run(list(OUTPUT_NAMES), {"crops": _check_crops(crops, self.crop_size)})
        return NetArrays(*outputs)


def engine_cache_key(onnx_path: Path, fp16: bool) -> str:
    """Key for a cached TensorRT engine: ONNX content hash + TensorRT version + GPU + precision.

    Keying by path alone silently reuses a stale engine after a TensorRT or GPU change (a known
    weakness of other nodes); this key changes whenever any of those does.
    """
    import tensorrt as trt

    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:16]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "unknown-gpu"
    blob = json.dumps([digest, trt.__version__, gpu, bool(fp16)])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class TensorRTBackend:
    """Builds (once, cached on disk) and runs a TensorRT engine from the ONNX graph.

    Written to NVIDIA's documented Python API (tensorrt >= 10: named I/O tensors,
    ``execute_async_v3``) with torch CUDA tensors as device buffers. No machine here has a GPU:
    tests skip it cleanly; the same ONNX graph is checked on CPU with onnxruntime.
    """

    def __init__(self, config: NbfConfig) -> None:
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise BackendError("backend 'tensorrt' needs NVIDIA TensorRT (pip install tensorrt, "
                               "or JetPack on Jetson) and an NVIDIA GPU") from exc
        if not torch.cuda.is_available():
            raise BackendError("backend 'tensorrt' needs a CUDA device visible to torch")
        self.trt = trt
        self.crop_size = config.net.crop_size
        onnx_path = resolve_path(config.inference.onnx_path or "models/nbf_net.onnx")
        if not onnx_path.is_file():
            raise BackendError(f"{onnx_path}: ONNX model not found; run `nbf-ros export --onnx {onnx_path}`")
        engine_dir = resolve_path(config.inference.engine_path or "cache/engines")
        engine_dir.mkdir(parents=True, exist_ok=True)
        key = engine_cache_key(onnx_path, config.inference.enable_fp16)
        engine_file = engine_dir / f"nbf_net_{key}.engine"
        self.logger = trt.Logger(trt.Logger.WARNING)
        if not engine_file.is_file():
            LOG.info("building TensorRT engine %s (this can take minutes on a Jetson)", engine_file)
            engine_file.write_bytes(self._build(onnx_path, config.inference.enable_fp16))
        runtime = trt.Runtime(self.logger)
        self.engine = runtime.deserialize_cuda_engine(engine_file.read_bytes())
        if self.engine is None:
            raise BackendError(f"{engine_file}: corrupt or incompatible TensorRT engine; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.name = f"tensorrt/{'fp16' if config.inference.enable_fp16 else 'fp32'}"

    def _build(self, onnx_path: Path, fp16: bool) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"{onnx_path}: TensorRT cannot parse the ONNX graph: {errors}")
        build_config = builder.create_builder_config()
        if fp16:
            build_config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        s = self.crop_size
        profile.set_shape("crops", (1, 3, s, s), (1, 3, s, s), (8, 3, s, s))
        build_config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, build_config)
        if serialized is None:
            raise BackendError("TensorRT engine build failed (see the TensorRT log above)")
        return bytes(serialized)

    def run(self, crops: np.ndarray) -> NetArrays:
        x = torch.from_numpy(_check_crops(crops, self.crop_size)).cuda()
        self.context.set_input_shape("crops", tuple(x.shape))
        self.context.set_tensor_address("crops", x.data_ptr())
        outputs = {}
        for name in OUTPUT_NAMES:
            shape = tuple(self.context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise BackendError("TensorRT execution failed")
        stream.synchronize()
        return NetArrays(*(outputs[n].cpu().numpy() for n in OUTPUT_NAMES))


def load_backend(config: NbfConfig) -> tuple[NetworkBackend, "MemoryBank"]:
    """The backend named by ``config.inference.backend`` and the memory bank, from one read of
    ``inference.weights_path``.

    The torch backend runs the network of that file and the fitter needs its bank, so the file
    is read once for both; onnxruntime and TensorRT run their exported graph and take only the
    bank from it. Raises BackendError or WeightsError (one line).
    """
    from nbf_ros.nets.weights import load_memory_bank, load_network

    weights = resolve_path(config.inference.weights_path)
    kind = config.inference.backend
    if kind == "torch":
        net, bank = load_network(weights, config.net)
        return TorchBackend(config, net), bank
    if kind == "onnxruntime":
        backend: NetworkBackend = OnnxRuntimeBackend(config)
    elif kind == "tensorrt":
        backend = TensorRTBackend(config)
    else:
        raise BackendError(f"unknown backend {kind!r} (torch, onnxruntime, tensorrt)")
    return backend, load_memory_bank(weights)
