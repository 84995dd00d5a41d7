#!/usr/bin/env python3
"""Which BlazePose-trunk taps to build the feature head on: short probes, same data and seed.

Each tap set gets the same small head (default 1 x 1: ``--layers 0``), the same first
``--crops`` cached training crops, ``--steps`` steps of the kernel contrast, and is measured on
the validation cache (feature metrics as ``benchmarks/train_eval.py``). docs/features.md.

    python benchmarks/trunk_tap_probe.py --config config/feature_head.yaml --crops 2500 \
        --steps 80 --sets "dec4;enc8;enc8,dec8;enc8,dec8,dec4,enc16,dec16,enc32" --json out/tap_probe.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from nbf_ros.config import load_config
from nbf_ros.nets.trunk import parse_taps
from nbf_ros.training.context import build_context
from nbf_ros.training.head_train import (HeadTrainer, build_head, cache_batches, train_batches,
                                         _validate)
from nbf_ros.training.trunk_cache import open_cache

KEYS = ("kernel_top1", "kernel_top1_within_10cm", "part_top1", "bin_acc_given_kernel",
        "background_acc")


def probe(cfg, taps: str, crops: int, steps: int, ctx) -> dict:
    """Train one head for ``steps`` on the first ``crops`` cached crops; validation metrics."""
    cfg = replace(cfg, feature_head=replace(cfg.feature_head, taps=taps),
                  train=replace(cfg.train, steps=steps, warmup_steps=max(1, steps // 10)))
    cache = open_cache(cfg.feature_head.train_cache)
    cache.count = min(cache.count, crops)
    names = parse_taps(taps)
    torch.manual_seed(cfg.train.seed)
    trainer = HeadTrainer(cfg, ctx, build_head(cfg, cache))
    batches = train_batches([cache], names, cfg.train.batch_size, 0, cfg.train.seed)
    start = time.perf_counter()
    for step in range(steps):
        trainer.train_step(next(batches), step)
    seconds = time.perf_counter() - start
    val = cache_batches(open_cache(cfg.feature_head.val_cache), names, 64)
    metrics = _validate(trainer, ctx, val)
    return {"taps": taps, "train_s": round(seconds, 1), **{k: metrics[k] for k in KEYS}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="config/feature_head.yaml")
    parser.add_argument("--sets", required=True, help="tap sets separated by ';'")
    parser.add_argument("--crops", type=int, default=2500)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--layers", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    cfg = replace(cfg, feature_head=replace(cfg.feature_head, layers=args.layers,
                                            hidden_channels=args.hidden))
    ctx, _, _ = build_context(cfg, torch.device("cpu"))
    rows = []
    for taps in args.sets.split(";"):
        rows.append(probe(cfg, taps, args.crops, args.steps, ctx))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
