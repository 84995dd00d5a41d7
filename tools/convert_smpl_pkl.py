#!/usr/bin/env python3
"""Convert an official (chumpy-pickled) SMPL .pkl into the .npz layout ``nbf_ros`` loads.

Why: the official SMPL files are Python-2 pickles whose arrays are ``chumpy.Ch`` objects, and
``J_regressor`` is a scipy sparse matrix. Unpickling them normally needs chumpy (unmaintained) and
executes whatever the pickle names. This converter needs no chumpy: a restricted Unpickler allows
only a whitelist of classes (numpy arrays/dtypes, scipy sparse matrices) and maps chumpy's classes
to a shim that keeps only the array state. Anything else in the pickle is refused.

Usage::

    python tools/convert_smpl_pkl.py SMPL_NEUTRAL.pkl models/smpl_neutral.npz

then point ``BodyConfig.model_path`` at the .npz. Do not commit converted SMPL files: their
licence forbids redistribution.
"""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import numpy as np

OUTPUT_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
CHUMPY_MODULES = ("chumpy", "chumpy.ch", "chumpy.ch_ops", "chumpy.reordering", "chumpy.linalg",
                  "chumpy.utils")
ALLOWED_CLASSES = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("scipy.sparse.csc", "csc_matrix"), ("scipy.sparse._csc", "csc_matrix"),
    ("scipy.sparse.csr", "csr_matrix"), ("scipy.sparse._csr", "csr_matrix"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), ("_codecs", "encode"),
    ("__builtin__", "object"), ("builtins", "object"), ("__builtin__", "set"), ("builtins", "set"),
}


class ChumpyShim:
    """Stands in for any chumpy class: keeps the pickled state, from which ``array()`` reads ``x``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def array(self) -> np.ndarray:
        """The underlying array (chumpy keeps a plain Ch's value in ``x``)."""
        if isinstance(self.state, dict) and "x" in self.state:
            return np.asarray(self.state["x"])
        raise ValueError("chumpy object without an 'x' array (a derived expression?) cannot be "
                         "converted; re-save the model with plain arrays")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only whitelisted classes; chumpy classes become ChumpyShim."""

    def find_class(self, module: str, name: str) -> Any:
        if module in CHUMPY_MODULES:
            return ChumpyShim
        if (module, name) in ALLOWED_CLASSES:
            if module == "__builtin__":
                module = "builtins"
            if module == "copy_reg":
                module = "copyreg"
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the model pickle")


def to_array(value: Any) -> np.ndarray:
    """A chumpy shim, scipy sparse matrix or array-like as a dense numpy array."""
    if isinstance(value, ChumpyShim):
        return value.array()
    if hasattr(value, "toarray"):
        return np.asarray(value.toarray())
    return np.asarray(value)


def load_smpl_pkl(path: Path) -> dict[str, np.ndarray]:
    """The SMPL arrays of a chumpy pickle (Python 2 'latin1' strings), without chumpy."""
    with open(path, "rb") as handle:
        raw = RestrictedUnpickler(handle, encoding="latin1").load()
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict of model arrays, got {type(raw).__name__}")
    missing = [key for key in OUTPUT_KEYS if key not in raw]
    if missing:
        raise ValueError(f"{path}: not an SMPL model, keys {missing} are missing")
    return {key: to_array(raw[key]) for key in OUTPUT_KEYS}


def convert(src: Path, dst: Path) -> dict[str, np.ndarray]:
    """Write the SMPL arrays of ``src`` (.pkl) to ``dst`` (.npz, float32 / int64) and return them."""
    arrays = load_smpl_pkl(src)
    out = {key: value.astype(np.float32) for key, value in arrays.items()
           if key not in ("kintree_table", "f")}
    out["kintree_table"] = arrays["kintree_table"].astype(np.int64)
    out["f"] = arrays["f"].astype(np.int64)
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dst, **out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Convert an official SMPL .pkl to nbf_ros .npz")
    parser.add_argument("src", type=Path, help="SMPL_*.pkl (chumpy pickle)")
    parser.add_argument("dst", type=Path, help="output .npz")
    args = parser.parse_args()
    out = convert(args.src, args.dst)
    print(f"wrote {args.dst}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in out.items()))


if __name__ == "__main__":
    main()
