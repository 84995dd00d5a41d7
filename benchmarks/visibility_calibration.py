"""Per-joint visibility calibration on a *validation* range of held-out synthetic people.

The fitter's joint visibility is ``sigmoid(bias + w_self * self_visible + w_occ * occluded +
w_kp * keypoint_confidence)`` (``nbf_ros.fitting.fitter.visibility_from_cues``). This script fits
those four numbers to the generator's exact joint visibility (visible = visibility >= 0.5 and not
under the adversarial patch, as in the occlusion benchmark), on the validation seeds of
``fit_tuning.py`` (from 900000; the benchmark reports from 950000), for one pipeline config
(weights + keypoint source). The signs are fixed (w_self >= 0, w_occ <= 0, w_kp >= 0) so that
more evidence of being seen never lowers the visibility; the fit is a maximum-likelihood
logistic regression with a small ridge (scipy L-BFGS-B).

Prints held-out numbers (two folds split by person) for the config's current model, the fitted
one and the constant "always visible", the fitted values as a config snippet, and a final JSON
line; writes docs/visibility.md (with --out).

    .venv/bin/python benchmarks/visibility_calibration.py --people 48 --cases-cache cache/bench/val48.npz
    .venv/bin/python benchmarks/visibility_calibration.py --people 48 --config config/hog.yaml ...
(the default config: BlazePose's keypoints, docs/visibility_mediapipe.md; config/hog.yaml: the
network's heatmaps, docs/visibility.md)
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
from scipy.optimize import minimize
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fit_tuning  # noqa: E402
import occlusion_bench as bench  # noqa: E402  (puts the repository root on sys.path)
from nbf_ros.body.model import BodyModel  # noqa: E402
from nbf_ros.config import load_config, resolve_path  # noqa: E402
from nbf_ros.evaluation.metrics import roc_auc  # noqa: E402
from nbf_ros.fitting.fitter import Fitter, visibility_from_cues  # noqa: E402
from nbf_ros.inference.backends import load_backend  # noqa: E402
from nbf_ros.inference.pipeline import initial_body, with_weights_config  # noqa: E402

LOG = logging.getLogger("visibility_calibration")
CUES = ("self_visible", "occluded", "keypoint_confidence")
# Sign of each cue's weight: being seen, occluded, detected in 2D.
SIGNS = (1.0, -1.0, 1.0)
RIDGE = 1e-3


def collect(cases: list, fitter: Fitter, backend, body: BodyModel, crop_size: int,
            source: bench.KeypointSource, body_fitter=None, use_keypoints: bool = True) -> dict[str, np.ndarray]:
    """Per joint of every case: its cues (N x 3), the truth (N,), person and condition ids.

    The fits start where the pipeline starts them (``occlusion_bench.landmark_start``: our body
    fitted to BlazePose's landmarks when ``body_fitter`` is given, else the regression head)."""
    cues, truth, person, condition = [], [], [], []
    for case in tqdm(cases, desc="fitting", file=sys.stderr):
        pixels = case.image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        net = backend.run(pixels)
        regression = initial_body(net, [case.camera], crop_size)
        found = source.landmarks(case)
        init, alternatives, _, _ = bench.landmark_start(body_fitter, case, found, regression)
        keypoints = source.keypoints_from(found) if use_keypoints else None
        result = fitter.fit(net, 0, case.camera, init, keypoints=keypoints, alternatives=alternatives)
        cues.append(result.visibility_cues)
        truth.append(case.visible)
        person += [case.index] * len(case.visible)
        condition += [case.condition] * len(case.visible)
    return {"cues": np.concatenate(cues), "truth": np.concatenate(truth).astype(bool),
            "person": np.asarray(person), "condition": np.asarray(condition)}


def fit_logit(cues: np.ndarray, truth: np.ndarray) -> tuple[float, float, float, float]:
    """Maximum-likelihood (bias, w_self, w_occ, w_kp) with the signs of SIGNS and a small ridge."""
    x = np.concatenate([np.ones((len(cues), 1)), cues * np.asarray(SIGNS)], 1)  # N x 4, signed
    y = truth.astype(np.float64)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta
        nll = np.logaddexp(0.0, z) - y * z  # -log likelihood per joint
        p = 1.0 / (1.0 + np.exp(-z))
        grad = x.T @ (p - y) / len(y) + RIDGE * np.r_[0.0, theta[1:]]
        return float(nll.mean() + 0.5 * RIDGE * np.sum(theta[1:] ** 2)), grad

    bounds = [(None, None)] + [(0.0, None)] * len(CUES)  # signed weights >= 0
    theta = minimize(loss, np.zeros(4), jac=True, method="L-BFGS-B", bounds=bounds).x
    # "+ 0.0" turns a weight at its bound (-0.0 after the sign) into 0.0.
    return (float(theta[0]),) + tuple(float(s * w) + 0.0 for s, w in zip(SIGNS, theta[1:]))


def predict(cues: np.ndarray, logit: tuple[float, float, float, float]) -> np.ndarray:
    return visibility_from_cues(torch.from_numpy(cues), logit).numpy()


def quality(p: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, recall of visible and of hidden joints, AUC, Brier score, mean prediction."""
    call = p >= threshold
    hidden = ~truth
    auc = float("nan")
    if truth.any() and hidden.any() and np.ptp(p) > 0:
        auc = roc_auc(p, truth)
    return {"accuracy": float((call == truth).mean()),
            "visible_recall": float(call[truth].mean()) if truth.any() else float("nan"),
            "hidden_recall": float((~call[hidden]).mean()) if hidden.any() else float("nan"),
            "auc": auc, "brier": float(np.mean((p - truth) ** 2)), "mean": float(p.mean()),
            "joints": int(len(p)), "visible_share": float(truth.mean())}


def held_out(data: dict[str, np.ndarray], current: tuple) -> dict[str, dict]:
    """Two folds by person (even / odd index): fit on one, score on the other, pooled."""
    preds = {"current": np.empty(len(data["truth"])), "fitted": np.empty(len(data["truth"]))}
    for fold in (0, 1):
        test = data["person"] % 2 == fold
        logit = fit_logit(data["cues"][~test], data["truth"][~test])
        preds["fitted"][test] = predict(data["cues"][test], logit)
    preds["current"] = predict(data["cues"], current)
    preds["always visible"] = np.ones(len(data["truth"]))
    out = {}
    for name, p in preds.items():
        out[name] = {"all": quality(p, data["truth"])}
        for cond in fit_tuning.CONDITIONS:
            mask = data["condition"] == cond
            out[name][cond] = quality(p[mask], data["truth"][mask])
    return out


def format_table(results: dict[str, dict]) -> str:
    lines = ["| model | condition | joints | visible share | accuracy | visible recall | hidden recall | AUC | Brier |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, rows in results.items():
        for cond, q in rows.items():
            lines.append(f"| {name} | {cond} | {q['joints']} | {q['visible_share']:.2f} | {q['accuracy']:.3f} | "
                         f"{q['visible_recall']:.3f} | {q['hidden_recall']:.3f} | {q['auc']:.3f} | {q['brier']:.3f} |")
    return "\n".join(lines)


def cue_separation(data: dict[str, np.ndarray]) -> str:
    """How well each cue alone ranks visible above hidden joints (AUC), per condition."""
    lines = ["| cue | " + " | ".join(("all",) + fit_tuning.CONDITIONS) + " |",
             "|---|" + "---:|" * (1 + len(fit_tuning.CONDITIONS))]
    for i, (name, sign) in enumerate(zip(CUES, SIGNS)):
        cells = []
        for cond in ("all",) + fit_tuning.CONDITIONS:
            mask = np.ones_like(data["truth"]) if cond == "all" else data["condition"] == cond
            cells.append(f"{quality(sign * data['cues'][mask, i], data['truth'][mask])['auc']:.3f}")
        lines.append(f"| {name}{' (negated)' if sign < 0 else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_doc(path: Path, args, results: dict, logit: tuple, current: tuple, separation: str,
              source: str) -> None:
    command = (f".venv/bin/python benchmarks/visibility_calibration.py --people {args.people}"
               + (f" --config {args.config}" if args.config else "")
               + (f" --cases-cache {args.cases_cache}" if args.cases_cache else "")
               + f" --out {args.out}")
    values = ", ".join(f"{v:.3f}" for v in logit)
    path.write_text(f"""# Joint visibility calibration

Generated by `benchmarks/visibility_calibration.py` (do not edit by hand):

```bash
{command}
```

Joint visibility is `sigmoid(bias + w_self * self_visible + w_occ * occluded + w_kp *
keypoint_confidence)` (`nbf_ros.fitting.fitter.visibility_from_cues`). Cues per joint, after the
fit: the share of its 8 nearest kernels that pass a soft z-test against the rendered surface
(normalised by `fit.facing_fraction`), the share of those the occlusion map explains away, and the
2D keypoint confidence ({source}). Truth: the generator's joint visibility >= 0.5 and not under the
adversarial patch. {args.people} validation people (test split, seeds from
{fit_tuning.VALIDATION_SEED_BASE}; the occlusion benchmark reports from {bench.TEST_SEED_BASE}) x 4
conditions x 24 joints. Signs fixed (w_self >= 0, w_occ <= 0, w_kp >= 0), ridge {RIDGE}.

Fitted on all of them: `fit.visibility_logit: [{values}]`
(the config's values before this run: `[{", ".join(f"{v:.3f}" for v in current)}]`).

## Held out (two folds split by person)

"fitted": fitted on the other fold; "current": the config's values; "always visible": the
constant a visibility output must beat. A joint is called visible at visibility >= 0.5.

{format_table(results)}

## What each cue says on its own (AUC of visible vs hidden joints; 0.5 = nothing)

{separation}
""")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=48)
    parser.add_argument("--config", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases-cache", metavar="NPZ", help="validation crops cache (see fit_tuning.py)")
    parser.add_argument("--json-out", default=str(bench.ROOT / "out" / "visibility_calibration.json"))
    parser.add_argument("--out", default=None, help="write this markdown page (e.g. docs/visibility.md)")
    args = parser.parse_args(argv)
    if args.people < 2:
        parser.error("--people must be at least 2 (two folds)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = with_weights_config(load_config(args.config))
    config = dataclasses.replace(config, fit=dataclasses.replace(config.fit, budget_ms=1e9))
    body = BodyModel(resolve_path(config.body.model_path), num_betas=config.body.num_betas)
    backend, bank = load_backend(config)
    t0 = time.perf_counter()
    args.shard = "0/1"
    with fit_tuning.validation_seeds(args.people):
        cases = bench.cached_cases(args, config, body, bench.Regressor(backend, body, config.net.crop_size))
    from_landmarks = config.fit.init_source == "landmarks"
    source = bench.KeypointSource("blazepose" if from_landmarks else config.fit.keypoint_source, config)
    fitter = Fitter.from_config(config, body, bank)
    body_fitter = (bench.LandmarkBodyFitter.from_config(body, config.landmark_fit, fitter.pose_prior)
                   if from_landmarks else None)
    data = collect(cases, fitter, backend, body, config.net.crop_size, source,
                   body_fitter, use_keypoints=config.fit.keypoint_source == "blazepose")
    current = tuple(config.fit.visibility_logit)
    results = held_out(data, current)
    logit = fit_logit(data["cues"], data["truth"])
    separation = cue_separation(data)
    print(format_table(results))
    print(separation)
    print(f"fit:\n  visibility_logit: [{', '.join(f'{v:.3f}' for v in logit)}]")
    kind = ("BlazePose full (ONNX, in-process) visibility x presence, where it found the person; else "
            "the heatmaps" if config.fit.keypoint_source == "blazepose" else "the network's heatmap peak")
    if args.out:
        write_doc(Path(args.out), args, results, logit, current, separation, kind)
    summary = {"benchmark": "visibility_calibration", "people": args.people, "config": args.config or "",
               "keypoint_source": config.fit.keypoint_source, "visibility_logit": list(logit),
               "keypoint_misses": source.misses, "seconds": time.perf_counter() - t0,
               "held_out": {name: rows["all"] for name, rows in results.items()}}
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps({**summary, "per_condition": results}, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
