"""Checkpoints: the resumable training state (network, memory bank, optimiser, step, config).

Written with ``torch.save`` as a plain dict and read with ``torch.load(weights_only=True)``
(``nbf_ros.nets.weights``), loaded strictly. The shipped-weights file the runtime reads is
``nbf_ros.nets.weights``; a training run writes it at the end.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from nbf_ros.nets.bank import MemoryBank
from nbf_ros.nets.weights import WeightsError, load_state_strict, read_tensor_dict

CHECKPOINT_FORMAT = "nbf_ros.checkpoint.v1"


def config_changes(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys whose value differs or that disappeared between a stored and the current config.

    Keys only the current config has are not changes: code that gained a setting (with its
    default) can still resume a run written before it existed.
    """
    changes = []
    for key, old in stored.items():
        name = f"{prefix}{key}"
        if key not in current:
            changes.append(f"{name} removed")
        elif isinstance(old, dict) and isinstance(current[key], dict):
            changes += config_changes(old, current[key], f"{name}.")
        elif old != current[key]:
            changes.append(f"{name}: {old!r} -> {current[key]!r}")
    return changes


@dataclass
class TrainState:
    """What a checkpoint restores: step count and the optimiser's state (modules load in place)."""

    step: int
    images_seen: int
    elapsed_s: float
    optimizer: dict[str, Any]
    config: dict[str, Any]


def save_checkpoint(path: str | Path, net: nn.Module, bank: MemoryBank,
                    optimizer: torch.optim.Optimizer, step: int, images_seen: int,
                    elapsed_s: float, config: dict[str, Any]) -> None:
    """Atomically write model + bank + optimiser + step + config (plain types only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": CHECKPOINT_FORMAT, "model": net.state_dict(), "bank": bank.state_dict(),
            "optimizer": optimizer.state_dict(), "step": int(step),
            "images_seen": int(images_seen), "elapsed_s": float(elapsed_s), "config": config}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(data, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path, net: nn.Module, bank: MemoryBank,
                    expected_config: Optional[dict[str, Any]] = None) -> TrainState:
    """Load a checkpoint into ``net`` and ``bank`` (strict); returns the rest.

    ``expected_config``: when given, the stored config must equal it, so a resumed run is the
    same run (the caller removes fields that may change on resume, such as the step budget).
    """
    data = read_tensor_dict(Path(path), "checkpoint")
    if data.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path}: not an nbf_ros checkpoint (format {data.get('format')!r})")
    if expected_config is not None:
        changed = config_changes(data.get("config") or {}, expected_config)
        if changed:
            raise WeightsError(f"{path}: checkpoint was written with a different configuration "
                               f"({', '.join(changed[:3])}); use a new out_dir or the same config")
    load_state_strict(net, data["model"], f"{path} (network)")
    load_state_strict(bank, data["bank"], f"{path} (memory bank)")
    return TrainState(int(data["step"]), int(data["images_seen"]), float(data["elapsed_s"]),
                      data["optimizer"], data["config"])
