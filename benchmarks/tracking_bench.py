"""Tracking mode vs per-frame processing on rendered walking sequences with exact truth (issue 14).

Sequences (``walk_sequence``): people walking in front of the demo's fixed camera (640 x 480,
70 degree field of view, 1.2 m high), rendered with the synthetic generator's body, outfits,
shading and held-out backgrounds; the truth is each person's 24 joints in the camera frame.
``--people 1``: one person crossing the view at 3.5 m, 5 cm per frame (1.5 m/s at 30 frames/s).
``--people 3``: a person standing (waving) at 3.2 m, one walking to the left at 4.6 m (5 cm per
frame) and one entering from beyond the left image border at 3.8 m, walking to the right (8 cm
per frame) past the other two.

The same frames go through the default pipeline (``--config``, NanoDet-g + BlazePose + fit) with
a tracker, once per mode: ``per_frame`` (``tracking.enabled`` false: detector and full fit on
every frame) and ``tracking`` for each ``--fit-iterations`` value (tracked people: warm start,
that many fit iterations, no flipped or turned starts; the detector every ``--detect-every``
frames or when a track is lost). Reported per mode: frames/s from the pipeline's wall time per
frame (``Pipeline.process`` only, 1 torch thread) and from its process CPU time, the mean
per-stage milliseconds (``FrameResult.timings_ms``), detector runs, root-aligned MPJPE (mm) and
root (pelvis) position error (cm) of the people matched to truth (Hungarian on the mean 2D joint
distance, at most ``MATCH_MAX_HEIGHTS`` x the truth's height), truth people lost (no match:
person-frames, people at least half in the image), extra people (no truth), and id switches.

    .venv/bin/python benchmarks/tracking_bench.py --people 1 --frames 48
    .venv/bin/python benchmarks/tracking_bench.py --people 3 --frames 48 --fit-iterations 0 3 5
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nbf_ros.config import NbfConfig, SyntheticAppearanceConfig, load_config  # noqa: E402
from nbf_ros.data import appearance as app  # noqa: E402
from nbf_ros.data.occluders import OccluderMesh, box_mesh  # noqa: E402
from nbf_ros.data.poses import (KEY_POSES, PoseSampler, key_pose_vector, slerp_body_pose,  # noqa: E402
                                upright_orientation)
from nbf_ros.data.scene import (PersonGeometry, body_labels, box_of, occluder_drawable,  # noqa: E402
                                person_drawable, place_on_ground, pose_bodies, render_view)
from nbf_ros.data.sequence import SequenceConfig, camera_rig  # noqa: E402
from nbf_ros.body.pose_limits import mirror_body_pose  # noqa: E402
from nbf_ros.evaluation.metrics import root_aligned_error  # noqa: E402
from nbf_ros.geometry.camera import project  # noqa: E402
from nbf_ros.types import CameraIntrinsics  # noqa: E402

LOG = logging.getLogger("tracking_bench")
SPLIT = "test"
MATCH_MAX_HEIGHTS = 0.5
"""A prediction matches a truth person when its mean 2D joint distance is below this fraction of
the truth's projected height."""
MIN_IN_IMAGE = 0.5
"""Truth people with fewer of their joints inside the image are not counted as lost."""
FRAME_RATE_HZ = 30.0
"""Stamps of the rendered frames (the walking speeds above are per frame)."""


@dataclass(frozen=True)
class Walker:
    """A scripted person: stands at ``x0_m`` (level frame, right positive) ``distance_m`` ahead,
    turned by ``yaw`` (0 faces the camera), and moves ``step_m`` along x per frame (walk cycle)
    or stands in ``pose`` when ``step_m`` is 0."""

    distance_m: float
    x0_m: float
    step_m: float
    yaw: float
    pose: str = "walk_a"


WALKERS: dict[int, tuple[Walker, ...]] = {
    1: (Walker(3.5, -1.2, 0.05, -0.9),),
    3: (Walker(3.2, -0.16, 0.0, 0.35, "waving"), Walker(4.6, 1.9, -0.05, 1.2),
        Walker(3.8, -2.9, 0.08, -0.9)),
}


@dataclass
class WalkFrame:
    """One frame: H x W x 3 uint8 RGB and per person the truth joints (24 x 3 m, camera frame),
    their projection (24 x 2 px) and the box of the projected body (pixel edges, unclipped)."""

    index: int
    image: np.ndarray
    joints3d: list[np.ndarray]
    joints2d: list[np.ndarray]
    boxes: list[np.ndarray]


@dataclass(frozen=True)
class WalkOccluder:
    """A box standing ``distance_m`` ahead at ``x_m`` (level frame), ``size_m`` (w, h, d)."""

    distance_m: float
    x_m: float
    size_m: tuple[float, float, float] = (0.6, 1.1, 0.35)


def _walk_pose(index: int) -> np.ndarray:
    """(69,) walk cycle: a stride swinging to its mirror over ~8 frames (the demo's walker)."""
    stride = key_pose_vector(KEY_POSES["walk_a"])
    return slerp_body_pose(stride, mirror_body_pose(stride), float(0.5 + 0.5 * np.sin(2 * np.pi * index / 8)))


def walk_sequence(walkers: tuple[Walker, ...], frames: int, body: torch.nn.Module, *, width: int = 640,
                  height: int = 480, seed: int = 11, occluder: Optional[WalkOccluder] = None,
                  labels=None) -> tuple[CameraIntrinsics, list[WalkFrame]]:
    """Render ``frames`` frames of ``walkers`` in front of the demo's camera (``camera_rig`` of a
    ``SequenceConfig`` of that size): deterministic in ``seed``; ~0.1-0.3 s per frame."""
    rig = camera_rig(SequenceConfig(width=width, height=height))
    cam = rig.intrinsics
    labels = labels if labels is not None else body_labels(body)
    rng = np.random.default_rng([seed, 0x7AC])
    look = dataclasses.replace(SyntheticAppearanceConfig(), photo_background_prob=0.0, blur_prob=0.0,
                               jpeg_prob=0.0, colour_jitter=0.0, noise_std=(0.01, 0.01),
                               emulate_resolution=False)
    sampler = PoseSampler(betas_std=0.8, betas_clip=2.0)
    people = [(w, sampler.sample_betas(rng), (rig.level_to_camera * upright_orientation(w.yaw)).as_rotvec(),
               app.random_outfit(rng, SPLIT, labels.lbs_weights, labels.rest_vertices, labels.rest_joints, look))
              for w in walkers]
    background = app.random_background(rng, SPLIT, (width, height), look).render(
        np.array([[1.0, 0, 0], [0, 1.0, 0]]), width, height)
    light = app.random_light(rng, look)
    extra = [] if occluder is None else [occluder_drawable(_box(occluder, rig, rng))]
    out = []
    for index in range(frames):
        placed = [_place(w, betas, orient, outfit, index, body, rig) for w, betas, orient, outfit in people]
        view = render_view([person_drawable(p, labels, i) for i, p in enumerate(placed)] + extra, cam,
                           background, light)
        image = app.finish_image(view.colour, np.random.default_rng([seed, index]), look)
        verts2d = [project(p.vertices, cam) for p in placed]
        out.append(WalkFrame(index, image, [p.joints for p in placed], [project(p.joints, cam) for p in placed],
                             [box_of(v) for v in verts2d]))
    return cam, out


def _place(w: Walker, betas: np.ndarray, orient: np.ndarray, outfit, index: int, body, rig) -> PersonGeometry:
    pose = _walk_pose(index) if w.step_m else key_pose_vector(KEY_POSES[w.pose])
    verts, joints = pose_bodies(body, betas[None], orient[None], pose[None])
    x = w.x0_m + w.step_m * index
    transl = place_on_ground(verts[0], joints[0], rig, float(np.hypot(x, w.distance_m)),
                             float(np.arctan2(x, w.distance_m)))
    return PersonGeometry(betas, orient, pose, transl, verts[0] + transl, joints[0] + transl, outfit)


def _box(o: WalkOccluder, rig, rng: np.random.Generator) -> OccluderMesh:
    local, faces = box_mesh(np.asarray(o.size_m, dtype=np.float64))
    centre = np.array([o.x_m, rig.height - o.size_m[1] / 2.0, o.distance_m + o.size_m[2] / 2.0])
    verts = rig.level_to_camera.apply(local) + rig.level_to_camera.apply(centre)
    texture = app.make_texture(app.texture_id(rng, SPLIT), texture_prob=1.0)
    return OccluderMesh(kind="box", vertices=verts, faces=faces, local=local, texture=texture)


# -- scoring ------------------------------------------------------------------------------------
@dataclass
class ModeScore:
    """Everything measured for one mode over one sequence."""

    mode: str
    frame_ms: list[float] = field(default_factory=list)
    frame_cpu_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    mpjpe_mm: list[float] = field(default_factory=list)
    root_cm: list[float] = field(default_factory=list)
    lost: int = 0
    truth_people: int = 0
    extra: int = 0
    id_switches: int = 0
    detector_runs: int = 0
    tracked_people: int = 0
    fit_iterations: list[int] = field(default_factory=list)
    rejected_boxes: int = 0
    last_id: dict[int, int] = field(default_factory=dict)
    errors: dict[tuple[int, int], tuple[float, float]] = field(default_factory=dict)
    """(frame, truth person) -> (MPJPE mm, root cm) of the matched people, for paired comparisons."""

    def summary(self) -> dict:
        ms = np.asarray(self.frame_ms[1:] or self.frame_ms)  # frame 0 holds one-off warm-up costs
        cpu = np.asarray(self.frame_cpu_ms[1:] or self.frame_cpu_ms)
        err = np.asarray(self.mpjpe_mm)
        root = np.asarray(self.root_cm)
        se = lambda a: float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")  # noqa: E731
        return {"mode": self.mode, "frames": len(self.frame_ms), "fps": float(1e3 / ms.mean()),
                "fps_cpu": float(1e3 / cpu.mean()), "frame_ms_mean": float(ms.mean()),
                "frame_ms_p90": float(np.percentile(ms, 90)),
                "stage_ms": {k: float(np.mean(v[1:] or v)) for k, v in self.stage_ms.items()},
                "mpjpe_mm": float(err.mean()) if len(err) else float("nan"), "mpjpe_se_mm": se(err),
                "root_cm": float(root.mean()) if len(root) else float("nan"), "root_se_cm": se(root),
                "matched": int(len(err)), "truth_people": self.truth_people, "lost": self.lost,
                "extra": self.extra, "id_switches": self.id_switches, "detector_runs": self.detector_runs,
                "tracked_people": self.tracked_people, "rejected_boxes": self.rejected_boxes,
                "fit_iterations_mean": float(np.mean(self.fit_iterations)) if self.fit_iterations else 0.0}


def score_frame(score: ModeScore, frame: WalkFrame, people: list, camera: CameraIntrinsics) -> None:
    """Match the frame's people to the truth and add their errors, losses and id switches."""
    present = [k for k, uv in enumerate(frame.joints2d) if _in_image(uv, camera) >= MIN_IN_IMAGE]
    score.truth_people += len(present)
    if not people:
        score.lost += len(present)
        return
    cost = np.full((len(present), len(people)), np.inf)
    for r, k in enumerate(present):
        height = frame.boxes[k][3] - frame.boxes[k][1]
        for c, person in enumerate(people):
            d = float(np.linalg.norm(person.joints2d - frame.joints2d[k], axis=1).mean())
            cost[r, c] = d if d < MATCH_MAX_HEIGHTS * height else np.inf
    rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e9))
    matched = {(r, c) for r, c in zip(rows, cols) if np.isfinite(cost[r, c])}
    score.lost += len(present) - len(matched)
    score.extra += len(people) - len(matched)
    for r, c in matched:
        k, person = present[r], people[c]
        score.mpjpe_mm.append(float(root_aligned_error(person.joints3d, frame.joints3d[k]).mean() * 1e3))
        score.root_cm.append(float(np.linalg.norm(person.joints3d[0] - frame.joints3d[k][0]) * 1e2))
        score.errors[(frame.index, k)] = (score.mpjpe_mm[-1], score.root_cm[-1])
        if k in score.last_id and score.last_id[k] != person.id:
            score.id_switches += 1
        score.last_id[k] = int(person.id)


def _in_image(uv: np.ndarray, camera: CameraIntrinsics) -> float:
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
    return float(inside.mean())


def run_mode(config: NbfConfig, mode: str, camera: CameraIntrinsics, frames: list[WalkFrame]) -> ModeScore:
    """One pass over the frames with a fresh pipeline and tracker; the pipeline's time only."""
    from nbf_ros.inference.pipeline import Pipeline
    from nbf_ros.tracking import Tracker

    pipe = Pipeline.from_config(config)
    tracker = Tracker(config.tracker)
    score = ModeScore(mode)
    for frame in frames:
        wall, cpu = time.perf_counter(), time.process_time()
        result = pipe.process(frame.image, camera, tracker=tracker, stamp_s=frame.index / FRAME_RATE_HZ)
        score.frame_ms.append((time.perf_counter() - wall) * 1e3)
        score.frame_cpu_ms.append((time.process_time() - cpu) * 1e3)
        for name, ms in result.timings_ms.items():
            score.stage_ms.setdefault(name, []).append(ms)
        score.detector_runs += int(result.detector_ran)
        score.tracked_people += result.tracked_people
        score.rejected_boxes += result.rejected_boxes
        score.fit_iterations.extend(p.fit.iterations for p in result.people)
        score_frame(score, frame, result.people, camera)
    return score


def modes(base: NbfConfig, fit_iterations: list[int], start_iterations: list[int],
          detect_every: Optional[int]) -> list[tuple[str, NbfConfig]]:
    """(name, config) per mode: per-frame, then tracking with each pair of tracked fit and start
    iteration counts."""
    off = dataclasses.replace(base, tracking=dataclasses.replace(base.tracking, enabled=False))
    out = [("per_frame", off)]
    every = detect_every if detect_every is not None else base.tracking.detect_every
    for start in start_iterations:
        for iters in fit_iterations:
            tracking = dataclasses.replace(base.tracking, enabled=True, fit_iterations=iters,
                                           start_iterations=start, detect_every=every)
            out.append((f"tracking fit {iters} start {start} every {every}", dataclasses.replace(base, tracking=tracking)))
    return out


def paired(score: ModeScore, baseline: ModeScore) -> dict:
    """Mean difference (this mode - baseline) of MPJPE (mm) and root error (cm) with its standard
    error, over the person-frames both modes matched (the modes lose different frames)."""
    common = sorted(set(score.errors) & set(baseline.errors))
    if len(common) < 2:
        return {"paired_n": len(common)}
    diff = np.array([np.subtract(score.errors[key], baseline.errors[key]) for key in common])
    se = diff.std(axis=0, ddof=1) / np.sqrt(len(common))
    base = np.array([baseline.errors[key] for key in common]).mean(axis=0)
    return {"paired_n": len(common), "paired_base_mpjpe_mm": float(base[0]), "paired_base_root_cm": float(base[1]),
            "paired_mpjpe_diff_mm": float(diff[:, 0].mean()), "paired_mpjpe_diff_se_mm": float(se[0]),
            "paired_root_diff_cm": float(diff[:, 1].mean()), "paired_root_diff_se_cm": float(se[1])}


def format_table(rows: list[dict], stages: list[str]) -> str:
    head = (["mode", "fps", "fps cpu", "ms p90", "MPJPE mm", "root cm", "paired MPJPE diff mm",
             "paired root diff cm", "lost", "extra", "id sw", "det runs", "tracked", "iters"]
            + [f"{s} ms" for s in stages])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["mode"], f"{r['fps']:.2f}", f"{r['fps_cpu']:.2f}", f"{r['frame_ms_p90']:.0f}",
                 f"{r['mpjpe_mm']:.1f} ± {r['mpjpe_se_mm']:.1f}", f"{r['root_cm']:.1f} ± {r['root_se_cm']:.1f}",
                 _diff(r, "mpjpe", "mm"), _diff(r, "root", "cm"),
                 f"{r['lost']}/{r['truth_people']}", str(r["extra"]), str(r["id_switches"]),
                 f"{r['detector_runs']}/{r['frames']}", str(r["tracked_people"]), f"{r['fit_iterations_mean']:.1f}"]
        cells += [f"{r['stage_ms'].get(s, 0.0):.1f}" for s in stages]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _diff(row: dict, name: str, unit: str) -> str:
    if f"paired_{name}_diff_{unit}" not in row:
        return "-"
    return (f"{row[f'paired_{name}_diff_{unit}']:+.1f} ± {row[f'paired_{name}_diff_se_{unit}']:.1f} "
            f"(n {row['paired_n']})")


def source_state() -> dict:
    """The commit measured and the files that differed from it (others may be editing the tree)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.rstrip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "modified": [line[3:] for line in git("status", "--short", "--untracked-files=no").splitlines()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, choices=sorted(WALKERS), default=1)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--config", default=None, help="pipeline YAML (default: the built-in defaults)")
    parser.add_argument("--fit-iterations", type=int, nargs="+", default=None,
                        help="tracked people's fit iterations, one tracking run each (default: the config's)")
    parser.add_argument("--start-iterations", type=int, nargs="+", default=None,
                        help="tracked people's body-from-landmarks iterations (default: the config's)")
    parser.add_argument("--detect-every", type=int, default=None)
    parser.add_argument("--occluder", action="store_true", help="a box at 2.2 m the walkers pass behind")
    parser.add_argument("--no-budgets", action="store_true",
                        help="no fit time budgets (fit.budget_ms, fit.frame_budget_ms): iterations by count "
                             "only, so that accuracy does not depend on the machine's load")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json-out", default=str(ROOT / "out" / "tracking_bench.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    base = load_config(args.config)
    base = dataclasses.replace(base, inference=dataclasses.replace(base.inference, num_threads=args.threads))
    if args.no_budgets:
        base = dataclasses.replace(base, fit=dataclasses.replace(base.fit, budget_ms=1e9, frame_budget_ms=0.0))
    from nbf_ros.body.model import BodyModel
    from nbf_ros.config import resolve_path

    body = BodyModel(resolve_path(base.body.model_path), num_betas=base.body.num_betas)
    start = time.perf_counter()
    occluder = WalkOccluder(2.2, 0.1) if args.occluder else None
    camera, frames = walk_sequence(WALKERS[args.people], args.frames, body, seed=args.seed, occluder=occluder)
    print(f"rendered {len(frames)} frames of {args.people} people in {time.perf_counter() - start:.1f} s")
    iters = args.fit_iterations if args.fit_iterations is not None else [base.tracking.fit_iterations]
    starts = args.start_iterations if args.start_iterations is not None else [base.tracking.start_iterations]
    rows, baseline = [], None
    for name, config in modes(base, iters, starts, args.detect_every):
        score = run_mode(config, name, camera, frames)
        baseline = baseline or score
        rows.append(score.summary() | (paired(score, baseline) if score is not baseline else {}))
        print(f"{name}: {rows[-1]['fps']:.2f} frames/s, MPJPE {rows[-1]['mpjpe_mm']:.1f} mm", flush=True)
    stages = [s for s in ("detect", "landmarks", "crop", "network", "init", "depth", "fit", "people")
              if any(s in r["stage_ms"] for r in rows)]
    print(format_table(rows, stages))
    print(f"source {source_state()}, load average {os.getloadavg()}")
    record = {"people": args.people, "frames": args.frames, "occluder": args.occluder, "threads": args.threads,
              "no_budgets": args.no_budgets, "argv": sys.argv[1:], "source": source_state(),
              "load_average": list(os.getloadavg()), "rows": rows}
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(record, indent=1))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
