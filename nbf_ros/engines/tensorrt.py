"""TensorRT engine built from an ONNX graph, cached on disk by content.

Written to NVIDIA's documented Python API (tensorrt >= 10: named I/O tensors,
``execute_async_v3``) with torch CUDA tensors as device buffers. ``tensorrt`` and ``torch`` are
imported on use, so importing this module costs nothing on a machine without them.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from nbf_ros.engines.base import (EngineError, EngineOptions, Profiles, check_feeds, require_onnx_file,
                                  resolve)

LOG = logging.getLogger(__name__)


def _import_tensorrt():
    """(tensorrt, torch) with a CUDA device, or EngineError of one line saying what is missing."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise EngineError("TensorRT is not installed (pip install tensorrt, or JetPack on Jetson); "
                          "it also needs an NVIDIA GPU") from exc
    import torch

    if not torch.cuda.is_available():
        raise EngineError("TensorRT needs a CUDA device visible to torch; none found")
    return trt, torch


def engine_cache_key(onnx_path: Path, fp16: bool) -> str:
    """Key for a cached TensorRT engine: ONNX content hash + TensorRT version + GPU + precision.

    Keying by path alone silently reuses a stale engine after a TensorRT or GPU change (a known
    weakness of other nodes); this key changes whenever any of those does.
    """
    import tensorrt as trt
    import torch

    digest = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()[:16]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "unknown-gpu"
    blob = json.dumps([digest, trt.__version__, gpu, bool(fp16)])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class TensorRTGraph:
    """Builds (once, cached as ``<cache_dir>/<onnx stem>_<key>.engine``) and runs a TensorRT engine."""

    def __init__(self, path: str | Path, rebuild: str, options: EngineOptions = EngineOptions(),
                 profiles: Profiles | None = None) -> None:
        self.trt, self.torch = _import_tensorrt()
        self.path = require_onnx_file(path, rebuild)
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        engine_file = self._cached_engine(rebuild, options, profiles or {})
        runtime = self.trt.Runtime(self.logger)
        self.engine = runtime.deserialize_cuda_engine(engine_file.read_bytes())
        if self.engine is None:
            raise EngineError(f"{engine_file}: corrupt or incompatible TensorRT engine; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = [self.engine.get_tensor_mode(n) == self.trt.TensorIOMode.INPUT for n in names]
        self.input_names = tuple(n for n, i in zip(names, is_input) if i)
        self.output_names = tuple(n for n, i in zip(names, is_input) if not i)
        self.name = f"tensorrt/{'fp16' if options.fp16 else 'fp32'}"

    def _cached_engine(self, rebuild: str, options: EngineOptions, profiles: Profiles) -> Path:
        """The engine file for this ONNX/TensorRT/GPU/precision, built now if absent."""
        cache = resolve(options.cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        engine_file = cache / f"{self.path.stem}_{engine_cache_key(self.path, options.fp16)}.engine"
        if not engine_file.is_file():
            LOG.info("building TensorRT engine %s (this can take minutes on a Jetson)", engine_file)
            data = self._build(rebuild, options.fp16, profiles)
            tmp = engine_file.with_suffix(".partial")
            tmp.write_bytes(data)
            tmp.replace(engine_file)  # never leave a half-written engine under the final name
        return engine_file

    def _build(self, rebuild: str, fp16: bool, profiles: Profiles) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(self.path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)).replace("\n", " ") for i in range(parser.num_errors))
            raise EngineError(f"{self.path}: TensorRT cannot parse the ONNX graph ({errors}); "
                              f"rebuild it with `{rebuild}`")
        build_config = builder.create_builder_config()
        if fp16:
            build_config.set_flag(trt.BuilderFlag.FP16)
        if profiles:
            profile = builder.create_optimization_profile()
            for name, (lo, opt, hi) in profiles.items():
                profile.set_shape(name, lo, opt, hi)
            build_config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, build_config)
        if serialized is None:
            raise EngineError(f"{self.path}: TensorRT engine build failed (see the TensorRT log above)")
        return bytes(serialized)

    def _torch_dtype(self, name: str):
        trt, torch = self.trt, self.torch
        table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
                 trt.DataType.INT32: torch.int32, trt.DataType.INT64: torch.int64,
                 trt.DataType.BOOL: torch.bool, trt.DataType.INT8: torch.int8}
        return table[self.engine.get_tensor_dtype(name)]

    def run(self, feeds: Mapping[str, np.ndarray],
            outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Arrays in by input name -> arrays out by output name (all outputs when None)."""
        torch = self.torch
        check_feeds(feeds, self.input_names, self.path)
        inputs = {}
        for name, value in feeds.items():
            inputs[name] = torch.from_numpy(np.ascontiguousarray(value)).to(
                device="cuda", dtype=self._torch_dtype(name))
            self.context.set_input_shape(name, tuple(inputs[name].shape))
            self.context.set_tensor_address(name, inputs[name].data_ptr())
        results = {}
        for name in self.output_names:  # TensorRT needs an address for every output
            shape = tuple(self.context.get_tensor_shape(name))
            results[name] = torch.empty(shape, dtype=self._torch_dtype(name), device="cuda")
            self.context.set_tensor_address(name, results[name].data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise EngineError(f"{self.path.name}: TensorRT execution failed")
        stream.synchronize()
        names = list(outputs) if outputs is not None else list(self.output_names)
        return {n: results[n].cpu().numpy() for n in names}
