"""Training data: synthetic crops by index, cached on disk, and the step-deterministic sampler.

Sample i of a split is ``nbf_ros.data.dataset.SyntheticCropDataset(..., seed=data_seed)[i]``: deterministic,
so a crop can be cached the first time it is rendered and read back in later epochs (rendering
costs ~80 ms per 128-px crop on one core, reading ~1 ms). The cache directory name is a hash of
everything that determines the pixels and labels (synthetic config, crop settings, kernel layout,
split, occlusion), so a changed setting never reads stale crops.

Pre-render ahead of (or alongside) a training run, in another process:
    python -m nbf_ros.apps.prerender_crops --config config/train_default.yaml --count 12000
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from nbf_ros.config import NbfConfig, SyntheticConfig, resolve_path, to_dict

LOG = logging.getLogger(__name__)
# Arrays the trainer and the evaluation read; the rest of a CropSample is not cached.
TRAIN_KEYS = ("image", "kernel_index", "person_mask", "occluder_mask", "joints2d", "joints3d",
              "betas", "global_orient", "body_pose", "transl", "crop_camera", "joint_visibility")
CACHE_ROOT = "cache/crops"
VAL_SEED_OFFSET = 5_000_000
"""Validation crops use the held-out split *and* seeds far from the training range."""


def synthetic_for(cfg: NbfConfig, split: str, occlusion_prob: Optional[float]) -> SyntheticConfig:
    """The generator config of a split; ``occlusion_prob`` overrides the occluder probability
    (0 = no occluders, 1 = always occluded, None = as configured)."""
    syn = replace(cfg.synthetic, split=split)
    if occlusion_prob is not None:
        syn = replace(syn, occlusion=replace(syn.occlusion, enabled=occlusion_prob > 0,
                                             prob=float(occlusion_prob)))
    return syn


def cache_dir_for(cfg: NbfConfig, syn: SyntheticConfig, kernel_ids: np.ndarray) -> Path:
    """cache/crops/<hash of generator config, crop rule, kernel layout>."""
    key = {"synthetic": to_dict(syn), "crop_size": cfg.net.crop_size,
           "stride": cfg.net.feature_stride, "crop_scale": cfg.net.crop_scale,
           "kernels": hashlib.sha256(np.ascontiguousarray(kernel_ids, np.int64).tobytes()).hexdigest()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return resolve_path(CACHE_ROOT) / f"{syn.split}-{digest}"


class SyntheticCrops(Dataset):
    """``nbf_ros.data.dataset.SyntheticCropDataset`` with a per-crop disk cache; items hold ``TRAIN_KEYS``.

    Unlike the data package's shards (written whole before a ``ShardDataset`` can open them), the
    per-index cache lets a pre-rendering process and a training run share crops while both run.

    Shapes: image 3 x S x S float in [0, 1]; kernel_index (S/4) x (S/4) int64 (-1 = background
    or occluder); the rest as ``nbf_ros.data.crops.CropSample`` documents, float32.
    """

    def __init__(self, cfg: NbfConfig, syn: SyntheticConfig, data: "DataBody", length: int,
                 first_seed: int, cache: bool = True, cache_dir: str = "") -> None:
        if length <= 0:
            raise ValueError(f"length must be positive, got {length}")
        from nbf_ros.data.dataset import SyntheticCropDataset

        self.source = SyntheticCropDataset(data.body, syn, cfg.net, length, first_seed, data.labels)
        self.remap = torch.from_numpy(np.append(data.remap, -1))  # index -1 -> -1
        self.length, self.first_seed = length, first_seed
        self.cache = None if not cache else (resolve_path(cache_dir) if cache_dir else
                                             cache_dir_for(cfg, syn, data.labels.kernel_vertex_ids))
        if self.cache is not None:
            self.cache.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return self.length

    def path(self, index: int) -> Optional[Path]:
        return None if self.cache is None else self.cache / f"{self.first_seed + index:08d}.npz"

    def render(self, index: int) -> dict[str, np.ndarray]:
        sample = self.source.sample(index)
        return {k: np.asarray(getattr(sample, k)) for k in TRAIN_KEYS}

    def arrays(self, index: int) -> dict[str, np.ndarray]:
        """The sample's arrays, from the cache when present (written atomically on a miss)."""
        path = self.path(index)
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as npz:
                    return {k: npz[k] for k in TRAIN_KEYS}
            except (OSError, ValueError, KeyError):
                LOG.warning("re-rendering unreadable cache entry %s", path)
        arrays = self.render(index)
        if path is not None:
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, **arrays)
            tmp.replace(path)
        return arrays

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        a = self.arrays(index)
        out = {"image": torch.from_numpy(a["image"]).permute(2, 0, 1).float().div_(255.0)}
        for k in TRAIN_KEYS[1:]:
            out[k] = torch.from_numpy(np.asarray(a[k]).astype(np.int64 if k == "kernel_index" else np.float32))
        out["kernel_index"] = self.remap[out["kernel_index"]]  # generator order -> NBV order
        return out


class StepSampler(Sampler[int]):
    """Indices for steps start.. of a run: epoch 0 in order (samples are i.i.d. by seed, and a
    pre-rendering process fills the cache in that order), later epochs in a permutation fixed by
    (seed, epoch). Rank r of W takes every W-th batch-sized slice."""

    def __init__(self, length: int, batch_size: int, start_step: int, seed: int,
                 rank: int = 0, world: int = 1) -> None:
        self.length, self.batch, self.start, self.seed = length, batch_size, start_step, seed
        self.rank, self.world = rank, world

    def __iter__(self) -> Iterator[int]:
        step = self.start
        cached_epoch, perm = -1, None
        while True:
            base = (step * self.world + self.rank) * self.batch
            for position in range(base, base + self.batch):
                epoch, offset = divmod(position, self.length)
                if epoch == 0:
                    yield offset
                    continue
                if epoch != cached_epoch:
                    gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
                    perm, cached_epoch = torch.randperm(self.length, generator=gen), epoch
                yield int(perm[offset])
            step += 1

    def __len__(self) -> int:  # infinite stream; DataLoader only needs this for progress hints
        return sys.maxsize


@dataclass
class DataBody:
    """What rendering needs, built once: the body model, the generator's truth tables, and
    ``remap`` (K,): the NBV kernel index of each generator kernel index.

    The generator lays kernels out on the zero-pose *output* mesh and the NBV on the template;
    both pick the same vertex set by farthest-point sampling but may order exact ties
    differently, so labels are re-indexed into the NBV's order (the order of the bank).
    """

    body: torch.nn.Module
    labels: Any
    remap: np.ndarray


def kernel_remap(generator_ids: np.ndarray, nbv_ids: np.ndarray) -> np.ndarray:
    """(K,) position in ``nbv_ids`` of each vertex of ``generator_ids``; they must be one set."""
    position = {int(v): i for i, v in enumerate(np.asarray(nbv_ids))}
    missing = [int(v) for v in generator_ids if int(v) not in position]
    if missing or len(generator_ids) != len(nbv_ids):
        raise ValueError(f"the data generator's kernels are not the NBV's ({len(missing)} of "
                         f"{len(generator_ids)} differ): check synthetic.num_kernels/kernel_seed "
                         "against nbv.num_kernels")
    return np.array([position[int(v)] for v in generator_ids], dtype=np.int64)


def load_data_body(cfg: NbfConfig) -> DataBody:
    from nbf_ros.body.model import load_body_model
    from nbf_ros.body.nbv import NeuralBodyVolume
    from nbf_ros.data.scene import resolve_labels

    body = load_body_model(resolve_path(cfg.body.model_path), cfg.body.num_betas)
    labels = resolve_labels(body, None, cfg.synthetic)
    nbv_ids = NeuralBodyVolume(body, cfg.nbv).kernel_vertex_ids.numpy()
    return DataBody(body, labels, kernel_remap(labels.kernel_vertex_ids, nbv_ids))


def train_dataset(cfg: NbfConfig, data: Optional[DataBody] = None) -> SyntheticCrops:
    t = cfg.train
    return SyntheticCrops(cfg, synthetic_for(cfg, "train", None), data or load_data_body(cfg),
                          t.num_train_images, t.data_seed, cache_dir=t.cache_dir)


def make_train_loader(cfg: NbfConfig, start_step: int, rank: int = 0, world: int = 1,
                      data: Optional[DataBody] = None) -> Iterator[dict[str, Any]]:
    """Endless iterator of collated batches for steps start_step.. (deterministic by step)."""
    t = cfg.train
    ds = train_dataset(cfg, data)
    loader = DataLoader(ds, batch_size=t.batch_size,
                        sampler=StepSampler(len(ds), t.batch_size, start_step, t.seed, rank, world),
                        num_workers=t.num_workers, persistent_workers=t.num_workers > 0,
                        prefetch_factor=4 if t.num_workers > 0 else None)
    return iter(loader)


def make_eval_batches(cfg: NbfConfig, count: int, first_seed: int = VAL_SEED_OFFSET,
                      occlusion_prob: Optional[float] = None, batch_size: int = 32,
                      data: Optional[DataBody] = None) -> list[dict[str, torch.Tensor]]:
    """Held-out crops (test split: other textures and background photos; other seeds)."""
    ds = SyntheticCrops(cfg, synthetic_for(cfg, "test", occlusion_prob), data or load_data_body(cfg),
                        count, first_seed)
    return list(DataLoader(ds, batch_size=batch_size, shuffle=False))


def make_val_batches(cfg: NbfConfig, data: Optional[DataBody] = None) -> list[dict[str, torch.Tensor]]:
    """The small fixed validation set logged during training (``train.val_images``)."""
    return make_eval_batches(cfg, cfg.train.val_images, data=data)
