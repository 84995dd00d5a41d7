"""The fitting's Gaussian pose prior as a small stored file (``models/nbf_pose_prior.npz``).

Why a file: the prior is a fixed function of the synthetic pose sampler (the poses the network
was trained on). Computing it at start-up meant importing the data generator into the runtime
and drawing 5,000 poses per process; ``tools/build_pose_prior.py`` does that once at build time
and the runtime only reads the result (models/nbf_pose_prior.md).

File format (``np.savez``, read with ``allow_pickle=False``, so no code runs on load):
    "format"              -> the string ``POSE_PRIOR_FORMAT``
    "mean"                -> (69,) float32 mean body pose (axis-angle, radians)
    "precision_cholesky"  -> 69 x 69 float32 L with L L^T = Sigma^-1
    "seed", "samples", "ridge" -> how it was built (provenance, not read back)
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from nbf_ros.errors import NbfError
from nbf_ros.fitting.losses import GaussianPosePrior

POSE_PRIOR_FORMAT = "nbf_ros.pose_prior.v1"
POSE_DIM = 69
REBUILD_COMMAND = "python tools/build_pose_prior.py"


class PosePriorError(NbfError):
    """The pose-prior file is missing, unreadable or malformed (rebuild it with the tool)."""


def save_pose_prior(prior: GaussianPosePrior, path: str | Path, seed: int, samples: int,
                    ridge: float) -> Path:
    """Write ``prior`` in the format above (float32, as the fitting uses it); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:  # a file object: np.savez would otherwise append ".npz"
        np.savez(f, format=np.array(POSE_PRIOR_FORMAT),
                 mean=prior.mean.detach().cpu().numpy().astype(np.float32),
                 precision_cholesky=prior.precision_cholesky.detach().cpu().numpy().astype(np.float32),
                 seed=np.array(seed, dtype=np.int64), samples=np.array(samples, dtype=np.int64),
                 ridge=np.array(ridge, dtype=np.float64))
    return path


def load_pose_prior(path: str | Path) -> GaussianPosePrior:
    """Read a pose-prior file; raises PosePriorError (one line naming the file and the fix)."""
    path = Path(path)
    if not path.is_file():
        raise PosePriorError(f"{path}: pose prior not found; rebuild it with `{REBUILD_COMMAND}`")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("format", "mean", "precision_cholesky")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise PosePriorError(f"{path}: not a readable pose prior ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}); rebuild it with "
                             f"`{REBUILD_COMMAND}`") from exc
    return _checked(arrays, path)


def _checked(arrays: dict[str, np.ndarray], path: Path) -> GaussianPosePrior:
    """The prior of validated arrays: right format, shapes (69,) and 69 x 69, finite."""
    fmt, mean, chol = arrays["format"], arrays["mean"], arrays["precision_cholesky"]
    problem = None
    if fmt.shape != () or str(fmt) != POSE_PRIOR_FORMAT:
        problem = f"format {str(fmt)!r}, expected {POSE_PRIOR_FORMAT!r}"
    elif mean.shape != (POSE_DIM,) or chol.shape != (POSE_DIM, POSE_DIM):
        problem = f"mean {mean.shape} and precision_cholesky {chol.shape}, expected ({POSE_DIM},) " \
                  f"and ({POSE_DIM}, {POSE_DIM})"
    elif mean.dtype.kind != "f" or chol.dtype.kind != "f":
        problem = f"dtypes {mean.dtype} and {chol.dtype}, expected floating point"
    elif not (np.isfinite(mean).all() and np.isfinite(chol).all()):
        problem = "non-finite values"
    if problem:
        raise PosePriorError(f"{path}: malformed pose prior ({problem}); rebuild it with "
                             f"`{REBUILD_COMMAND}`")
    return GaussianPosePrior(torch.from_numpy(mean.astype(np.float32)),
                             torch.from_numpy(chol.astype(np.float32)))
