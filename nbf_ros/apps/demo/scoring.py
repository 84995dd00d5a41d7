"""Scores the node's outputs against the rendered truth, matched by header stamp, and builds the
summary (what the demo prints and writes to summary.json)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from nbf_ros.apps.demo.recorder import Recording

OCCLUDED_MIN = 0.2
"""Frames where the occluder hides at least this share of the main person count as occluded."""


@dataclass
class FrameEval:
    """One processed frame: its share occluded, people out, latency and the truth pairs."""

    index: int
    stamp_ns: int
    occluded: float
    people_out: int
    latency_ms: float
    matches: list[dict[str, float]]


@dataclass
class CloudPerson:
    """One person of a ~/joints cloud: 24 x 3 joints (metres, camera frame), (24,) visibility."""

    joints: np.ndarray
    visibility: np.ndarray


def people_from_cloud(points: np.ndarray) -> dict[int, CloudPerson]:
    """~/joints cloud (structured array, interfaces.md fields) -> {person id: CloudPerson}."""
    from nbf_ros.types import NUM_JOINTS

    people: dict[int, CloudPerson] = {}
    for pid in np.unique(points["person_id"]) if len(points) else []:
        rows = points[points["person_id"] == pid]
        person = CloudPerson(np.full((NUM_JOINTS, 3), np.nan), np.full(NUM_JOINTS, np.nan))
        person.joints[rows["joint_id"]] = np.stack([rows["x"], rows["y"], rows["z"]], axis=1)
        person.visibility[rows["joint_id"]] = rows["visibility"]
        people[int(pid)] = person
    return people


def match_people(pred: dict[int, CloudPerson], truth: list[Any], camera: Any,
                 visible_threshold: float = 0.5) -> list[dict[str, float]]:
    """Pair predictions with truth people by the image distance of their projected roots
    (Hungarian), a pair only when that distance is below the truth person's box height (a
    prediction elsewhere in the image is not that person). Per pair: truth index, id, root position error (m), root-aligned MPJPE (mm) and
    the share of joints whose visible/hidden call (at ``visible_threshold``) matches the truth."""
    from scipy.optimize import linear_sum_assignment

    from nbf_ros.geometry.camera import project
    from nbf_ros.evaluation.metrics import root_aligned_error

    if not pred or not truth:
        return []
    ids = sorted(pred)
    pred_uv = project(np.stack([pred[i].joints[0] for i in ids]), camera)
    truth_uv = project(np.stack([t.joints3d[0] for t in truth]), camera)
    cost = np.nan_to_num(np.linalg.norm(pred_uv[:, None] - truth_uv[None], axis=2), nan=np.inf)
    gate = np.array([t.bbox[3] - t.bbox[1] for t in truth])
    rows, cols = linear_sum_assignment(np.where(cost < gate[None], cost, 1e9))
    out = []
    for r, c in zip(rows, cols):
        if not cost[r, c] < gate[c]:
            continue
        person, true = pred[ids[r]], truth[c]
        agree = (person.visibility >= visible_threshold) == (np.asarray(true.joint_visibility) >= visible_threshold)
        out.append({"truth": int(c), "id": int(ids[r]),
                    "root_error_m": float(np.linalg.norm(person.joints[0] - true.joints3d[0])),
                    "mpjpe_mm": float(root_aligned_error(person.joints, true.joints3d).mean() * 1e3),
                    "visibility_agreement": float(agree.mean())})
    return out


def evaluate(manifest: list[dict], rec: Recording, truths: list[list[Any]], occluded: list[float],
             camera: Any) -> list[FrameEval]:
    """One FrameEval per published frame that got a ~/joints output (matched by stamp)."""
    out = []
    for line in manifest:
        got = rec.by_stamp.get(line["stamp_ns"])
        if got is None or got.joints is None:
            continue
        i = line["index"]
        pred = people_from_cloud(got.joints)
        out.append(FrameEval(i, line["stamp_ns"], occluded[i], len(pred), got.latency_ms,
                             match_people(pred, truths[i], camera)))
    return out


def _stat(values: list[float]) -> dict[str, Optional[float]]:
    if not values:
        return {"mean": None, "p50": None, "p95": None}
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(arr.mean()), 4), "p50": round(float(np.percentile(arr, 50)), 4),
            "p95": round(float(np.percentile(arr, 95)), 4)}


def summarise(published: int, evals: list[FrameEval], frame_ids: set[str], files: dict[str, str],
              extra: dict[str, Any]) -> dict[str, Any]:
    """The summary JSON (numbers rounded for reading)."""
    matches = [m for e in evals for m in e.matches]
    return {
        "frames_published": published, "frames_processed": len(evals),
        "frames_dropped": published - len(evals),
        "people_per_frame": [e.people_out for e in evals],
        "latency_ms": {k: v for k, v in _stat([e.latency_ms for e in evals]).items() if k != "mean"},
        "root_error_m": _stat([m["root_error_m"] for m in matches]),
        "mpjpe_mm": _stat([m["mpjpe_mm"] for m in matches]),
        "main_person": _main_person(evals),
        "per_frame": [_frame_row(e) for e in evals],
        "frame_ids": sorted(frame_ids), **extra, "files": files,
    }


def _main_person(evals: list[FrameEval]) -> dict[str, Any]:
    """The main person (truth 0), in occluded and clear frames apart: what the demo is about."""
    main = [(e, m) for e in evals for m in e.matches if m["truth"] == 0]
    occl = [m for e, m in main if e.occluded >= OCCLUDED_MIN]
    clear = [m for e, m in main if e.occluded < OCCLUDED_MIN]
    mean = lambda ms, key: _stat([m[key] for m in ms])["mean"]  # noqa: E731
    return {"occluded_frames": len(occl), "clear_frames": len(clear),
            "track_ids": sorted({int(m["id"]) for _, m in main}),
            "root_error_m_occluded": mean(occl, "root_error_m"),
            "root_error_m_clear": mean(clear, "root_error_m"),
            "mpjpe_mm_occluded": mean(occl, "mpjpe_mm"),
            "mpjpe_mm_clear": mean(clear, "mpjpe_mm"),
            "visibility_agreement_occluded": mean(occl, "visibility_agreement"),
            "visibility_agreement_clear": mean(clear, "visibility_agreement")}


def _frame_row(e: FrameEval) -> dict[str, Any]:
    """One frame of ``per_frame``."""
    return {"frame": e.index, "occluded": round(e.occluded, 3), "people": e.people_out,
            "latency_ms": round(e.latency_ms, 1),
            "matches": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}
                        for m in e.matches]}
