"""Network backends: torch (CPU/CUDA), onnxruntime (CPU/CUDA) and TensorRT (NVIDIA GPUs, Jetson).

All backends take the same input (B x 3 x S x S float32 crops in [0, 1]) and return the same
:class:`NetArrays` (numpy), so the pipeline never knows which one ran. The generic part (open an
ONNX graph in onnxruntime or TensorRT, the engine cache) is ``nbf_ros.engines``; optional runtimes
are imported on use; a missing one raises :class:`BackendError` naming the package to install.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from nbf_ros.config import NbfConfig, resolve_path
from nbf_ros.engines import EngineError, EngineOptions, Graph, Profiles, engine_cache_key, open_graph

if TYPE_CHECKING:
    from nbf_ros.nets.bank import MemoryBank
    from nbf_ros.nets.model import NBFNet

LOG = logging.getLogger(__name__)

OUTPUT_NAMES = ("features", "pose6d", "betas", "cam", "heatmaps")


__all__ = ["BackendError", "NetArrays", "NetworkBackend", "OnnxRuntimeBackend", "TensorRTBackend",
           "TorchBackend", "TrunkFeatureBackend", "engine_cache_key", "load_backend"]


class BackendError(EngineError):
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


def _open(config: NbfConfig, options: EngineOptions, profiles: Profiles | None = None) -> Graph:
    """The exported network graph opened by nbf_ros.engines; its errors become BackendError."""
    path = config.inference.onnx_path or "models/nbf_net.onnx"
    try:
        return open_graph(path, f"nbf-ros export --onnx {path}", options, profiles)
    except EngineError as exc:
        raise BackendError(str(exc)) from exc


def _run(graph: Graph, crops: np.ndarray, size: int) -> NetArrays:
    """One run of the network graph on B x 3 x S x S crops; engine errors become BackendError."""
    try:
        outputs = graph.run({"crops": _check_crops(crops, size)}, OUTPUT_NAMES)
    except EngineError as exc:
        raise BackendError(str(exc)) from exc
    return NetArrays(*(outputs[n] for n in OUTPUT_NAMES))


class OnnxRuntimeBackend:
    """Runs the exported ONNX graph with onnxruntime (CPU, or CUDA where its GPU build is installed)."""

    def __init__(self, config: NbfConfig) -> None:
        options = EngineOptions(kind="onnxruntime", cuda=config.inference.device.startswith("cuda"))
        self.graph = _open(config, options)
        self.crop_size = config.net.crop_size
        self.name = self.graph.name

    def run(self, crops: np.ndarray) -> NetArrays:
        return _run(self.graph, crops, self.crop_size)


class TensorRTBackend:
    """Builds (once, cached on disk, see ``engine_cache_key``) and runs a TensorRT engine from the
    ONNX graph, batch 1..8. No machine here has a GPU: tests skip it cleanly; the same ONNX graph
    is checked on CPU with onnxruntime.
    """

    def __init__(self, config: NbfConfig) -> None:
        self.crop_size = s = config.net.crop_size
        options = EngineOptions(kind="tensorrt", fp16=config.inference.enable_fp16,
                                cache_dir=config.inference.engine_path or "cache/engines")
        self.graph = _open(config, options, {"crops": ((1, 3, s, s), (1, 3, s, s), (8, 3, s, s))})
        self.name = self.graph.name

    def run(self, crops: np.ndarray) -> NetArrays:
        return _run(self.graph, crops, self.crop_size)


class TrunkFeatureBackend:
    """The fit's features from BlazePose's frozen trunk + the trained feature head
    (``inference.features: blazepose``, docs/features.md); everything else from ``inner``.

    The U-Net (``inner``) still runs: its regression head is the start body of people BlazePose
    misses (the pipeline's fallback) and its heatmaps stay in NetArrays, so only ``features``
    changes. The trunk sees the same 128 px crop, resized to BlazePose's 256 px input, so the
    features lie on the fit's grid (stride ``net.feature_stride`` of the crop).
    """

    def __init__(self, config: NbfConfig, inner: NetworkBackend, head: torch.nn.Module,
                 taps: tuple[str, ...]) -> None:
        from nbf_ros.nets.trunk import BlazePoseTrunk, TrunkError

        self.inner = inner
        self.head = head.eval()
        self.taps = taps
        self.crop_size = config.net.crop_size
        try:
            self.trunk = BlazePoseTrunk(config.feature_head.trunk_path, taps,
                                        config.net.crop_size // config.net.feature_stride,
                                        config.feature_head.trunk_threads)
        except TrunkError as exc:
            raise BackendError(str(exc)) from exc
        self.name = f"{inner.name}+{self.trunk.name}"

    def features(self, crops: np.ndarray) -> np.ndarray:
        """B x 3 x S x S crops -> B x D x h x w unit features (numpy float32)."""
        taps = self.trunk.run(_check_crops(crops, self.crop_size)).taps
        with torch.inference_mode():
            return self.head([torch.from_numpy(taps[t]) for t in self.taps]).float().numpy()

    def run(self, crops: np.ndarray) -> NetArrays:
        arrays = self.inner.run(crops)
        arrays.features = self.features(crops)
        return arrays


def _with_trunk_features(config: NbfConfig, inner: NetworkBackend) -> tuple[NetworkBackend, "MemoryBank"]:
    """Wrap ``inner`` with the trunk feature head of ``feature_head.weights_path``; its bank."""
    from nbf_ros.nets.feature_head import load_head

    head, bank, taps = load_head(resolve_path(config.feature_head.weights_path))
    if bank.shape[2] != config.nbv.feature_dim:
        raise BackendError(f"{config.feature_head.weights_path}: {bank.shape[2]}-d features, "
                           f"nbv.feature_dim is {config.nbv.feature_dim}")
    return TrunkFeatureBackend(config, inner, head, taps), bank


def load_backend(config: NbfConfig) -> tuple[NetworkBackend, "MemoryBank"]:
    """The backend of ``config.inference`` and the memory bank the fit needs.

    ``inference.features: blazepose`` wraps it with the trunk feature head and returns the
    head's bank instead (``TrunkFeatureBackend``); otherwise see ``load_unet_backend``.
    """
    backend, bank = load_unet_backend(config)
    if config.inference.features == "blazepose":
        return _with_trunk_features(config, backend)
    return backend, bank


def load_unet_backend(config: NbfConfig) -> tuple[NetworkBackend, "MemoryBank"]:
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
