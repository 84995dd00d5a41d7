#!/usr/bin/env python3
"""Measure shipped network weights on held-out synthetic data (docs/training.md, models/nbf_net.md).

Reports, on the held-out split (other seeds, textures and background photos than training):
  - regression-only MPJPE / PA-MPJPE (mm, 24 SMPL joints) and heatmap 2D error (crop px),
  - feature quality: top-1 nearest kernel over all K x O bank entries for visible kernel pixels,
    within-1-hop rate, orientation-bin accuracy (given the right kernel), background accuracy,
  each on clean crops and on crops that always carry occluders;
  - network inference time per crop (torch, CPU, batch 1; 1 and 2 threads);
  - training throughput and the validation curve from the run's metrics.jsonl (if given).

Usage:
  python benchmarks/train_eval.py --weights models/nbf_net.pt --config models/nbf_net.yaml \
      --images 256 --metrics out/train/metrics.jsonl --json out/train_eval.json
  ... --head models/nbf_trunk_head.pt   # also the BlazePose-trunk feature head, same crops
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from nbf_ros.config import load_config
from nbf_ros.evaluation.metrics import mpjpe, pa_mpjpe
from nbf_ros.geometry.rotations import rotation_6d_to_matrix
from nbf_ros.nets.weights import load_network
from nbf_ros.training.context import build_context
from nbf_ros.training.data import make_eval_batches
from nbf_ros.training.evaluate import evaluate_batches, evaluate_features


def inference_ms(net: torch.nn.Module, size: int, threads: int, runs: int = 30) -> float:
    """Median wall time of one batch-1 forward pass, after warm-up."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    x = torch.rand(1, 3, size, size)
    times = []
    with torch.inference_mode():
        for i in range(runs + 5):
            start = time.perf_counter()
            net(x)
            if i >= 5:
                times.append((time.perf_counter() - start) * 1e3)
    torch.set_num_threads(previous)
    return statistics.median(times)


@torch.no_grad()
def start_body_baseline(net, ctx, batches) -> dict:
    """MPJPE / PA-MPJPE (mm) of always predicting the regressor's start body (the training data's
    mean pose, upright and facing the camera): what the regression head must beat."""
    pose6d = net.regressor.init_params[:24 * 6].reshape(24, 6)
    errors, pa_errors = [], []
    for batch in batches:
        b = batch["image"].shape[0]
        joints = ctx.joints_fn(rotation_6d_to_matrix(pose6d).expand(b, 24, 3, 3), torch.zeros(b, 10))
        errors.append(mpjpe(joints, batch["joints3d"]))
        pa_errors.append(pa_mpjpe(joints, batch["joints3d"]))
    return {"start_body_mpjpe_mm": float(torch.cat(errors).mean()) * 1000.0,
            "start_body_pa_mpjpe_mm": float(torch.cat(pa_errors).mean()) * 1000.0}


def training_summary(metrics_path: Path) -> dict:
    """Throughput and the validation curve from a run's metrics.jsonl."""
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not rows:
        return {}
    last = rows[-1]
    curve = [{k: r[k] for k in ("step", "images", "elapsed_s", "loss", "train_kernel_top1",
                                "val_kernel_top1", "val_kernel_top1_within_10cm", "val_part_top1",
                                "val_bin_acc_given_kernel", "val_background_acc",
                                "val_mpjpe_mm", "val_pa_mpjpe_mm") if k in r}
             for r in rows if "val_kernel_top1" in r]
    rate = last.get("images_per_s", last["images"] / max(last["elapsed_s"], 1e-6))
    return {"steps": last["step"], "images": last["images"], "elapsed_min": last["elapsed_s"] / 60.0,
            "images_per_s": rate, "curve": curve}


def head_features_fn(cfg, head_path: str):
    """batch -> B x D x h x w features of the BlazePose trunk + feature head (docs/features.md),
    and the head's memory bank; the trunk runs live on the batch's crops."""
    from nbf_ros.nets.feature_head import load_head
    from nbf_ros.nets.trunk import BlazePoseTrunk

    head, bank, taps = load_head(head_path)
    trunk = BlazePoseTrunk(cfg.feature_head.trunk_path, taps,
                           cfg.net.crop_size // cfg.net.feature_stride, cfg.feature_head.trunk_threads)

    def features(batch: dict) -> torch.Tensor:
        out = trunk.run(batch["image"].numpy())
        return head([torch.from_numpy(out.taps[t]) for t in taps])

    return features, bank, head, trunk


def head_inference_ms(features, size: int, runs: int = 20) -> float:
    """Median wall time of trunk + head on one crop (onnxruntime and torch, 1 thread each)."""
    x = {"image": torch.rand(1, 3, size, size)}
    times = []
    with torch.inference_mode():
        for i in range(runs + 3):
            start = time.perf_counter()
            features(x)
            if i >= 3:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="models/nbf_net.pt")
    parser.add_argument("--config", default="models/nbf_net.yaml")
    parser.add_argument("--images", type=int, default=256, help="held-out crops per condition")
    parser.add_argument("--seed", type=int, default=900_000, help="first held-out sample seed")
    parser.add_argument("--metrics", default=None, help="the run's metrics.jsonl (optional)")
    parser.add_argument("--json", default=None, help="write all numbers here")
    parser.add_argument("--head", default=None,
                        help="also measure this BlazePose-trunk feature head (nbf_trunk_head.pt)")
    parser.add_argument("--skip-unet", action="store_true", help="with --head: only the head")
    args = parser.parse_args(argv)

    cfg = load_config(args.config)
    net, bank = load_network(args.weights, cfg.net)
    ctx, _, _ = build_context(cfg, torch.device("cpu"))
    results: dict = {"weights": args.weights, "images_per_condition": args.images}
    head = head_features_fn(cfg, args.head) if args.head else None
    for name, occlusion in (("clean", 0.0), ("occluded", 1.0)):
        batches = make_eval_batches(cfg, args.images, args.seed, occlusion_prob=occlusion)
        results[name] = {} if args.skip_unet else evaluate_batches(net, bank, ctx, batches, cfg)
        if not args.skip_unet:
            results[name].update(start_body_baseline(net, ctx, batches))
        if head is not None:
            with torch.inference_mode():
                results[f"head_{name}"] = evaluate_features(head[0], head[1], ctx, batches)
    if head is not None:
        torch.set_num_threads(1)
        results["head_inference_ms_1thread"] = head_inference_ms(head[0], cfg.net.crop_size)
        results["head_parameters_M"] = sum(p.numel() for p in head[2].parameters()) / 1e6
        _print_head_table(results)
    if args.skip_unet:
        if args.metrics:
            results["training"] = training_summary(Path(args.metrics))
        _write(results, args.json)
        return 0
    results["inference_ms_1thread"] = inference_ms(net, cfg.net.crop_size, 1)
    results["inference_ms_2threads"] = inference_ms(net, cfg.net.crop_size, 2)
    results["parameters_M"] = sum(p.numel() for p in net.parameters()) / 1e6
    if args.metrics:
        results["training"] = training_summary(Path(args.metrics))
    _print_table(results)
    _write(results, args.json)
    return 0


def _write(results: dict, path: str | None) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(results, indent=2))


def _print_head_table(r: dict) -> None:
    keys = ("kernel_top1", "kernel_top1_within_1hop", "kernel_top1_within_10cm", "part_top1",
            "kernel_rank_percentile", "bin_acc_given_kernel", "bin_majority_baseline", "background_acc",
            "left_right_swap")
    print(f"{'trunk head metric':28s} {'clean':>10s} {'occluded':>10s}")
    for k in keys:
        print(f"{k:28s} {r['head_clean'].get(k, float('nan')):10.3f} "
              f"{r['head_occluded'].get(k, float('nan')):10.3f}")
    print(f"trunk + head ms/crop (batch 1, 1 thread): {r['head_inference_ms_1thread']:.1f}; "
          f"head parameters {r['head_parameters_M']:.3f} M")


def _print_table(r: dict) -> None:
    keys = ("mpjpe_mm", "pa_mpjpe_mm", "start_body_mpjpe_mm", "start_body_pa_mpjpe_mm", "heatmap_px", "kernel_top1", "kernel_top1_within_1hop",
            "kernel_top1_within_10cm", "part_top1", "kernel_rank_percentile",
            "bin_acc_given_kernel", "bin_majority_baseline", "background_acc", "left_right_swap")
    print(f"{'metric':28s} {'clean':>10s} {'occluded':>10s}")
    for k in keys:
        print(f"{k:28s} {r['clean'].get(k, float('nan')):10.3f} {r['occluded'].get(k, float('nan')):10.3f}")
    print(f"inference ms/crop (batch 1): 1 thread {r['inference_ms_1thread']:.1f}, "
          f"2 threads {r['inference_ms_2threads']:.1f}; parameters {r['parameters_M']:.2f} M")
    t = r.get("training")
    if t:
        print(f"training: {t['steps']} steps, {t['images']} images, {t['elapsed_min']:.1f} min, "
              f"{t['images_per_s']:.1f} images/s")
        for row in t["curve"]:
            print("  " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in row.items()))


if __name__ == "__main__":
    sys.exit(main())
