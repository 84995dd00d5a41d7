"""The demo's monocular baseline: the same pipeline on the same frames without the depth stream,
in-process (``bag_io.process_bag``, what ``nbf-ros estimate --bag`` runs), scored like the node's
outputs, so the summary shows what depth changes (root error with and without depth)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from nbf_ros.apps.demo.scoring import CloudPerson, FrameEval, _main_person, _stat, match_people
from nbf_ros.apps.demo.sequence import Scene
from nbf_ros.apps.demo.topics import IMAGE_TOPIC, INFO_TOPIC


def monocular_baseline(input_bag: Path, config_yaml: Path, scene: Scene, manifest: list[dict],
                       fit: bool, frames: set[int]) -> dict[str, Any]:
    """Root error and MPJPE without depth on ``frames`` (the frames the node processed, so that
    both numbers are over the same frames)."""
    from nbf_ros.config import load_config
    from nbf_ros.inference.pipeline import Pipeline
    from nbf_ros.ros.bag_io import process_bag

    pipeline = Pipeline.from_config(load_config(config_yaml))
    with tempfile.TemporaryDirectory() as tmp:
        stats = process_bag(input_bag, Path(tmp) / "out", pipeline, IMAGE_TOPIC, INFO_TOPIC, fit=fit,
                            keep_results=True)
    index_of = {int(m["bag_stamp_ns"]): int(m["index"]) for m in manifest}
    evals = []
    for bag_ns, result in stats.results:
        i = index_of.get(int(bag_ns))
        if i is None or i not in frames:
            continue
        pred = {int(p.id): CloudPerson(p.joints3d, p.joint_visibility) for p in result.people}
        evals.append(FrameEval(i, int(bag_ns), scene.occluded[i], len(pred), 0.0,
                               match_people(pred, scene.truths[i], scene.camera)))
    matches = [m for e in evals for m in e.matches]
    return {"frames": len(evals), "root_error_m": _stat([m["root_error_m"] for m in matches]),
            "mpjpe_mm": _stat([m["mpjpe_mm"] for m in matches]), "main_person": _main_person(evals)}
