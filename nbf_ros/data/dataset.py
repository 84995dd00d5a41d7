"""Torch datasets of training crops: rendered on the fly, or read from pre-generated shards.

Both return the same dict of tensors per sample (``CropSample.to_tensors``); see docs/data.md
for the keys, shapes and meanings. Sample ``i`` of a dataset with seed ``s`` is
``render_crop(s + i, ...)``: deterministic, independent of DataLoader workers and order.

Shards are ``shard_00000.npz`` ... (``np.savez``, plain arrays, read with allow_pickle=False)
plus ``meta.json`` (config, seed, count, crop size, stride, number of kernels). Images are kept
as uint8 and converted to float on read, so a shard of 500 crops at 128 px is ~30 MB.
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from nbf_ros.config import NetConfig, SyntheticConfig, from_dict, resolve_path, to_dict
from nbf_ros.data.crops import CropSample, render_crop
from nbf_ros.data.scene import GENERATOR_VERSION, BodyLabels, resolve_labels

LOG = logging.getLogger(__name__)

SHARD_PATTERN = "shard_{:05d}.npz"
META_FILE = "meta.json"
META_VERSION = 1


def default_body() -> torch.nn.Module:
    """The embedded body model (BodyConfig defaults)."""
    from nbf_ros.body.model import load_body_model
    from nbf_ros.config import BodyConfig

    cfg = BodyConfig()
    return load_body_model(resolve_path(cfg.model_path), num_betas=cfg.num_betas)


class SyntheticCropDataset(Dataset):
    """Training crops rendered on demand (CPU, ~15-25 crops/s per core at 128 px).

    Args:
        body: the BodyModel (None: the embedded one).
        cfg: generator settings (``cfg.split`` picks train/held-out textures and backgrounds).
        net: crop size, feature stride, crop scale.
        length: number of samples.
        seed: sample i uses seed + i.
        kernels: BodyLabels, the NBV's (K,) kernel vertex ids, or None (config's K and seed).
        occlusion: occluders on/off (None: ``cfg.occlusion.enabled``).
    """

    def __init__(self, body: Optional[torch.nn.Module] = None, cfg: SyntheticConfig = SyntheticConfig(),
                 net: NetConfig = NetConfig(), length: int = 10000, seed: int = 0,
                 kernels=None, occlusion: Optional[bool] = None) -> None:
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self.body = default_body() if body is None else body
        self.cfg, self.net, self.length, self.seed = cfg, net, int(length), int(seed)
        self.labels: BodyLabels = resolve_labels(self.body, kernels, cfg)
        self.occlusion = occlusion

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int) -> CropSample:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        return render_crop(self.seed + index, self.cfg, self.body, self.labels, self.net, self.occlusion)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.sample(index).to_tensors()


def write_shards(out_dir: str | Path, cfg: SyntheticConfig, count: int, seed: int,
                 body: Optional[torch.nn.Module] = None, net: NetConfig = NetConfig(),
                 shard_size: int = 500, kernels=None, occlusion: Optional[bool] = None,
                 progress: bool = True) -> Path:
    """Render ``count`` crops (seeds seed .. seed+count-1) into shards under ``out_dir``.

    Existing complete shards with the same meta are kept (so an interrupted run resumes).
    Returns the output directory.
    """
    from tqdm import tqdm

    if count <= 0 or shard_size <= 0:
        raise ValueError(f"count and shard_size must be positive, got {count}, {shard_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = SyntheticCropDataset(body, cfg, net, count, seed, kernels, occlusion)
    meta = {"version": META_VERSION, "generator_version": GENERATOR_VERSION, "count": count,
            "seed": seed, "shard_size": shard_size,
            "crop_size": net.crop_size, "feature_stride": net.feature_stride,
            "crop_scale": net.crop_scale, "num_kernels": dataset.labels.num_kernels,
            "occlusion": cfg.occlusion.enabled if occlusion is None else occlusion,
            "synthetic": to_dict(cfg)}
    _check_or_write_meta(out, meta)
    num_shards = (count + shard_size - 1) // shard_size
    bar = tqdm(total=count, desc=f"shards -> {out}", unit="crop", disable=not progress)
    for shard in range(num_shards):
        start, stop = shard * shard_size, min(count, (shard + 1) * shard_size)
        path = out / SHARD_PATTERN.format(shard)
        if path.is_file():
            bar.update(stop - start)
            continue
        samples = []
        for i in range(start, stop):
            samples.append(dataset.sample(i))
            bar.update(1)
        _save_shard(path, samples)
    bar.close()
    return out


def _check_or_write_meta(out: Path, meta: dict) -> None:
    path = out / META_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        if old != meta:
            raise ValueError(f"{path} describes different shards; use another out_dir or delete it")
        return
    path.write_text(json.dumps(meta, indent=1))


def _save_shard(path: Path, samples: list[CropSample]) -> None:
    # Optional fields left None (e.g. ``depth`` when not rendered) are not stored: an object
    # array could not be read back without unpickling, and a reader gets None for them.
    arrays = {name: np.stack([np.asarray(getattr(s, name)) for s in samples])
              for name, value in samples[0].__dict__.items() if value is not None}
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)  # atomic: a shard file is complete or absent


class ShardDataset(Dataset):
    """Crops read from :func:`write_shards` output; same dict as SyntheticCropDataset.

    Keeps the most recently read shard in memory (shuffle within shards, or use a sampler that
    walks shards, for speed; random access works but reloads shards).
    """

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        meta_path = self.dir / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"no {META_FILE} in {self.dir}: not a shard directory")
        self.meta = json.loads(meta_path.read_text())
        self.count, self.shard_size = int(self.meta["count"]), int(self.meta["shard_size"])
        missing = [i for i in range((self.count + self.shard_size - 1) // self.shard_size)
                   if not (self.dir / SHARD_PATTERN.format(i)).is_file()]
        if missing:
            raise FileNotFoundError(f"{self.dir}: shards {missing[:5]} missing (still being written?)")
        self._cached: tuple[int, dict[str, np.ndarray]] | None = None

    @property
    def config(self) -> SyntheticConfig:
        return from_dict(SyntheticConfig, self.meta["synthetic"])

    def __len__(self) -> int:
        return self.count

    def _shard(self, index: int) -> dict[str, np.ndarray]:
        if self._cached is None or self._cached[0] != index:
            with np.load(self.dir / SHARD_PATTERN.format(index), allow_pickle=False) as npz:
                self._cached = (index, {k: npz[k] for k in npz.files})
        return self._cached[1]

    def sample(self, index: int) -> CropSample:
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} samples")
        arrays = self._shard(index // self.shard_size)
        row = index % self.shard_size
        return CropSample(**{k: v[row] for k, v in arrays.items()})

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.sample(index).to_tensors()


def with_split(cfg: SyntheticConfig, split: str) -> SyntheticConfig:
    """``cfg`` with another split (train / test)."""
    return replace(cfg, split=split)

