"""Train the NBV feature head on BlazePose's frozen trunk (docs/features.md), resumable::

    python -m nbf_ros.apps.train_head --config config/feature_head.yaml --threads 1 \
        [--set train.steps=4000 --set feature_head.layers=3 ...]

Needs the trunk caches of ``feature_head.train_cache`` / ``val_cache`` (``nbf_ros.apps.cache_trunk``).
``--set KEY=VALUE`` overrides any config key (YAML-typed value), checked like the file.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional

import torch
import yaml

from nbf_ros.config import apply_overrides, load_config
from nbf_ros.errors import NbfError
from nbf_ros.training.head_train import run_head


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """['a.b=1', 'c=x'] -> {'a.b': 1, 'c': 'x'} (values parsed as YAML scalars)."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise NbfError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="train the feature head on cached trunk taps")
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    try:
        cfg = apply_overrides(load_config(args.config), parse_overrides(args.set))
        out = run_head(cfg)
    except NbfError as exc:
        print(f"train_head: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("nbf_ros.train_head").info("weights in %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
