"""Throughput of the synthetic data generator on this machine (one thread).

Measures training crops per second (default config: occluders on half of the crops; and with
occlusion off / always on), full scenes per second, and the rasteriser alone on a 128-px body
crop. Prints a table and a final JSON line. Rates are given per wall-clock second and per CPU
second of the process: on a shared machine the second is what one idle core would do.

    .venv/bin/python benchmarks/data_bench.py [--crops 60] [--scenes 15] [--seed 1000]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nbf_ros.config import NetConfig, SyntheticConfig, resolve_path  # noqa: E402
from nbf_ros.data.crops import render_crop  # noqa: E402
from nbf_ros.data.raster import rasterize_mesh  # noqa: E402
from nbf_ros.data.scene import body_labels, render_scene  # noqa: E402


def _rate(fn, count: int, seed: int) -> tuple[float, float]:
    """(per wall-clock second, per CPU second of this process). On a shared machine the CPU
    rate is what an idle core would give (the wall rate also counts waiting for a core)."""
    fn(seed - 1)  # warm-up (imports, photo cache)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        fn(seed + i)
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def _occlusion(cfg: SyntheticConfig, prob: float) -> SyntheticConfig:
    return dataclasses.replace(cfg, occlusion=dataclasses.replace(cfg.occlusion, enabled=prob > 0,
                                                                  prob=max(prob, 1e-9)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=60, help="crops per configuration")
    parser.add_argument("--scenes", type=int, default=15, help="full scenes")
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from nbf_ros.body.model import load_body_model

    body = load_body_model(resolve_path("models/nbf_body.npz"))
    t0 = time.perf_counter()
    labels = body_labels(body)
    labels_s = time.perf_counter() - t0
    cfg, net = SyntheticConfig(), NetConfig()
    rows: dict[str, tuple[float, float]] = {}
    for name, prob in (("crops_default", None), ("crops_no_occlusion", 0.0), ("crops_occluded", 1.0)):
        c = cfg if prob is None else _occlusion(cfg, prob)
        rows[name] = _rate(lambda s, c=c: render_crop(s, c, body, labels, net), args.crops, args.seed)
    rows["scenes"] = _rate(lambda s: render_scene(s, cfg, body, labels), args.scenes, args.seed)
    sample = render_crop(args.seed, _occlusion(cfg, 0.0), body, labels, net)
    params = [torch.as_tensor(np.asarray(getattr(sample, k)), dtype=torch.float32)[None]
              for k in ("betas", "global_orient", "body_pose", "transl")]
    from nbf_ros.types import BodyParams, CameraIntrinsics

    with torch.no_grad():
        verts = body(BodyParams(*params)).vertices[0].double().numpy()
    fx, fy, cx, cy = sample.crop_camera
    cam = CameraIntrinsics(fx, fy, cx, cy, net.crop_size, net.crop_size)
    rows["raster_body_128px"] = _rate(lambda s: rasterize_mesh(verts, labels.faces, cam, cull_backfaces=True),
                                      args.crops, 0)
    rows["body_forward"] = _rate(lambda s: body(BodyParams(*params)), args.crops, 0)
    load = os.getloadavg()[0]
    print(f"synthetic data throughput, 1 thread, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {load:.1f}, crop {net.crop_size}px, "
          f"K={labels.num_kernels}, body_labels {labels_s:.2f} s")
    print(f"{'what':<24}{'per wall s':>12}{'per CPU s':>12}{'CPU ms each':>13}")
    for name, (wall, cpu) in rows.items():
        print(f"{name:<24}{wall:>12.1f}{cpu:>12.1f}{1000.0 / cpu:>13.1f}")
    print(json.dumps({"benchmark": "data", "threads": 1, "crop_size": net.crop_size,
                      "load_average": round(load, 2),
                      **{f"{k}_per_wall_s": round(v[0], 2) for k, v in rows.items()},
                      **{f"{k}_per_cpu_s": round(v[1], 2) for k, v in rows.items()}}))


if __name__ == "__main__":
    main()
