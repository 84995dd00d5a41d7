"""What every graph runner offers, its options, the shared checks, and ``open_graph``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Protocol, Sequence

import numpy as np

from nbf_ros.config import resolve_path as resolve
from nbf_ros.errors import NbfError

Profiles = Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]
"""TensorRT optimisation profile: input name -> (min, opt, max) shapes of a dynamic input."""


class EngineError(NbfError, RuntimeError):
    """A graph cannot be opened or run (missing runtime or GPU, missing/corrupt model or engine)."""


@dataclass(frozen=True)
class EngineOptions:
    """How to run a graph (not what it is: that is the ONNX file).

    Attributes:
        kind: 'onnxruntime' (CPU, or CUDA with ``cuda``) or 'tensorrt' (NVIDIA GPU).
        threads: onnxruntime intra-op threads; 0 = onnxruntime's default (one per core). On a CPU
            shared with other busy processes a small fixed number is faster and predictable.
        spin: let onnxruntime's idle worker threads spin-wait for work. Off by default: spinning
            shaves microseconds on an idle machine but steals whole cores from the other stages
            (the fitter, ROS) on a small shared CPU.
        cuda: onnxruntime: put the CUDA execution provider first (needs onnxruntime-gpu).
        cache_dir: tensorrt: folder of cached engines (relative = from the package root).
        fp16: tensorrt: allow half-precision kernels.
    """

    kind: Literal["onnxruntime", "tensorrt"] = "onnxruntime"
    threads: int = 0
    spin: bool = False
    cuda: bool = False
    cache_dir: str = "cache/engines"
    fp16: bool = True


class Graph(Protocol):
    """An opened ONNX graph: numpy arrays in by input name, out by output name."""

    name: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, feeds: Mapping[str, np.ndarray],
            outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run once; ``outputs`` None = all outputs, in ``output_names`` order."""


def require_onnx_file(path: str | Path, rebuild: str) -> Path:
    """The resolved path of an ONNX file that exists, or EngineError naming the rebuild command."""
    resolved = resolve(path)
    if not resolved.is_file():
        raise EngineError(f"{resolved}: ONNX model not found; rebuild it with `{rebuild}`")
    return resolved


def first_line(exc: BaseException) -> str:
    """Runtimes raise multi-line messages; errors here are one line."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_feeds(feeds: Mapping[str, np.ndarray], input_names: Sequence[str], path: Path) -> None:
    """EngineError unless ``feeds`` names exactly the graph's inputs."""
    if set(feeds) != set(input_names):
        raise EngineError(f"{path.name}: inputs are {sorted(input_names)}, got {sorted(feeds)}")


def open_graph(path: str | Path, rebuild: str, options: EngineOptions = EngineOptions(),
               profiles: Profiles | None = None) -> Graph:
    """Open the ONNX graph at ``path`` with the runtime ``options.kind`` names.

    Args:
        path: the .onnx file (relative = from the package root).
        rebuild: the command that recreates the file, quoted in the error when it is missing or
            corrupt (e.g. 'python3 tools/build_pretrained_models.py').
        options: runtime, threads, cache.
        profiles: TensorRT shapes of dynamic inputs (ignored by onnxruntime).
    """
    if options.kind == "onnxruntime":
        from nbf_ros.engines.onnx import OnnxRuntimeGraph

        return OnnxRuntimeGraph(path, rebuild, options)
    if options.kind == "tensorrt":
        from nbf_ros.engines.tensorrt import TensorRTGraph

        return TensorRTGraph(path, rebuild, options, profiles)
    raise EngineError(f"unknown engine kind {options.kind!r} (onnxruntime, tensorrt)")
