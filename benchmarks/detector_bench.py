"""Person detectors compared: NanoDet-g (with / without tiles) vs OpenCV HOG.

1. Synthetic test split (``render_scene``, scikit-image backgrounds only so every machine renders
   the same scenes): recall and precision at IoU 0.5 by person height (< 80, 80-200, > 200 px).
   Truth = the person's whole-body box clipped to the image; people more than half hidden
   (``occluded_fraction`` > 0.5) are "ignore": not in the recall, and a box on them is not false.
2. Real frames (boxes >= the default ``min_height_px``, 48) from Debian's opencv-doc (if installed; never stored in the repository), boxes
   labelled by hand below: vtest.avi frame 200 (7 walkers), basketball1.png (2), messi5.jpg (1;
   the blurred crowd behind him is an ignore region), and four photos of animals or objects with
   no person (no box should appear).
3. Milliseconds per 640 x 480 frame on this CPU, onnxruntime at 1 and 2 intra-op threads.

Prints tables and a final JSON line.

    .venv/bin/python benchmarks/detector_bench.py [--scenes 100] [--seed 5000] [--cache /tmp/scenes.npz]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nbf_ros.config import DetectorConfig  # noqa: E402
from nbf_ros.detection import Detector, make_detector  # noqa: E402
from nbf_ros.evaluation.detection import HeightBins, match  # noqa: E402
from nbf_ros.geometry.boxes import clip_boxes  # noqa: E402

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
OCCLUDED_IGNORE = 0.5  # people hidden more than this are "ignore" (see the module doc)
# No cap and no height floor: the benchmark scores every box (the bins do the height split).
OPEN = dict(max_people=64, min_height_px=0.0)
VARIANTS = {
    "hog": DetectorConfig(kind="hog", **OPEN),
    "nanodet": DetectorConfig(kind="nanodet", **OPEN),
    "nanodet_tiles2": DetectorConfig(kind="nanodet", nanodet_tiles=2, **OPEN),
    "nanodet_thr0.25": DetectorConfig(kind="nanodet", nanodet_score_threshold=0.25, **OPEN),
    "nanodet_thr0.45": DetectorConfig(kind="nanodet", nanodet_score_threshold=0.45, **OPEN),
}
# On the real frames the deployed height floor applies (boxes below it never reach the pipeline;
# e.g. the 20-px traffic cones of vtest.avi).
REAL_MIN_HEIGHT_PX = DetectorConfig().min_height_px
# Hand-labelled person boxes [x0, y0, x1, y1] (pixels), read off the images with a 50-px grid.
REAL = {
    "vtest200": [(83, 153, 111, 215), (218, 190, 250, 267), (487, 145, 518, 222), (615, 264, 652, 369),
                 (704, 252, 744, 354), (677, 98, 698, 154), (701, 102, 722, 154)],
    "basketball1": [(35, 80, 160, 479), (435, 20, 639, 479)],
    "messi5": [(68, 60, 458, 336)],
    "baboon": [], "squirrel_cls": [], "HappyFish": [], "chicky_512": [],
}
REAL_FILES = {"basketball1": "basketball1.png", "messi5": "messi5.jpg", "baboon": "baboon.jpg",
              "squirrel_cls": "squirrel_cls.jpg", "HappyFish": "HappyFish.jpg", "chicky_512": "chicky_512.png"}
MESSI_CROWD = (0, 0, 548, 250)  # blurred spectators: unlabelled people, boxes there are not false


def render_scenes(count: int, seed: int, cache: Path | None, faces: bool = False
                  ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """[(H x W x 3 RGB, M x 4 truth boxes clipped to the image, (M,) ignore)] for the test split
    (``faces``: faces painted on the people, SyntheticAppearanceConfig.faces)."""
    if cache is not None and cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return [(data[f"image{i}"], data[f"truth{i}"], data[f"ignore{i}"]) for i in range(count)]
    from nbf_ros.body.model import BodyModel
    from nbf_ros.config import BodyConfig, SyntheticConfig, resolve_path
    from nbf_ros.data.scene import render_scene

    base = SyntheticConfig(split="test")
    cfg = dataclasses.replace(base, appearance=dataclasses.replace(base.appearance, opencv_doc_photos=False,
                                                                   faces=faces))
    body = BodyModel(resolve_path(BodyConfig().model_path))
    scenes = []
    for i in range(count):
        s = render_scene(seed + i, cfg, body)
        h, w = s.image.shape[:2]
        truth = clip_boxes(np.stack([p.bbox for p in s.people]), w, h)
        ignore = np.array([p.occluded_fraction > OCCLUDED_IGNORE for p in s.people])
        scenes.append((s.image, truth, ignore))
    if cache is not None:
        arrays = {f"{k}{i}": v for i, sc in enumerate(scenes) for k, v in zip(("image", "truth", "ignore"), sc)}
        np.savez_compressed(cache, **arrays)
    return scenes


def synthetic(detectors: dict[str, Detector], scenes) -> dict[str, HeightBins]:
    bins = {name: HeightBins() for name in detectors}
    for image, truth, ignore in scenes:
        for name, det in detectors.items():
            d = det.detect_scored(image)
            bins[name].add(truth, d.boxes, match(truth, d.boxes, d.scores, 0.5, ignore), ignore)
    return bins


def real_images() -> dict[str, np.ndarray]:
    """RGB images of REAL that exist on this machine (opencv-doc), else {}."""
    import cv2

    out = {}
    cap = cv2.VideoCapture(str(OPENCV_DATA / "vtest.avi"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 200)
    ok, frame = cap.read()
    if ok:
        out["vtest200"] = frame[:, :, ::-1].copy()
    for name, file in REAL_FILES.items():
        img = cv2.imread(str(OPENCV_DATA / file), cv2.IMREAD_COLOR)
        if img is not None:
            out[name] = img[:, :, ::-1].copy()
    return out


def score_real(image_name: str, boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Match N x 4 boxes (with (N,) scores) to the hand-labelled people of one REAL image at IoU 0.5.

    Returns ((M,) bool truth_hit, number of false boxes). Shared with real_frames_bench.py so that
    both benchmarks score the real frames the same way. On messi5 a box mostly (> 50 % of its
    height) inside the blurred crowd band is an unlabelled spectator, not a false person.
    """
    truth = np.array(REAL[image_name], np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    m = match(truth, boxes, scores, 0.5)
    false = m.det_state == 0
    if image_name == "messi5":
        _, y0, _, y1 = MESSI_CROWD
        inside = (np.minimum(boxes[:, 3], y1) - np.maximum(boxes[:, 1], y0)) / np.maximum(
            boxes[:, 3] - boxes[:, 1], 1e-9)
        false &= inside <= 0.5
    return m.truth_hit, int(false.sum())


def real(detectors: dict[str, Detector], images: dict[str, np.ndarray]) -> dict[str, dict[str, list[int]]]:
    """name -> image -> [found, missed, false] (people > 50 px tall; all labelled ones are)."""
    out: dict[str, dict[str, list[int]]] = {n: {} for n in detectors}
    for image_name, image in images.items():
        for name, det in detectors.items():
            d = det.detect_scored(image).best(64, REAL_MIN_HEIGHT_PX)
            hit, false = score_real(image_name, d.boxes, d.scores)
            out[name][image_name] = [int(hit.sum()), int((~hit).sum()), false]
    return out


def timing(frame: np.ndarray, runs: int) -> dict[str, float]:
    """Median ms per frame for each detector setting on one 640 x 480 frame."""
    settings = {"hog": DetectorConfig(kind="hog", **OPEN)}
    for threads in (1, 2):
        settings[f"nanodet_{threads}t"] = DetectorConfig(kind="nanodet", nanodet_threads=threads, **OPEN)
    settings["nanodet_tiles2_2t"] = DetectorConfig(kind="nanodet", nanodet_tiles=2, nanodet_threads=2, **OPEN)
    out = {}
    for name, cfg in settings.items():
        det = make_detector(cfg)
        det.detect(frame)  # warm-up
        ms = []
        for _ in range(runs):
            t = time.perf_counter()
            det.detect(frame)
            ms.append(1000 * (time.perf_counter() - t))
        out[name] = float(np.median(ms))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=100)
    p.add_argument("--seed", type=int, default=5000)
    p.add_argument("--runs", type=int, default=20, help="timed runs per setting")
    p.add_argument("--cache", type=Path, default=None, help="npz of rendered scenes (re-used if present)")
    p.add_argument("--faces", action="store_true", help="faces painted on the rendered people")
    args = p.parse_args(argv)

    import cv2

    detectors = {name: make_detector(cfg) for name, cfg in VARIANTS.items()}
    scenes = render_scenes(args.scenes, args.seed, args.cache, args.faces)
    bins = synthetic(detectors, scenes)
    labels = next(iter(bins.values())).labels()
    people = next(iter(bins.values())).truths
    print(f"synthetic test split: {len(scenes)} scenes (seeds {args.seed}..), people per bin "
          f"{dict(zip(labels, people.tolist()))}, IoU 0.5")
    print(f"{'detector':18s} " + " ".join(f"{'R ' + l:>13s} {'P ' + l:>13s}" for l in labels))
    for name, b in bins.items():
        print(f"{name:18s} " + " ".join(f"{r:13.3f} {q:13.3f}" for r, q in zip(b.recall(), b.precision())))

    images = real_images()
    real_counts = real(detectors, images) if images else {}
    if images:
        print("\nreal frames (found / missed / false):")
        print(f"{'detector':18s} " + " ".join(f"{n:>13s}" for n in images))
        for name, per in real_counts.items():
            print(f"{name:18s} " + " ".join(f"{'/'.join(map(str, per[n])):>13s}" for n in images))
    else:
        print("\nreal frames skipped: apt-get install -y opencv-doc")

    frame = cv2.resize(scenes[0][0], (640, 480), interpolation=cv2.INTER_AREA)
    ms = timing(frame, args.runs)
    print("\nms per 640 x 480 frame (median of %d): " % args.runs
          + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()))
    result = {"scenes": len(scenes), "seed": args.seed, "bins": labels, "people_per_bin": people.tolist(),
              "recall": {n: [round(float(x), 4) for x in b.recall()] for n, b in bins.items()},
              "precision": {n: [round(float(x), 4) for x in b.precision()] for n, b in bins.items()},
              "real": real_counts, "ms_640x480": {k: round(v, 2) for k, v in ms.items()},
              "cpu": platform.processor() or platform.machine()}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
