"""Shipped weights (network + memory bank): the one file format the runtime reads.

Written with ``torch.save`` as a plain dict of tensors and strings and read with
``torch.load(weights_only=True)``, so loading never executes code from the file. Loading into
modules is strict: a missing, extra or mis-shaped tensor is an error that says which. The
training checkpoint (``nbf_ros.training.checkpoint``) reuses the reader and the strict loading.

Shipped-weights format (``models/nbf_net.pt``): one flat dict
    "net.<name>"  -> NBFNet state-dict entries (floating tensors stored as float16 to halve the size)
    "bank.<name>" -> MemoryBank buffers (kernel_features K x O x D, background_features M x D, ...)
    "format"      -> the string ``WEIGHTS_FORMAT``
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from nbf_ros.config import NetConfig
from nbf_ros.errors import NbfError
from nbf_ros.nets.bank import MemoryBank
from nbf_ros.nets.model import NBFNet

WEIGHTS_FORMAT = "nbf_ros.weights.v1"


class WeightsError(NbfError):
    """A weights or checkpoint file is missing, unreadable, or does not match the configuration."""


def read_tensor_dict(path: Path, what: str) -> dict[str, Any]:
    """The dict a ``torch.save`` file holds, read without running code (one-line WeightsError)."""
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
    flat = read_tensor_dict(path, "network weights")
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

