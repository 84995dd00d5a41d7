"""The demo's input: a rendered sequence with exact truth (``nbf_ros.data.sequence``), written as
a rosbag2 (MCAP) ``input_bag`` and ``truth.json``; the fixed person region comes from its truth."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nbf_ros.apps.demo.topics import DEPTH_TOPIC, FRAME_ID, IMAGE_TOPIC, INFO_TOPIC

BAG_START_NS = 1_700_000_000_000_000_000
"""Stamp of frame 0 in the input bag (fixed, so the bag is reproducible); replay restamps."""
FIXED_BOX_MARGIN = 0.0
"""The fixed region is the main person's full-body box (union over the frames) grown by this
fraction per side. The network learned from crops around tight person boxes (a few per cent of
jitter): a looser region makes the person look smaller in the crop than in training, and the
network puts them too near (root error 0.76 m with a 15 % margin, 0.28 m without, in a preview
run with partly trained weights)."""


@dataclass
class Scene:
    """The rendered sequence as the scoring needs it: camera, truth people and the main person's
    occluded share per frame, and the region where the main person stands."""

    camera: Any
    truths: list[list[Any]]
    occluded: list[float]
    fixed_box: tuple[float, float, float, float]


def render_input(frames: int, people: int, seed: int, rate_hz: float, body_path: Path, bag: Path,
                 truth_json: Path) -> Scene:
    """Render the sequence, write the input bag (MCAP, one frame per 1 / ``rate_hz`` s of bag
    time) and truth.json."""
    from nbf_ros.body.model import BodyModel
    from nbf_ros.data.sequence import SequenceConfig, render_sequence
    from nbf_ros.ros.bag_io import write_camera_bag

    cfg = SequenceConfig(frames=frames, people=people, seed=seed)
    camera, rendered = render_sequence(cfg, BodyModel(body_path))
    period_ns = int(round(1e9 / rate_hz))
    images, truths, occluded, depths = [], [], [], []
    for frame in rendered:
        images.append((BAG_START_NS + frame.index * period_ns, frame.image))
        depths.append(frame.depth)
        truths.append(frame.people)
        occluded.append(frame.main_occluded_fraction)
    write_camera_bag(bag, images, camera, image_topic=IMAGE_TOPIC, info_topic=INFO_TOPIC,
                     frame_id=FRAME_ID, storage="mcap", depths=depths, depth_topic=DEPTH_TOPIC)
    write_truth(truth_json, camera, [stamp for stamp, _ in images], truths, occluded)
    return Scene(camera, truths, occluded, _fixed_box(truths, camera))


def write_truth(path: Path, camera: Any, stamps: list[int], truths: list[list[Any]],
                occluded: list[float]) -> None:
    """truth.json: the camera, and per frame its bag stamp, occluded share and people."""
    path.write_text(json.dumps({"camera": dataclasses.asdict(camera), "frames": [
        {"frame": i, "bag_stamp_ns": stamps[i], "main_occluded_fraction": occluded[i],
         "people": [{"joints3d": t.joints3d.round(4).tolist(), "bbox": t.bbox.round(1).tolist(),
                     "joint_visibility": np.asarray(t.joint_visibility).round(3).tolist()} for t in people]}
        for i, people in enumerate(truths)]}))


def _fixed_box(truths: list[list[Any]], camera: Any) -> tuple[float, float, float, float]:
    """The main person's full-body box (union over frames) grown by FIXED_BOX_MARGIN, clipped."""
    boxes = np.stack([people[0].bbox for people in truths])
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    mx, my = FIXED_BOX_MARGIN * (x1 - x0), FIXED_BOX_MARGIN * (y1 - y0)
    return (float(max(x0 - mx, 0.0)), float(max(y0 - my, 0.0)),
            float(min(x1 + mx, camera.width)), float(min(y1 + my, camera.height)))
