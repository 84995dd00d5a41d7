"""`nbf-ros` command line: thin wrappers over the pipeline, trainer, node and tools.

Each subcommand parses its options, calls one library function and maps library errors
(every ``nbf_ros.errors.NbfError``: InputError, ConfigError, BodyModelError, WeightsError, ...)
to a one-line message on stderr and exit code 1. Heavy modules are imported inside the subcommands.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Optional

from nbf_ros.errors import USER_ERRORS, NbfError

LOG = logging.getLogger("nbf_ros")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CliError(NbfError):
    """A bad combination of options: reported like every NbfError, as one line and exit code 1."""


# -- estimate -------------------------------------------------------------------------------------
def _explicit_intrinsics(args: argparse.Namespace):
    from nbf_ros.inference.io import InputError, load_camera_info_yaml
    from nbf_ros.types import CameraIntrinsics

    manual = [args.fx, args.fy, args.cx, args.cy]
    if args.camera_info and any(v is not None for v in manual):
        raise InputError("give either --camera-info or --fx/--fy/--cx/--cy, not both")
    if args.camera_info:
        return load_camera_info_yaml(args.camera_info)
    if any(v is not None for v in manual):
        if any(v is None for v in manual):
            raise InputError("--fx, --fy, --cx and --cy must be given together")
        return CameraIntrinsics(args.fx, args.fy, args.cx, args.cy, 1, 1)
    return None


def _load_pipeline_config(args: argparse.Namespace):
    """The --config file (or the defaults) with the options that override it."""
    from nbf_ros.config import apply_overrides, load_config

    overrides = {}
    if args.max_iters is not None:
        if args.max_iters < 0:
            raise CliError(f"--max-iters must be >= 0, got {args.max_iters}")
        overrides["fit.max_iters"] = args.max_iters
    return apply_overrides(load_config(args.config), overrides)


def _load_depths(args: argparse.Namespace, images: list) -> list:
    """One aligned depth image (metres) per --image, in order, or all None without --depth;
    a count or size mismatch is a one-line error before any model is loaded."""
    from nbf_ros.geometry.depth import DepthError, check_registered
    from nbf_ros.inference.depth_io import load_depth

    if not args.depth:
        return [None] * len(images)
    if len(args.depth) != len(images):
        raise CliError(f"give one --depth per --image (same order): {len(args.depth)} depth, "
                       f"{len(images)} images")
    depths = []
    for path, (image_path, image) in zip(args.depth, images):
        depth = load_depth(path)
        try:
            check_registered(depth, image.shape[1], image.shape[0])
        except DepthError as exc:
            raise CliError(f"{path} (for {image_path}): {exc}") from None
        depths.append(depth)
    return depths


def cmd_estimate(args: argparse.Namespace) -> int:
    """Run the pipeline on image files, a video or a bag and write the interfaces.md JSON."""
    from nbf_ros.geometry.camera import intrinsics_for_image
    from nbf_ros.inference.io import estimate_json, load_image_rgb, validate_intrinsics, write_json
    from nbf_ros.inference.pipeline import Pipeline

    if not (args.image or args.video or args.bag):
        raise CliError("give at least one --image, or --video, or --bag")
    explicit = _explicit_intrinsics(args)
    images = [(path, load_image_rgb(path)) for path in args.image]  # fail early on unreadable files
    depths = _load_depths(args, images)
    pipeline = Pipeline.from_config(_load_pipeline_config(args))
    results = []
    for (path, image), depth in zip(images, depths):
        camera = intrinsics_for_image(explicit, image.shape[1], image.shape[0], rescale=False)
        camera = validate_intrinsics(camera, path)
        result = pipeline.process(image, camera, fit=not args.no_fit, depth=depth)
        results.append((path, image.shape[1], image.shape[0], result))
        LOG.info("%s: %d people (%s)", path, len(result.people),
                 ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items()))
        for person in result.people:
            if not person.fit.start.startswith("landmarks"):
                LOG.info("%s: person %d started from the %s", path, person.id, person.fit.start)
        if args.overlay:
            from nbf_ros.inference.overlay import save_overlay

            save_overlay(image, result, Path(args.overlay) / (Path(path).stem + "_overlay.png"))
    if args.video:
        from nbf_ros.inference.video import process_video

        results.extend(process_video(args.video, pipeline, explicit, fit=not args.no_fit,
                                     overlay_dir=args.overlay))
    if args.bag:
        if not args.bag_out:
            raise CliError("--bag needs --bag-out OUT_BAG (the input plus the output topics)")
        from nbf_ros.ros.bag_io import process_bag

        stats = process_bag(args.bag, args.bag_out, pipeline, args.image_topic, args.info_topic,
                            depth_topic=args.depth_topic)
        LOG.info("bag: %s", stats)
    if args.json:
        write_json(estimate_json(results, pipeline.model_info()), args.json)
    return EXIT_OK


def add_estimate(sub) -> None:
    p = sub.add_parser("estimate", help="3D people from image files (JSON out)")
    p.add_argument("--image", action="append", default=[], metavar="PATH", help="image file (repeatable)")
    p.add_argument("--json", metavar="OUT.json", help="write the results here")
    p.add_argument("--camera-info", metavar="CAMERA_INFO.yaml", help="ROS camera_info YAML")
    for name in ("fx", "fy", "cx", "cy"):
        p.add_argument(f"--{name}", type=float, default=None)
    p.add_argument("--depth", action="append", default=[], metavar="PATH",
                   help="aligned depth for the --image of the same position (repeatable): 16-bit PNG "
                        "in millimetres or float32 .npy in metres (docs/depth.md)")
    p.add_argument("--overlay", metavar="OUT_DIR", help="write overlay images here")
    p.add_argument("--config", metavar="CONFIG.yaml", help="pipeline config (defaults if absent)")
    p.add_argument("--max-iters", type=int, default=None, help="fitting iterations per person")
    p.add_argument("--no-fit", action="store_true", help="regression only (fitting skipped)")
    p.add_argument("--video", metavar="FILE", help="process a video file")
    p.add_argument("--bag", metavar="PATH", help="replay a rosbag2 (sqlite3 or MCAP)")
    p.add_argument("--bag-out", metavar="PATH", help="output bag for --bag")
    p.add_argument("--image-topic", default="/camera/image_raw")
    p.add_argument("--info-topic", default="/camera/camera_info")
    p.add_argument("--depth-topic", default=None,
                   help="aligned depth topic in --bag (16UC1 mm / 32FC1 m), paired by stamp")
    p.set_defaults(func=cmd_estimate)


# -- other subcommands ----------------------------------------------------------------------------
# Subcommands that own their argument parsing: `nbf-ros NAME ARGS...` calls MODULE.main(ARGS).
DELEGATES: dict[str, tuple[str, str]] = {
    "train": ("nbf_ros.apps.train", "train the network (see nbf-ros train --help)"),
    "node": ("nbf_ros.apps.node", "run the ROS 2 node (ROS arguments accepted)"),
    "demo": ("nbf_ros.apps.demo.cli", "the main job: the node on bundled input, outputs saved"),
    "render-demo": ("nbf_ros.apps.render_demo", "render the Neural Body Volume for a few poses"),
    "export": ("nbf_ros.apps.export", "export ONNX / build a TensorRT engine"),
}


def run_delegate(name: str, argv: list[str]) -> int:
    import importlib

    return int(importlib.import_module(DELEGATES[name][0]).main(argv) or 0)


def add_delegates(sub) -> None:
    """Listed in --help only; main() hands their arguments over untouched."""
    for name, (_, text) in DELEGATES.items():
        sub.add_parser(name, help=text, add_help=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbf-ros", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    add_estimate(sub)
    add_delegates(sub)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """``nbf-ros``: 0 on success; a user-facing error (any NbfError, a missing or unreadable file)
    is one stderr line ``nbf-ros COMMAND: error: MESSAGE`` and exit code 1, usage errors exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = bool(argv) and argv[0] in ("-v", "--verbose")
    rest = argv[1:] if verbose else argv
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="[%(levelname)s] %(name)s: %(message)s", stream=sys.stderr)
    if rest and rest[0] in DELEGATES:
        command, call = rest[0], (lambda: run_delegate(rest[0], rest[1:]))
    else:
        args = build_parser().parse_args(argv)
        command, call = args.command, (lambda: args.func(args))
    start = time.perf_counter()
    try:
        code = call()
    except USER_ERRORS as exc:
        print(f"nbf-ros {command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    LOG.debug("%s took %.1f s", command, time.perf_counter() - start)
    return code


if __name__ == "__main__":
    sys.exit(main())
