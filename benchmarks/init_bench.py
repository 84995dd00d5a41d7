"""Initial bodies compared on the occlusion benchmark's clean test people (issue 12, part 1).

    .venv/bin/python benchmarks/init_bench.py --people 100
    .venv/bin/python benchmarks/init_bench.py --people 100 --seed-base 900000 \
        --variant "w3d.3" weight_3d=0.3 --variant "mask" mask_weight=0.5     # validation seeds

People: ``benchmarks/occlusion_bench.py``'s clean condition (test split from seed 950000, the
same crops, cameras and truth; ``--seed-base 900000`` gives the validation range the settings
were chosen on). BlazePose full runs on each crop put on a gray canvas with half a crop of
context per side (as occlusion_bench gives it), on the projected full-body truth box.

Rows (24 SMPL joints, pelvis-aligned, millimetres):
- ``mediapipe-world``: BlazePose's world landmarks mapped to our joints as a MediaPipe user gets
  them (``keypoints.blazepose.map_points``: root-relative, rotated onto the crop-centre ray);
- ``body-from-landmarks[ VARIANT]``: ``fitting.from_landmarks.LandmarkBodyFitter`` (defaults, or
  the named overrides of ``LandmarkFitConfig``); people it flags (too few confident landmarks)
  and people BlazePose does not find (pose flag < 0.5) take the regression start;
  ``... (BlazePose's reading)`` is its first hypothesis alone, ``... (oracle choice)`` the better of
  its two hypotheses by truth MPJPE (the room an image-evidence decision has);
- ``regression``: today's start, ``inference.pipeline.initial_body`` of the shipped network.

Columns: MPJPE, PA-MPJPE over all people (``mediapipe-world``: over the people BlazePose found,
the others have no output), the same over the people BlazePose found (``found`` columns, same
people for every row), % of people whose global orientation is off by more than 90 degrees
(geodesic angle of ``global_orient`` to the truth; ``mediapipe-world``: of the hips + shoulders
torso frame), and the median ms per person: the fit of one person (two hypotheses) called alone, the
network run for the regression, BlazePose's ``estimate`` for the landmarks themselves; then the
fit's median ms per person for frames of 1 and 4 people (one batched call per frame).
Prints a table and a final JSON line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from occlusion_bench import TEST_SEED_BASE, crop_camera, truth_params  # noqa: E402

from nbf_ros.body.model import BodyModel  # noqa: E402
from nbf_ros.config import BlazePoseConfig, SyntheticConfig, apply_overrides, load_config, resolve_path  # noqa: E402
from nbf_ros.data.crops import render_crop  # noqa: E402
from nbf_ros.data.scene import body_labels  # noqa: E402
from nbf_ros.evaluation.metrics import procrustes_aligned, root_aligned_error  # noqa: E402
from nbf_ros.fitting.fitter import Fitter  # noqa: E402
from nbf_ros.fitting.from_landmarks import LandmarkBodyFitter, LandmarkFitConfig  # noqa: E402
from nbf_ros.geometry.camera import project  # noqa: E402
from nbf_ros.geometry.rotations import axis_angle_to_matrix  # noqa: E402
from nbf_ros.inference.backends import load_backend  # noqa: E402
from nbf_ros.inference.pipeline import initial_body, with_weights_config  # noqa: E402
from nbf_ros.keypoints.blazepose import map_points  # noqa: E402
from nbf_ros.keypoints.landmarks import BlazePoseLandmarker  # noqa: E402
from nbf_ros.types import JOINT_NAMES, BodyParams, CameraIntrinsics  # noqa: E402

LOG = logging.getLogger("init_bench")
CONTEXT = 0.5  # occlusion_bench.BLAZEPOSE_CONTEXT
CANVAS_GRAY = 128
TORSO_JOINTS = [JOINT_NAMES.index(n) for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder")]


@dataclasses.dataclass
class Person:
    """One clean test person: crop, camera, truth, BlazePose on the canvas, network start."""

    index: int
    image: np.ndarray
    camera: CameraIntrinsics
    truth: BodyParams
    joints: np.ndarray  # 24 x 3
    landmarks: object  # PoseLandmarks or None (not found)
    canvas_camera: CameraIntrinsics
    regression: BodyParams
    net: object  # NetArrays of the crop (features for the feature-likelihood choice)
    blazepose_ms: float
    network_ms: float


def clean_people(count: int, seed_base: int, config, body: BodyModel, backend,
                 context: float = CONTEXT, faces: bool = False) -> list[Person]:
    """occlusion_bench's clean cases (same seeds, crops, cameras, truth), BlazePose and the
    network; ``faces`` paints faces on the renders (``SyntheticAppearanceConfig.faces``)."""
    base = SyntheticConfig()
    synth = dataclasses.replace(base, split="test", box_jitter_shift=0.0, box_jitter_scale=0.0,
                                appearance=dataclasses.replace(base.appearance, opencv_doc_photos=False,
                                                               faces=faces))
    labels = body_labels(body, num_kernels=config.nbv.num_kernels)
    landmarker = BlazePoseLandmarker(dataclasses.replace(BlazePoseConfig(), num_threads=1))
    size = config.net.crop_size
    people = []
    for i in tqdm(range(count), desc="people", file=sys.stderr):
        s = render_crop(seed_base + i, synth, body, labels, config.net, occlusion=False)
        cam = crop_camera(s, size)
        truth = truth_params(s)
        with torch.no_grad():
            verts = body(truth).vertices[0].double().numpy()
        uv = project(verts, cam)
        box = np.concatenate([uv.min(0), uv.max(0)]) + np.array([-0.5, -0.5, 0.5, 0.5])
        pad = int(round(context * size))
        canvas = np.pad(s.image, ((pad, pad), (pad, pad), (0, 0)), constant_values=CANVAS_GRAY)
        ccam = CameraIntrinsics(cam.fx, cam.fy, cam.cx + pad, cam.cy + pad, canvas.shape[1], canvas.shape[0])
        start = time.perf_counter()
        found = landmarker.estimate(canvas, (box + pad)[None], ccam)[0]
        bp_ms = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        net = backend.run(s.image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
        init = initial_body(net, [cam], size)
        net_ms = (time.perf_counter() - start) * 1e3
        people.append(Person(i, s.image, cam, truth, s.joints3d, found, ccam, init, net, bp_ms, net_ms))
    return people


def orientation_error_deg(pred: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """(N,) geodesic angle between N x 3 axis-angle rotations, degrees."""
    rel = axis_angle_to_matrix(pred.double()).transpose(1, 2) @ axis_angle_to_matrix(truth.double())
    cos = ((rel.diagonal(dim1=1, dim2=2).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos)).numpy()


def torso_frame(joints: np.ndarray) -> np.ndarray:
    """N x 3 x 3 frame of hips + shoulders: x = the body's left (right -> left), y = up the spine
    (hips -> shoulders, made orthogonal), z = x cross y (the front)."""
    lh, rh, ls, rs = (joints[:, j] for j in TORSO_JOINTS)
    x = (lh - rh) + (ls - rs)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y = 0.5 * (ls + rs) - 0.5 * (lh + rh)
    y -= (y * x).sum(-1, keepdims=True) * x
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    return np.stack([x, y, np.cross(x, y)], -1)


def torso_error_deg(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    rel = np.einsum("nji,njk->nik", torso_frame(pred), torso_frame(truth))
    return np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)))


def joint_errors(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) MPJPE and PA-MPJPE in mm of N x 24 x 3 predictions."""
    mpjpe = root_aligned_error(pred, truth).mean(-1) * 1e3
    pa = np.array([np.linalg.norm(procrustes_aligned(p, t) - t, axis=-1).mean() for p, t in zip(pred, truth)]) * 1e3
    return mpjpe, pa


def body_row(name: str, params: BodyParams, people: list[Person], body: BodyModel, found: np.ndarray,
             ms: np.ndarray, extra: dict | None = None) -> dict:
    with torch.no_grad():
        joints = body(params).joints.double().numpy()
    truth = np.stack([p.joints for p in people])
    mpjpe, pa = joint_errors(joints, truth)
    angle = orientation_error_deg(params.global_orient, torch.cat([p.truth.global_orient for p in people]))
    return {"row": name, "people": len(people), "mpjpe": float(mpjpe.mean()), "pa_mpjpe": float(pa.mean()),
            "mpjpe_found": float(mpjpe[found].mean()), "pa_mpjpe_found": float(pa[found].mean()),
            "turned_pct": float((angle > 90).mean() * 100), "turned_pct_found": float((angle[found] > 90).mean() * 100),
            "ms_per_person": float(np.median(ms)) if len(ms) else float("nan"), **(extra or {}),
            "per_person_mpjpe": mpjpe.round(1).tolist()}


def feature_choice(nbf: Fitter, person: Person, first: BodyParams, turned: BodyParams) -> BodyParams:
    """The reading whose rendered Neural Body Volume agrees better with the network's features of
    the crop (the fit's feature loss at the start, no iterations): the image evidence the NBF fit
    itself would use."""
    if person.landmarks is None:
        return first
    obs = nbf.observe(person.net.features[0], person.net.heatmaps[0], person.camera)
    with torch.no_grad():
        losses = [float(nbf.evaluate(b, obs, 0.0).feature[0]) for b in (first, turned)]
    return first if losses[0] <= losses[1] else turned


def frame_timing(fitter: LandmarkBodyFitter, people: list[Person], sizes: tuple[int, ...] = (1, 4),
                 frames: int = 10) -> dict[str, float]:
    """Median ms per person of one ``fit`` call on frames of k found people (consecutive
    groups, at most ``frames`` per size), after one warm-up call."""
    found = [p for p in people if p.landmarks is not None]
    out = {}
    for k in sizes:
        groups = [found[i:i + k] for i in range(0, len(found) - k + 1, k)][:frames]
        if not groups:
            continue
        fitter.fit([p.landmarks for p in groups[0]], [p.canvas_camera for p in groups[0]])
        times = []
        for group in groups:
            start = time.perf_counter()
            fitter.fit([p.landmarks for p in group], [p.canvas_camera for p in group])
            times.append((time.perf_counter() - start) * 1e3 / k)
        out[f"ms_per_person_batch{k}"] = float(np.median(times))
    return out


def parse_variants(items: list[list[str]]) -> list[tuple[str, LandmarkFitConfig]]:
    variants = [("", LandmarkFitConfig())]
    for item in items:
        name, overrides = item[0], {}
        for text in item[1:]:
            key, _, value = text.partition("=")
            overrides[key] = yaml.safe_load(value)
        variants.append((name, apply_overrides(LandmarkFitConfig(), overrides)))
    return variants


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=100)
    ap.add_argument("--seed-base", type=int, default=TEST_SEED_BASE,
                    help="950000: the reported test people; 900000: the validation range")
    ap.add_argument("--config", default=None, help="pipeline config (network weights)")
    ap.add_argument("--context", type=float, default=CONTEXT,
                    help="gray canvas around each crop for BlazePose, in crop sides per side")
    ap.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME KEY=VALUE",
                    help="an extra body-from-landmarks row with LandmarkFitConfig overrides")
    ap.add_argument("--faces", action="store_true",
                    help="paint faces on the rendered people (same people and pixels otherwise)")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    config = with_weights_config(load_config(args.config))
    body = BodyModel(resolve_path(config.body.model_path), num_betas=config.body.num_betas)
    backend, bank = load_backend(config)
    people = clean_people(args.people, args.seed_base, config, body, backend, args.context, args.faces)
    found = np.array([p.landmarks is not None for p in people])
    truth = np.stack([p.joints for p in people])
    rows = []

    # MediaPipe's world landmarks, as a user gets them (people it found only).
    seen = [p for p in people if p.landmarks is not None]
    if not seen:
        raise SystemExit("BlazePose found none of these people: nothing to compare")
    mapped = np.stack([map_points(p.landmarks.world) for p in seen])
    mapped = mapped - mapped[:, :1]
    mp, pa = joint_errors(mapped, truth[found])
    torso = torso_error_deg(mapped, truth[found])
    rows.append({"row": "mediapipe-world", "people": int(found.sum()), "mpjpe": float(mp.mean()),
                 "pa_mpjpe": float(pa.mean()), "mpjpe_found": float(mp.mean()), "pa_mpjpe_found": float(pa.mean()),
                 "turned_pct": float((torso > 90).mean() * 100), "turned_pct_found": float((torso > 90).mean() * 100),
                 "ms_per_person": float(np.median([p.blazepose_ms for p in people]))})

    regression = BodyParams.cat([p.regression for p in people])
    for name, cfg in parse_variants(args.variant):
        fitter = LandmarkBodyFitter.from_config(body, cfg)
        chosen, first, alt, ms, flagged, hyp = [], [], [], [], 0, []
        for p in people:
            if p.landmarks is None:
                chosen.append(p.regression), first.append(p.regression), alt.append(p.regression)
                continue
            start = time.perf_counter()
            result = fitter.fit([p.landmarks], [p.canvas_camera])
            ms.append((time.perf_counter() - start) * 1e3)
            params = result.with_fallback(p.regression)
            flagged += int(not result.info[0].ok)
            hyp.append(result.info[0].hypothesis)
            chosen.append(params)
            mine_first = result.params if result.info[0].hypothesis == 0 else result.alternative
            mine_alt = result.alternative if result.info[0].hypothesis == 0 else result.params
            first.append(mine_first if result.info[0].ok else p.regression)
            alt.append(mine_alt if result.info[0].ok else p.regression)
        label = "body-from-landmarks" + (f" {name}" if name else "")
        extra = {"flagged": flagged, "turned_chosen": int(np.sum(hyp)), "variant": dataclasses.asdict(cfg)}
        row = body_row(label, BodyParams.cat(chosen), people, body, found, np.array(ms), extra)
        rows.append(row)
        if cfg.turned_hypothesis:
            one = body_row(label + " (BlazePose's reading)", BodyParams.cat(first), people, body, found, np.array(ms))
            other = body_row(label + " (turned)", BodyParams.cat(alt), people, body, found, np.array(ms))
            best = np.minimum(one["per_person_mpjpe"], other["per_person_mpjpe"])
            pick = [f if a >= b else t for f, t, a, b in
                    zip(first, alt, other["per_person_mpjpe"], one["per_person_mpjpe"])]
            oracle = body_row(label + " (oracle choice)", BodyParams.cat(pick), people, body, found, np.array(ms))
            rows += [one, oracle]
            LOG.info("%s: oracle mean %.1f", label, float(np.mean(best)))
            if not name:
                nbf = Fitter.from_config(config, body, bank)
                picked = [feature_choice(nbf, p, f, t) for p, f, t in zip(people, first, alt)]
                rows.append(body_row(label + " (choice by NBV feature likelihood)", BodyParams.cat(picked),
                                     people, body, found, np.array(ms)))
    rows.append(body_row("regression", regression, people, body, found,
                         np.array([p.network_ms for p in people])))
    timing = frame_timing(LandmarkBodyFitter.from_config(body, LandmarkFitConfig()), people)

    print(f"{len(people)} clean test people from seed {args.seed_base}; BlazePose found {int(found.sum())}")
    print("| row | MPJPE | PA-MPJPE | MPJPE found | PA-MPJPE found | orientation > 90 deg "
          "| found: > 90 deg | ms/person (median) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['row']} | {r['mpjpe']:.1f} | {r['pa_mpjpe']:.1f} | {r['mpjpe_found']:.1f} | "
              f"{r['pa_mpjpe_found']:.1f} | {r['turned_pct']:.1f} % | {r['turned_pct_found']:.1f} % | "
              f"{r['ms_per_person']:.1f} |")
    print("body-from-landmarks (defaults), median ms per person of one fit call per frame of k people: "
          + ", ".join(f"k = {k[len('ms_per_person_batch'):]}: {v:.1f}" for k, v in timing.items()))
    summary = {"benchmark": "init", "people": len(people), "seed_base": args.seed_base, "found": int(found.sum()),
               "timing": {k: round(v, 1) for k, v in timing.items()},
               "rows": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()
                         if k not in ("per_person_mpjpe", "variant")} for r in rows]}
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps({**summary, "rows_full": rows}, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
