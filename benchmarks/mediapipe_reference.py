"""MediaPipe's own single-person pose pipeline on image files, as a reference for our front end.

Runs the ``mediapipe`` package's legacy Pose solution (``model_complexity=1``: BlazePose GHUM
full, the landmark model we run in-process; ``static_image_mode=True``: MediaPipe's person
detector on every image, then the landmark model on the ROI it derives, i.e. its whole
single-person pipeline with no tracking between images). Prints one JSON object on stdout: per
image the 33 landmarks in image pixels (pixel-centre convention, as ``nbf_ros.geometry``) or
null when MediaPipe finds no pose, and the milliseconds of each timed ``process()`` call.

Why a separate script: mediapipe 0.10.21 needs numpy < 2 and protobuf < 5, which our venv must
not be downgraded to, so ``benchmarks/real_frames_bench.py`` runs this file with another
interpreter (``--mediapipe-python``). Hence it imports only the standard library, numpy, cv2
and mediapipe, nothing of nbf_ros.

    /tmp/mp-venv/bin/python benchmarks/mediapipe_reference.py [--runs 10] [--cpus 2] IMAGE...

``--cpus K`` pins the process to K of the CPUs it may use (before mediapipe is imported, so its
thread pools see only those): the legacy solution has no thread-count option, so this is how a
1-core and a 2-core run are told apart.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def pin_cpus(count: int) -> list[int]:
    """Restrict this process to its first ``count`` allowed CPUs; return the CPUs kept."""
    allowed = sorted(os.sched_getaffinity(0))
    keep = allowed[: max(1, count)]
    os.sched_setaffinity(0, keep)
    return keep


def landmarks_px(result, width: int, height: int) -> list[list[float]] | None:
    """33 x 2 image pixels (u, v) of MediaPipe's pose landmarks, or None without a pose.

    MediaPipe's normalised x, y are edge-based (0 = left edge, 1 = right edge); a pixel centre
    is at an integer, so u = x W - 0.5. Landmarks may lie outside the image (MediaPipe
    extrapolates hidden joints); they are returned as they are.
    """
    if result.pose_landmarks is None:
        return None
    return [[lm.x * width - 0.5, lm.y * height - 0.5] for lm in result.pose_landmarks.landmark]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+", help="image files (read with cv2.imread)")
    ap.add_argument("--runs", type=int, default=10, help="timed runs per image after a warm-up")
    ap.add_argument("--cpus", type=int, default=0, help="pin to this many CPUs (0 = all allowed)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    cpus = pin_cpus(args.cpus) if args.cpus > 0 else sorted(os.sched_getaffinity(0))

    import cv2
    import mediapipe as mp
    import numpy as np

    images = []
    for path in args.images:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"mediapipe_reference: cannot read {path}", file=sys.stderr)
            return 2
        images.append(np.ascontiguousarray(bgr[:, :, ::-1]))  # MediaPipe takes RGB

    out = []
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                enable_segmentation=False) as pose:
        for path, rgb in zip(args.images, images):
            height, width = rgb.shape[:2]
            found = landmarks_px(pose.process(rgb), width, height)  # warm-up, and the answer
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                pose.process(rgb)
                times.append((time.perf_counter() - start) * 1e3)
            out.append({"path": path, "width": width, "height": height, "landmarks": found,
                        "ms": times, "ms_median": statistics.median(times)})
    print(json.dumps({"mediapipe": mp.__version__, "numpy": np.__version__,
                      "opencv": cv2.__version__, "cpus": cpus, "runs": args.runs,
                      "images": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
