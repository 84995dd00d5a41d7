"""Depth benchmark: the occlusion benchmark's people and occluders, fitted with and without an
aligned depth image.

Same test set as ``occlusion_bench.py`` (held-out synthetic people, crops of the inference rule,
BlazePose keypoints and landmark start as the default pipeline; ``--cases-cache`` reuses its
cached test set), same fitter and budget. The depth of each crop is rendered for the same
person and occluders (``render_crop(depth=DepthSensor())``: quantised disparity, holes, flying
pixels, minimum range, a wall behind); for AdvOcc the pasted patch is given a depth 0.3-1.0 m in
front of the person. Methods per crop: ``start`` (the landmark start, not iterated) and ``nbf``
(the fit), each ``mono`` and ``depth``. Metrics: root (pelvis) position error in metres, MPJPE
and PA-MPJPE (pelvis-aligned, mm), and the AUC of joint visibility for telling hidden joints from
visible ones (hidden: generator visibility < 0.5 or under the patch: self-occlusion and the
image border included), and the same for joints an object hides against visible ones (the
generator's OCCLUDED_BY_OBJECT, or under the patch; self-occluded joints left out).

    .venv/bin/python benchmarks/depth_bench.py --people 100 --cases-cache cache/bench/test100.npz
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import occlusion_bench as ob  # noqa: E402
from nbf_ros.body.model import BodyModel  # noqa: E402
from nbf_ros.config import SyntheticConfig, apply_overrides, load_config, resolve_path  # noqa: E402
from nbf_ros.data.crops import render_crop  # noqa: E402
from nbf_ros.data.depth_sensor import DepthSensor  # noqa: E402
from nbf_ros.data.scene import OCCLUDED_BY_OBJECT, body_labels  # noqa: E402
from nbf_ros.evaluation.metrics import procrustes_aligned, roc_auc, root_aligned_error  # noqa: E402
from nbf_ros.fitting.depth import DepthCrop  # noqa: E402
from nbf_ros.fitting.fitter import Fitter  # noqa: E402
from nbf_ros.fitting.from_landmarks import LandmarkBodyFitter  # noqa: E402
from nbf_ros.geometry.camera import CropBox  # noqa: E402
from nbf_ros.geometry.depth import depth_for_crop, drop_flying_pixels  # noqa: E402
from nbf_ros.inference.backends import load_backend  # noqa: E402
from nbf_ros.inference.pipeline import initial_body, with_weights_config  # noqa: E402
from nbf_ros.keypoints.landmarks import mask_in_box  # noqa: E402

LOG = logging.getLogger("depth_bench")
DISTANCE_BINS = ((0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 99.0))


def test_config() -> SyntheticConfig:
    """The occlusion benchmark's generator settings (``occlusion_bench.build_cases``)."""
    base = SyntheticConfig()
    return dataclasses.replace(base, split="test", box_jitter_shift=0.0, box_jitter_scale=0.0,
                               appearance=dataclasses.replace(base.appearance, opencv_doc_photos=False))


def case_depths(case_list: list, body: BodyModel, config, sensor: DepthSensor) -> tuple[dict, dict]:
    """Per (condition, person) the crop's sensor depth (S x S metres, NaN = none), rendered for
    the same seed as the case (same person and occluders: checked on the image), and which
    joints an object hides (24 bool: the generator's OCCLUDED_BY_OBJECT, or under the patch)."""
    synth = test_config()
    labels = body_labels(body, num_kernels=config.nbv.num_kernels)
    depths: dict = {}
    by_object: dict = {}
    by_person: dict = defaultdict(dict)
    for case in case_list:
        by_person[case.index][case.condition] = case
    for index, conds in tqdm(sorted(by_person.items()), desc="depth", file=sys.stderr):
        seed = ob.TEST_SEED_BASE + index
        clean = None
        for condition, occl in (("clean", False), ("occluders", True)):
            s = render_crop(seed, synth, body, labels, config.net, occlusion=occl, depth=sensor)
            if condition in conds and not np.array_equal(s.image, conds[condition].image):
                raise SystemExit(f"person {index} {condition}: re-rendered crop differs from the test set")
            depths[(condition, index)] = s.depth
            by_object[(condition, index)] = s.joint_state == OCCLUDED_BY_OBJECT
            clean = s if condition == "clean" else clean
        for side in (40, 80):
            case = conds.get(f"advocc{side}")
            if case is not None:
                depths[(case.condition, index)] = patch_depth(case.image, clean, seed + side)
                under_patch = (clean.joint_visibility >= 0.5) & ~case.visible
                by_object[(case.condition, index)] = (clean.joint_state == OCCLUDED_BY_OBJECT) | under_patch
    return depths, by_object


def patch_depth(image: np.ndarray, clean, seed: int) -> np.ndarray:
    """The clean depth with the adversarial patch (the square where the image differs from the
    clean crop) given a flat depth 0.3-1.0 m in front of the person's pelvis."""
    rng = np.random.default_rng(seed)
    depth = clean.depth.copy()
    rows, cols = np.nonzero(np.any(image != clean.image, axis=-1))
    if rows.size:
        z = float(clean.joints3d[0, 2]) - rng.uniform(0.3, 1.0)
        depth[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = max(z, 0.31)
    return depth


def depth_crop(depth: np.ndarray, found, size: int, grid: int, crop_box: np.ndarray) -> DepthCrop:
    """The pipeline's per-person depth (``Pipeline.depth_crops``) for a benchmark crop: the
    crop is the whole image here."""
    mask = None
    if found is not None:
        patch, (col0, row0) = mask_in_box(found, crop_box, size, size)
        mask = np.zeros((size, size), np.float32)
        mask[row0:row0 + patch.shape[0], col0:col0 + patch.shape[1]] = patch
    return DepthCrop.from_numpy(*depth_for_crop(drop_flying_pixels(depth), CropBox(0.0, 0.0, float(size)),
                                                size, grid, mask))


def score(result, case, body: BodyModel, by_object: np.ndarray) -> dict:
    with torch.no_grad():
        pred = body(result.params).joints[0].double().numpy()
    truth = case.joints3d
    return {"root_m": float(np.linalg.norm(pred[0] - truth[0])), "root_z_m": float(pred[0, 2] - truth[0, 2]),
            "distance_m": float(truth[0, 2]),
            "mpjpe": float(root_aligned_error(pred, truth).mean() * 1e3),
            "pa_mpjpe": float(np.linalg.norm(procrustes_aligned(pred, truth) - truth, axis=-1).mean() * 1e3),
            "visibility": result.joint_visibility.tolist(), "visible": case.visible.tolist(),
            "by_object": by_object.tolist(),
            "depth_offset_m": float(result.depth_offset_m)}


def summarise(items: list[dict]) -> list[dict]:
    rows = defaultdict(list)
    for it in items:
        rows[(it["condition"], it["method"])].append(it)
        rows[("all", it["method"])].append(it)
    table = []
    for (condition, method), group in sorted(rows.items()):
        root = np.array([g["root_m"] for g in group])
        dist = np.array([g["distance_m"] for g in group])
        mid = (dist >= 2.0) & (dist <= 6.0)
        vis = np.concatenate([g["visibility"] for g in group])
        hidden = ~np.concatenate([g["visible"] for g in group]).astype(bool)
        by_object = np.concatenate([g["by_object"] for g in group]).astype(bool)
        object_or_seen = by_object | ~hidden  # object-hidden vs visible (self-occlusion left out)
        table.append({"condition": condition, "method": method, "people": len(group),
                      "root_median_m": float(np.median(root)),
                      "root_median_2_6m": float(np.median(root[mid])) if mid.any() else float("nan"),
                      "people_2_6m": int(mid.sum()),
                      "root_p90_m": float(np.percentile(root, 90)),
                      "mpjpe": float(np.mean([g["mpjpe"] for g in group])),
                      "pa_mpjpe": float(np.mean([g["pa_mpjpe"] for g in group])),
                      "hidden_auc": roc_auc(1.0 - vis, hidden),
                      "object_auc": roc_auc(1.0 - vis[object_or_seen], by_object[object_or_seen]),
                      "object_hidden_joints": int(by_object.sum()),
                      "ms": float(np.mean([g["ms"] for g in group]))})
    return table


def format_table(table: list[dict]) -> str:
    lines = ["| condition | method | people | root median (m) | root median 2-6 m (m, people) | "
             "root p90 (m) | MPJPE | PA-MPJPE | hidden-joint AUC | object-hidden AUC (joints) | ms/person |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        lines.append(f"| {r['condition']} | {r['method']} | {r['people']} | {r['root_median_m']:.3f} | "
                     f"{r['root_median_2_6m']:.3f} ({r['people_2_6m']}) | {r['root_p90_m']:.3f} | "
                     f"{r['mpjpe']:.1f} | {r['pa_mpjpe']:.1f} | {r['hidden_auc']:.3f} | "
                     f"{r['object_auc']:.3f} ({r['object_hidden_joints']}) | {r['ms']:.0f} |")
    return "\n".join(lines)


def run_case(case, fitter: Fitter, body_fitter, source, backend, body, config, depth: np.ndarray,
             by_object: np.ndarray, methods: tuple[str, ...] = ("start", "nbf")) -> list[dict]:
    size = config.net.crop_size
    net = backend.run(case.image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    regression = initial_body(net, [case.camera], size)
    found = source.landmarks(case)
    keypoints = source.keypoints_from(found) if config.fit.keypoint_source == "blazepose" else None
    init, alternatives, _, _ = ob.landmark_start(body_fitter, case, found, regression)
    dc = depth_crop(depth, found, size, size // config.net.feature_stride, source.crop_box(size)[0])
    out = []
    for method, iterate in (("start", False), ("nbf", True)):
        if method not in methods:
            continue
        for mode, crop in (("mono", None), ("depth", dc)):
            start = time.perf_counter()
            result = fitter.fit(net, 0, case.camera, init, iterate=iterate, keypoints=keypoints,
                                alternatives=alternatives, depth=crop, mask=dc.mask,
                                alternatives_mirrored=True)
            item = score(result, case, body, by_object)
            item.update(condition=case.condition, person=case.index, method=f"{method}-{mode}",
                        ms=(time.perf_counter() - start) * 1e3)
            out.append(item)
    return out


def parse_overrides(items: list[str]) -> dict:
    """["fit.depth_weight=0.3", ...] -> {"fit.depth_weight": 0.3} (values read as YAML scalars)."""
    import yaml

    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100, help="test set size (as occlusion_bench)")
    parser.add_argument("--limit", type=int, default=0, help="fit only the first N people (0: all)")
    parser.add_argument("--skip", type=int, default=0,
                        help="leave out the first N people (the ones the depth settings were tuned on)")
    parser.add_argument("--conditions", default="clean,occluders,advocc40,advocc80")
    parser.add_argument("--config", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases-cache", metavar="NPZ", help="occlusion_bench's cached test set")
    parser.add_argument("--json-out", default=str(ROOT / "out" / "depth_bench.json"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. fit.depth_weight=0.3 (repeatable)")
    parser.add_argument("--methods", default="start,nbf", help="start (not iterated) and/or nbf")
    args = parser.parse_args(argv)
    args.shard = "0/1"
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = with_weights_config(apply_overrides(load_config(args.config), parse_overrides(args.set)))
    config = dataclasses.replace(config, fit=dataclasses.replace(config.fit, budget_ms=1e9))
    body = BodyModel(resolve_path(config.body.model_path), num_betas=config.body.num_betas)
    backend, bank = load_backend(config)
    cases = ob.cached_cases(args, config, body, ob.Regressor(backend, body, config.net.crop_size))
    wanted = set(args.conditions.split(","))
    cases = [c for c in cases if c.condition in wanted and (not args.limit or c.index < args.limit)
             and c.index >= args.skip]
    depths, by_object = case_depths(cases, body, config, DepthSensor())
    fitter = Fitter.from_config(config, body, bank)
    source = ob.KeypointSource("blazepose", config)
    body_fitter = LandmarkBodyFitter.from_config(body, config.landmark_fit, fitter.pose_prior)
    items = []
    for case in tqdm(cases, desc="fit", file=sys.stderr):
        items.extend(run_case(case, fitter, body_fitter, source, backend, body, config,
                              depths[(case.condition, case.index)], by_object[(case.condition, case.index)],
                              tuple(args.methods.split(","))))
    table = summarise(items)
    print(format_table(table))
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps({"table": table, "items": items, "argv": sys.argv[1:],
                                               "keypoint_misses": source.misses}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
