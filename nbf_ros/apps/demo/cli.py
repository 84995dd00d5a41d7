"""``nbf-ros demo`` (and ``python -m nbf_ros.apps.demo``): options, the run, the printed summary.

Exit code 0 on success; 1 with one line on stderr when the demo cannot run; 2 for bad options.
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from typing import Any, Optional

from nbf_ros.errors import NbfError

DESCRIPTION = ("the main job: the real node on a bundled, rendered input, with no camera and no "
               "ROS install (the ROS 2 PyPI wheels give rclpy and DDS)")
DEFAULT_RATE_HZ = 1.0
DEFAULT_DETECTOR = "config"
DETECTORS = ("config", "nanodet", "hog", "fixed", "full_frame")


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nbf-ros demo", description=DESCRIPTION)
    p.add_argument("--out", default="demo_out", help="output folder (input_bag, output_bag, overlays/, "
                   "summary.json, truth.json); the demo's own files in it are replaced")
    p.add_argument("--frames", type=int, default=20, help="frames in the sequence")
    p.add_argument("--people", type=int, default=2, choices=(1, 2), help="people in the scene")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE_HZ, help="replay rate, frames per second")
    p.add_argument("--seed", type=int, default=7, help="scene seed (looks, shapes, background)")
    p.add_argument("--config", metavar="PIPELINE.yaml", help="pipeline config (embedded defaults if absent)")
    p.add_argument("--weights", metavar="NET.pt", help="network weights (overrides the config)")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTORS,
                   help="person boxes: 'config' (default) = as the pipeline config says (the "
                   "embedded default: NanoDet-g), 'fixed' = the region where the main person stands "
                   "(taken from the truth), or another detector kind")
    p.add_argument("--max-iters", type=int, default=None, help="fitting iterations per person")
    p.add_argument("--no-fit", action="store_true", help="regression only")
    p.add_argument("--no-depth", action="store_true",
                   help="the node without the aligned depth stream (monocular; no comparison run)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the in-process monocular run that gives the 'without depth' numbers")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: the environment's)")
    args = p.parse_args(argv)
    if args.frames < 1:
        p.error(f"--frames must be >= 1, got {args.frames}")
    if not 0.05 <= args.rate <= 100.0:
        p.error(f"--rate must be in [0.05, 100], got {args.rate}")
    if args.max_iters is not None and args.max_iters < 0:
        p.error(f"--max-iters must be >= 0, got {args.max_iters}")
    return args


def print_summary(s: dict[str, Any]) -> None:
    """A few human lines (stdout), then the JSON line."""
    lat, main = s["latency_ms"], s["main_person"]
    fmt = lambda v, scale=1.0, unit="": "n/a" if v is None else f"{v * scale:.0f}{unit}"  # noqa: E731
    print(f"nbf-ros demo: {s['frames_processed']}/{s['frames_published']} frames processed "
          f"({s['frames_dropped']} dropped while the node was busy), detector {s['detector']}, "
          f"fit {'on' if s['fit'] else 'off'}, {s['seconds']} s")
    print(f"  people per frame: {s['people_per_frame']}")
    print(f"  latency (image stamp -> outputs received): p50 {fmt(lat['p50'])} ms, p95 {fmt(lat['p95'])} ms")
    print(f"  all matched people: root error mean {fmt(s['root_error_m']['mean'], 100, ' cm')}, "
          f"MPJPE mean {fmt(s['mpjpe_mm']['mean'], 1, ' mm')}")
    print(f"  main person, occluded frames ({main['occluded_frames']}): root "
          f"{fmt(main['root_error_m_occluded'], 100, ' cm')}, MPJPE {fmt(main['mpjpe_mm_occluded'], 1, ' mm')}; "
          f"clear frames ({main['clear_frames']}): root {fmt(main['root_error_m_clear'], 100, ' cm')}, "
          f"MPJPE {fmt(main['mpjpe_mm_clear'], 1, ' mm')}; track ids {main['track_ids']}")
    mono = s.get("without_depth")
    if mono:
        mm = mono["main_person"]
        print(f"  depth {'on' if s['depth'] else 'off'}; the same pipeline without depth: root error mean "
              f"{fmt(mono['root_error_m']['mean'], 100, ' cm')} (with depth "
              f"{fmt(s['root_error_m']['mean'], 100, ' cm')}), main person occluded "
              f"{fmt(mm['root_error_m_occluded'], 100, ' cm')} / clear {fmt(mm['root_error_m_clear'], 100, ' cm')}, "
              f"MPJPE {fmt(mono['mpjpe_mm']['mean'], 1, ' mm')}")
    print(f"  main person, joints called visible/hidden as in the truth: occluded frames "
          f"{fmt(main['visibility_agreement_occluded'], 100, ' %')}, clear frames "
          f"{fmt(main['visibility_agreement_clear'], 100, ' %')}")
    print(f"  files: {s['files']['output_bag']} (input + outputs, MCAP), {s['files']['overlays']}/ "
          f"({s['overlays_written']} PNG), {s['files']['input_bag']}, {s['files']['summary']}")
    print(json.dumps(s, separators=(",", ":")))


def main(argv: Optional[list[str]] = None) -> int:
    """0 on success, 1 with a one-line error."""
    from nbf_ros.apps.demo.run import run_demo

    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    try:
        summary = run_demo(args)
    except (NbfError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        print(f"nbf-ros demo: error: {exc}", file=sys.stderr)
        return 1
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
