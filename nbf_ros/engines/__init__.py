"""Run an ONNX graph: onnxruntime on the CPU (or its CUDA provider), or a TensorRT engine.

A unit of its own, below detection/, keypoints/ and inference/, because all three run ONNX graphs
(NanoDet, BlazePose, our network) and should open, thread and cache them one way. It knows
nothing about what a graph computes: arrays in by input name, arrays out by output name. Optional
runtimes are imported on use; every failure is an :class:`EngineError` of one line that names the
file and, for a missing or corrupt ONNX file, the command that rebuilds it.

Open a graph and run it::

    from nbf_ros.engines import EngineOptions, open_graph

    graph = open_graph("models/nanodet_g.onnx",           # relative = from the package root
                       rebuild="python3 tools/build_pretrained_models.py",
                       options=EngineOptions(threads=2))  # onnxruntime CPU, 2 intra-op threads
    outputs = graph.run({"image": x})                      # dict name -> numpy array
    cls8 = outputs["cls_stride8"]                          # or graph.run(feeds, ["cls_stride8"])

``EngineOptions(kind="tensorrt", fp16=True, cache_dir="cache/engines")`` builds a TensorRT engine
once and caches it under a key of ONNX sha256 + TensorRT version + GPU + precision
(:func:`engine_cache_key`); inputs with a dynamic batch need ``profiles={"image": (min, opt,
max)}`` shapes. Graphs expose ``input_names``, ``output_names`` and ``name`` (e.g.
``onnxruntime/CPUExecutionProvider``).
"""
from __future__ import annotations

from nbf_ros.engines.base import EngineError, EngineOptions, Graph, Profiles, open_graph
from nbf_ros.engines.onnx import OnnxRuntimeGraph
from nbf_ros.engines.tensorrt import TensorRTGraph, engine_cache_key

__all__ = ["EngineError", "EngineOptions", "Graph", "OnnxRuntimeGraph", "Profiles", "TensorRTGraph",
           "engine_cache_key", "open_graph"]
