"""Training runs: train NBFNet and its memory bank (``run``), resumable.

The command line is ``nbf_ros.apps.train`` (``nbf-ros train``). Single process by default;
under ``torchrun`` (WORLD_SIZE > 1 in the environment) it runs DistributedDataParallel, one rank
per GPU (gloo on CPU), with the bank's EMA statistics all-reduced so that every rank holds the
same bank.

Output directory (``train.out_dir``):
    config.yaml      the full configuration (loaded strictly and compared on resume)
    last.pt          resumable checkpoint (model + optimiser + bank + step + config)
    metrics.jsonl    one JSON line per logged step (losses, lr, images/s, validation metrics)
    nbf_net.pt       shipped-format weights (network + bank, float16) written at the end
    nbf_net.yaml     the configuration the weights were trained with
A run restarted with the same command resumes from ``last.pt``; only ``train.steps``,
``train.time_limit_min``, the logging/checkpoint intervals and ``train.num_workers`` may differ
(``--resume OUT_DIR`` takes the saved config.yaml instead, so changed code defaults do not matter).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist

from nbf_ros.config import NbfConfig, load_config, resolve_path, save_config, to_dict
from nbf_ros.errors import NbfError
from nbf_ros.nets.weights import save_weights
from nbf_ros.training.checkpoint import config_changes, load_checkpoint, save_checkpoint
from nbf_ros.training.trainer import Trainer

LOG = logging.getLogger("nbf_ros.train")
# Fields that may change between a run and its resumption (they do not change what is computed).
MEAN_BODY_SAMPLES = 512
RESUMABLE_CHANGES = ("steps", "time_limit_min", "log_every", "checkpoint_every", "num_workers")


def resume_key(cfg: NbfConfig) -> dict[str, Any]:
    """The config as a dict, minus the fields a resumed run may change."""
    data = to_dict(cfg)
    for name in RESUMABLE_CHANGES:
        data["train"].pop(name, None)
    return data


class GracefulStop:
    """SIGTERM/SIGINT ask the loop to stop after the current step, with a checkpoint (so a run
    can be stopped and resumed, e.g. with another ``--steps``, without losing work)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum: int, frame: Any) -> None:
        LOG.info("signal %d: stopping after this step (checkpoint follows)", signum)
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Distributed:
    """Rank/world/device from torchrun's environment variables (world 1 without them)."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available()
        self.device = torch.device(f"cuda:{local}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1:
            dist.init_process_group(backend="nccl" if cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}


def run(cfg: NbfConfig, env: Distributed) -> Path:
    """Train (or resume) per ``cfg.train``; returns the output directory."""
    from nbf_ros.training.context import build_context
    from nbf_ros.training.data import make_train_loader, make_val_batches
    from nbf_ros.training.evaluate import evaluate_batches

    t = cfg.train
    out = resolve_path(t.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx, _, _ = build_context(cfg, env.device)
    trainer = Trainer(cfg, ctx, env.device)
    if env.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        trainer.model = DistributedDataParallel(trainer.net, device_ids=[env.device.index]
                                                if env.device.type == "cuda" else None)
    start, images, elapsed0 = _maybe_resume(cfg, trainer, out, env)
    if start == 0:
        _init_regressor_from_data(cfg, trainer)
    if env.main:
        save_config(cfg, out / "config.yaml")
    val = [_to_device(b, env.device) for b in make_val_batches(cfg)] if env.main else []
    loader: Iterator[dict[str, Any]] = make_train_loader(cfg, start, env.rank, env.world)
    log_file = (out / "metrics.jsonl").open("a") if env.main else None
    bar = _progress(t.steps, start, env.main)
    stop = GracefulStop()
    t0 = time.perf_counter()
    step = start
    try:
        for step in range(start, t.steps):
            batch = _to_device(next(loader), env.device)
            terms = trainer.train_step(batch, step, env.rank)
            images += batch["image"].shape[0] * env.world
            elapsed = elapsed0 + time.perf_counter() - t0
            done = (step + 1 == t.steps or stop.requested
                    or (t.time_limit_min > 0 and elapsed > 60.0 * t.time_limit_min))
            if env.main and ((step + 1) % t.log_every == 0 or done):
                record = {"step": step + 1, "images": images, "elapsed_s": round(elapsed, 1),
                          "images_per_s": round(images / max(elapsed, 1e-6), 2),
                          **{k: round(v, 5) for k, v in terms.items()}}
                if (step + 1) % t.checkpoint_every == 0 or done:
                    record.update({f"val_{k}": round(v, 5) for k, v in
                                   evaluate_batches(trainer.net, trainer.bank, ctx, val, cfg).items()})
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                bar.set_postfix(loss=f"{terms['loss']:.3f}", top1=f"{terms['train_kernel_top1']:.3f}")
            bar.update(1)
            if env.main and ((step + 1) % t.checkpoint_every == 0 or done):
                save_checkpoint(out / "last.pt", trainer.net, trainer.bank, trainer.optimizer,
                                step + 1, images, elapsed, resume_key(cfg))
            if done:
                break
    finally:
        stop.restore()
        bar.close()
        if log_file is not None:
            log_file.close()
    if env.main:
        save_weights(trainer.net, trainer.bank, out / "nbf_net.pt")
        save_config(cfg, out / "nbf_net.yaml")
        LOG.info("finished at step %d (%d images); weights in %s", step + 1, images, out / "nbf_net.pt")
    return out


def _init_regressor_from_data(cfg: NbfConfig, trainer: Trainer) -> None:
    """Start the regressor from the mean body of the first ``MEAN_BODY_SAMPLES`` training crops
    (the same on every rank: the crops are fixed by seed)."""
    from torch.utils.data import DataLoader

    from nbf_ros.training.data import train_dataset
    from nbf_ros.training.trainer import data_mean_body

    ds = train_dataset(cfg)
    count = min(MEAN_BODY_SAMPLES, len(ds))
    batch = next(iter(DataLoader(torch.utils.data.Subset(ds, range(count)), batch_size=count)))
    pose6d, cam = data_mean_body(batch, cfg.net.crop_size)
    trainer.net.regressor.set_initial(pose6d.to(trainer.device), torch.zeros(10, device=trainer.device),
                                      cam.to(trainer.device))
    LOG.info("regressor starts from the mean body of %d crops (cam %s)", count, cam.tolist())


def _maybe_resume(cfg: NbfConfig, trainer: Trainer, out: Path, env: Distributed) -> tuple[int, int, float]:
    ckpt = out / "last.pt"
    if not ckpt.is_file():
        return 0, 0, 0.0
    if (out / "config.yaml").is_file():
        stored = load_config(out / "config.yaml")  # strict: a malformed file is an error
        changed = config_changes(resume_key(stored), resume_key(cfg))
        if changed:
            raise NbfError(f"{out}: holds a run with a different configuration ({', '.join(changed[:3])}); "
                           "use another train.out_dir (or --out-dir) or the same config")
    state = load_checkpoint(ckpt, trainer.net, trainer.bank, resume_key(cfg))
    trainer.optimizer.load_state_dict(state.optimizer)
    if env.main:
        LOG.info("resuming from %s at step %d", ckpt, state.step)
    return state.step, state.images_seen, state.elapsed_s


def _progress(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    # mininterval keeps a log file (nohup) readable; tqdm writes to stderr.
    return tqdm(total=total, initial=initial, file=sys.stderr, disable=not enabled,
                mininterval=10.0, dynamic_ncols=False, unit="step")
