"""Run a tfjs graph model (model.json + weight shards) with TensorFlow itself (converter venv only).

The tfjs ``modelTopology`` is a TensorFlow GraphDef written as proto3 JSON; its Const nodes carry
no values: those come from the weight shards, described by ``weightsManifest`` (float16-quantised
floats are widened to float32, the way tfjs' loader does; int64/bool stored as int32 are cast back
to the node's dtype). The filled GraphDef is imported and run in a TF1-style session, so the
reference comes from TensorFlow's kernels, independently of tf2onnx's conversion.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_NP_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "float16": np.float16,
              "uint8": np.uint8, "int8": np.int8}


def read_weights(model_json: Path) -> dict[str, np.ndarray]:
    """name -> array for every weight of the manifest (float16 shards widened to float32)."""
    spec = json.loads(model_json.read_text())
    out: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        blob = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            count = int(np.prod(w["shape"], dtype=np.int64))
            quant = w.get("quantization")
            stored = np.dtype(_NP_DTYPES[quant["dtype"]] if quant else _NP_DTYPES[w["dtype"]])
            if quant and quant["dtype"] not in ("float16",):
                raise NotImplementedError(f"quantisation {quant} of {w['name']}")
            arr = np.frombuffer(blob, stored, count, offset).reshape(w["shape"])
            offset += count * stored.itemsize
            out[w["name"]] = arr.astype(_NP_DTYPES[w["dtype"]])
        if offset != len(blob):
            raise ValueError(f"{model_json}: manifest covers {offset} of {len(blob)} bytes")
    return out


def load_graph(model_json: Path):
    """(tf.Graph, signature dict) of the tfjs graph model with its weights as Const values."""
    import tensorflow as tf  # noqa: PLC0415
    from google.protobuf import json_format  # noqa: PLC0415

    spec = json.loads(model_json.read_text())
    weights = read_weights(model_json)
    topo = dict(spec["modelTopology"])
    topo.pop("library", None)
    graph_def = json_format.ParseDict(topo, tf.compat.v1.GraphDef())
    filled = set()
    for node in graph_def.node:
        if node.op == "Const" and node.name in weights:
            dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)
            value = weights[node.name].astype(dtype.as_numpy_dtype)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=dtype,
                                                                    shape=value.shape))
            filled.add(node.name)
    missing = set(weights) - filled
    if missing:
        raise ValueError(f"weights without a Const node: {sorted(missing)[:5]}")
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    return graph, spec["signature"]


class TfjsGraphRunner:
    """Runs the graph: ``runner(x)`` -> {signature output name without ':0': array}."""

    def __init__(self, model_json: Path):
        import tensorflow as tf  # noqa: PLC0415

        self.graph, sig = load_graph(model_json)
        self.input_name = next(iter(sig["inputs"]))
        self.output_names = sorted(sig["outputs"])
        cfg = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1,
                                       inter_op_parallelism_threads=1)
        self.session = tf.compat.v1.Session(graph=self.graph, config=cfg)

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(self.output_names, {self.input_name: x})
        return {n.split(":")[0]: o for n, o in zip(self.output_names, outs)}
