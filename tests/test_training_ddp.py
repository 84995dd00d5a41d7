"""Under DDP (gloo, 2 CPU ranks) every rank ends a bank update with the bank that one process
would compute from all ranks' samples together."""
from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from nbf_ros.nets.bank import MemoryBank, ema_bank_update

K, O, D = 5, 2, 4


def _samples(rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(10 + rank)
    feats = F.normalize(torch.randn(6, D, generator=g), dim=-1)
    kid = torch.randint(0, K, (6,), generator=g)
    bins = torch.softmax(torch.randn(6, O, generator=g), dim=1)
    bg = F.normalize(torch.randn(3, D, generator=g), dim=-1)
    return feats, kid, bins, bg


def _worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        from nbf_ros.training.targets import make_feature_target
        from nbf_ros.training.trainer import Trainer

        trainer = Trainer.__new__(Trainer)  # only the bank update is exercised
        trainer.bank = MemoryBank(K, O, D, background_size=8, seed=0)
        eye = torch.eye(K, dtype=torch.bool)
        trainer.target = make_feature_target("kernel", eye, torch.zeros(K, 3), eye, 0.08, 1)
        trainer.tcfg = type("T", (), {"bank_momentum": 0.9})()
        feats, kid, bins, bg = _samples(rank)
        trainer._update_bank(feats, kid, bins, bg)
        out[rank] = (trainer.bank.kernel_features.clone(), trainer.bank.valid_background().clone())
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_ranks_share_one_bank() -> None:
    manager = mp.get_context("spawn").Manager()
    out = manager.dict()
    mp.start_processes(_worker, args=(_free_port(), out), nprocs=2, start_method="spawn", join=True)
    parts = [_samples(r) for r in range(2)]
    start = MemoryBank(K, O, D, background_size=8, seed=0).kernel_features
    want = ema_bank_update(start, torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
                           torch.cat([p[2] for p in parts]), 0.9)
    for rank in range(2):
        bank, bg = out[rank]
        torch.testing.assert_close(bank, want)
        torch.testing.assert_close(bg, torch.cat([p[3] for p in parts]))
