"""onnxruntime session behind the :class:`~nbf_ros.engines.base.Graph` interface."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from nbf_ros.engines.base import (EngineError, EngineOptions, check_feeds, first_line,
                                  require_onnx_file)


def session_options(options: EngineOptions):
    """onnxruntime SessionOptions: ``threads`` intra-op threads, one inter-op thread and
    sequential execution (our graphs are chains; parallel branches only add scheduling)."""
    import onnxruntime as ort

    if options.threads < 0:
        raise EngineError(f"engine threads must be >= 0 (0 = onnxruntime default), got {options.threads}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spin else "0")
    so.log_severity_level = 3  # errors only: the warnings are about graph rewrites, not our use
    return so


class OnnxRuntimeGraph:
    """An ONNX file opened in onnxruntime (CPU; CUDA provider first with ``options.cuda``)."""

    def __init__(self, path: str | Path, rebuild: str, options: EngineOptions = EngineOptions()) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineError("onnxruntime is not installed (pip install onnxruntime, "
                              "or onnxruntime-gpu)") from exc
        self.path = require_onnx_file(path, rebuild)
        providers = ["CPUExecutionProvider"]
        if options.cuda:
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=session_options(options),
                                                providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"{self.path}: onnxruntime cannot load it ({first_line(exc)}); "
                              f"rebuild it with `{rebuild}`") from exc
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.name = f"onnxruntime/{self.session.get_providers()[0]}"

    def run(self, feeds: Mapping[str, np.ndarray],
            outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Arrays in by input name -> arrays out by output name (all outputs when None)."""
        check_feeds(feeds, self.input_names, self.path)
        names = list(outputs) if outputs is not None else list(self.output_names)
        try:
            values = self.session.run(names, dict(feeds))
        except Exception as exc:
            raise EngineError(f"{self.path.name}: onnxruntime run failed ({first_line(exc)})") from exc
        return dict(zip(names, values))
