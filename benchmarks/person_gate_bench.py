"""Which detector boxes become people: BlazePose's pose flag, the detector's score, the box size.

NanoDet keeps a box from score 0.35; BlazePose then says, per box, how likely its crop holds a
person (the pose flag). The pipeline has to decide which boxes it fits and publishes:
- every box: a basketball scored 0.42 by NanoDet becomes an 18 m "person" (basketball1);
- only boxes with landmarks (pose flag >= 0.5): a real person hidden behind a cart, of whom
  BlazePose sees too little, is dropped, and a safety stack loses more from a missed person
  than from a false one.
This benchmark records, for every NanoDet box on three sets of images, its score, its pose flag
and its height, and whether it is a real person (and how hidden), then counts for a grid of rules
"keep a box when pose flag >= ``min_pose_flag`` or detector score >= s" how many real people
(visible / hidden) are kept and how many false boxes remain.

Image sets (boxes IoU-matched at 0.5, greedy, best score first, to the truth; a hidden person's
truth is the box of their visible pixels, which is what a detector can see):
- ``real``: the hand-labelled opencv-doc frames of ``detector_bench.REAL`` (skipped when absent);
- ``synthetic``: ``--scenes`` test-split scenes of our generator (seeds from ``--seed``), with
  each person's occluded fraction;
- ``demo``: the demo's bundled sequence (two people, a sliding box hides the main one).

    .venv/bin/python benchmarks/person_gate_bench.py [--scenes 60] [--demo-frames 24]

Prints markdown tables and a final JSON line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout, uninstalled
sys.path.insert(0, str(HERE))  # detector_bench's labelled boxes

from detector_bench import MESSI_CROWD, REAL, real_images  # noqa: E402
from nbf_ros.config import BlazePoseConfig, DetectorConfig  # noqa: E402
from nbf_ros.evaluation.detection import match  # noqa: E402

HIDDEN = 0.3  # a person with more than this share of their pixels hidden counts as "hidden"
SCORES = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 1.01)  # 1.01: pose flag alone


@dataclass
class BoxRecord:
    """One detector box: where it came from, what the models said, what it really is."""

    image_set: str
    score: float
    pose_flag: float
    height_px: float
    person: bool  # matched to a real person
    hidden: float  # that person's occluded fraction (0 for real frames and false boxes)
    ignore: bool = False  # an unlabelled person (messi5's crowd): neither true nor false
    # A false box lying mostly (> half its area) on one real person's box: a part of a person or
    # a second box on them, not a phantom where nobody is.
    on_person: bool = False


def box_records(image_set: str, image: np.ndarray, truth: np.ndarray, hidden: np.ndarray,
                detector, landmarker, ignore_fn=None) -> list[BoxRecord]:
    """Detect, run BlazePose on every box (pose flags unthresholded), match to ``truth``."""
    found = detector.detect_scored(image)
    if len(found.boxes) == 0:
        return []
    flags = [0.0 if p is None else p.pose_flag for p in landmarker.estimate(image, found.boxes)]
    state = match(truth, found.boxes, found.scores, 0.5).det_state
    iou_owner = _owner(truth, found.boxes)
    inside = _share_inside(found.boxes, truth)
    out = []
    for i, box in enumerate(found.boxes):
        person = bool(state[i] == 1)
        out.append(BoxRecord(image_set, float(found.scores[i]), float(flags[i]), float(box[3] - box[1]),
                             person, float(hidden[iou_owner[i]]) if person else 0.0,
                             bool(ignore_fn is not None and not person and ignore_fn(box)),
                             bool(not person and inside[i] > 0.5)))
    return out


def _share_inside(boxes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N,) largest share of each box's area inside one truth box."""
    if len(truth) == 0:
        return np.zeros(len(boxes))
    x0 = np.maximum(boxes[:, None, 0], truth[None, :, 0])
    y0 = np.maximum(boxes[:, None, 1], truth[None, :, 1])
    x1 = np.minimum(boxes[:, None, 2], truth[None, :, 2])
    y1 = np.minimum(boxes[:, None, 3], truth[None, :, 3])
    overlap = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-9)
    return (overlap / area[:, None]).max(axis=1)


def _owner(truth: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Index of the truth box of highest IoU per box (0 when there is no truth)."""
    from nbf_ros.geometry.boxes import box_iou

    if len(truth) == 0:
        return np.zeros(len(boxes), np.int64)
    return box_iou(boxes, truth).argmax(axis=1)


def real_records(detector, landmarker) -> list[BoxRecord]:
    def in_crowd(box: np.ndarray) -> bool:
        _, y0, _, y1 = MESSI_CROWD
        return (min(box[3], y1) - max(box[1], y0)) / max(box[3] - box[1], 1e-9) > 0.5

    out = []
    for name, image in real_images().items():
        truth = np.array(REAL[name], np.float64).reshape(-1, 4)
        out += box_records("real", image, truth, np.zeros(len(truth)), detector, landmarker,
                           in_crowd if name == "messi5" else None)
    return out


def synthetic_records(count: int, seed: int, detector, landmarker) -> list[BoxRecord]:
    from nbf_ros.body.model import BodyModel
    from nbf_ros.config import BodyConfig, SyntheticConfig, resolve_path
    from nbf_ros.data.scene import render_scene

    base = SyntheticConfig(split="test")
    cfg = dataclasses.replace(base, appearance=dataclasses.replace(base.appearance, opencv_doc_photos=False))
    body = BodyModel(resolve_path(BodyConfig().model_path))
    out = []
    for i in range(count):
        scene = render_scene(seed + i, cfg, body)
        out += box_records("synthetic", scene.image, *_visible_truth(scene.people), detector, landmarker)
    return out


def demo_records(frames: int, detector, landmarker) -> list[BoxRecord]:
    from nbf_ros.body.model import BodyModel
    from nbf_ros.config import BodyConfig, resolve_path
    from nbf_ros.data.sequence import SequenceConfig, render_sequence

    _, rendered = render_sequence(SequenceConfig(frames=frames, people=2),
                                  BodyModel(resolve_path(BodyConfig().model_path)))
    out = []
    for frame in rendered:
        out += box_records("demo", frame.image, *_visible_truth(frame.people), detector, landmarker)
    return out


def _visible_truth(people) -> tuple[np.ndarray, np.ndarray]:
    """(M x 4 boxes of each person's visible pixels, (M,) occluded fractions); people with no
    visible pixel are left out (nothing to detect)."""
    keep = [p for p in people if np.isfinite(p.visible_bbox).all()]
    boxes = np.array([p.visible_bbox for p in keep], np.float64).reshape(-1, 4)
    return boxes, np.array([p.occluded_fraction for p in keep], np.float64)


def rule_table(records: list[BoxRecord], min_pose_flag: float) -> list[dict]:
    """Per image set and score threshold s: real people kept (visible / hidden) and false boxes
    kept by "pose flag >= min_pose_flag or score >= s"."""
    rows = []
    for image_set in sorted({r.image_set for r in records}):
        rs = [r for r in records if r.image_set == image_set and not r.ignore]
        for s in SCORES:
            keep = [r.pose_flag >= min_pose_flag or r.score >= s for r in rs]
            count = lambda f: int(sum(k for k, r in zip(keep, rs) if f(r)))  # noqa: E731
            total = lambda f: int(sum(1 for r in rs if f(r)))  # noqa: E731
            rows.append({
                "set": image_set, "score_keep": s,
                "visible_kept": count(lambda r: r.person and r.hidden <= HIDDEN),
                "visible": total(lambda r: r.person and r.hidden <= HIDDEN),
                "hidden_kept": count(lambda r: r.person and r.hidden > HIDDEN),
                "hidden": total(lambda r: r.person and r.hidden > HIDDEN),
                "on_person_kept": count(lambda r: r.on_person), "on_person": total(lambda r: r.on_person),
                "phantom_kept": count(lambda r: not r.person and not r.on_person),
                "phantom": total(lambda r: not r.person and not r.on_person)})
    return rows


def print_tables(records: list[BoxRecord], rows: list[dict], min_pose_flag: float) -> None:
    print(f"\nBoxes without landmarks (pose flag < {min_pose_flag}): score, height px, flag")
    for r in sorted(records, key=lambda r: (r.image_set, r.person, -r.score)):
        if r.pose_flag < min_pose_flag and not r.ignore:
            kind = f"person (hidden {r.hidden:.2f})" if r.person else ("on a person" if r.on_person else "phantom")
            print(f"  {r.image_set:9s} {kind:22s} score {r.score:.2f}  h {r.height_px:5.0f}  flag {r.pose_flag:.2f}")
    print("\n| set | keep when score >= | visible people kept | hidden people kept | "
          "false boxes on a person kept | phantom boxes kept |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        s = "never (flag only)" if row["score_keep"] > 1 else f"{row['score_keep']:.2f}"
        print(f"| {row['set']} | {s} | {row['visible_kept']}/{row['visible']} | "
              f"{row['hidden_kept']}/{row['hidden']} | {row['on_person_kept']}/{row['on_person']} | "
              f"{row['phantom_kept']}/{row['phantom']} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenes", type=int, default=60, help="synthetic test scenes")
    p.add_argument("--seed", type=int, default=5000, help="first scene seed (detector_bench's)")
    p.add_argument("--demo-frames", type=int, default=24, help="frames of the demo sequence")
    args = p.parse_args(argv)

    from nbf_ros.detection import make_detector
    from nbf_ros.keypoints.landmarks import BlazePoseLandmarker

    detector = make_detector(dataclasses.replace(DetectorConfig(), max_people=64))
    deployed = BlazePoseConfig()
    landmarker = BlazePoseLandmarker(dataclasses.replace(deployed, min_pose_flag=0.0))
    records = real_records(detector, landmarker)
    records += demo_records(args.demo_frames, detector, landmarker)
    records += synthetic_records(args.scenes, args.seed, detector, landmarker)
    rows = rule_table(records, deployed.min_pose_flag)
    print_tables(records, rows, deployed.min_pose_flag)
    print(json.dumps({"scenes": args.scenes, "seed": args.seed, "demo_frames": args.demo_frames,
                      "min_pose_flag": deployed.min_pose_flag, "hidden_above": HIDDEN, "rules": rows,
                      "boxes": [dataclasses.asdict(r) for r in records]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
