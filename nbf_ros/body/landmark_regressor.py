"""BlazePose's 33 landmarks on our body model: a sparse vertex regressor read from a small file.

Why: BlazePose's landmarks are not SMPL's joints. Its hip landmarks sit on the outside of the
pelvis, its shoulders on the shoulder surface, its heels on the skin behind the ankle, and its face
points on the face. Comparing them with the body model's joints (``keypoints/blazepose.py``'s
mapping) builds that offset into every fit. Instead, each landmark k is a fixed convex
combination of mesh vertices, ``L_k = sum_i w_ki V_{idx_ki}``, learned once from our own renders
(the mesh is known exactly there, BlazePose runs on the image): ``tools/build_landmark_regressor.py``
writes the file, this module only reads and applies it (models/nbf_landmark_regressor.md).

File format (``np.savez``, read with ``allow_pickle=False``, so no code runs on load):
    "format"   -> the string ``LANDMARK_REGRESSOR_FORMAT``
    "names"    -> (33,) landmark names (BlazePose's order, e.g. "left_hip")
    "indices"  -> 33 x K int64 vertex indices (padding entries have weight 0)
    "weights"  -> 33 x K float32, non-negative, each row sums to 1
    "num_vertices" -> () int64, the vertex count of the body model it was learned on
    anything else (seeds, people, validation numbers) is provenance and not read back.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nbf_ros.errors import NbfError

LANDMARK_REGRESSOR_FORMAT = "nbf_ros.landmark_regressor.v1"
NUM_LANDMARKS = 33
REBUILD_COMMAND = "python tools/build_landmark_regressor.py"
ROW_SUM_TOLERANCE = 1e-4


class LandmarkRegressorError(NbfError):
    """The landmark-regressor file is missing, unreadable or malformed (rebuild it with the tool)."""


@dataclass(frozen=True)
class LandmarkRegressor:
    """Sparse map from body-model vertices to BlazePose's landmarks.

    Attributes:
        names: the 33 landmark names, BlazePose's order.
        indices: 33 x K int64 vertex indices.
        weights: 33 x K float32, rows non-negative and summing to 1.
        num_vertices: vertex count of the body model the indices refer to.
    """

    names: tuple[str, ...]
    indices: np.ndarray
    weights: np.ndarray
    num_vertices: int

    @property
    def vertex_ids(self) -> np.ndarray:
        """(N,) sorted unique vertex indices with a non-zero weight: the only vertices a fit
        needs to pose (``BodyModel.shaped_subset``)."""
        return np.unique(self.indices[self.weights > 0])

    def subset_matrix(self) -> np.ndarray:
        """33 x N dense weights over ``vertex_ids`` (landmarks = matrix @ subset vertices)."""
        ids = self.vertex_ids
        column = {int(v): j for j, v in enumerate(ids)}
        out = np.zeros((len(self.names), len(ids)), np.float64)
        for k in range(len(self.names)):
            for v, w in zip(self.indices[k], self.weights[k]):
                if w > 0:
                    out[k, column[int(v)]] += w
        return out

    def dense_matrix(self) -> np.ndarray:
        """33 x V dense weights over all vertices of the body model."""
        out = np.zeros((len(self.names), self.num_vertices), np.float64)
        np.add.at(out, (np.repeat(np.arange(len(self.names)), self.indices.shape[1]),
                        self.indices.reshape(-1)), self.weights.reshape(-1))
        return out

    def apply(self, vertices: torch.Tensor) -> torch.Tensor:
        """B x V x 3 full-mesh vertices -> B x 33 x 3 landmarks (same frame and units)."""
        if vertices.ndim != 3 or vertices.shape[1:] != (self.num_vertices, 3):
            raise ValueError(f"vertices must be B x {self.num_vertices} x 3, got {tuple(vertices.shape)}")
        idx = torch.as_tensor(self.indices, device=vertices.device)
        w = torch.as_tensor(self.weights, dtype=vertices.dtype, device=vertices.device)
        # b = batch, k = landmark, i = entry of the row, c = xyz: L[b,k,c] = sum_i w[k,i] V[b,idx[k,i],c]
        return torch.einsum("ki,bkic->bkc", w, vertices[:, idx])

    def apply_numpy(self, vertices: np.ndarray) -> np.ndarray:
        """... x V x 3 vertices (numpy) -> ... x 33 x 3 landmarks."""
        vertices = np.asarray(vertices, np.float64)
        if vertices.shape[-2:] != (self.num_vertices, 3):
            raise ValueError(f"vertices must be ... x {self.num_vertices} x 3, got {vertices.shape}")
        return np.einsum("ki,...kic->...kc", self.weights.astype(np.float64), vertices[..., self.indices, :])

    def index_of(self, name: str) -> int:
        """Index of a landmark by name (ValueError naming the known ones otherwise)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"no landmark {name!r}; known: {', '.join(self.names)}") from None

    def mirror_permutation(self) -> np.ndarray:
        """(33,) index of each landmark's left/right counterpart (itself on the midline)."""
        def other(name: str) -> str:
            if name.startswith("left_"):
                return "right_" + name[5:]
            if name.startswith("right_"):
                return "left_" + name[6:]
            if name.endswith("_left"):
                return name[:-5] + "_right"
            if name.endswith("_right"):
                return name[:-6] + "_left"
            return name
        return np.array([self.index_of(other(n)) for n in self.names], np.int64)


def save_landmark_regressor(path: str | Path, names: tuple[str, ...], indices: np.ndarray,
                            weights: np.ndarray, num_vertices: int, **provenance: np.ndarray) -> Path:
    """Write a regressor in the format above (after the same checks ``load`` makes)."""
    path = Path(path)
    reg = _checked({"format": np.array(LANDMARK_REGRESSOR_FORMAT), "names": np.array(names),
                    "indices": np.asarray(indices, np.int64), "weights": np.asarray(weights, np.float32),
                    "num_vertices": np.array(num_vertices, np.int64)}, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:  # a file object: np.savez would otherwise append ".npz"
        np.savez(f, format=np.array(LANDMARK_REGRESSOR_FORMAT), names=np.array(reg.names),
                 indices=reg.indices, weights=reg.weights,
                 num_vertices=np.array(reg.num_vertices, np.int64), **provenance)
    return path


def load_landmark_regressor(path: str | Path, num_vertices: int | None = None) -> LandmarkRegressor:
    """Read a regressor file; raises LandmarkRegressorError (one line naming the file and the fix).

    Args:
        num_vertices: when given, the body model's vertex count, which the file must match.
    """
    path = Path(path)
    if not path.is_file():
        raise LandmarkRegressorError(f"{path}: landmark regressor not found; rebuild it with "
                                     f"`{REBUILD_COMMAND}`")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("format", "names", "indices", "weights", "num_vertices")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise LandmarkRegressorError(f"{path}: not a readable landmark regressor "
                                     f"({type(exc).__name__}: {first}); rebuild it with "
                                     f"`{REBUILD_COMMAND}`") from exc
    reg = _checked(arrays, path)
    if num_vertices is not None and reg.num_vertices != num_vertices:
        raise LandmarkRegressorError(f"{path}: learned on a body model with {reg.num_vertices} vertices, "
                                     f"this one has {num_vertices}; rebuild it with `{REBUILD_COMMAND}`")
    return reg


def _checked(arrays: dict[str, np.ndarray], path: Path) -> LandmarkRegressor:
    """The regressor of validated arrays: format, shapes, index range, non-negative rows summing
    to one."""
    fmt, names, idx, w, nv = (arrays[k] for k in ("format", "names", "indices", "weights", "num_vertices"))
    problem = None
    if fmt.shape != () or str(fmt) != LANDMARK_REGRESSOR_FORMAT:
        problem = f"format {str(fmt)!r}, expected {LANDMARK_REGRESSOR_FORMAT!r}"
    elif names.shape != (NUM_LANDMARKS,) or names.dtype.kind != "U":
        problem = f"names of shape {names.shape}, expected ({NUM_LANDMARKS},) strings"
    elif idx.ndim != 2 or idx.shape[0] != NUM_LANDMARKS or idx.shape != w.shape or idx.shape[1] < 1:
        problem = f"indices {idx.shape} and weights {w.shape}, expected both {NUM_LANDMARKS} x K"
    elif idx.dtype.kind not in "iu" or w.dtype.kind != "f" or nv.shape != () or nv.dtype.kind not in "iu":
        problem = f"dtypes {idx.dtype}, {w.dtype}, {nv.dtype}: expected integer, float, integer"
    elif not np.isfinite(w).all() or (w < 0).any():
        problem = "weights must be finite and non-negative"
    elif idx.min() < 0 or idx.max() >= int(nv):
        problem = f"vertex indices outside 0..{int(nv) - 1}"
    elif np.abs(w.astype(np.float64).sum(1) - 1.0).max() > ROW_SUM_TOLERANCE:
        problem = f"rows sum to {w.sum(1).min():.4f}..{w.sum(1).max():.4f}, expected 1"
    if problem:
        raise LandmarkRegressorError(f"{path}: malformed landmark regressor ({problem}); rebuild it "
                                     f"with `{REBUILD_COMMAND}`")
    return LandmarkRegressor(tuple(str(n) for n in names), idx.astype(np.int64), w.astype(np.float32),
                             int(nv))
