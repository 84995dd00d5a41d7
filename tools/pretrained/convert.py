"""Convert one shipped model to ONNX opset 17 and make the file stable (converter venv only).

Run by ``tools/build_pretrained_models.py`` with the throwaway converter venv's Python::

    python tools/pretrained/convert.py --model blazepose_lite --src X.tflite --out Y.onnx

Two stages, each a separate, documented step:

1. ``python -m tf2onnx.convert --tflite X.tflite --output raw.onnx --opset 17`` (or
   ``--tfjs model.json``), run in this process with ``np.product`` aliased to ``np.prod``
   (tf2onnx 1.17's tfjs reader still calls it; numpy 2 removed it).
2. ``canonicalize``: stable input/output names (MODEL_IO below); the batch dimension made dynamic
   where the graph allows it (BlazePose); every converter-generated tensor name (tf2onnx numbers
   them from a process-global counter, so they differ from run to run) renamed by its position
   in the graph; initializers named by first use and sorted; value_info and doc strings dropped.
   The TensorFlow names of the original layers (``model_1/model/add_11/add``, ...) are kept.
"""
from __future__ import annotations

import argparse
import re
import runpy
import sys
from pathlib import Path

import numpy as np

# model -> (format, input rename, output rename (in output order), dynamic batch)
MODEL_IO = {
    "blazepose": ("tflite", {"input_1": "image"},
                  {"Identity": "landmarks", "Identity_1": "pose_flag", "Identity_2": "segmentation",
                   "Identity_3": "heatmaps", "Identity_4": "world_landmarks"}, True),
    "nanodet": ("tfjs", {"input_1:0": "image"},
                {"Identity:0": "cls_stride8", "Identity_1:0": "cls_stride16",
                 "Identity_2:0": "cls_stride32", "Identity_3:0": "reg_stride8",
                 "Identity_4:0": "reg_stride16", "Identity_5:0": "reg_stride32"}, False),
}
NANODET_OUTPUT_SHAPES = {"cls_stride8": (1, 2704, 80), "cls_stride16": (1, 676, 80),
                         "cls_stride32": (1, 169, 80), "reg_stride8": (1, 2704, 44),
                         "reg_stride16": (1, 676, 44), "reg_stride32": (1, 169, 44)}
# tf2onnx's generated names: "<base>__<counter>" (optionally ":<k>") and its folded constants.
GENERATED = re.compile(r"__\d+(:\d+)?$|__\d+_|^(const_fold_opt|new_shape|roi|scales|pad_const)__")


def family(model: str) -> str:
    return "nanodet" if model.startswith("nanodet") else "blazepose"


def run_tf2onnx(fmt: str, src: Path, raw: Path) -> None:
    """Stage 1: tf2onnx's own command line, in this process."""
    if not hasattr(np, "product"):
        np.product = np.prod  # tf2onnx 1.17 tfjs reader; numpy 2 removed the alias
    argv = sys.argv
    sys.argv = ["tf2onnx.convert", f"--{fmt}", str(src), "--output", str(raw), "--opset", "17"]
    try:
        runpy.run_module("tf2onnx.convert", run_name="__main__")
    except SystemExit as exc:  # its main() may exit 0
        if exc.code not in (0, None):
            raise
    finally:
        sys.argv = argv


def fold_reshape_shapes(model):
    """Replace computed Reshape targets by constants and drop the nodes that computed them.

    tf2onnx turns the tfjs graph's SparseToDense shape arithmetic into Cast/Expand/ScatterND/Add
    chains and merges identical chains, keeping one of their names at random; with a fixed batch
    the targets are constants, so fold them (values read by running the graph once on zeros).
    """
    import onnx  # noqa: PLC0415
    import onnxruntime as ort  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    g = model.graph
    inits = {t.name for t in g.initializer}
    targets = sorted({n.input[1] for n in g.node if n.op_type == "Reshape" and n.input[1] not in inits})
    if not targets:
        return model
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend([onnx.helper.make_tensor_value_info(t, onnx.TensorProto.INT64, None)
                               for t in targets])
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
             for i in sess.get_inputs()}
    values = dict(zip(targets, sess.run(targets, feeds)))
    for i, t in enumerate(targets):
        g.initializer.append(numpy_helper.from_array(values[t].astype(np.int64), f"folded_shape_{i}"))
    for n in g.node:
        if n.op_type == "Reshape" and n.input[1] in values:
            n.input[1] = f"folded_shape_{targets.index(n.input[1])}"
    # drop every node and initializer no graph output depends on
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(g.node):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
    keep.reverse()
    del g.node[:]
    g.node.extend(keep)
    live = [t for t in g.initializer if t.name in needed]
    del g.initializer[:]
    g.initializer.extend(live)
    return model


def canonicalize(model, io_in: dict, io_out: dict, dynamic_batch: bool):
    """Stage 2 (in place on an onnx.ModelProto; returns it)."""
    import onnx  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    if not dynamic_batch:
        fold_reshape_shapes(model)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    rename = dict(io_in)
    rename.update(io_out)
    counter = {"const": 0, "t": 0}

    def new_name(old: str, kind: str) -> str:
        if old in rename:
            return rename[old]
        if kind == "const" or GENERATED.search(old):
            counter[kind] += 1
            rename[old] = f"{'const' if kind == 'const' else 'tmp'}_{counter[kind]:04d}"
        else:
            rename[old] = old
        return rename[old]

    for node in g.node:
        for i, name in enumerate(node.input):
            if name:
                node.input[i] = new_name(name, "const" if name in inits else "t")
        for i, name in enumerate(node.output):
            node.output[i] = new_name(name, "t")
        node.name = node.output[0]
        node.doc_string = ""
    for t in g.initializer:
        t.name = new_name(t.name, "const")
    for v in list(g.input) + list(g.output):
        v.name = rename.get(v.name, v.name)
    ordered = sorted(g.initializer, key=lambda t: t.name)
    del g.initializer[:]
    g.initializer.extend(ordered)
    del g.value_info[:]
    g.doc_string = ""
    g.name = "graph"
    # outputs in a fixed order
    outs = {v.name: v for v in g.output}
    order = [outs[n] for n in io_out.values()]
    ordered_out = [onnx.ValueInfoProto() for _ in order]
    for dst, src in zip(ordered_out, order):
        dst.CopyFrom(src)
    del g.output[:]
    g.output.extend(ordered_out)
    if dynamic_batch:
        for v in list(g.input) + list(g.output):
            v.type.tensor_type.shape.dim[0].ClearField("dim_value")
            v.type.tensor_type.shape.dim[0].dim_param = "batch"
        inits = {t.name: t for t in g.initializer}
        for node in g.node:
            if node.op_type == "Reshape" and node.input[1] in inits:
                t = inits[node.input[1]]
                shape = numpy_helper.to_array(t).copy()
                if shape.size and shape[0] == 1:
                    shape[0] = -1
                    t.CopyFrom(numpy_helper.from_array(shape, t.name))
    else:
        for v in g.output:
            dims = NANODET_OUTPUT_SHAPES.get(v.name)
            if dims:
                for d, n in zip(v.type.tensor_type.shape.dim, dims):
                    d.Clear()
                    d.dim_value = n
    model.doc_string = ""
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="blazepose_lite|blazepose_full|blazepose_heavy|nanodet_g")
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    import onnx  # noqa: PLC0415

    fmt, io_in, io_out, dyn = MODEL_IO[family(args.model)]
    raw = args.out.with_suffix(".raw.onnx")
    run_tf2onnx(fmt, args.src, raw)
    model = canonicalize(onnx.load(str(raw)), io_in, io_out, dyn)
    args.out.write_bytes(model.SerializeToString())
    raw.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
