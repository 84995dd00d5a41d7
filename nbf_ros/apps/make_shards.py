"""Pre-render synthetic training crops into shards (resumable), with a progress bar.

    python -m nbf_ros.apps.make_shards --out DIR --count N [--seed S] [--config CFG.yaml]
        [--split train|test] [--shard-size 500] [--no-occlusion]

Read them back with ``nbf_ros.data.dataset.ShardDataset(DIR)``.
"""
from __future__ import annotations

import argparse
import logging
from typing import Optional

import torch

from nbf_ros.config import NbfConfig, load_config, resolve_path
from nbf_ros.data.dataset import with_split, write_shards

LOG = logging.getLogger(__name__)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Render synthetic training crops into shards.")
    parser.add_argument("--out", required=True, help="output directory (resumable)")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0, help="first sample seed")
    parser.add_argument("--config", default=None, help="NbfConfig YAML (synthetic, net, body)")
    parser.add_argument("--split", choices=("train", "test"), default=None)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--no-occlusion", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(1)
    cfg: NbfConfig = load_config(args.config)
    syn = cfg.synthetic if args.split is None else with_split(cfg.synthetic, args.split)
    from nbf_ros.body.model import load_body_model

    body = load_body_model(resolve_path(cfg.body.model_path), num_betas=cfg.body.num_betas)
    out = write_shards(args.out, syn, args.count, args.seed, body=body, net=cfg.net,
                       shard_size=args.shard_size, occlusion=False if args.no_occlusion else None)
    LOG.info("wrote %d crops to %s", args.count, out)


if __name__ == "__main__":
    main()
