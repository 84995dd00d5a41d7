"""BlazePose landmarks on truth boxes (not a test): 2D accuracy vs our generator's truth, and speed.

People: the first ``--people`` people of synthetic test-split scenes (seeds 0, 1, ...; occluders
as the generator places them; the Debian opencv-doc photos left out, so every machine renders
the same images), each given its truth box (the projected full body) as the detector box.

Accuracy per configuration (variant x ROI scale x refinement pass x heatmap refinement):
- found: share of people whose pose flag reaches ``blazepose.min_pose_flag``;
- errors and L/R over the people that every configuration found (the same people for all);
- error of the 12 joints BlazePose measures directly (hips, knees, ankles, shoulders, elbows,
  wrists; landmark vs the SMPL joint) over found people and joints inside the image, in pixels
  and in % of the person's box height, split by the generator's joint state: visible, occluded
  (by an object or another body), self-occluded; 'all 24' maps every joint (docs/landmarks.md);
- left/right: share of found people whose 6 left/right pairs fit the truth better as labelled
  than swapped (sum of the pair errors).
Speed: ``BlazePoseLandmarker.estimate`` (warp + model + decode) per person, median of repeats, at
batch 1 and 3 and 1 and 2 onnxruntime threads with the defaults; then full at 1 thread, batch 1,
without heatmap refinement and with both refinements (the second pass runs the model again).

Usage: python benchmarks/landmark_bench.py [--people 100] [--variants lite,full]
       [--scales 1.25,1.5] [--repeats 20] [--no-timing | --timing-only]
Prints tables, then one JSON line with every number.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
from nbf_ros.body.model import BodyModel  # noqa: E402
from nbf_ros.config import BlazePoseConfig, SyntheticConfig, resolve_path  # noqa: E402
from nbf_ros.data.scene import (OCCLUDED_BY_OBJECT, SELF_OCCLUDED, VISIBLE, body_labels,  # noqa: E402
                                render_scene)
from nbf_ros.keypoints.blazepose import LANDMARK_NAMES, map_points  # noqa: E402
from nbf_ros.keypoints.landmarks import BlazePoseLandmarker  # noqa: E402
from nbf_ros.types import JOINT_NAMES  # noqa: E402

DIRECT = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
          "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")
JOINTS = np.array([JOINT_NAMES.index(n) for n in DIRECT])
LANDMARKS = np.array([LANDMARK_NAMES.index(n) for n in DIRECT])
SWAPPED = np.array([DIRECT.index(n.replace("left", "#").replace("right", "left").replace("#", "right"))
                    for n in DIRECT])
STATES = {"visible": (VISIBLE,), "occluded": (OCCLUDED_BY_OBJECT,), "self-occluded": (SELF_OCCLUDED,)}


def test_config() -> SyntheticConfig:
    """The generator's test split without the machine-dependent opencv-doc photos."""
    cfg = SyntheticConfig(split="test")
    return dataclasses.replace(cfg, appearance=dataclasses.replace(cfg.appearance,
                                                                   opencv_doc_photos=False))


def scenes_with_people(count: int) -> list:
    """Scenes from seed 0 on until they hold ``count`` people (the last one may be cut)."""
    body = BodyModel(resolve_path("models/nbf_body.npz"))
    labels, cfg = body_labels(body), test_config()
    scenes, total, seed = [], 0, 0
    while total < count:
        scene = render_scene(seed, cfg, body, labels)
        scene.people = scene.people[: count - total]
        scenes.append(scene)
        total += len(scene.people)
        seed += 1
    return scenes


def person_rows(scene, found) -> list[dict]:
    """Per person: found, direct-joint errors and states (inside the image), L/R, all-24 error."""
    rows = []
    height, width = scene.image.shape[:2]
    for truth, est in zip(scene.people, found):
        row = {"found": est is not None}
        if est is not None:
            uv = truth.joints2d[JOINTS]
            inside = (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
            err = np.linalg.norm(est.landmarks[LANDMARKS, :2] - uv, axis=1)
            swapped = np.linalg.norm(est.landmarks[LANDMARKS[SWAPPED], :2] - uv, axis=1)
            mapped = np.linalg.norm(map_points(est.landmarks[:, :2]) - truth.joints2d, axis=1)
            row.update(err=err[inside], state=truth.joint_state[JOINTS][inside],
                       height=float(truth.bbox[3] - truth.bbox[1]),
                       lr_ok=bool(err.sum() <= swapped.sum()), all24=float(mapped.mean()))
        rows.append(row)
    return rows


def estimates(scenes, config: BlazePoseConfig) -> list[dict]:
    """One row per person of ``scenes`` (``person_rows``) for one configuration."""
    model = BlazePoseLandmarker(config)
    rows = []
    for scene in scenes:
        boxes = np.array([p.bbox for p in scene.people])
        rows += person_rows(scene, model.estimate(scene.image, boxes, scene.camera))
    return rows


def summary(config: BlazePoseConfig, rows: list[dict], common: np.ndarray) -> dict:
    """Found rate over all people; errors and L/R over ``common`` (people every configuration
    found, so that configurations are compared on the same people)."""
    used = [r for r, c in zip(rows, common) if c]
    out = {"variant": config.variant, "roi_scale": config.roi_scale, "refine": config.refine_roi,
           "heatmaps": config.heatmap_refine,
           "people": len(rows), "found": float(np.mean([r["found"] for r in rows])),
           "common_people": len(used), "lr_ok": float(np.mean([r["lr_ok"] for r in used])),
           "all24_px": float(np.mean([r["all24"] for r in used]))}
    for name, states in STATES.items():
        err = [r["err"][np.isin(r["state"], states)] for r in used]
        rel = [e / r["height"] * 100.0 for e, r in zip(err, used)]
        flat, flat_rel = np.concatenate(err or [[]]), np.concatenate(rel or [[]])
        out[name] = {"joints": int(flat.size), "mean_px": _mean(flat), "median_px": _median(flat),
                     "mean_pct_height": _mean(flat_rel)}
    return out


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def _median(x: np.ndarray) -> float:
    return float(np.median(x)) if len(x) else float("nan")


def timing(scene, config: BlazePoseConfig, batch: int, repeats: int) -> dict:
    """Median ms per person of ``estimate`` on ``batch`` boxes of ``scene`` (repeated if fewer)."""
    model = BlazePoseLandmarker(dataclasses.replace(config, min_pose_flag=0.0))
    boxes = np.array([p.bbox for p in scene.people])[np.arange(batch) % len(scene.people)]
    model.estimate(scene.image, boxes, scene.camera)  # warm-up: first-run allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.estimate(scene.image, boxes, scene.camera)
        times.append((time.perf_counter() - start) * 1e3)
    median = statistics.median(times)
    return {"variant": config.variant, "threads": config.num_threads, "batch": batch,
            "refine": config.refine_roi, "heatmaps": config.heatmap_refine,
            "ms_per_call": median, "ms_per_person": median / batch}


def timing_rows(scene, variants: list[str], repeats: int) -> list[dict]:
    """Defaults per variant at 1/2 threads x batch 1/3; then full's options at 1 thread, batch 1."""
    rows = [timing(scene, BlazePoseConfig(variant=v, num_threads=t), b, repeats)
            for v in variants for t in (1, 2) for b in (1, 3)]
    for refine, heatmaps in ((False, False), (True, True)):
        config = BlazePoseConfig(num_threads=1, refine_roi=refine, heatmap_refine=heatmaps)
        rows.append(timing(scene, config, 1, repeats))
    return rows


def print_accuracy(rows: list[dict]) -> None:
    print("| variant | ROI scale | refine | heatmaps | found | visible px mean / median (% h) | "
          "occluded | self-occluded | all 24 px | L/R ok |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [f"{r[s]['mean_px']:.1f} / {r[s]['median_px']:.1f} ({r[s]['mean_pct_height']:.1f})"
                 for s in STATES]
        print(f"| {r['variant']} | {r['roi_scale']:.2f} | {'yes' if r['refine'] else 'no'} | "
              f"{'yes' if r['heatmaps'] else 'no'} | "
              f"{r['found'] * 100:.0f}% | " + " | ".join(cells)
              + f" | {r['all24_px']:.1f} | {r['lr_ok'] * 100:.0f}% |")


def print_timing(rows: list[dict]) -> None:
    print("| variant | threads | batch | refine | heatmaps | ms per call | ms per person |")
    print("|---|---:|---:|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['threads']} | {r['batch']} | {'yes' if r['refine'] else 'no'} | "
              f"{'yes' if r['heatmaps'] else 'no'} | {r['ms_per_call']:.1f} | {r['ms_per_person']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=100)
    ap.add_argument("--variants", default="lite,full")
    ap.add_argument("--scales", default="1.25,1.5")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--timing-only", action="store_true")
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    scenes = [] if args.timing_only else scenes_with_people(args.people)
    rows, times = [], []
    if not args.timing_only:
        configs = [BlazePoseConfig(variant=v, roi_scale=float(s), refine_roi=r, heatmap_refine=h)
                   for v in variants for s in args.scales.split(",") for r in (False, True)
                   for h in (False, True)]
        per_config = [estimates(scenes, c) for c in configs]
        common = np.all([[r["found"] for r in rows] for rows in per_config], axis=0)
        rows = [summary(c, r, common) for c, r in zip(configs, per_config)]
        print(f"{args.people} people of {len(scenes)} test-split scenes, truth boxes; errors over "
              f"the {int(common.sum())} people every configuration found; joints "
              "visible/occluded/self: " + "/".join(str(rows[0][s]["joints"]) for s in STATES))
        print_accuracy(rows)
    if not args.no_timing:
        three = next(s for s in scenes_with_people(30) if len(s.people) == 3)  # seed 1
        times = timing_rows(three, variants, args.repeats)
        print_timing(times)
    print(json.dumps({"accuracy": rows, "timing": times, "people": args.people,
                      "scenes": len(scenes), "cpu": platform.processor() or platform.machine()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
