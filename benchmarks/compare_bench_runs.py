#!/usr/bin/env python3
"""Paired comparison of two occlusion_bench runs on the same people (docs/features.md).

For each condition: mean MPJPE / PA-MPJPE of one method in both runs, the mean per-person
difference (B - A) and its standard error, and how many people got better. Same people, same
start bodies: the difference is the feature source (or whatever else differs between the runs).

    python benchmarks/compare_bench_runs.py out/bench_features_unet100.json \
        out/bench_features_blazepose100.json --method nbf
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def per_person(path: Path, method: str, metric: str) -> dict[tuple[str, int], float]:
    """(condition, person) -> metric of ``method`` in one run's JSON items."""
    items = json.loads(path.read_text())["items"]
    return {(it["condition"], it["person"]): float(it[metric]) for it in items if it["method"] == method}


def compare(a: dict, b: dict) -> list[dict]:
    """Rows per condition over the people both runs have."""
    rows = []
    for cond in sorted({c for c, _ in a}):
        keys = sorted(k for k in a if k[0] == cond and k in b)
        diffs = [b[k] - a[k] for k in keys]
        n = len(diffs)
        mean = sum(diffs) / n
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / max(n - 1, 1))
        rows.append({"condition": cond, "people": n, "a": sum(a[k] for k in keys) / n,
                     "b": sum(b[k] for k in keys) / n, "diff": mean, "se": sd / math.sqrt(n),
                     "b_better": sum(d < 0 for d in diffs)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--method", default="nbf")
    args = parser.parse_args(argv)
    print(f"| condition | metric | people | A | B | B - A (paired, +- s.e.) | B better |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for metric in ("mpjpe", "pa_mpjpe"):
        for r in compare(per_person(args.a, args.method, metric), per_person(args.b, args.method, metric)):
            print(f"| {r['condition']} | {metric} | {r['people']} | {r['a']:.1f} | {r['b']:.1f} | "
                  f"{r['diff']:+.1f} +- {r['se']:.1f} | {r['b_better']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
