"""Per-joint visibility calibration (validation people) and its report (test people).

The fitter's joint visibility is a logistic model of per-joint cues (``nbf_ros.fitting.visibility``:
what the fit's render, BlazePose's keypoints and person mask, and an aligned depth image say
about each joint). Two models of BlazePose's front end read a prefix of the cues each:
``fit.visibility_logit_image`` (base + image cues, monocular) and ``fit.visibility_logit_depth``
(+ depth cues); ``fit.visibility_logit`` (base cues) serves the network's heatmap keypoints
(config/hog.yaml) and is not refitted here. This script

1. fits every case of the occlusion benchmark's conditions (clean, random occluders, AdvOcc 40 /
   80; ``occlusion_bench.py``'s crops, BlazePose keypoints, landmark start, the NBF fit) twice:
   monocular with BlazePose's person mask, and with the crop's synthetic depth
   (``depth_bench.case_depths``, which also says which joints an object hides);
2. on ``--split val`` (the validation seeds of ``fit_tuning.py``, from 900000) fits the two
   models by maximum likelihood with each weight's sign fixed (``CUE_SIGNS``: more evidence of
   being seen never lowers the visibility) and a small ridge, reports them held out (two folds
   by person) against the config's and prints them as a config snippet;
3. on ``--split test`` (the benchmark's people, from 950000) reports the config's models.

Truth: visible = generator visibility >= 0.5 and not under the adversarial patch (hidden
includes self-occlusion and the image border); object-hidden = the generator's
OCCLUDED_BY_OBJECT or under the patch (scored against visible joints, self-occluded left out).

    .venv/bin/python benchmarks/visibility_calibration.py --split val --people 100 \\
        --cases-cache cache/bench/val100.npz --cues-cache cache/bench/vis_cues_val100.npz --out docs/visibility_calibration_val.md
    .venv/bin/python benchmarks/visibility_calibration.py --split test --people 100 \\
        --cases-cache cache/bench/test100.npz --cues-cache cache/bench/vis_cues_test100.npz --out docs/visibility_test.md
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import depth_bench  # noqa: E402
import fit_tuning  # noqa: E402
import occlusion_bench as bench  # noqa: E402  (puts the repository root on sys.path)
from nbf_ros.body.model import BodyModel  # noqa: E402
from nbf_ros.config import load_config, resolve_path  # noqa: E402
from nbf_ros.data.depth_sensor import DepthSensor  # noqa: E402
from nbf_ros.evaluation.metrics import roc_auc  # noqa: E402
from nbf_ros.fitting.fitter import Fitter  # noqa: E402
from nbf_ros.fitting.visibility import (BASE_CUES, CUE_SIGNS, IMAGE_CUES,  # noqa: E402
                                        VISIBILITY_CUES, visibility_from_cues)
from nbf_ros.inference.backends import load_backend  # noqa: E402
from nbf_ros.inference.pipeline import initial_body, with_weights_config  # noqa: E402
from nbf_ros.keypoints.blazepose import map_confidence  # noqa: E402

LOG = logging.getLogger("visibility_calibration")
RIDGE = 1e-3
CONFIG_FIELDS = {"image": "visibility_logit_image", "depth": "visibility_logit_depth"}
# Exploration-only cues (not inputs of the runtime model): BlazePose's visibility and presence
# mapped to SMPL's joints separately (the keypoint confidence is their product).
EXTRA_CUES = ("bp_visibility", "bp_presence")
CONDITIONS = fit_tuning.CONDITIONS
CUES_VERSION = 3


# -- 1. the cues ---------------------------------------------------------------------------------
def collect(cases: list, fitter: Fitter, backend, source: bench.KeypointSource, body_fitter, config,
            depths: dict, by_object: dict) -> dict[str, np.ndarray]:
    """Per joint of every case (N = cases x 24): cues of the monocular fit with the person mask
    and of the fit with depth (N x C each), BlazePose's own visibility / presence (N x 2), the
    truth (visible, object-hidden), whether BlazePose gave a mask, person and condition ids.

    The fits start where the pipeline starts them (``occlusion_bench.landmark_start``) and get
    the pipeline's mask and depth crop (``depth_bench.depth_crop``: ``Pipeline.depth_crops``)."""
    size = config.net.crop_size
    grid = size // config.net.feature_stride
    rows: dict[str, list] = {k: [] for k in ("mono", "depth", "extra", "visible", "by_object", "has_mask",
                                             "person", "condition")}
    for case in tqdm(cases, desc="fitting", file=sys.stderr):
        net = backend.run(case.image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
        regression = initial_body(net, [case.camera], size)
        found = source.landmarks(case)
        init, alternatives, _, _ = bench.landmark_start(body_fitter, case, found, regression)
        keypoints = source.keypoints_from(found)
        key = (case.condition, case.index)
        crop = depth_bench.depth_crop(depths[key], found, size, grid, source.crop_box(size)[0])
        common = dict(keypoints=keypoints, alternatives=alternatives, alternatives_mirrored=True)
        rows["mono"].append(fitter.fit(net, 0, case.camera, init, mask=crop.mask, **common).visibility_cues)
        rows["depth"].append(fitter.fit(net, 0, case.camera, init, depth=crop, **common).visibility_cues)
        rows["extra"].append(np.zeros((24, 2)) if found is None else
                             np.stack([map_confidence(found.visibility), map_confidence(found.presence)], -1))
        rows["visible"].append(case.visible)
        rows["by_object"].append(by_object[key])
        rows["has_mask"] += [found is not None] * 24
        rows["person"] += [case.index] * 24
        rows["condition"] += [case.condition] * 24
    return {k: np.concatenate(v) if k in ("mono", "depth", "extra", "visible", "by_object") else np.asarray(v)
            for k, v in rows.items()}


def cached_cues(args, make) -> dict[str, np.ndarray]:
    """``make()`` through the ``--cues-cache`` file (the fits take ~20 min per 100 people)."""
    key = json.dumps({"version": CUES_VERSION, "split": args.split, "people": args.people,
                      "limit": args.limit, "cues": VISIBILITY_CUES})
    path = Path(args.cues_cache) if args.cues_cache else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) == key:
                LOG.info("cues read from %s", path)
                return {k: data[k] for k in data.files if k != "key"}
        LOG.info("cue cache %s is for other settings; refitting", path)
    data = make()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, key=np.array(key), **data)
    return data


# -- 2. the models -------------------------------------------------------------------------------
def fit_logit(cues: np.ndarray, truth: np.ndarray, signs: tuple[float, ...]) -> tuple[float, ...]:
    """Maximum-likelihood (bias, w_1 .. w_k) of ``sigmoid(bias + sum w_i cue_i)`` for N x k
    cues, each weight's sign fixed by ``signs`` (0 allowed), small ridge (scipy L-BFGS-B)."""
    x = np.concatenate([np.ones((len(cues), 1)), cues * np.asarray(signs)], 1)  # N x (k+1), signed
    y = truth.astype(np.float64)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta
        p = 1.0 / (1.0 + np.exp(-z))
        grad = x.T @ (p - y) / len(y) + RIDGE * np.r_[0.0, theta[1:]]
        nll = np.logaddexp(0.0, z) - y * z
        return float(nll.mean() + 0.5 * RIDGE * np.sum(theta[1:] ** 2)), grad

    bounds = [(None, None)] + [(0.0, None)] * len(signs)
    theta = minimize(loss, np.zeros(len(signs) + 1), jac=True, method="L-BFGS-B", bounds=bounds).x
    # "+ 0.0" turns a weight at its bound (-0.0 after the sign) into 0.0.
    return (float(theta[0]),) + tuple(float(s * w) + 0.0 for s, w in zip(signs, theta[1:]))


def predict(cues: np.ndarray, logit: tuple[float, ...]) -> np.ndarray:
    return visibility_from_cues(torch.from_numpy(cues), logit).numpy()


def runtime_predict(data: dict, models: dict[str, tuple], depth: bool) -> np.ndarray:
    """What the fitter outputs with BlazePose's front end (``visibility.model_for``): the depth
    model on the cues of the fit with depth, else the image model on the monocular ones."""
    return predict(data["depth"], models["depth"]) if depth else predict(data["mono"], models["image"])


def before_predict(data: dict, base: tuple, depth: bool, gap_m: float = 0.3) -> np.ndarray:
    """The rule before this calibration (commit a50c840): the base model, times (with depth) one
    minus the larger of the depth-occluded share and a soft step at ``gap_m`` of the joint's
    depth gap."""
    p = predict(data["mono" if not depth else "depth"], base)
    if not depth:
        return p
    cue = {name: data["depth"][:, i] for i, name in enumerate(VISIBILITY_CUES)}
    step = 1.0 / (1.0 + np.exp(-(cue["depth_gap"] - gap_m) / 0.05)) * (cue["depth_gap"] > 0)
    return p * (1.0 - np.maximum(cue["depth_occluded"], step))


def fitted_models(data: dict, rows: np.ndarray) -> dict[str, tuple]:
    """The two models fitted on ``rows`` (bool N): image on the monocular cues, depth on the
    cues of the fit with depth (people BlazePose missed included, as at run time)."""
    truth = data["visible"]
    return {"image": fit_logit(data["mono"][rows, :IMAGE_CUES], truth[rows], CUE_SIGNS[:IMAGE_CUES]),
            "depth": fit_logit(data["depth"][rows], truth[rows], CUE_SIGNS)}


def held_out_predictions(data: dict) -> dict[str, np.ndarray]:
    """Two folds by person (even / odd index): fitted on one, predicted on the other, pooled."""
    out = {"mono": np.empty(len(data["visible"])), "depth": np.empty(len(data["visible"]))}
    for fold in (0, 1):
        test = data["person"] % 2 == fold
        models = fitted_models(data, ~test)
        for mode in out:
            out[mode][test] = runtime_predict(data, models, mode == "depth")[test]
    return out


# -- 3. the numbers ------------------------------------------------------------------------------
def quality(p: np.ndarray, visible: np.ndarray, by_object: np.ndarray) -> dict[str, float]:
    """Hidden-joint AUC, object-hidden AUC (object-hidden vs visible), Brier, recalls at 0.5."""
    hidden = ~visible
    keep = by_object | visible
    auc = lambda s, t: roc_auc(s, t) if t.any() and (~t).any() else float("nan")  # noqa: E731
    call = p >= 0.5
    return {"joints": int(len(p)), "visible_share": float(visible.mean()),
            "hidden_auc": auc(1.0 - p, hidden), "object_auc": auc(1.0 - p[keep], by_object[keep]),
            "object_joints": int(by_object.sum()), "brier": float(np.mean((p - visible) ** 2)),
            "visible_recall": float(call[visible].mean()) if visible.any() else float("nan"),
            "hidden_recall": float((~call[hidden]).mean()) if hidden.any() else float("nan")}


def per_condition(p: np.ndarray, data: dict) -> dict[str, dict]:
    out = {}
    for cond in ("all",) + CONDITIONS:
        sel = np.ones(len(p), bool) if cond == "all" else data["condition"] == cond
        out[cond] = quality(p[sel], data["visible"][sel], data["by_object"][sel])
    return out


def format_quality(results: dict[str, dict[str, dict]]) -> str:
    lines = ["| model | condition | joints | visible share | hidden-joint AUC | object-hidden AUC (joints) | "
             "Brier | visible recall | hidden recall |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, rows in results.items():
        for cond, q in rows.items():
            lines.append(f"| {name} | {cond} | {q['joints']} | {q['visible_share']:.2f} | {q['hidden_auc']:.3f} | "
                         f"{q['object_auc']:.3f} ({q['object_joints']}) | {q['brier']:.3f} | "
                         f"{q['visible_recall']:.3f} | {q['hidden_recall']:.3f} |")
    return "\n".join(lines)


def cue_separation(data: dict) -> str:
    """How well each cue alone ranks hidden below visible joints (AUC, signed as in the model),
    hidden-joint / object-hidden, per condition."""
    conds = ("all",) + CONDITIONS
    lines = ["| cue (fit) | " + " | ".join(conds) + " |", "|---|" + "---:|" * len(conds)]
    columns = [(f"{n} (mono)", data["mono"][:, i], s) for i, (n, s) in enumerate(zip(VISIBILITY_CUES, CUE_SIGNS))
               if i < IMAGE_CUES]
    columns += [(f"{n} (depth)", data["depth"][:, i], s) for i, (n, s) in enumerate(zip(VISIBILITY_CUES, CUE_SIGNS))
                if i >= BASE_CUES]
    columns += [(n, data["extra"][:, i], 1.0) for i, n in enumerate(EXTRA_CUES)]
    for name, values, sign in columns:
        cells = []
        for cond in conds:
            sel = np.ones(len(values), bool) if cond == "all" else data["condition"] == cond
            q = quality(1.0 / (1.0 + np.exp(-sign * values[sel])), data["visible"][sel], data["by_object"][sel])
            cells.append(f"{q['hidden_auc']:.3f} / {q['object_auc']:.3f}")
        lines.append(f"| {name}{' (negated)' if sign < 0 else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reliability_table(predictions: dict[str, np.ndarray], visible: np.ndarray) -> str:
    lines = ["| model | predicted | joints | mean predicted | observed visible |", "|---|---|---:|---:|---:|"]
    for name, p in predictions.items():
        for b in bench.reliability_bins(p, visible):
            lines.append(f"| {name} | {b['predicted']} | {b['people']} | {b['mean_predicted']:.3f} | "
                         f"{b['observed']:.3f} |")
    return "\n".join(lines)


def format_models(models: dict[str, tuple]) -> str:
    return "\n".join(f"  {CONFIG_FIELDS[k]}: [{', '.join(f'{v:.3f}' for v in m)}]" for k, m in models.items())


def write_doc(path: Path, args, body: str) -> None:
    command = (f".venv/bin/python benchmarks/visibility_calibration.py --split {args.split} --people {args.people}"
               + (f" --skip {args.skip}" if args.skip else "")
               + (f" --config {args.config}" if args.config else "")
               + (f" --cases-cache {args.cases_cache}" if args.cases_cache else "")
               + (f" --cues-cache {args.cues_cache}" if args.cues_cache else "") + f" --out {args.out}")
    path.write_text(f"# Joint visibility: {'calibration (validation people)' if args.split == 'val' else 'test report'}\n\n"
                    f"Generated by `benchmarks/visibility_calibration.py` (do not edit by hand; the method and "
                    f"the discussion are in docs/visibility_landmarks.md), {args.stamp}:\n\n```bash\n{command}\n```\n\n"
                    + body)


def report(data: dict, config, args) -> tuple[str, dict]:
    """The markdown body and a JSON summary for one split."""
    cfg = config.fit
    shipped = {k: tuple(getattr(cfg, f)) for k, f in CONFIG_FIELDS.items()}
    base = tuple(cfg.visibility_logit)
    people = len(np.unique(data["person"]))
    preds = {"before, monocular": before_predict(data, base, False),
             "before, depth": before_predict(data, base, True),
             "config, monocular": runtime_predict(data, shipped, False),
             "config, depth": runtime_predict(data, shipped, True)}
    fitted = None
    if args.split == "val":
        held = held_out_predictions(data)
        preds["fitted (held out), monocular"] = held["mono"]
        preds["fitted (held out), depth"] = held["depth"]
        fitted = fitted_models(data, np.ones(len(data["visible"]), bool))
    results = {name: per_condition(p, data) for name, p in preds.items()}
    reliability = reliability_table({k: v for k, v in preds.items() if not k.startswith("before")}, data["visible"])
    text = (f"{people} people ({'validation, seeds from ' + str(fit_tuning.VALIDATION_SEED_BASE) if args.split == 'val' else 'test, seeds from ' + str(bench.TEST_SEED_BASE)}"
            f"{f', people {args.skip}-{args.people - 1}' if args.skip else ''}) x {len(CONDITIONS)} conditions x 24 "
            f"joints; BlazePose found {int(data['has_mask'].sum() // 24)} of {len(data['has_mask']) // 24} crops. "
            "\"before\": the rule of commit a50c840 (the base model; with depth times one minus the larger "
            "depth cue); \"config\": the config's models (`fit.visibility_logit*`)"
            + ("; \"fitted (held out)\": fitted on the other half of the people (two folds by person)" if fitted else "")
            + ". AUCs rank hidden joints below visible ones; object-hidden: joints an object hides vs visible "
            "joints.\n\n## Quality\n\n" + format_quality(results)
            + "\n\n## Reliability (all conditions; predicted P(visible) in quarters)\n\n" + reliability
            + "\n\n## What each cue says on its own (hidden-joint AUC / object-hidden AUC)\n\n" + cue_separation(data))
    if fitted:
        text = (f"Fitted on all of them (config snippet):\n\n```yaml\nfit:\n{format_models(fitted)}\n```\n\n"
                f"The config's values at this run:\n\n```yaml\nfit:\n{format_models(shipped)}\n```\n\n" + text)
    summary = {"split": args.split, "people": people, "results": results,
               "fitted": {k: list(v) for k, v in fitted.items()} if fitted else None}
    return text + "\n", summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--limit", type=int, default=0, help="fit only the first N people (0: all)")
    parser.add_argument("--skip", type=int, default=0, help="report only people from this index on")
    parser.add_argument("--config", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases-cache", metavar="NPZ", help="crops cache (occlusion_bench / fit_tuning)")
    parser.add_argument("--cues-cache", metavar="NPZ", help="per-joint cues of every fit (this script)")
    parser.add_argument("--json-out", default=str(bench.ROOT / "out" / "visibility_calibration.json"))
    parser.add_argument("--out", default=None, help="write this markdown page")
    args = parser.parse_args(argv)
    if args.people < 2:
        parser.error("--people must be at least 2 (two folds)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = with_weights_config(load_config(args.config))
    config = dataclasses.replace(config, fit=dataclasses.replace(config.fit, budget_ms=1e9))
    t0 = time.perf_counter()

    def make() -> dict[str, np.ndarray]:
        body = BodyModel(resolve_path(config.body.model_path), num_betas=config.body.num_betas)
        backend, bank = load_backend(config)
        args.shard = "0/1"
        seeds = fit_tuning.validation_seeds(args.people) if args.split == "val" else contextlib.nullcontext()
        with seeds:
            cases = bench.cached_cases(args, config, body, bench.Regressor(backend, body, config.net.crop_size))
            if args.limit:
                cases = [c for c in cases if c.index < args.limit]
            depths, by_object = depth_bench.case_depths(cases, body, config, DepthSensor())
        fitter = Fitter.from_config(config, body, bank)
        source = bench.KeypointSource("blazepose", config)
        body_fitter = bench.LandmarkBodyFitter.from_config(body, config.landmark_fit, fitter.pose_prior)
        return collect(cases, fitter, backend, source, body_fitter, config, depths, by_object)

    data = cached_cues(args, make)
    if args.skip:
        keep = data["person"] >= args.skip
        data = {k: v[keep] for k, v in data.items()}
    text, summary = report(data, config, args)
    print(text)
    if args.out:
        write_doc(Path(args.out), args, text)
    summary["seconds"] = time.perf_counter() - t0
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
