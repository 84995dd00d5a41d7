"""Checkpoints (resumable training state) and shipped weights (network + memory bank).

Everything is written with ``torch.save`` as plain dicts of tensors/numbers/strings and read with
``torch.load(weights_only=True)``, so loading never executes code from the file. Loading into
modules is strict: a missing, extra or mis-shaped tensor is an error that says which.

Shipped-weights format (``models/nbf_net.pt``): one flat dict
    "net.<name>"  -> NBFNet state-dict entries (floating tensors stored as float16 to halve the size)
    "bank.<name>" -> MemoryBank buffers (kernel_features K x O x D, background_features M x D, ...)
    "format"      -> the string ``WEIGHTS_FORMAT``
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from nbf_ros.config import NetConfig
from nbf_ros.errors import NbfError
from nbf_ros.nets.model import NBFNet
from nbf_ros.training.bank import MemoryBank

LOG = logging.getLogger(__name__)
WEIGHTS_FORMAT = "nbf_ros.weights.v1"
CHECKPOINT_FORMAT = "nbf_ros.checkpoint.v1"


class WeightsError(NbfError):
    """A weights or checkpoint file is missing, unreadable, or does not match the configuration."""


def _read(path: Path, what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {what} not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types (pickle, zip, runtime) for bad files
        raise WeightsError(f"{path}: not a readable {what} ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: {what} must hold a dict, found {type(data).__name__}")
    return data


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)`` with shape checks and a one-line error naming the problem."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise WeightsError(f"{where}: does not match the configured network: missing "
                           f"{missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected "
                           f"{extra[:3]}{'...' if len(extra) > 3 else ''}")
    for name, value in state.items():
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(own[name].shape):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise WeightsError(f"{where}: '{name}' has shape {shape}, the configuration expects "
                               f"{tuple(own[name].shape)} (check net/nbv settings)")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def _split(flat: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}


def bank_from_state(state: dict[str, torch.Tensor], where: str) -> MemoryBank:
    """A MemoryBank sized from the stored tensors, loaded strictly."""
    kf, bf = state.get("kernel_features"), state.get("background_features")
    if not isinstance(kf, torch.Tensor) or kf.dim() != 3 or not isinstance(bf, torch.Tensor) or bf.dim() != 2:
        raise WeightsError(f"{where}: memory bank tensors missing or mis-shaped "
                           "(need kernel_features K x O x D and background_features M x D)")
    bank = MemoryBank(kf.shape[0], kf.shape[1], kf.shape[2], bf.shape[0])
    load_state_strict(bank, state, f"{where} (memory bank)")
    return bank


def save_weights(net: NBFNet, bank: MemoryBank, path: str | Path, half: bool = True) -> None:
    """Write the shipped-weights file (see module doc); float16 storage when ``half``."""
    def store(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        return t.half() if half and t.is_floating_point() else t.clone()

    flat: dict[str, Any] = {f"net.{k}": store(v) for k, v in net.state_dict().items()}
    flat.update({f"bank.{k}": store(v) for k, v in bank.state_dict().items()})
    flat["format"] = WEIGHTS_FORMAT
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(flat, path)


def _read_weights(path: Path) -> dict[str, Any]:
    flat = _read(path, "network weights")
    if flat.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path}: not an nbf_ros weights file (format {flat.get('format')!r}, "
                           f"expected {WEIGHTS_FORMAT!r})")
    return flat


def load_memory_bank(weights_path: str | Path) -> MemoryBank:
    """Only the memory bank (kernel K x O x D and background features) of a shipped-weights file,
    for the fitter, which does not need the network. Raises WeightsError (one line)."""
    path = Path(weights_path)
    return bank_from_state(_split(_read_weights(path), "bank."), str(path)).eval()


def load_network(weights_path: str | Path, cfg: NetConfig) -> tuple[NBFNet, MemoryBank]:
    """Build ``NBFNet(cfg)`` and its memory bank from a shipped-weights file (eval mode, float32).

    Raises:
        WeightsError: the file is missing, corrupt, in another format, or does not match ``cfg``
            (one line saying which).
    """
    path = Path(weights_path)
    flat = _read_weights(path)
    bank = bank_from_state(_split(flat, "bank."), str(path))
    if bank.shape[2] != cfg.feature_dim:
        raise WeightsError(f"{path}: features are {bank.shape[2]}-d, net.feature_dim is {cfg.feature_dim}")
    try:
        net = NBFNet(cfg)
    except ValueError as exc:
        raise WeightsError(f"{path}: invalid net configuration ({exc})") from exc
    load_state_strict(net, _split(flat, "net."), str(path))
    return net.eval(), bank.eval()


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
    data = _read(Path(path), "checkpoint")
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
