#!/usr/bin/env python3
"""Build the fitting's Gaussian pose prior (``models/nbf_pose_prior.npz``) from the pose sampler.

Why at build time: the prior is a fixed function of the synthetic pose sampler (the poses the
network was trained on); the runtime reads the stored result (``nbf_ros.fitting.pose_prior``)
and never imports the data generator. Here: draw ``SAMPLES`` body poses from
``nbf_ros.data.poses.PoseSampler()`` (default settings) with ``numpy.random.default_rng(SEED)``,
fit ``GaussianPosePrior`` (mean, covariance + 1e-3 rad^2 ridge, Cholesky factor of the
precision) in float32 on one torch thread, write it with ``np.savez``. About 2 s on one core.

Usage::

    python tools/build_pose_prior.py [--out models/nbf_pose_prior.npz]

Rebuild after changing the pose sampler, and update the sha256 in models/nbf_pose_prior.md.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from nbf_ros.config import resolve_path  # noqa: E402
from nbf_ros.data.poses import PoseSampler  # noqa: E402
from nbf_ros.fitting.losses import GaussianPosePrior  # noqa: E402
from nbf_ros.fitting.pose_prior import save_pose_prior  # noqa: E402

SEED = 1234  # the seed and count the fitter used when it computed the prior at start-up
SAMPLES = 5000  # enough for a 69-d Gaussian with a ridge
RIDGE = 1e-3  # rad^2, GaussianPosePrior.fit's default
# The float32 covariance, inverse and Cholesky factor differ in the last bits with torch's thread
# count (MKL splits the reductions per thread). The start-up computation ran in the process's
# threads; the reported benchmark (benchmarks/occlusion_bench.py, --threads 1) fitted with the
# single-threaded result, and one thread is the only choice independent of the machine's cores.
THREADS = 1


def build_pose_prior(seed: int = SEED, samples: int = SAMPLES) -> GaussianPosePrior:
    """The prior of ``samples`` body poses of the default sampler drawn with ``seed`` (float32),
    computed on ``THREADS`` torch threads (the caller's thread count is restored)."""
    rng = np.random.default_rng(seed)
    sampler = PoseSampler()
    poses = np.stack([sampler.sample_body_pose(rng)[0] for _ in range(samples)])  # N x 69
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return GaussianPosePrior.fit(torch.from_numpy(poses).float(), ridge=RIDGE)
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="models/nbf_pose_prior.npz", help="output .npz")
    args = parser.parse_args(argv)
    path = save_pose_prior(build_pose_prior(), resolve_path(args.out), SEED, SAMPLES, RIDGE)
    print(f"wrote {path} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
