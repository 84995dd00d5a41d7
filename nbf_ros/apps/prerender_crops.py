"""Pre-render (cache) the synthetic training crops of a training config, ahead of or alongside
a training run, in another process (the run then reads them from the cache, ~1 ms per crop
instead of ~80 ms to render)::

    python -m nbf_ros.apps.prerender_crops --config config/train_default.yaml --count 12000 [--val]

The crops and their cache are ``nbf_ros.training.data``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional

import torch

from nbf_ros.config import load_config
from nbf_ros.training.data import SyntheticCrops, load_data_body, make_val_batches, synthetic_for

LOG = logging.getLogger(__name__)


def main(argv: Optional[list[str]] = None) -> int:
    """Pre-render (cache) training crops [start, start + count) of a training config."""
    parser = argparse.ArgumentParser(description="pre-render training crops into the cache")
    parser.add_argument("--config", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--val", action="store_true", help="also the validation crops")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    data = load_data_body(cfg)
    if args.val:
        make_val_batches(cfg, data)
    ds = SyntheticCrops(cfg, synthetic_for(cfg, "train", None), data,
                        max(cfg.train.num_train_images, args.start + args.count), cfg.train.data_seed)
    from tqdm import tqdm

    for i in tqdm(range(args.start, args.start + args.count), file=sys.stderr, mininterval=30.0):
        ds.arrays(i)
    LOG.info("cached %d crops in %s", args.count, ds.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
