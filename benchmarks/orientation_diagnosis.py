"""Where the MPJPE comes from: the global orientation, and whose 2D keypoints know left from right.

On validation people (test split, seeds from 900000, as ``fit_tuning.py``), per condition:
- the angle between the predicted and the true global orientation (camera frame), for the
  regression and the NBF fit, and the share of people more than 90 degrees off (a front/back or
  side-on confusion that a local fit of a few degrees per iteration cannot undo);
- MPJPE of the regression, and of the regression with the true global orientation put in (what
  a perfect orientation alone would give), and the best of 12 turns about the vertical axis;
- left/right: for six joint pairs (shoulders, hips, elbows, knees, wrists, ankles), the share
  whose 2D positions are closer to the truth as labelled than swapped, for the network's heatmap
  keypoints, the regression's projected joints and (``--blazepose``) BlazePose full (ONNX,
  in-process, on the box the crop was cut around).
Prints a table and a final JSON line.

    .venv/bin/python benchmarks/orientation_diagnosis.py --people 24 --cases-cache cache/bench/val24.npz
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fit_tuning  # noqa: E402
import occlusion_bench as bench  # noqa: E402  (puts the repository root on sys.path)
from nbf_ros.body.model import BodyModel  # noqa: E402
from nbf_ros.config import load_config, resolve_path  # noqa: E402
from nbf_ros.evaluation.metrics import root_aligned_error  # noqa: E402
from nbf_ros.fitting.fitter import Fitter, turned_about_vertical  # noqa: E402
from nbf_ros.geometry.camera import project_points  # noqa: E402
from nbf_ros.inference.backends import load_backend  # noqa: E402
from nbf_ros.inference.pipeline import initial_body, with_weights_config  # noqa: E402
from nbf_ros.nets.model import heatmap_keypoints  # noqa: E402
from nbf_ros.types import BodyParams  # noqa: E402

LOG = logging.getLogger("orientation_diagnosis")
# SMPL joint pairs (left, right): shoulders, hips, elbows, knees, wrists, ankles.
PAIRS = ((16, 17), (1, 2), (18, 19), (4, 5), (20, 21), (7, 8))
TURNS = 12


def orientation_error_deg(a: BodyParams, b: BodyParams) -> float:
    ra = Rotation.from_rotvec(a.global_orient[0].double().numpy())
    rb = Rotation.from_rotvec(b.global_orient[0].double().numpy())
    return float(np.degrees((ra.inv() * rb).magnitude()))


def left_right_correct(pred2d: np.ndarray, truth2d: np.ndarray) -> np.ndarray:
    """(6,) bool per pair: the labelled assignment is at least as close as the swapped one."""
    d = lambda a, b: np.linalg.norm(pred2d[a] - truth2d[b])  # noqa: E731
    return np.array([d(l, l) + d(r, r) <= d(l, r) + d(r, l) for l, r in PAIRS])


def mpjpe_mm(body: BodyModel, params: BodyParams, truth3d: np.ndarray) -> float:
    with torch.no_grad():
        joints = body(params).joints[0].double().numpy()
    return float(root_aligned_error(joints, truth3d).mean() * 1e3)


def diagnose(case, backend, body: BodyModel, fitter: Fitter, source: bench.KeypointSource,
             crop_size: int, stride: int) -> dict:
    net = backend.run(case.image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    init = initial_body(net, [case.camera], crop_size)
    fitted = fitter.fit(net, 0, case.camera, init).params
    cam = case.camera
    with torch.no_grad():
        projected = project_points(body(init).joints[0], cam.fx, cam.fy, cam.cx, cam.cy).numpy()
    heat, _ = heatmap_keypoints(torch.from_numpy(net.heatmaps[:1]).float(), stride)
    turns = [turned_about_vertical(init, 2 * np.pi * k / TURNS) for k in range(TURNS)]
    row = {"angle_regression": orientation_error_deg(init, case.params),
           "angle_fit": orientation_error_deg(fitted, case.params),
           "mpjpe_regression": mpjpe_mm(body, init, case.joints3d),
           "mpjpe_fit": mpjpe_mm(body, fitted, case.joints3d),
           "mpjpe_true_orientation": mpjpe_mm(body, init.replace(global_orient=case.params.global_orient),
                                              case.joints3d),
           "mpjpe_best_turn": min(mpjpe_mm(body, t, case.joints3d) for t in turns),
           "lr_heatmaps": left_right_correct(heat[0].numpy(), case.joints2d),
           "lr_regression": left_right_correct(projected, case.joints2d)}
    external = source(case)
    if external is not None:
        row["lr_blazepose"] = left_right_correct(external[0][0].numpy(), case.joints2d)
    return row


def summarise(rows: list[dict]) -> dict:
    out = {"people": len(rows)}
    for key in sorted(set().union(*rows)):
        if key.startswith("lr_"):
            values = [r[key] for r in rows if key in r]
            out[key] = float(np.mean(values)) if values else float("nan")
            out[key.replace("lr_", "found_")] = len(values)
        else:
            out[key] = float(np.mean([r[key] for r in rows]))
    angles = np.array([r["angle_regression"] for r in rows])
    out["share_regression_over_90deg"] = float((angles > 90).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=24)
    parser.add_argument("--config", default=None)
    parser.add_argument("--cases-cache", metavar="NPZ")
    parser.add_argument("--blazepose", action="store_true",
                        help="also BlazePose's left/right (BlazePose full, ONNX, in-process)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    config = with_weights_config(load_config(args.config))
    config = dataclasses.replace(config, fit=dataclasses.replace(config.fit, budget_ms=1e9))
    body = BodyModel(resolve_path(config.body.model_path), num_betas=config.body.num_betas)
    backend, bank = load_backend(config)
    args.shard = "0/1"
    with fit_tuning.validation_seeds(args.people):
        cases = bench.cached_cases(args, config, body, bench.Regressor(backend, body, config.net.crop_size))
    fitter = Fitter.from_config(config, body, bank)
    source = bench.KeypointSource("blazepose" if args.blazepose else "network", config)
    groups: dict[str, list[dict]] = defaultdict(list)
    for case in tqdm(cases, desc="people", file=sys.stderr):
        groups[case.condition].append(diagnose(case, backend, body, fitter, source, config.net.crop_size,
                                               config.net.feature_stride))
    table = {cond: summarise(rows) for cond, rows in groups.items()}
    keys = ["angle_regression", "share_regression_over_90deg", "angle_fit", "mpjpe_regression",
            "mpjpe_true_orientation", "mpjpe_best_turn", "mpjpe_fit", "lr_heatmaps", "lr_regression",
            "lr_blazepose", "found_blazepose"]
    print("| condition | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for cond, s in table.items():
        print(f"| {cond} | " + " | ".join(f"{s.get(k, float('nan')):.2f}" for k in keys) + " |")
    print(json.dumps({"benchmark": "orientation_diagnosis", "people": args.people,
                      "blazepose": "BlazePose full (ONNX, in-process)" if args.blazepose else None,
                      "conditions": table}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
