"""Fitting-settings sweep on a *validation* range of held-out synthetic people.

The occlusion benchmark's crops, conditions and metrics (benchmarks/occlusion_bench.py), but on
test-split seeds from 900000: the reported benchmark starts at 950000, so settings chosen here
are not tuned on the people they are reported on. Each variant is the pipeline config with some
``fit.`` / ``nbv.`` fields changed; every variant gets the same iteration budget and no
wall-clock cut-off (as in the benchmark). The regression-only baseline is always included.
Prints a table (condition x variant: MPJPE, PA-MPJPE, visible-joint MPJPE, iterations, ms per
person) and a final JSON line; writes the per-person rows to --json-out. How the shipped defaults
were chosen: docs/fit_tuning.md.

    .venv/bin/python benchmarks/fit_tuning.py --people 8
    .venv/bin/python benchmarks/fit_tuning.py --people 8 --config my_pipeline.yaml \\
        --variant "lr.01" fit.lr=0.01 --variant "no flip" fit.flip_hypothesis=false

Without --variant the built-in set below (DEFAULT_VARIANTS) is run.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import yaml
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

import occlusion_bench as bench  # noqa: E402  (puts the repository root on sys.path)
from nbf_ros.body.model import BodyModel  # noqa: E402
from nbf_ros.config import ConfigError, NbfConfig, apply_overrides, load_config, resolve_path  # noqa: E402
from nbf_ros.fitting.fitter import Fitter  # noqa: E402
from nbf_ros.inference.backends import load_backend  # noqa: E402
from nbf_ros.inference.pipeline import initial_body, with_weights_config  # noqa: E402

LOG = logging.getLogger("fit_tuning")
# Test-split seeds of the validation range; must stay below the benchmark's first seed.
VALIDATION_SEED_BASE = 900_000
CONDITIONS = ("clean", "occluders", "advocc40", "advocc80")
# Config sections a variant may change (the network's own settings are fixed by its weights).
SECTIONS = ("fit", "nbv")
REGRESSION = "regression"
# The sweep that chose the shipped defaults (lr 0.005, pose prior 0.02, keypoints 0.1); names
# kept from the first version of this script. "nbf lr.01 prior.002 kp.3" = the earlier defaults.
DEFAULT_VARIANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("nbf (defaults)", ()),
    ("kp-fit", ("fit.feature_weight=0", "fit.keypoint_weight=1")),
    ("nbf lr.01 prior.002 kp.3", ("fit.lr=0.01", "fit.pose_prior_weight=0.002", "fit.keypoint_weight=0.3")),
    ("nbf prior.02 lr.01", ("fit.lr=0.01",)),
    ("nbf prior.05", ("fit.pose_prior_weight=0.05",)),
    ("nbf kp.3", ("fit.keypoint_weight=0.3",)),
    ("nbf no flip", ("fit.flip_hypothesis=false",)),
)


@dataclass(frozen=True)
class Variant:
    """One row group of the table: a name, the changed fields, and whether the fit iterates."""

    name: str
    overrides: tuple[tuple[str, str, Any], ...]  # (section, field, value)
    iterate: bool = True


def parse_override(text: str) -> tuple[str, str, Any]:
    """``"fit.lr=0.01"`` -> ``("fit", "lr", 0.01)``; the value is read as YAML (so ``false``,
    ``0.01`` and ``sphere`` become bool, float and str; note YAML reads ``1e-3`` as a string,
    write ``1.0e-3``)."""
    key, sep, raw = text.partition("=")
    section, dot, name = key.partition(".")
    if not sep or not dot or section not in SECTIONS or not name:
        raise SystemExit(f"--variant: expected SECTION.KEY=VALUE with SECTION in {list(SECTIONS)}, "
                         f"got {text!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SystemExit(f"--variant: {text!r}: value is not valid YAML ({exc})") from None
    return section, name, value


def build_variants(specs: list[list[str]] | None) -> list[Variant]:
    """The regression baseline plus the given variants (``[NAME, SECTION.KEY=VALUE, ...]`` each),
    or plus DEFAULT_VARIANTS when none are given."""
    given = [(spec[0], tuple(spec[1:])) for spec in specs] if specs else list(DEFAULT_VARIANTS)
    variants = [Variant(REGRESSION, (), iterate=False)]
    for name, overrides in given:
        if name in {v.name for v in variants}:
            raise SystemExit(f"--variant: name {name!r} is used twice (or is the reserved {REGRESSION!r})")
        if "=" in name:
            raise SystemExit(f"--variant: the first value is the variant's name, got {name!r}")
        variants.append(Variant(name, tuple(parse_override(o) for o in overrides)))
    return variants


def variant_configs(config: NbfConfig, variants: list[Variant]) -> dict[str, NbfConfig]:
    """Each variant's config on the benchmark's base (no wall-clock budget); checked against the
    weights' NBV settings before the slow test-set build."""
    base = bench.method_configs(config)["nbf"]
    configs = {}
    for variant in variants:
        try:
            configs[variant.name] = with_weights_config(apply_overrides(
                base, {f"{section}.{name}": value for section, name, value in variant.overrides}))
        except ConfigError as exc:
            raise SystemExit(f"--variant {variant.name!r}: {exc}") from None
    return configs


@contextlib.contextmanager
def validation_seeds(people: int) -> Iterator[None]:
    """Let ``bench.build_cases`` draw from the validation range, refusing any overlap with the
    benchmark's people (build_cases reads the module's TEST_SEED_BASE)."""
    benchmark_base = bench.TEST_SEED_BASE
    if VALIDATION_SEED_BASE + people > benchmark_base:
        raise SystemExit(f"--people {people}: seeds would reach the benchmark's range (from {benchmark_base})")
    bench.TEST_SEED_BASE = VALIDATION_SEED_BASE
    try:
        yield
    finally:
        bench.TEST_SEED_BASE = benchmark_base


def run_variants(cases: list, variants: list[Variant], fitters: dict[str, Fitter], backend,
                 body: BodyModel, crop_size: int) -> list[dict]:
    """Per-person rows: every variant fitted from the same network output of every crop.

    Variants with ``fit.keypoint_source=blazepose`` get BlazePose's keypoints of the crop (full,
    ONNX, in-process; run once per crop, as in ``occlusion_bench.py``); the others the heatmaps.
    With ``fit.init_source=landmarks`` (the shipped default) every fitted variant starts, as in
    the pipeline and ``occlusion_bench.py``, from our body fitted to BlazePose's landmarks (and
    its turned reading), or from the regression head where BlazePose found nobody; the
    regression row is always the head's own body.
    """
    external = {v.name for v in variants
                if fitters[v.name].cfg.keypoint_source == "blazepose" and v.iterate}
    first = next(iter(fitters.values()))
    from_landmarks = first.config.fit.init_source == "landmarks"
    source = bench.KeypointSource("blazepose" if external or from_landmarks else "network", first.config)
    body_fitter = (bench.LandmarkBodyFitter.from_config(body, first.config.landmark_fit, first.pose_prior)
                   if from_landmarks else None)
    items = []
    for case in tqdm(cases, desc="fitting", file=sys.stderr):
        pixels = case.image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        net = backend.run(pixels)
        regression = initial_body(net, [case.camera], crop_size)
        found = source.landmarks(case)
        keypoints = source.keypoints_from(found) if source.landmarker is not None else None
        init, alternatives, _, _ = bench.landmark_start(body_fitter, case, found, regression)
        for variant in variants:
            item = bench.evaluate_case(case, fitters[variant.name], net,
                                       init if variant.iterate else regression, body, iterate=variant.iterate,
                                       keypoints=keypoints if variant.name in external else None,
                                       alternatives=alternatives if variant.iterate else ())
            items.append({"condition": case.condition, "method": variant.name, "person": case.index, **item})
    if external:
        LOG.info("BlazePose found nobody in %d of %d crops (heatmaps used there)", source.misses, source.calls)
    return items


def ordered_table(items: list[dict], variants: list[Variant]) -> list[dict]:
    """The benchmark's summary rows, by condition then in the variants' order."""
    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for it in items:
        rows[(it["condition"], it["method"])].append(it)
    rank = {v.name: i for i, v in enumerate(variants)}
    return sorted(bench.summarise(rows), key=lambda r: (CONDITIONS.index(r["condition"]), rank[r["method"]]))


def format_table(table: list[dict]) -> str:
    width = max((len(r["method"]) for r in table), default=len("variant"))
    lines = [f"{'condition':10s} {'variant':{width}s} {'people':>6s} {'MPJPE':>7s} {'PA-MPJPE':>8s} "
             f"{'MPJPE vis':>9s} {'iters':>6s} {'ms/person':>9s}"]
    for r in table:
        lines.append(f"{r['condition']:10s} {r['method']:{width}s} {r['people']:6d} {r['mpjpe']:7.1f} "
                     f"{r['pa_mpjpe']:8.1f} {r['mpjpe_vis']:9.1f} {r['iters']:6.1f} {r['ms']:9.0f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=8, help="validation people (seeds from %d)"
                        % VALIDATION_SEED_BASE)
    parser.add_argument("--config", default=None, help="pipeline YAML (NbfConfig); default: built-in")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: robust on a shared 2-core CPU, docs/performance.md)")
    parser.add_argument("--variant", action="append", nargs="+", metavar=("NAME", "SECTION.KEY=VALUE"),
                        help="a named variant changing fit./nbv. fields (values read as YAML); "
                             "repeatable; default: the built-in sweep")
    parser.add_argument("--json-out", default=str(bench.ROOT / "out" / "fit_tuning.json"))
    parser.add_argument("--shard", default="0/1",
                        help="K/N: run people i with i %% N == K only (one shard per core)")
    parser.add_argument("--cases-cache", metavar="NPZ",
                        help="keep the validation crops in this file and reuse them when they match")
    parser.add_argument("--limit", type=int, default=0,
                        help="fit only people with index < N of the (cached) set (0: all): a quick "
                             "sweep on part of a cache built for more people")
    args = parser.parse_args(argv)
    if args.people < 1:
        parser.error("--people must be at least 1")
    bench.parse_shard(args.shard)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    variants = build_variants(args.variant)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = with_weights_config(load_config(args.config))
    configs = variant_configs(config, variants)
    body = BodyModel(resolve_path(config.body.model_path), num_betas=config.body.num_betas)
    backend, bank = load_backend(config)
    t0 = time.perf_counter()
    with validation_seeds(args.people):
        cases = bench.cached_cases(args, config, body, bench.Regressor(backend, body, config.net.crop_size))
    build_s = time.perf_counter() - t0
    if args.limit > 0:
        cases = [c for c in cases if c.index < args.limit]
    fitters = {name: Fitter.from_config(cfg, body, bank) for name, cfg in configs.items()}
    items = run_variants(cases, variants, fitters, backend, body, config.net.crop_size)
    table = ordered_table(items, variants)
    print(format_table(table))
    summary = {"people": args.people, "shard": args.shard, "seed_base": VALIDATION_SEED_BASE,
               "threads": args.threads, "test_set_build_s": build_s,
               "variants": {v.name: {"iterate": v.iterate, "overrides": {f"{s}.{k}": val for s, k, val in v.overrides}}
                            for v in variants},
               "config": {"fit": dataclasses.asdict(config.fit), "nbv": dataclasses.asdict(config.nbv)},
               "table": table, "items": [bench.jsonable(it) for it in items]}
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(summary, indent=1, default=float))
    LOG.info("wrote %s", args.json_out)
    print(json.dumps({"benchmark": "fit_tuning", "people": args.people, "shard": args.shard,
                      **{f"{r['condition']}/{r['method']}/mpjpe": round(r["mpjpe"], 1) for r in table}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
