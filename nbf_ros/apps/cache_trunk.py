"""Cache BlazePose-trunk taps of synthetic crops for training the feature head (docs/features.md)::

    python -m nbf_ros.apps.cache_trunk --config config/feature_head.yaml --split train --count 20000 \
        --out cache/trunk/train
    python -m nbf_ros.apps.cache_trunk --config config/feature_head.yaml --split val --count 256 \
        --out cache/trunk/val
    python -m nbf_ros.apps.cache_trunk --config config/feature_head.yaml --split train --count 12000 \
        --mirror --out cache/trunk/train_mirror

Crops are the training data's (``nbf_ros.training.data``: same generator, splits and seeds, and
its per-crop render cache), so the head sees exactly the U-Net's training crops. ``--split val``
is the held-out test split from seed 5,000,000 (the U-Net run's periodic validation set).
``--mirror`` caches the same crops flipped left/right with mirrored labels
(``training/mirror.py``; ``feature_head.mirror_cache``). Resumable: run the same command again to
continue; ``--minutes`` bounds one run.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional

import torch

from nbf_ros.config import load_config
from nbf_ros.nets.trunk import TAP_ALIASES, BlazePoseTrunk, parse_taps
from nbf_ros.training.data import VAL_SEED_OFFSET, SyntheticCrops, load_data_body, synthetic_for
from nbf_ros.training.mirror import MirroredCrops, nbv_kernel_mirror_map
from nbf_ros.training.trunk_cache import fill_cache

LOG = logging.getLogger("nbf_ros.cache_trunk")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="cache BlazePose-trunk taps of synthetic crops")
    parser.add_argument("--config", required=True)
    parser.add_argument("--split", choices=("train", "val"), default="train")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--taps", default=",".join(TAP_ALIASES),
                        help="comma-separated taps to store (default: every alias, for probing)")
    parser.add_argument("--occlusion", type=float, default=None,
                        help="occluder probability override (default: as configured)")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--mirror", action="store_true",
                        help="the crops flipped left/right, with mirrored kernel and joint labels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    split, seed = ("train", cfg.train.data_seed) if args.split == "train" else ("test", VAL_SEED_OFFSET)
    syn = synthetic_for(cfg, split, args.occlusion)
    # train.cache_dir reuses crops an earlier generator version rendered (same pixels).
    data = load_data_body(cfg)
    crops = SyntheticCrops(cfg, syn, data, args.count, seed,
                           cache_dir=cfg.train.cache_dir if args.split == "train" else "")
    if args.mirror:
        crops = MirroredCrops(crops, nbv_kernel_mirror_map(data))
    trunk = BlazePoseTrunk(cfg.feature_head.trunk_path, parse_taps(args.taps),
                           cfg.net.crop_size // cfg.net.feature_stride, cfg.feature_head.trunk_threads)
    info = {"split": split, "first_seed": seed, "occlusion": args.occlusion,
            "trunk": cfg.feature_head.trunk_path, "crop_cache": str(crops.cache), "mirror": args.mirror}
    done = fill_cache(args.out, trunk, crops, args.count, info,
                      time_limit_s=None if args.minutes is None else 60.0 * args.minutes)
    LOG.info("%s holds %d / %d crops", args.out, done, args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
