"""The demo's steps in order: config, input, node, replay, scoring; returns the summary."""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from nbf_ros.apps.demo import DemoError
from nbf_ros.apps.demo.node_config import node_config, save_node_config
from nbf_ros.apps.demo.player import run_player
from nbf_ros.apps.demo.recorder import Recording, save_overlays
from nbf_ros.apps.demo.ros_env import ros_environment
from nbf_ros.apps.demo.scoring import evaluate, summarise
from nbf_ros.apps.demo.sequence import Scene, render_input
from nbf_ros.apps.demo.session import RosSession, node_counts, wait_for_outputs
from nbf_ros.config import resolve_path

LOG = logging.getLogger("nbf_ros.demo")


def output_paths(out: Path) -> dict[str, Path]:
    """The demo's paths in ``out``; earlier demo outputs there are removed (nothing else)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("input_bag", "output_bag", "overlays")}
    for p in paths.values():
        if p.is_dir():
            shutil.rmtree(p)
    paths.update({name: out / f"{name}.json" for name in ("truth", "summary", "manifest")})
    paths["pipeline"] = out / "pipeline.yaml"
    return paths


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    """The whole demo; returns the summary dict (raises DemoError with a one-line reason)."""
    start = time.perf_counter()
    cfg = node_config(args)
    paths = output_paths(Path(args.out))
    LOG.info("rendering %d frames (%d people, moving occluder) ...", args.frames, args.people)
    scene = render_input(args.frames, args.people, args.seed, args.rate, resolve_path(cfg.body.model_path),
                         paths["input_bag"], paths["truth"])
    cfg = save_node_config(cfg, scene, paths["pipeline"])
    env = ros_environment(args.domain_id)
    LOG.info("starting the node (detector %s, weights %s) ...", cfg.detector.kind, cfg.inference.weights_path)
    manifest, rec, counts = run_node(args, paths, env)
    if not any(getattr(rec.by_stamp.get(m["stamp_ns"]), "joints", None) is not None for m in manifest):
        raise DemoError(f"no output arrived from the node for any of {len(manifest)} frames; see "
                        f"{paths['output_bag']} (/diagnostics)")
    extra = {"node": counts, "detector": cfg.detector.kind, "fit": not args.no_fit, "depth": not args.no_depth}
    if not args.no_depth and not args.no_baseline:
        from nbf_ros.apps.demo.baseline import monocular_baseline

        LOG.info("the same frames without depth (in-process, for the comparison) ...")
        processed = {m["index"] for m in manifest
                     if getattr(rec.by_stamp.get(m["stamp_ns"]), "joints", None) is not None}
        extra["without_depth"] = monocular_baseline(paths["input_bag"], paths["pipeline"], scene, manifest,
                                                    not args.no_fit, processed)
    return score(scene, manifest, rec, paths, start, extra)


def run_node(args: argparse.Namespace, paths: dict[str, Path],
             env: dict[str, str]) -> tuple[list[dict], Recording, dict[str, str]]:
    """The node and the recorder here, the player in a second process, until the last output:
    returns the player's manifest, the recording and the node's own frame counts."""
    session = RosSession(paths["pipeline"], not args.no_fit, paths["output_bag"], not args.no_depth)
    try:
        session.wait_matched()
        LOG.info("replaying %d frames at %.1f Hz from a second process ...", args.frames, args.rate)
        manifest = run_player(paths["input_bag"], args.rate, args.frames, paths["manifest"], env)
        wait_for_outputs(session.recorder.rec, [m["stamp_ns"] for m in manifest])
        counts = node_counts(session.recorder.rec.last_diagnostics)
    finally:
        session.close()
    return manifest, session.recorder.rec, counts


def score(scene: Scene, manifest: list[dict], rec: Recording, paths: dict[str, Path], start: float,
          run_info: dict[str, Any]) -> dict[str, Any]:
    """Scores the outputs, saves the overlays and summary.json (with the seconds since ``start``,
    a perf_counter time); returns the summary."""
    evals = evaluate(manifest, rec, scene.truths, scene.occluded, scene.camera)
    overlays = save_overlays(rec, manifest, paths["overlays"])
    files = {k: str(paths[k]) for k in ("input_bag", "output_bag", "overlays", "truth", "summary")}
    summary = summarise(len(manifest), evals, {e.frame_id for e in rec.by_stamp.values() if e.frame_id},
                        files, {"overlays_written": overlays, **run_info,
                                "seconds": round(time.perf_counter() - start, 1)})
    paths["summary"].write_text(json.dumps(summary, indent=1))
    return summary
