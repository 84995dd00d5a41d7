"""Where one person's NBF fit spends its time: CPU per fit, per iteration, and torch's op table.

Issue 14 asks for one iteration <= 3 ms (858 kernels, 1 thread). This script fixes one rendered
test person (``render_scene`` seed 2, person 0, truth box), builds its start exactly as the
pipeline does (BlazePose landmarks, the body fitted to them, BlazePose keypoints), then measures
with ``time.process_time`` (CPU time of this process, so other processes on the machine disturb
it far less than wall time):
- ``Fitter.fit`` as the pipeline calls it (start hypotheses, ``fit.max_iters`` iterations, final
  assessment), no time budget;
- one iteration's objective + backward (``Fitter.evaluate`` + ``backward``), as ``_optimise``
  runs it;
- the same for a batch of ``--batch`` people (``Fitter.fit_batch``: the person repeated, so the
  batch costs what that many people of its size cost), per fit and per iteration;
and prints torch.profiler's table of the iteration's ops by self CPU time.

    .venv/bin/python benchmarks/fit_profile.py [--repeats 20] [--rows 20] [--batch 3]

Prints the table and a final JSON line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from nbf_ros.config import NbfConfig, SyntheticConfig  # noqa: E402
from nbf_ros.data.scene import render_scene  # noqa: E402
from nbf_ros.inference.pipeline import Pipeline, initial_body  # noqa: E402
from nbf_ros.types import BodyParams  # noqa: E402


def one_person(pipe: Pipeline):
    """(net, crop camera, start, keypoints, alternatives, observation) of the fixed person."""
    synth = SyntheticConfig(split="test")
    synth = dataclasses.replace(synth, appearance=dataclasses.replace(synth.appearance, opencv_doc_photos=False))
    scene = render_scene(2, synth, pipe.body)
    found = pipe.detect(scene.image, np.array([scene.people[0].bbox]))
    landmarks = pipe.landmarks(scene.image, found.boxes, scene.camera)
    crops = pipe.crop_people(scene.image, scene.camera, found.boxes)
    net = pipe.backend.run(crops.pixels)
    regression = initial_body(net, crops.cameras, pipe.config.net.crop_size)
    init, alternatives, _, _ = pipe.start_bodies(regression, landmarks, scene.camera)
    keypoints = pipe.external_keypoints(landmarks, crops)[0]
    obs = pipe.fitter.observe(net.features[0], net.heatmaps[0], crops.cameras[0])
    if keypoints is not None:
        obs.keypoints, obs.keypoint_conf = keypoints
    return net, crops.cameras[0], init.index(0), keypoints, alternatives[0], obs


def iteration(pipe: Pipeline, start: BodyParams, obs) -> None:
    """One objective evaluation and its backward, on fresh leaf variables (as one Adam step);
    ``start`` and ``obs`` may hold a batch."""
    obs.shaped = obs.shaped if obs.shaped is not None and obs.shaped.vertices.shape[0] == start.batch_size \
        else pipe.fitter.body.shaped_subset(start.betas, pipe.fitter.nbv.kernel_vertex_ids)
    orient = start.global_orient.detach().clone().requires_grad_(True)
    pose = start.body_pose.detach().clone().requires_grad_(True)
    ev = pipe.fitter.evaluate(BodyParams(start.betas, orient, pose, start.transl), obs,
                              pipe.fitter.cfg.keypoint_weight, outlier=False)
    ev.total.sum().backward()


def batched(pipe: Pipeline, net, camera, start: BodyParams, keypoints, alternatives, obs, args
            ) -> tuple[float, float]:
    """CPU ms of one ``fit_batch`` of ``args.batch`` copies of the person, and of one batched
    iteration."""
    from nbf_ros.fitting.fitter import FitRequest, Observation

    requests = [FitRequest(0, camera, start, keypoints=keypoints, alternatives=alternatives,
                            alternatives_mirrored=True)] * args.batch
    many, starts = Observation.stack([obs] * args.batch), BodyParams.cat([start] * args.batch)
    pipe.fitter.fit_batch(net, requests)  # warm-up
    iteration(pipe, starts, many)
    fits = max(1, args.repeats // 8)
    t0 = time.process_time()
    for _ in range(fits):
        pipe.fitter.fit_batch(net, requests)
    fit_ms = (time.process_time() - t0) / fits * 1e3
    t0 = time.process_time()
    for _ in range(args.repeats):
        iteration(pipe, starts, many)
    return fit_ms, (time.process_time() - t0) / args.repeats * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed iterations (fits: a quarter)")
    parser.add_argument("--rows", type=int, default=20, help="rows of the op table")
    parser.add_argument("--batch", type=int, default=3, help="people in the batched measurement")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = NbfConfig()
    config = dataclasses.replace(config, fit=dataclasses.replace(config.fit, budget_ms=1e9, frame_budget_ms=0.0))
    pipe = Pipeline.from_config(config)
    net, camera, start, keypoints, alternatives, obs = one_person(pipe)

    def fit():
        return pipe.fitter.fit(net, 0, camera, start, keypoints=keypoints, alternatives=alternatives,
                               alternatives_mirrored=True)

    for _ in range(2):  # warm-up
        result = fit()
        iteration(pipe, start, obs)
    fits = max(1, args.repeats // 4)
    t0 = time.process_time()
    for _ in range(fits):
        result = fit()
    fit_ms = (time.process_time() - t0) / fits * 1e3
    t0 = time.process_time()
    for _ in range(args.repeats):
        iteration(pipe, start, obs)
    iter_ms = (time.process_time() - t0) / args.repeats * 1e3
    batch_fit_ms, batch_iter_ms = batched(pipe, net, camera, start, keypoints, alternatives, obs, args)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.repeats):
            iteration(pipe, start, obs)
    table = prof.key_averages()
    print(table.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    calls = sum(e.count for e in table) / args.repeats
    print(f"CPU per fit {fit_ms:.1f} ms ({result.info.iterations} iterations); per iteration "
          f"(objective + backward) {iter_ms:.2f} ms; {calls:.0f} profiled op calls per iteration (nested ones included)")
    print(f"batch of {args.batch}: CPU per batched fit {batch_fit_ms:.1f} ms ({batch_fit_ms / args.batch:.1f} per person); "
          f"per iteration {batch_iter_ms:.2f} ms ({batch_iter_ms / args.batch:.2f} per person)")
    top = sorted(table, key=lambda e: -e.self_cpu_time_total)[:args.rows]
    print(json.dumps({"benchmark": "fit_profile", "cpu_ms_per_fit": fit_ms, "iterations": result.info.iterations,
                      "cpu_ms_per_iteration": iter_ms, "ops_per_iteration": calls, "batch": args.batch,
                      "cpu_ms_per_batched_fit": batch_fit_ms, "cpu_ms_per_batched_iteration": batch_iter_ms,
                      "top_ops": [{"op": e.key, "calls_per_iteration": e.count / args.repeats,
                                   "self_cpu_ms_per_iteration": e.self_cpu_time_total / 1e3 / args.repeats}
                                  for e in top]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
