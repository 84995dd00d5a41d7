"""Renderer benchmark (not a test): culled vs dense VoGE rendering of the Neural Body Volume.

Scene: the embedded body model in a mild random pose, 3 m in front of a 640 x 480 camera
(f = 600 px), seen through the square crop that frames it (CropBox.around_bbox, scale 1.2)
resampled to 64 / 80 / 128 px; NBV kernels with isotropic precision 4000 and 32-d features.
Forward = render_gaussians; forward+backward adds a feature + coverage loss and its backward to
the kernel means and features. Median wall time (and process CPU time) over repeats, torch
threads = 2; speedup = dense / culled median forward+backward wall time in the same run.

Usage: python benchmarks/render_bench.py [--repeats 15] [--dense-repeats 3] [--threads 2]
Prints a table, then one JSON line with every row.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
from nbf_ros.body.model import load_body_model  # noqa: E402
from nbf_ros.body.nbv import NeuralBodyVolume  # noqa: E402
from nbf_ros.config import NBVConfig, RenderConfig, resolve_path  # noqa: E402
from nbf_ros.geometry.camera import CropBox, project_points  # noqa: E402
from nbf_ros.render import render_gaussians  # noqa: E402
from nbf_ros.types import BodyParams, CameraIntrinsics  # noqa: E402

KERNEL_COUNTS = (858, 3432)
RESOLUTIONS = (64, 80, 128)
THREADS = 2
FULL_CAMERA = CameraIntrinsics(600.0, 600.0, 319.5, 239.5, 640, 480)
# Dense evaluates B x H x W x K pairs with autograd (~15 float32 tensors of that size): above
# this many pairs it would need > 4 GB on a machine shared with other jobs, so it is skipped.
DENSE_MAX_PAIRS = 25_000_000


def posed_scene(num_kernels: int, seed: int = 0):
    """Kernel means (1 x K x 3), features (1 x K x 32) and the bounding box of the body."""
    model = load_body_model(resolve_path("models/nbf_body.npz"))
    nbv = NeuralBodyVolume(model, NBVConfig(num_kernels=num_kernels))
    g = torch.Generator().manual_seed(seed)
    params = BodyParams.zeros(1)
    params.body_pose.normal_(0.0, 0.2, generator=g)
    params.global_orient[0] = torch.tensor([math.pi, 0.3, 0.0])
    params.transl[0] = torch.tensor([0.1, 0.1, 3.0])
    with torch.no_grad():
        body = model(params)
        state = nbv(body)
        feats = nbv.kernel_features(state)
    uv = project_points(body.vertices[0], FULL_CAMERA.fx, FULL_CAMERA.fy, FULL_CAMERA.cx,
                        FULL_CAMERA.cy).numpy()
    bbox = np.concatenate([uv.min(0), uv.max(0)])
    return state.means, feats, bbox


def _median_ms(fn, repeats: int) -> tuple[float, float]:
    """Median wall time and median process CPU time (all threads) per call, in ms.

    CPU time is reported too because this machine is shared: when other jobs load it, wall
    time includes waiting for a core, CPU time (mostly) does not.
    """
    fn()  # warm-up (allocator, first-call dispatch)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def bench_case(means, feats, camera, size: int, method: str, repeats: int) -> dict:
    config = RenderConfig()
    precisions = (4000.0 * torch.eye(3)).expand(*means.shape[:2], 3, 3).contiguous()
    target = torch.randn(1, size, size, feats.shape[-1], generator=torch.Generator().manual_seed(1))

    def forward():
        with torch.no_grad():
            return render_gaussians(means, precisions, feats, camera, size, size, config, method)

    def forward_backward():
        mu, phi = means.clone().requires_grad_(), feats.clone().requires_grad_()
        out = render_gaussians(mu, precisions, phi, camera, size, size, config, method)
        ((out.features * target).sum() + out.coverage.sum()).backward()

    out = forward()
    fwd, fwd_cpu = _median_ms(forward, repeats)
    both, both_cpu = _median_ms(forward_backward, repeats)
    return {"fwd_ms": fwd, "fwd_bwd_ms": both, "fwd_cpu_ms": fwd_cpu, "fwd_bwd_cpu_ms": both_cpu,
            "pairs": out.pairs_evaluated, "coverage": float(out.coverage.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--dense-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="torch threads (2 = the target; 1 is faster when other jobs load the cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}, "
          f"load before {os.getloadavg()[0]:.2f}")
    print(f"{'K':>5} {'res':>4} {'method':>7} {'fwd ms':>9} {'fwd+bwd ms':>11} {'fwd+bwd CPU':>12} "
          f"{'pairs':>11} {'speedup':>8}")
    for num_kernels in KERNEL_COUNTS:
        means, feats, bbox = posed_scene(num_kernels)
        box = CropBox.around_bbox(bbox, scale=1.2)
        for size in RESOLUTIONS:
            camera = box.crop_intrinsics(FULL_CAMERA, size)
            culled = bench_case(means, feats, camera, size, "culled", args.repeats)
            row = {"K": num_kernels, "res": size, "culled": culled}
            dense_pairs = num_kernels * size * size
            if dense_pairs <= DENSE_MAX_PAIRS:
                row["dense"] = bench_case(means, feats, camera, size, "dense", args.dense_repeats)
                row["speedup_fwd_bwd"] = row["dense"]["fwd_bwd_ms"] / culled["fwd_bwd_ms"]
            rows.append(row)
            for method in ("culled", "dense"):
                if method in row:
                    r = row[method]
                    speed = f"{row['speedup_fwd_bwd']:.0f}x" if method == "culled" and "dense" in row else ""
                    print(f"{num_kernels:>5} {size:>4} {method:>7} {r['fwd_ms']:>9.1f} {r['fwd_bwd_ms']:>11.1f} "
                          f"{r['fwd_bwd_cpu_ms']:>12.1f} {r['pairs']:>11d} {speed:>8}")
                else:
                    print(f"{num_kernels:>5} {size:>4} {method:>7}   skipped ({dense_pairs} pairs > {DENSE_MAX_PAIRS})")
    print(f"load after {os.getloadavg()[0]:.2f}")
    print(json.dumps({"threads": args.threads, "torch": torch.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
