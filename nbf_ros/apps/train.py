"""``nbf-ros train`` / ``python -m nbf_ros.apps.train``: train NBFNet and its memory bank.

    nbf-ros train --config config/train_default.yaml [--out-dir DIR] [--steps N] [--threads T]
    nbf-ros train --resume OUT_DIR [--steps N]
    torchrun --nproc_per_node=4 -m nbf_ros.apps.train --config my_gpu.yaml   # DDP, one rank per GPU

The run itself (output directory, resumption, DDP) is ``nbf_ros.training.train``; docs/training.md.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

import torch

from nbf_ros.config import NbfConfig, apply_overrides, load_config
from nbf_ros.errors import NbfError
from nbf_ros.training.train import Distributed, run


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nbf-ros train", description="Train NBFNet and its memory bank "
                                     "(resumable; see docs/training.md).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML file (NbfConfig; the train: section)")
    source.add_argument("--resume", metavar="OUT_DIR",
                        help="continue the run in OUT_DIR with its saved config.yaml (immune to "
                             "later changes of defaults); --steps/--time-limit-min may extend it")
    parser.add_argument("--out-dir", default=None, help="override train.out_dir")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps")
    parser.add_argument("--time-limit-min", type=float, default=None,
                        help="override train.time_limit_min (0 = none)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    return parser.parse_args(argv)


def _apply_overrides(cfg: NbfConfig, args: argparse.Namespace) -> NbfConfig:
    """The command line's train.* options over the config file (checked like the file)."""
    given = {"train.out_dir": args.out_dir, "train.steps": args.steps,
             "train.time_limit_min": args.time_limit_min}
    return apply_overrides(cfg, {key: value for key, value in given.items() if value is not None})


def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry: returns a process exit code (0 = trained, 2 = configuration/data error)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        if args.resume:
            args.out_dir = args.resume
            cfg = _apply_overrides(load_config(Path(args.resume) / "config.yaml"), args)
        else:
            cfg = _apply_overrides(load_config(args.config), args)
    except NbfError as exc:
        print(f"nbf-ros train: {exc}", file=sys.stderr)
        return 2
    env = Distributed()
    try:
        run(cfg, env)
    except NbfError as exc:
        print(f"nbf-ros train: {exc}", file=sys.stderr)
        return 2
    finally:
        env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
