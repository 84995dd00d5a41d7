"""`nbf-ros estimate --video FILE`: run the pipeline with tracking over a video file."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from nbf_ros.geometry.camera import intrinsics_for_image
from nbf_ros.inference.io import InputError
from nbf_ros.types import CameraIntrinsics, FrameResult

LOG = logging.getLogger(__name__)


def process_video(path: str | Path, pipeline, explicit: Optional[CameraIntrinsics], fit: bool = True,
                  overlay_dir: Optional[str | Path] = None, max_frames: Optional[int] = None
                  ) -> list[tuple[str, int, int, FrameResult]]:
    """Results per frame as (``"FILE#frame"``, width, height, FrameResult); ids stable via the tracker.

    Frames are timestamped from the container's frame rate (25 fps when it has none); an overlay
    video ``<stem>_overlay.mp4`` is written to ``overlay_dir`` when given.
    """
    import cv2

    from nbf_ros.config import TrackerConfig
    from nbf_ros.tracking import Tracker

    capture = cv2.VideoCapture(str(path))
    if not Path(path).is_file() or not capture.isOpened():
        raise InputError(f"{path}: cannot open video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    tracker = Tracker(TrackerConfig())
    results, writer = [], None
    try:
        index = 0
        while max_frames is None or index < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            camera = intrinsics_for_image(explicit, w, h, rescale=False)
            result = pipeline.process(rgb, camera, tracker=tracker, fit=fit, stamp_s=index / fps)
            results.append((f"{path}#{index}", w, h, result))
            if overlay_dir is not None:
                from nbf_ros.inference.overlay import draw_overlay

                if writer is None:
                    out = Path(overlay_dir) / f"{Path(path).stem}_overlay.mp4"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                writer.write(draw_overlay(rgb, result.people)[..., ::-1])
            index += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if not results:
        raise InputError(f"{path}: no decodable frames")
    LOG.info("%s: %d frames", path, len(results))
    return results
