"""Train the NBV feature head on cached BlazePose-trunk taps (docs/features.md), resumable.

The trunk is frozen, so a step is: read a batch of cached taps (``training/trunk_cache.py``),
run the head, and apply the U-Net's own feature losses and bank update (``Trainer.feature_terms``,
``Trainer.train_step``: the paper's K x O kernel contrast with the EMA memory bank, background
bank and 1-hop masking). Settings: ``cfg.feature_head`` (taps, head shape, caches) and the
optimisation/contrast fields of ``cfg.train`` (seed, lr, steps, batch size, temperature, ...).

Output directory (``train.out_dir``): config.yaml, last.pt (resumable), metrics.jsonl (losses and,
at every checkpoint, ``val_*`` feature metrics with elapsed time: the learning curve),
nbf_trunk_head.pt (the shipped format, ``nets.feature_head.save_head``) at the end.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from nbf_ros.config import NbfConfig, load_config, resolve_path, save_config, to_dict
from nbf_ros.errors import NbfError
from nbf_ros.nets.feature_head import TrunkFeatureHead, save_head
from nbf_ros.nets.trunk import parse_taps
from nbf_ros.training.checkpoint import config_changes, load_checkpoint, save_checkpoint
from nbf_ros.training.data import StepSampler
from nbf_ros.training.evaluate import evaluate_features
from nbf_ros.training.train import RESUMABLE_CHANGES, GracefulStop
from nbf_ros.training.trainer import BodyContext, StepResult, Trainer, step_generator
from nbf_ros.training.trunk_cache import TrunkCache, open_cache

LOG = logging.getLogger("nbf_ros.train_head")
WEIGHTS_NAME = "nbf_trunk_head.pt"


def build_head(cfg: NbfConfig, cache: TrunkCache) -> TrunkFeatureHead:
    """The head of ``cfg.feature_head`` for the taps a cache holds (their channel counts)."""
    h = cfg.feature_head
    taps = parse_taps(h.taps)
    missing = [t for t in taps if t not in cache.taps]
    if missing:
        raise NbfError(f"the trunk cache has no tap(s) {missing}; it holds {sorted(cache.taps)}")
    side = cfg.net.crop_size // cfg.net.feature_stride
    return TrunkFeatureHead([cache.taps[t].shape[1] for t in taps], side, h.hidden_channels,
                            h.layers, cfg.net.feature_dim)


class HeadTrainer(Trainer):
    """``Trainer`` whose network is the feature head on cached taps: contrast + background only."""

    def __init__(self, cfg: NbfConfig, ctx: BodyContext, head: TrunkFeatureHead) -> None:
        self.tap_names = parse_taps(cfg.feature_head.taps)
        super().__init__(cfg, ctx, torch.device("cpu"), net=head)  # type: ignore[arg-type]

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """B x D x h x w unit features of a batch of cached taps."""
        return self.model([batch[f"tap:{n}"] for n in self.tap_names])

    def compute(self, batch: dict[str, torch.Tensor], step: int, rank: int = 0) -> StepResult:
        w = self.tcfg.loss
        f = self.feature_terms(self.features(batch), batch, step_generator(self.tcfg.seed, step, rank))
        total = w.contrastive * f.contrast + w.background * f.background
        terms = {"contrastive": float(f.contrast.detach()), "background": float(f.background.detach()),
                 "train_kernel_top1": self._top1(f.fg_features.detach(), f.kernel_ids)}
        return StepResult(total, terms, f.fg_features.detach(), f.kernel_ids, f.bin_weights,
                          f.bg_features.detach())


def cache_batches(cache: TrunkCache, taps: tuple[str, ...], batch_size: int) -> list[dict[str, torch.Tensor]]:
    """All crops of a (small, validation) cache as batches in file order."""
    index = np.arange(cache.count)
    return [cache.batch(index[i:i + batch_size], taps) for i in range(0, cache.count, batch_size)]


def train_batches(caches: list[TrunkCache], taps: tuple[str, ...], batch_size: int, start: int,
                  seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches for steps start.. (deterministic by step; ``StepSampler``'s epochs) over
    the concatenation of the caches (the train cache and, optionally, its mirrored twin)."""
    sizes = [c.count for c in caches]
    bounds = np.cumsum([0, *sizes])
    sampler = iter(StepSampler(int(bounds[-1]), batch_size, start, seed))
    while True:
        index = np.array([next(sampler) for _ in range(batch_size)])
        parts = [caches[i].batch(index[(index >= bounds[i]) & (index < bounds[i + 1])] - bounds[i], taps)
                 for i in range(len(caches)) if ((index >= bounds[i]) & (index < bounds[i + 1])).any()]
        yield {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def resume_key(cfg: NbfConfig) -> dict[str, Any]:
    """The config as a dict, minus the fields a resumed run may change."""
    data = to_dict(cfg)
    for name in RESUMABLE_CHANGES:
        data["train"].pop(name, None)
    return data


def run_head(cfg: NbfConfig, val_every_s: float = 0.0) -> Path:
    """Train (or resume) the head per ``cfg``; returns the output directory."""
    from nbf_ros.training.context import build_context

    t, h = cfg.train, cfg.feature_head
    out = resolve_path(t.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    caches = [open_cache(resolve_path(h.train_cache))]
    if h.mirror_cache:
        caches.append(open_cache(resolve_path(h.mirror_cache)))
    taps = parse_taps(h.taps)
    ctx, _, _ = build_context(cfg, torch.device("cpu"))
    torch.manual_seed(t.seed)
    trainer = HeadTrainer(cfg, ctx, build_head(cfg, caches[0]))
    start, images, elapsed0 = _maybe_resume(cfg, trainer, out)
    save_config(cfg, out / "config.yaml")
    val_cache = open_cache(resolve_path(h.val_cache))
    val_cache.count = min(val_cache.count, t.val_images)  # the periodic check; benchmarks measure more
    val = cache_batches(val_cache, taps, 64)
    LOG.info("training crops %s, validation crops %d, start step %d",
             [c.count for c in caches], sum(b["joints3d"].shape[0] for b in val), start)
    _loop(cfg, trainer, ctx, train_batches(caches, taps, t.batch_size, start, t.seed), val, out,
          start, images, elapsed0)
    save_head(trainer.net, trainer.bank, taps, out / WEIGHTS_NAME)  # type: ignore[arg-type]
    save_config(cfg, out / "nbf_trunk_head.yaml")
    return out


def _loop(cfg: NbfConfig, trainer: HeadTrainer, ctx: BodyContext, batches: Iterator[dict[str, torch.Tensor]],
          val: list[dict[str, torch.Tensor]], out: Path, start: int, images: int, elapsed0: float) -> None:
    """Steps with logging, periodic validation + checkpoint, time limit and graceful stop."""
    t = cfg.train
    stop, t0 = GracefulStop(), time.perf_counter()
    try:
        with (out / "metrics.jsonl").open("a") as log:
            for step in range(start, t.steps):
                batch = next(batches)
                terms = trainer.train_step(batch, step)
                images += batch["joints3d"].shape[0]
                elapsed = elapsed0 + time.perf_counter() - t0
                done = (step + 1 == t.steps or stop.requested
                        or (t.time_limit_min > 0 and elapsed > 60.0 * t.time_limit_min))
                checkpoint = (step + 1) % t.checkpoint_every == 0 or done
                if (step + 1) % t.log_every == 0 or done:
                    record = {"step": step + 1, "images": images, "elapsed_s": round(elapsed, 1),
                              "images_per_s": round(images / max(elapsed, 1e-6), 2),
                              **{k: round(v, 5) for k, v in terms.items()}}
                    if checkpoint:
                        record.update({f"val_{k}": round(v, 5) for k, v in
                                       _validate(trainer, ctx, val).items()})
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                if checkpoint:
                    save_checkpoint(out / "last.pt", trainer.net, trainer.bank, trainer.optimizer,
                                    step + 1, images, elapsed, resume_key(cfg))
                if done:
                    break
    finally:
        stop.restore()


def _validate(trainer: HeadTrainer, ctx: BodyContext, val: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    trainer.net.eval()
    try:
        return evaluate_features(trainer.features, trainer.bank, ctx, val)
    finally:
        trainer.net.train()


def _maybe_resume(cfg: NbfConfig, trainer: HeadTrainer, out: Path) -> tuple[int, int, float]:
    ckpt = out / "last.pt"
    if not ckpt.is_file():
        return 0, 0, 0.0
    if (out / "config.yaml").is_file():
        changed = config_changes(resume_key(load_config(out / "config.yaml")), resume_key(cfg))
        if changed:
            raise NbfError(f"{out}: holds a run with a different configuration ({', '.join(changed[:3])}); "
                           "use another train.out_dir or the same config")
    state = load_checkpoint(ckpt, trainer.net, trainer.bank, resume_key(cfg))
    trainer.optimizer.load_state_dict(state.optimizer)
    LOG.info("resuming from %s at step %d", ckpt, state.step)
    return state.step, state.images_seen, state.elapsed_s


def best_step(metrics_path: Path, key: str = "val_kernel_top1_within_10cm") -> Optional[dict]:
    """The logged validation record with the highest ``key`` (None if none was logged)."""
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if key in r]
    return max(rows, key=lambda r: r[key]) if rows else None
