"""Frozen-trunk outputs of synthetic crops, cached once on disk so the head trains for many epochs.

The trunk (``nets/trunk.py``) is frozen, so its taps of a crop never change: computing them once
turns an epoch of head training from ~60 ms of trunk per crop into a read from a memory map.
Layout of a cache directory (float16 taps, git-ignored under ``cache/``)::

    meta.json            taps, shapes, count done, split, seeds, occlusion, source crop cache
    tap_<name>.npy       N x C x s x s float16 (s = the fit's grid side, or coarser)
    kernel_index.npy     N x h x w int16 (NBV kernel order; -1 background / occluder)
    joints3d.npy         N x 24 x 3 float32 (camera frame; orientation bins come from these)

Filling is resumable (``meta.json`` counts the crops written), in chunks of ``chunk`` crops.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from nbf_ros.nets.trunk import BlazePoseTrunk
from nbf_ros.training.data import SyntheticCrops

LOG = logging.getLogger(__name__)
META = "meta.json"


@dataclass
class TrunkCache:
    """An opened cache: memory-mapped arrays (read-only unless being filled).

    Attributes:
        taps: name -> N x C x s x s float16.
        kernel_index: N x h x w int16.
        joints3d: N x 24 x 3 float32.
        count: crops written (<= N).
        meta: the meta.json dict.
    """

    taps: dict[str, np.ndarray]
    kernel_index: np.ndarray
    joints3d: np.ndarray
    count: int
    meta: dict

    def batch(self, index: np.ndarray, taps: Optional[Sequence[str]] = None) -> dict[str, torch.Tensor]:
        """Rows ``index`` (in sorted order) as float32 taps (``taps``, default all), int64
        kernel_index, float32 joints3d."""
        order = np.sort(index)  # memory-map reads are faster in file order
        out: dict[str, torch.Tensor] = {
            f"tap:{n}": torch.from_numpy(np.asarray(self.taps[n][order], np.float32))
            for n in (taps if taps is not None else self.taps)}
        out["kernel_index"] = torch.from_numpy(np.asarray(self.kernel_index[order], np.int64))
        out["joints3d"] = torch.from_numpy(np.asarray(self.joints3d[order], np.float32))
        return out


def open_cache(directory: str | Path, writable: bool = False) -> TrunkCache:
    """Open a cache written by ``fill_cache`` (FileNotFoundError if there is none)."""
    d = Path(directory)
    meta = json.loads((d / META).read_text())
    mode = "r+" if writable else "r"
    taps = {n: np.load(d / f"tap_{n}.npy", mmap_mode=mode) for n in meta["taps"]}
    return TrunkCache(taps, np.load(d / "kernel_index.npy", mmap_mode=mode),
                      np.load(d / "joints3d.npy", mmap_mode=mode), int(meta["count"]), meta)


def _create(d: Path, trunk: BlazePoseTrunk, crops: SyntheticCrops, total: int, info: dict) -> None:
    """Allocate the arrays from one probe run's shapes and write meta.json with count 0."""
    d.mkdir(parents=True, exist_ok=True)
    first = crops[0]
    probe = trunk.run(first["image"][None].numpy())
    for name, tap in probe.taps.items():
        np.lib.format.open_memmap(d / f"tap_{name}.npy", "w+", np.float16, (total, *tap.shape[1:]))
    h, w = first["kernel_index"].shape
    np.lib.format.open_memmap(d / "kernel_index.npy", "w+", np.int16, (total, h, w))
    np.lib.format.open_memmap(d / "joints3d.npy", "w+", np.float32, (total, 24, 3))
    meta = {**info, "taps": list(trunk.taps), "total": total, "count": 0,
            "tap_shapes": {n: list(t.shape[1:]) for n, t in probe.taps.items()}}
    (d / META).write_text(json.dumps(meta, indent=1))


def fill_cache(directory: str | Path, trunk: BlazePoseTrunk, crops: SyntheticCrops, total: int,
               info: dict, chunk: int = 16, time_limit_s: Optional[float] = None) -> int:
    """Render (or read) crops [count, total) and store the trunk's taps and the labels.

    Returns the number of crops in the cache afterwards. ``info`` (split, seeds, occlusion) is
    stored in meta.json and must match an existing cache's, so a resumed fill never mixes data.
    """
    d = Path(directory)
    if not (d / META).is_file():
        _create(d, trunk, crops, total, info)
    cache = open_cache(d, writable=True)
    mismatch = {k: (cache.meta.get(k), v) for k, v in info.items() if cache.meta.get(k) != v}
    if mismatch or cache.meta["taps"] != list(trunk.taps) or cache.meta["total"] != total:
        raise ValueError(f"{d}: an existing cache of other settings ({mismatch or 'taps/total'}); "
                         "remove it or choose another --out")
    start, count = time.monotonic(), cache.count
    while count < total:
        rows = list(range(count, min(total, count + chunk)))
        items = [crops[i] for i in rows]
        out = trunk.run(np.stack([it["image"].numpy() for it in items]))
        for name, tap in out.taps.items():
            cache.taps[name][rows[0]:rows[-1] + 1] = tap.astype(np.float16)
        cache.kernel_index[rows[0]:rows[-1] + 1] = np.stack([it["kernel_index"].numpy() for it in items])
        cache.joints3d[rows[0]:rows[-1] + 1] = np.stack([it["joints3d"].numpy() for it in items])
        count = rows[-1] + 1
        _write_count(d, cache, count)
        if count % (chunk * 50) < chunk:
            LOG.info("%s: %d / %d crops (%.1f ms per crop)", d.name, count, total,
                     1e3 * (time.monotonic() - start) / max(1, count - cache.count))
        if time_limit_s is not None and time.monotonic() - start >= time_limit_s:
            break  # checked after a chunk, so every call makes progress
    return count


def _write_count(d: Path, cache: TrunkCache, count: int) -> None:
    """Flush the arrays, then record the new count (so a crash never counts unwritten rows)."""
    for a in (*cache.taps.values(), cache.kernel_index, cache.joints3d):
        a.flush()
    meta = {**cache.meta, "count": count}
    tmp = d / f".{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(d / META)
