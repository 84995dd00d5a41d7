"""The shipped pretrained ONNX models (models/pretrained.md) against their original runtimes.

``tests/data/pretrained_reference.npz`` holds what the ORIGINAL runtimes computed at build time
(the TF Lite interpreter on MediaPipe's .tflite; TensorFlow on the tfjs NanoDet graph) for two
images: ``skimage.data.astronaut()`` cut by an exact slicing recipe (so the photo is not stored;
its sha256 is checked) and a person rendered by our generator (stored as uint8). Here
onnxruntime (CPU) runs the shipped files on the same inputs and must agree within the build's
bounds (``BOUNDS`` of tools/build_pretrained_models.py). No TensorFlow, no network.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "models" / "pretrained.md"
REFERENCE = ROOT / "tests" / "data" / "pretrained_reference.npz"
REBUILD = "python3 tools/build_pretrained_models.py (see models/pretrained.md)"
SHIPPED = ("blazepose_lite", "blazepose_full", "nanodet_g")
CI_IMAGES = ("astronaut", "synthetic")


BUILD = load_script(ROOT / "tools" / "build_pretrained_models.py", "build_pretrained_models")


def _documented_sha256() -> dict[str, str]:
    if not DOC.exists():
        pytest.fail(f"{DOC} missing: rebuild with {REBUILD}")
    text = DOC.read_text()
    return dict(re.findall(r"file: `models/(\w+)\.onnx`, [\d,]+ bytes, sha256 `([0-9a-f]{64})`", text))


def _model_path(name: str) -> Path:
    path = ROOT / "models" / f"{name}.onnx"
    if not path.exists():
        pytest.fail(f"{path} missing: rebuild with {REBUILD}")
    return path


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.exists():
        pytest.fail(f"{REFERENCE} missing: rebuild with {REBUILD}")
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _inputs(family: str, reference: dict) -> dict[str, np.ndarray]:
    """The CI images at the model's input size (uint8 RGB), checked against the build's hashes."""
    from skimage import data

    rows, cols = _astronaut_recipe(family)
    images = {"astronaut": np.ascontiguousarray(data.astronaut()[rows, cols]),
              "synthetic": reference[f"input/{family}/synthetic"]}
    for name, img in images.items():
        want = str(reference[f"input_sha256/{family}/{name}"])
        assert hashlib.sha256(img.tobytes()).hexdigest() == want, f"{family}/{name} input changed"
    return images


def _astronaut_recipe(family: str):
    recipes = load_script(ROOT / "tools" / "pretrained" / "make_inputs.py", "make_inputs").ASTRONAUT_RECIPES
    return recipes[family]


# The pre/post-processing the build used (tools/pretrained/reference.py), restated here so that
# the test needs neither TensorFlow nor the build's modules.
NANODET_MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
NANODET_STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)


def _nanodet_decode(out: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A x 80 scores, A x 44 regression logits, A x 4 boxes in 416-input pixels)."""
    scores, regs, boxes = [], [], []
    for s in (8, 16, 32):
        cls, reg = out[f"cls_stride{s}"][0], out[f"reg_stride{s}"][0]
        n = 416 // s
        logits = reg.reshape(-1, 4, 11).astype(np.float64)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        dist = (p * np.arange(11)).sum(-1) * s
        idx = np.arange(len(cls))
        cx, cy = (idx % n + 0.5) * s, (idx // n + 0.5) * s
        boxes.append(np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1))
        scores.append(cls)
        regs.append(reg)
    return np.concatenate(scores), np.concatenate(regs), np.concatenate(boxes)


def test_documented_sha256_matches_files():
    documented = _documented_sha256()
    assert set(SHIPPED) <= set(documented), f"models/pretrained.md lacks {set(SHIPPED) - set(documented)}"
    for name in SHIPPED:
        digest = hashlib.sha256(_model_path(name).read_bytes()).hexdigest()
        assert digest == documented[name], f"models/{name}.onnx differs from models/pretrained.md: {REBUILD}"


@pytest.mark.parametrize("name", ["blazepose_lite", "blazepose_full"])
def test_blazepose_matches_tflite(name, reference):
    bounds = BUILD.BOUNDS["blazepose"]
    sess = _session(_model_path(name))
    assert [i.name for i in sess.get_inputs()] == ["image"]
    assert [o.name for o in sess.get_outputs()] == ["landmarks", "pose_flag", "segmentation", "heatmaps",
                                                   "world_landmarks"]
    images = _inputs("blazepose", reference)
    batch = np.stack([images[k] for k in CI_IMAGES]).astype(np.float32) / 255.0
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": batch})))
    for i, img in enumerate(CI_IMAGES):
        ref = {k.rsplit("/", 1)[1]: v for k, v in reference.items() if k.startswith(f"{name}/{img}/")}
        lm, ref_lm = outs["landmarks"][i].reshape(39, 5), ref["landmarks"].reshape(39, 5)
        assert np.abs(lm[:, :3] - ref_lm[:, :3]).max() <= bounds["landmark_xyz_px"]
        assert np.abs(lm[:, 3:] - ref_lm[:, 3:]).max() <= bounds["landmark_vis_presence_logit"]
        assert np.abs(outs["world_landmarks"][i] - ref["world_landmarks"]).max() <= bounds["world_landmark_m"]
        assert np.abs(outs["pose_flag"][i] - ref["pose_flag"]).max() <= bounds["pose_flag"]
        sig = lambda x: 0.5 + 0.5 * np.tanh(0.5 * x.astype(np.float64))  # noqa: E731
        seg = outs["segmentation"][i, ::4, ::4, 0]
        assert np.abs(sig(seg) - sig(ref["segmentation_s4"])).max() <= bounds["segmentation_prob"]
        assert np.abs(outs["heatmaps"][i, ::4, ::4] - ref["heatmaps_s4"]).max() <= bounds["heatmap_logit"]
        # a person in both crops: the model is working, not just matching
        assert ref["pose_flag"].ravel()[0] > 0.9
    # one image at a time gives the batch's result
    single = sess.run(["landmarks"], {"image": batch[1:]})[0]
    assert np.abs(single[0] - outs["landmarks"][1]).max() <= bounds["batch_vs_single"]


def test_nanodet_matches_tfjs_graph(reference):
    name, bounds = "nanodet_g", BUILD.BOUNDS["nanodet"]
    sess = _session(_model_path(name))
    names = [o.name for o in sess.get_outputs()]
    assert names == ["cls_stride8", "cls_stride16", "cls_stride32", "reg_stride8", "reg_stride16", "reg_stride32"]
    for img, rgb in _inputs("nanodet", reference).items():
        bgr = rgb[..., ::-1].astype(np.float32)
        x = np.ascontiguousarray(((bgr - NANODET_MEAN_BGR) / NANODET_STD_BGR).transpose(2, 0, 1)[None])
        scores, regs, boxes = _nanodet_decode(dict(zip(names, sess.run(None, {"image": x}))))
        ref = {k.rsplit("/", 1)[1]: v for k, v in reference.items() if k.startswith(f"{name}/{img}/")}
        top = ref["top_anchor"]
        assert np.abs(scores[:, 0] - ref["person_score"]).max() <= bounds["score"]
        assert np.abs(scores.max(1) - ref["max_score"]).max() <= bounds["score"]
        assert np.abs(scores[top] - ref["top_scores"]).max() <= bounds["score"]
        assert np.abs(regs[top] - ref["top_reg"]).max() <= bounds["reg_logit"]
        assert np.abs(boxes[top] - ref["top_boxes"]).max() <= bounds["box_px"]
        assert ref["person_score"].max() > 0.5, f"no person found in {img}"
