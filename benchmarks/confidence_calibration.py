"""Person confidence calibrated on a *validation* range of held-out synthetic people.

``Person.confidence`` is P(MPJPE < 150 mm) of the published body (``fitting/confidence.py``):
``sigmoid(bias + w_flag * logit(pose flag) + w_conf * median landmark confidence + w_loss *
log(body-from-landmarks objective))``. This script fits those four numbers by maximum-likelihood
logistic regression (small ridge, scipy L-BFGS) on the validation seeds of ``fit_tuning.py`` (from
900000; the occlusion benchmark reports from 950000), all four conditions (clean, random
occluders, AdvOcc 40 / 80), with the pipeline's defaults: the start from BlazePose's landmarks
and the NBF fit from it, as ``occlusion_bench.py`` runs them. People without landmarks (BlazePose
found nobody, or too few confident landmarks) get one constant: their share under 150 mm.

Prints, held out (two folds split by person): Spearman of the confidence with -MPJPE, AUC for
"under 150 mm", Brier score, for the current config, the fitted model, the features' agreement
(``confidence_source: features``) and a constant; a reliability table; the values as a config
snippet and a final JSON line; writes a markdown section with --out.

    .venv/bin/python benchmarks/confidence_calibration.py --people 100 --cases-cache cache/bench/val100.npz
    .venv/bin/python benchmarks/confidence_calibration.py --people 100 --cases-cache cache/bench/test100.npz \
        --split test     # the shipped calibration ('current' row) on the benchmark's test people
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
from scipy.stats import spearmanr
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fit_tuning  # noqa: E402
import occlusion_bench as bench  # noqa: E402  (puts the repository root on sys.path)
from nbf_ros.body.model import BodyModel  # noqa: E402
from nbf_ros.config import load_config, resolve_path  # noqa: E402
from nbf_ros.evaluation.metrics import roc_auc  # noqa: E402
from nbf_ros.fitting.confidence import CONFIDENCE_MPJPE_MM, CUE_NAMES, person_confidence  # noqa: E402
from nbf_ros.fitting.fitter import Fitter  # noqa: E402
from nbf_ros.inference.backends import load_backend  # noqa: E402
from nbf_ros.inference.pipeline import initial_body, with_weights_config  # noqa: E402

LOG = logging.getLogger("confidence_calibration")
RIDGE = 1e-3


def collect(cases: list, config, body: BodyModel, backend, bank) -> dict[str, np.ndarray]:
    """Per case: cues (nan row without landmarks), MPJPE of the NBF fit, the features' confidence."""
    fitter = Fitter.from_config(config, body, bank)
    source = bench.KeypointSource("blazepose", config)
    body_fitter = bench.LandmarkBodyFitter.from_config(body, config.landmark_fit, fitter.pose_prior)
    cues, errors, agreement_conf, person, condition = [], [], [], [], []
    for case in tqdm(cases, desc="fitting", file=sys.stderr):
        net = backend.run(case.image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
        regression = initial_body(net, [case.camera], config.net.crop_size)
        found = source.landmarks(case)
        init, alternatives, _, case_cues = bench.landmark_start(body_fitter, case, found, regression)
        item = bench.evaluate_case(case, fitter, net, init, body, iterate=True,
                                   keypoints=source.keypoints_from(found), alternatives=alternatives)
        cues.append(np.full(len(CUE_NAMES), np.nan) if case_cues is None else case_cues)
        errors.append(item["mpjpe"])
        agreement_conf.append(item["confidence"])
        person.append(case.index)
        condition.append(case.condition)
    return {"cues": np.array(cues), "mpjpe": np.array(errors), "features": np.array(agreement_conf),
            "person": np.array(person), "condition": np.array(condition)}


def fit_logistic(cues: np.ndarray, good: np.ndarray) -> tuple[float, float, float, float]:
    """(bias, weights...) maximising the likelihood of ``good`` (ridge on the weights)."""
    mean, std = cues.mean(0), cues.std(0) + 1e-9
    x = (cues - mean) / std

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] + x @ theta[1:]
        p = 1.0 / (1.0 + np.exp(-z))
        nll = np.mean(np.logaddexp(0.0, -z) * good + np.logaddexp(0.0, z) * (1 - good))
        grad_z = (p - good) / len(good)
        grad = np.concatenate([[grad_z.sum()], x.T @ grad_z]) + 2 * RIDGE * np.r_[0.0, theta[1:]]
        return nll + RIDGE * float(theta[1:] @ theta[1:]), grad

    theta = minimize(loss, np.zeros(1 + cues.shape[1]), jac=True, method="L-BFGS-B").x
    weights = theta[1:] / std  # back to raw cue units
    return (float(theta[0] - weights @ mean), *(float(w) for w in weights))


def predict(data: dict, coefficients, fallback: float) -> np.ndarray:
    return np.array([person_confidence(None if np.isnan(c).any() else c, coefficients, fallback)
                     for c in data["cues"]])


def quality(conf: np.ndarray, mpjpe: np.ndarray) -> dict[str, float]:
    good = mpjpe < CONFIDENCE_MPJPE_MM
    return {"spearman": float(spearmanr(conf, -mpjpe).statistic), "auc": roc_auc(conf, good),
            "brier": float(np.mean((conf - good) ** 2)), "mean_conf": float(conf.mean()),
            "share_good": float(good.mean())}


def held_out(data: dict, current: tuple, current_fallback: float) -> tuple[dict, tuple, float]:
    """Two folds by person: fit on one, score on the other; returns (scores per model, the fit
    on all people, its fallback)."""
    good = data["mpjpe"] < CONFIDENCE_MPJPE_MM
    found = ~np.isnan(data["cues"]).any(1)
    fold = data["person"] % 2
    preds = {name: np.zeros(len(good)) for name in ("fitted", "current", "features", "constant")}
    for k in (0, 1):
        train, test = fold != k, fold == k
        coef = fit_logistic(data["cues"][train & found], good[train & found])
        fallback = float(good[train & ~found].mean()) if (train & ~found).any() else 0.3
        sub = {key: value[test] for key, value in data.items()}
        preds["fitted"][test] = predict(sub, coef, fallback)
        preds["constant"][test] = good[train].mean()
    preds["current"] = predict(data, current, current_fallback)
    preds["features"] = data["features"]
    scores = {name: {c: quality(p[data["condition"] == c], data["mpjpe"][data["condition"] == c])
                     for c in sorted(set(data["condition"]))} | {"all": quality(p, data["mpjpe"])}
              for name, p in preds.items()}
    coef = fit_logistic(data["cues"][found], good[found])
    fallback = float(good[~found].mean()) if (~found).any() else 0.3
    return scores, coef, fallback


def cue_spearman(data: dict) -> dict[str, float]:
    """Each cue's own rank correlation with -MPJPE, over the people that have cues."""
    found = ~np.isnan(data["cues"]).any(1)
    return {name: float(spearmanr(data["cues"][found, k], -data["mpjpe"][found]).statistic)
            for k, name in enumerate(CUE_NAMES)}


def reliability(conf: np.ndarray, mpjpe: np.ndarray) -> list[dict]:
    return bench.reliability_bins(conf, mpjpe < CONFIDENCE_MPJPE_MM)


def format_table(scores: dict) -> str:
    lines = ["| model | condition | Spearman (conf, -MPJPE) | AUC (< 150 mm) | Brier | mean conf | share < 150 mm |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, rows in scores.items():
        for cond, q in rows.items():
            lines.append(f"| {name} | {cond} | {q['spearman']:.3f} | {q['auc']:.3f} | {q['brier']:.3f} | "
                         f"{q['mean_conf']:.2f} | {q['share_good']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--config", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases-cache", metavar="NPZ", help="validation crops cache (see fit_tuning.py)")
    parser.add_argument("--split", choices=("validation", "test"), default="validation",
                        help="test: the occlusion benchmark's people (from 950000), to report the "
                             "shipped calibration ('current'); never fit on them")
    parser.add_argument("--json-out", default=str(bench.ROOT / "out" / "confidence_calibration.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    config = with_weights_config(load_config(args.config))
    config = dataclasses.replace(config, fit=dataclasses.replace(config.fit, budget_ms=1e9))
    body = BodyModel(resolve_path(config.body.model_path), num_betas=config.body.num_betas)
    backend, bank = load_backend(config)
    t0 = time.perf_counter()
    args.shard = "0/1"
    regressor = bench.Regressor(backend, body, config.net.crop_size)
    if args.split == "test":
        cases = bench.cached_cases(args, config, body, regressor)
    else:
        with fit_tuning.validation_seeds(args.people):
            cases = bench.cached_cases(args, config, body, regressor)
    data = collect(cases, config, body, backend, bank)
    scores, coef, fallback = held_out(data, tuple(config.fit.person_confidence),
                                      config.fit.confidence_without_landmarks)
    print(format_table(scores))
    print("\neach cue alone, Spearman with -MPJPE (people with landmarks): " + ", ".join(
        f"{name} {rho:+.3f}" for name, rho in cue_spearman(data).items()))
    # On the validation people: the model just fitted; on the test people: the shipped one.
    if args.split == "test":
        shown = predict(data, tuple(config.fit.person_confidence), config.fit.confidence_without_landmarks)
        print("\nreliability (the config's calibration, on the test people):")
    else:
        shown = predict(data, coef, fallback)
        print("\nreliability (fit on all validation people, scored on them):")
    for row in reliability(shown, data["mpjpe"]):
        print(f"  predicted {row['predicted']}: {row['people']} people, mean {row['mean_predicted']:.2f}, "
              f"observed {row['observed']:.2f}")
    print(f"\nfit:\n  person_confidence: [{', '.join(f'{v:.3f}' for v in coef)}]\n"
          f"  confidence_without_landmarks: {fallback:.3f}")
    found = ~np.isnan(data["cues"]).any(1)
    summary = {"benchmark": "confidence_calibration", "split": args.split, "people": args.people, "cases": len(cases),
               "with_landmarks": int(found.sum()), "cues": list(CUE_NAMES), "person_confidence": list(coef),
               "confidence_without_landmarks": fallback, "seconds": time.perf_counter() - t0,
               "held_out": {name: rows["all"] for name, rows in scores.items()}, "cue_spearman": cue_spearman(data),
               "reliability": reliability(shown, data["mpjpe"])}
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps({**summary, "per_condition": scores}, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
