"""Parity of the converted ONNX files with the ORIGINAL runtimes, and CI reference outputs.

Runs in the converter venv (ai-edge-litert, tensorflow, onnxruntime):

- BlazePose: the package's .tflite run by ai-edge-litert (the TF Lite interpreter, default
  XNNPACK CPU delegate, 1 thread) vs onnxruntime (CPU) on the ONNX file, per image and as one batch;
- NanoDet: the package's tfjs graph model (model.json + .bin) run by TensorFlow itself
  (``tfjs_graph.TfjsGraphRunner``: the GraphDef of model.json with the weight shards as constants)
  vs onnxruntime on the ONNX file.

Writes a JSON report of the maximum differences (the build tool compares them with its bounds)
and the CI reference .npz (original-runtime outputs for the CI images, see ``tests/
test_pretrained_models.py``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tfjs_graph import TfjsGraphRunner  # noqa: E402

BLAZEPOSE_OUTPUTS = {"Identity": "landmarks", "Identity_1": "pose_flag", "Identity_2": "segmentation",
                     "Identity_3": "heatmaps", "Identity_4": "world_landmarks"}
NANODET_OUTPUTS = {"Identity": "cls_stride8", "Identity_1": "cls_stride16", "Identity_2": "cls_stride32",
                   "Identity_3": "reg_stride8", "Identity_4": "reg_stride16", "Identity_5": "reg_stride32"}
NANODET_STRIDES = (8, 16, 32)
NANODET_INPUT = 416
NANODET_REG_BINS = 11
# NanoDet's training normalisation (upstream config img_norm_cfg), applied to BGR.
NANODET_MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
NANODET_STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
CI_IMAGES = ("astronaut", "synthetic")
BOX_SCORE_MIN = 0.3  # anchors whose best class score (reference) reaches this have their boxes compared
CI_TOP_ANCHORS = 32
CI_STRIDE_MAP = 4  # segmentation and heatmaps stored at every 4th pixel


def blazepose_input(rgb: np.ndarray) -> np.ndarray:
    """N x 256 x 256 x 3 uint8 RGB -> float32 in [0, 1] (NHWC)."""
    return rgb.astype(np.float32) / 255.0


def nanodet_input(rgb: np.ndarray) -> np.ndarray:
    """N x 416 x 416 x 3 uint8 RGB -> float32 N x 3 x 416 x 416, BGR, (x - mean) / std."""
    bgr = rgb[..., ::-1].astype(np.float32)
    return np.ascontiguousarray(((bgr - NANODET_MEAN_BGR) / NANODET_STD_BGR).transpose(0, 3, 1, 2))


def nanodet_decode(out: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(A x 80 class scores, A x 4 boxes x0 y0 x1 y1 in 416-input pixels), A = 2704 + 676 + 169."""
    scores, boxes = [], []
    for s in NANODET_STRIDES:
        cls, reg = out[f"cls_stride{s}"][0], out[f"reg_stride{s}"][0]
        n = NANODET_INPUT // s
        logits = reg.reshape(-1, 4, NANODET_REG_BINS)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        dist = (p * np.arange(NANODET_REG_BINS)).sum(-1) * s  # left, top, right, bottom
        idx = np.arange(len(cls))
        cx, cy = (idx % n + 0.5) * s, (idx // n + 0.5) * s
        boxes.append(np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1))
        scores.append(cls)
    return np.concatenate(scores), np.concatenate(boxes)


def ort_session(path: Path):
    import onnxruntime as ort  # noqa: PLC0415

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_blazepose(tflite: Path, onnx_path: Path, images: dict[str, np.ndarray]):
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    interp = Interpreter(model_path=str(tflite), num_threads=1)
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    outs = {d["name"]: d["index"] for d in interp.get_output_details()}
    sess = ort_session(onnx_path)
    names = [o.name for o in sess.get_outputs()]
    ref, got = {}, {}
    for key, rgb in images.items():
        x = blazepose_input(rgb[None])
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        ref[key] = {BLAZEPOSE_OUTPUTS[n]: interp.get_tensor(i).copy() for n, i in outs.items()}
        got[key] = dict(zip(names, sess.run(None, {"image": x})))
    batch = dict(zip(names, sess.run(None, {"image": blazepose_input(np.stack(list(images.values())))})))
    diff = lambda f: max(float(np.abs(f(ref[k]) - f(got[k])).max()) for k in images)  # noqa: E731
    lm = lambda o: o["landmarks"].reshape(-1, 39, 5)  # noqa: E731
    report = {
        "landmark_xyz_px": diff(lambda o: lm(o)[..., :3]),
        "landmark_vis_presence_logit": diff(lambda o: lm(o)[..., 3:]),
        "world_landmark_m": diff(lambda o: o["world_landmarks"]),
        "pose_flag": diff(lambda o: o["pose_flag"]),
        "segmentation_logit": diff(lambda o: o["segmentation"]),
        "segmentation_prob": diff(lambda o: 0.5 + 0.5 * np.tanh(0.5 * o["segmentation"].astype(np.float64))),
        "heatmap_logit": diff(lambda o: o["heatmaps"]),
        "batch_vs_single": max(float(np.abs(batch[n][i] - got[k][n][0]).max())
                               for i, k in enumerate(images) for n in names),
        "images": list(images),
        "pose_flag_per_image": {k: float(ref[k]["pose_flag"].ravel()[0]) for k in images},
        "landmark_range": [float(min(lm(ref[k])[..., :2].min() for k in images)),
                           float(max(lm(ref[k])[..., :2].max() for k in images))],
        "vis_presence_range": [float(min(lm(ref[k])[..., 3:].min() for k in images)),
                               float(max(lm(ref[k])[..., 3:].max() for k in images))],
        "segmentation_range": [float(min(ref[k]["segmentation"].min() for k in images)),
                               float(max(ref[k]["segmentation"].max() for k in images))],
        "heatmap_range": [float(min(ref[k]["heatmaps"].min() for k in images)),
                          float(max(ref[k]["heatmaps"].max() for k in images))],
    }
    return ref, report


def run_nanodet(model_json: Path, onnx_path: Path, images: dict[str, np.ndarray]):
    runner = TfjsGraphRunner(model_json)
    sess = ort_session(onnx_path)
    names = [o.name for o in sess.get_outputs()]
    ref, got = {}, {}
    for key, rgb in images.items():
        x = nanodet_input(rgb[None])
        ref[key] = {NANODET_OUTPUTS[n]: v for n, v in runner(x).items()}
        got[key] = dict(zip(names, sess.run(None, {"image": x})))
    box_diff, score_diff, reg_diff, n_boxes = 0.0, 0.0, 0.0, 0
    persons = {}
    for k in images:
        rs, rb = nanodet_decode(ref[k])
        gs, gb = nanodet_decode(got[k])
        score_diff = max(score_diff, float(np.abs(rs - gs).max()))
        sel = rs.max(1) >= BOX_SCORE_MIN
        n_boxes += int(sel.sum())
        if sel.any():
            box_diff = max(box_diff, float(np.abs(rb[sel] - gb[sel]).max()))
        reg_diff = max(reg_diff, max(float(np.abs(ref[k][f"reg_stride{s}"] - got[k][f"reg_stride{s}"]).max())
                                     for s in NANODET_STRIDES))
        persons[k] = int((rs[:, 0] >= BOX_SCORE_MIN).sum())
    report = {"score": score_diff, "box_px": box_diff, "reg_logit": reg_diff, "boxes_compared": n_boxes,
              "images": list(images), "person_anchors_over_0.3": persons}
    return ref, report


def ci_arrays(model: str, ref: dict, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The compact original-runtime outputs that CI compares with (see the test's docstring)."""
    out = {}
    s = CI_STRIDE_MAP
    for k in CI_IMAGES:
        o, p = ref[k], f"{model}/{k}/"
        if model.startswith("blazepose"):
            out[p + "landmarks"] = o["landmarks"][0]
            out[p + "world_landmarks"] = o["world_landmarks"][0]
            out[p + "pose_flag"] = o["pose_flag"][0]
            out[p + "segmentation_s4"] = o["segmentation"][0, ::s, ::s, 0]
            out[p + "heatmaps_s4"] = o["heatmaps"][0, ::s, ::s, :]
        else:
            scores, boxes = nanodet_decode(o)
            top = np.sort(np.argsort(-scores.max(1), kind="stable")[:CI_TOP_ANCHORS])
            reg = np.concatenate([o[f"reg_stride{st}"][0] for st in NANODET_STRIDES])
            out[p + "person_score"] = scores[:, 0]
            out[p + "max_score"] = scores.max(1)
            out[p + "top_anchor"] = top.astype(np.int32)
            out[p + "top_scores"] = scores[top]
            out[p + "top_reg"] = reg[top]
            out[p + "top_boxes"] = boxes[top]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=Path, required=True, help="npz of make_inputs.py")
    ap.add_argument("--model", action="append", nargs=3, metavar=("NAME", "SOURCE", "ONNX"), required=True)
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--reference-out", type=Path, required=True)
    ap.add_argument("--merge-into", type=Path, default=None,
                    help="existing reference npz: keep the entries of models not rebuilt now")
    ap.add_argument("--not-in-ci", action="append", default=[], help="model left out of the CI npz")
    args = ap.parse_args(argv)
    inputs = np.load(args.inputs)
    arrays: dict[str, np.ndarray] = {}
    if args.merge_into is not None:
        rebuilt = tuple(f"{name}/" for name, _, _ in args.model)
        with np.load(args.merge_into) as old:
            arrays.update({k: old[k] for k in old.files if not k.startswith(rebuilt)})
    report = {}
    for name, src, onnx_path in args.model:
        fam = "nanodet" if name.startswith("nanodet") else "blazepose"
        images = {k.split("/", 1)[1]: inputs[k] for k in inputs.files if k.startswith(fam + "/")}
        run = run_nanodet if fam == "nanodet" else run_blazepose
        ref, report[name] = run(Path(src), Path(onnx_path), images)
        if name not in args.not_in_ci:
            arrays.update(ci_arrays(name, ref, images))
        for k in CI_IMAGES:
            arrays[f"input_sha256/{fam}/{k}"] = np.array(hashlib.sha256(images[k].tobytes()).hexdigest())
    for fam in ("blazepose", "nanodet"):
        if f"{fam}/synthetic" in inputs.files:
            arrays[f"input/{fam}/synthetic"] = inputs[f"{fam}/synthetic"]
    args.reference_out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.reference_out, **arrays)
    args.report.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
