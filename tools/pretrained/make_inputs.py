"""Model inputs for the pretrained models' parity checks (project venv; build time only).

Writes one .npz of uint8 RGB images already at the models' input size:
``blazepose/<name>`` 256 x 256 x 3 person crops and ``nanodet/<name>`` 416 x 416 x 3 letterboxed
frames (long side scaled to 416, placed top-left, zero padding). Sources:

- ``astronaut`` (skimage.data.astronaut(), public domain) by an exact slicing recipe that the
  CI test repeats (``ASTRONAUT_RECIPES``), so the image itself need not be stored;
- ``synthetic``: a person rendered by our own generator (render_scene, seed 2, test split);
- with ``--opencv-doc DIR`` (Debian package opencv-doc; used here, never stored or committed):
  vtest.avi frame 200 (small walkers), basketball1.png, messi5.jpg.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BLAZEPOSE_SIZE, NANODET_SIZE = 256, 416
# name -> (row slice, col slice) on the 512 x 512 astronaut: exact, no resampling.
ASTRONAUT_RECIPES = {"blazepose": (slice(None, None, 2), slice(None, None, 2)),
                     "nanodet": (slice(48, 464), slice(48, 464))}
# vtest.avi frame 200: three walkers (x0, y0, x1, y1 in frame pixels, read off a NanoDet run).
VTEST_WALKERS = ((616, 262, 649, 369), (217, 188, 249, 265), (705, 252, 745, 352))


def square_crop(rgb: np.ndarray, box, size: int, scale: float = 1.25) -> np.ndarray:
    """size x size crop of the square around box (x0, y0, x1, y1) enlarged by scale."""
    x0, y0, x1, y1 = map(float, box)
    side = scale * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    s = size / side
    m = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]])
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


def letterbox(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = size / max(h, w)
    nh, nw = round(h * s), round(w * s)
    out = np.zeros((size, size, 3), np.uint8)
    out[:nh, :nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def astronaut_inputs() -> dict[str, np.ndarray]:
    from skimage import data  # noqa: PLC0415

    img = data.astronaut()
    return {k: np.ascontiguousarray(img[r, c]) for k, (r, c) in ASTRONAUT_RECIPES.items()}


def synthetic_inputs(seed: int = 2) -> dict[str, np.ndarray]:
    sys.path.insert(0, str(ROOT))
    from nbf_ros.body.model import BodyModel  # noqa: PLC0415
    from nbf_ros.config import SyntheticConfig  # noqa: PLC0415
    from nbf_ros.data.scene import render_scene  # noqa: PLC0415

    scene = render_scene(seed, SyntheticConfig(split="test"), BodyModel(str(ROOT / "models/nbf_body.npz")))
    return {"blazepose": square_crop(scene.image, scene.people[0].bbox, BLAZEPOSE_SIZE),
            "nanodet": letterbox(scene.image, NANODET_SIZE)}


def opencv_doc_inputs(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    cap = cv2.VideoCapture(str(folder / "vtest.avi"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 200)
    ok, frame = cap.read()
    if not ok:
        raise FileNotFoundError(folder / "vtest.avi")
    frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    out["vtest200"] = {"nanodet": letterbox(frame, NANODET_SIZE)}
    for i, box in enumerate(VTEST_WALKERS):
        out[f"vtest200_walker{i}"] = {"blazepose": square_crop(frame, box, BLAZEPOSE_SIZE)}
    for name in ("basketball1.png", "messi5.jpg"):
        bgr = cv2.imread(str(folder / name))
        if bgr is None:
            raise FileNotFoundError(folder / name)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        out[name.split(".")[0]] = {"nanodet": letterbox(rgb, NANODET_SIZE),
                                   "blazepose": square_crop(rgb, (0, 0, w, h), BLAZEPOSE_SIZE, 1.0)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--opencv-doc", type=Path, default=None)
    args = p.parse_args(argv)
    images = {"astronaut": astronaut_inputs(), "synthetic": synthetic_inputs()}
    if args.opencv_doc is not None:
        images.update(opencv_doc_inputs(args.opencv_doc))
    arrays = {f"{model}/{name}": img for name, d in images.items() for model, img in d.items()}
    np.savez(args.out, **arrays)
    print(f"wrote {len(arrays)} inputs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
