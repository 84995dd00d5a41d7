"""The pipeline config the demo's node runs with: the user's (or the defaults: NanoDet-g boxes,
BlazePose keypoints) with the demo's options applied, checked for its model files before
anything is rendered, then saved as the YAML the node reads (``pipeline.yaml``; with
``--detector fixed``, the main person's region from the truth)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nbf_ros.apps.demo import DemoError
from nbf_ros.apps.demo.sequence import Scene
from nbf_ros.config import NbfConfig, apply_overrides, load_config, resolve_path, save_config


def node_config(args: argparse.Namespace) -> NbfConfig:
    """``--config`` with ``--weights``, ``--detector`` and ``--max-iters`` applied; raises DemoError
    when a model file is missing."""
    cfg = apply_overrides(load_config(args.config), demo_overrides(args))
    check_model_files(cfg)
    return cfg


def demo_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys the demo's options set (``--detector config`` keeps the file's detector)."""
    overrides: dict[str, Any] = {}
    if args.weights:
        overrides["inference.weights_path"] = str(Path(args.weights).resolve())
    if args.detector != "config":
        overrides["detector.kind"] = args.detector
    if args.max_iters is not None:
        overrides["fit.max_iters"] = args.max_iters
    return overrides


def check_model_files(cfg: NbfConfig) -> None:
    """DemoError naming the first missing file: the body model, the weights for torch, and the
    pretrained ONNX models the config uses (with the command that rebuilds them)."""
    from nbf_ros.keypoints.landmarks import MODEL_PATHS, REBUILD

    needed = [("body model", cfg.body.model_path, "pass --weights NET.pt or a --config")]
    if cfg.inference.backend == "torch":
        needed.append(("network weights", cfg.inference.weights_path,
                       "pass --weights NET.pt or a --config"))
    if cfg.detector.kind == "nanodet":
        needed.append(("detector model", cfg.detector.nanodet_model_path, f"rebuild it with `{REBUILD}`"))
    if cfg.fit.keypoint_source == "blazepose":
        heavy = " --heavy" if cfg.blazepose.variant == "heavy" else ""
        needed.append(("BlazePose model", MODEL_PATHS[cfg.blazepose.variant],
                       f"build it with `{REBUILD}{heavy}`"))
    for what, p, fix in needed:
        if not resolve_path(p).is_file():
            raise DemoError(f"{what} not found: {resolve_path(p)} ({fix})")


def save_node_config(cfg: NbfConfig, scene: Scene, path: Path) -> NbfConfig:
    """Write ``cfg`` with the fixed region set from the scene (unless the config gives one) to
    ``path``, the node's ``config_file``; returns what was written."""
    if cfg.detector.kind == "fixed" and not any(cfg.detector.fixed_box):
        cfg = apply_overrides(cfg, {"detector.fixed_box": scene.fixed_box})
    save_config(cfg, path)
    return cfg
