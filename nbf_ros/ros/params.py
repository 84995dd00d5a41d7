"""The node's parameters: one table (name, default, range, when it may change), validation with
a reason, and the mapping onto the pipeline's ``NbfConfig``. No rclpy here, so it is testable and
``config/nbf.yaml`` can be checked against it.

When a parameter may change:
- ``read_only``: only at start-up (launch file / YAML / command line).
- ``configure``: read in on_configure (models, detector, fitting budget); rejected while the node
  is inactive or active, with a reason that says to clean up first.
- ``activate``: read in on_activate (subscription QoS); rejected while active.
- ``runtime``: applied to the next frame.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from nbf_ros.config import NbfConfig, TrackerConfig, apply_overrides, load_config

READ_ONLY, CONFIGURE, ACTIVATE, RUNTIME = "read_only", "configure", "activate", "runtime"


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    when: str = RUNTIME
    min: Optional[float] = None
    max: Optional[float] = None
    choices: tuple[str, ...] = ()


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True, "configure and activate on start (run directly / launch file)", READ_ONLY),
    ParamSpec("config_file", "", "pipeline YAML (nbf_ros.config.NbfConfig); empty = built-in defaults",
              CONFIGURE),
    ParamSpec("backend", "", "network backend; empty = from config_file", CONFIGURE,
              choices=("", "torch", "onnxruntime", "tensorrt")),
    ParamSpec("device", "", "torch device (cpu, cuda, cuda:1); empty = from config_file", CONFIGURE),
    ParamSpec("detector", "", "person boxes (nanodet = the pretrained NanoDet-g, the config "
              "default); empty = from config_file", CONFIGURE,
              choices=("", "nanodet", "hog", "fixed", "full_frame")),
    ParamSpec("keypoint_source", "", "2D keypoints of the fit (blazepose = BlazePose GHUM on every "
              "box, the config default; network = the network's heatmaps); empty = from config_file",
              CONFIGURE, choices=("", "blazepose", "network")),
    ParamSpec("fixed_box", [0.0, 0.0, 0.0, 0.0], "box [x0, y0, x1, y1] px for detector 'fixed'; "
              "all zero = from config_file", CONFIGURE),
    ParamSpec("max_people", 0, "most people per frame; 0 = from config_file", CONFIGURE, 0, 64),
    ParamSpec("max_iters", -1, "fitting iterations per person; -1 = from config_file", CONFIGURE, -1, 10000),
    ParamSpec("fit", True, "run the fitting stage (false: regression only, same outputs)", RUNTIME),
    ParamSpec("tracking_mode", "", "on: tracked people are looked for where their BlazePose landmarks "
              "were, the detector runs every detect_every frames or when a track is lost, tracked "
              "fits are warm-started and shorter; off: every frame on its own; empty = from "
              "config_file (tracking.enabled)", CONFIGURE, choices=("", "on", "off")),
    ParamSpec("detect_every", 0, "tracking mode: frames between detector runs while every track "
              "holds; 0 = from config_file (tracking.detect_every)", CONFIGURE, 0, 10000),
    ParamSpec("qos_reliability", "best_effort", "image/camera_info subscription reliability "
              "(best_effort = sensor data QoS)", ACTIVATE, choices=("best_effort", "reliable")),
    ParamSpec("qos_depth", 5, "image/camera_info subscription queue depth", ACTIVATE, 1, 100),
    ParamSpec("max_image_side", 4096, "images with a side longer than this are rejected (px)",
              RUNTIME, 16, 32768),
    ParamSpec("require_camera_info", True, "skip frames until a valid CameraInfo arrived; false: "
              "use the documented default intrinsics (focal = image diagonal)", RUNTIME),
    ParamSpec("camera_info_wait_s", 3.5, "longest an image waits for the CameraInfo of its own stamp "
              "before it is skipped (camera_info_unmatched); DDS can hold CameraInfo back for "
              "seconds (docs/ros_node.md, CameraInfo pairing)", ACTIVATE, 0.01, 60.0),
    ParamSpec("camera_info_static_after", 10, "identical CameraInfos in a row after which an image "
              "does not wait for its own (a fixed calibration: used at once, camera_info_static); "
              "0 = always wait", ACTIVATE, 0, 10000),
    ParamSpec("use_depth", True, "subscribe to the optional 'depth' topic (aligned depth, 16UC1 mm "
              "or 32FC1 m, registered to 'image'); without a depth publisher frames stay monocular",
              ACTIVATE),
    ParamSpec("depth_tolerance_s", 0.015, "a depth image pairs with the image whose stamp is within "
              "this (nearest wins); 0 = exact stamps", RUNTIME, 0.0, 1.0),
    ParamSpec("depth_wait_s", 0.1, "longest the worker waits for the depth of an image while the "
              "depth stream is live; then the frame is processed monocular (diagnostics: late)",
              RUNTIME, 0.0, 5.0),
    ParamSpec("depth_qos_reliability", "best_effort", "depth subscription reliability", ACTIVATE,
              choices=("best_effort", "reliable")),
    ParamSpec("depth_qos_depth", 5, "depth subscription queue depth", ACTIVATE, 1, 100),
    ParamSpec("track_timeout_s", 1.0, "drop a track not seen for this long (image-stamp seconds)",
              RUNTIME, 0.01, 3600.0),
    ParamSpec("marker_lifetime_s", 0.3, "marker lifetime: a few frames, so RViz never shows ghosts",
              RUNTIME, 0.0, 60.0),
    ParamSpec("publish_debug_image", False, "publish ~/debug_image (overlay of boxes and skeletons)",
              RUNTIME),
    ParamSpec("publish_tf", False, "broadcast a TF frame body_<id> at each pelvis (needs tf2_ros)",
              RUNTIME),
    ParamSpec("latency_warn_ms", 500.0, "diagnostics WARN when p90 latency (stamp -> publish) exceeds",
              RUNTIME, 1.0, 600000.0),
    ParamSpec("input_timeout_s", 2.0, "diagnostics WARN when no image arrived for this long",
              RUNTIME, 0.1, 3600.0),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics", READ_ONLY, 0.05, 60.0),
)
SPECS = {p.name: p for p in PARAMS}


def validate(name: str, value: Any, state: str) -> Optional[str]:
    """None if ``value`` may be set now (lifecycle ``state`` label), else the rejection reason."""
    spec = SPECS.get(name)
    if spec is None:
        return None  # rclpy's own parameters (use_sim_time, ...)
    if spec.when == CONFIGURE and state in ("inactive", "active"):
        return f"{name} is read at configure: deactivate and clean up the node first (state {state})"
    if spec.when == ACTIVATE and state == "active":
        return f"{name} is read at activate: deactivate the node first"
    if isinstance(spec.default, bool) != isinstance(value, bool):
        return f"{name} must be {type(spec.default).__name__}, got {value!r}"
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {list(spec.choices)}, got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} must be finite, got {value}"
    if spec.min is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not spec.min <= value <= spec.max:
            return f"{name} must be in [{spec.min}, {spec.max}], got {value}"
    if name == "fixed_box":
        return _check_box(value)
    return None


def _check_box(value: Sequence[float]) -> Optional[str]:
    box = list(value)
    if len(box) != 4 or not all(math.isfinite(float(v)) for v in box):
        return f"fixed_box must be 4 finite numbers [x0, y0, x1, y1], got {box}"
    if any(box) and (box[2] <= box[0] or box[3] <= box[1]):
        return f"fixed_box needs x1 > x0 and y1 > y0, got {box}"
    return None


CONFIG_OVERRIDES: tuple[tuple[str, str, Callable[[Any], bool]], ...] = (
    ("backend", "inference.backend", bool),
    ("device", "inference.device", bool),
    ("detector", "detector.kind", bool),
    ("keypoint_source", "fit.keypoint_source", bool),
    ("fixed_box", "detector.fixed_box", any),
    ("max_people", "detector.max_people", lambda v: v > 0),
    ("max_iters", "fit.max_iters", lambda v: v >= 0),
    ("track_timeout_s", "tracker.timeout_s", lambda v: True),
    ("detect_every", "tracking.detect_every", lambda v: v > 0),
)
"""(parameter, NbfConfig key, whether the value is set). Unset = keep the config file's value:
empty string, all-zero box, 0 people, and -1 iterations (0 iterations is a real setting)."""


def config_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """The node parameters that override ``config_file``, keyed by their NbfConfig path."""
    overrides = {key: values[name] for name, key, is_set in CONFIG_OVERRIDES if is_set(values[name])}
    if values["tracking_mode"]:  # a choice, not the config's bool: "" must mean "from config_file"
        overrides["tracking.enabled"] = values["tracking_mode"] == "on"
    return overrides


def pipeline_config(values: dict[str, Any]) -> NbfConfig:
    """NbfConfig from ``config_file`` with the node's set parameters applied (raises ConfigError
    with the key named)."""
    return apply_overrides(load_config(values["config_file"] or None), config_overrides(values))


def tracker_config(base: TrackerConfig, values: dict[str, Any]) -> TrackerConfig:
    return dataclasses.replace(base, timeout_s=float(values["track_timeout_s"]))
