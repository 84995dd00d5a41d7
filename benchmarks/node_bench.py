"""Drive the nbf node from a second process and measure what a robot integrator cares about.

The node runs in this process (as it would under ``nbf_node``) with the real pipeline
(``--pipeline nbf``, models from ``--config``) or the model-free stand-in (``--pipeline
silhouette``: the cost of the ROS shell alone). A camera publisher process
(``python -m nbf_ros.apps.camera_publisher``) sends 640 x 480 frames with 1 or 3 drawn people at each
rate. Reported per run: end-to-end latency percentiles (image stamp -> output received by a
subscriber, and stamp -> publish inside the node), output rate, frames dropped by the node
(latest-wins) and lost in transport, this process's CPU and RSS, and the drift of latency and
RSS over the run (least-squares slope), which must stay near zero.

    python benchmarks/node_bench.py                              # short smoke run (20 s per case)
    python benchmarks/node_bench.py --duration 600 --out docs/node_bench.json   # the documented run
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


@dataclass
class RunResult:
    rate_hz: float
    people: int
    duration_s: float
    pipeline: str
    qos: str
    frames_sent: int
    frames_received_by_node: int
    outputs: int
    output_rate_hz: float
    dropped_by_node: int
    lost_in_transport: int
    latency_ms: dict[str, float]
    node_latency_ms: dict[str, float]
    stage_ms: dict[str, float]
    cpu_percent: float
    rss_mb_start: float
    rss_mb_end: float
    rss_mb_max: float
    rss_slope_mb_per_min: float
    latency_slope_ms_per_min: float
    people_per_frame: float
    latency_p50_by_minute: list = field(default_factory=list)
    rss_mb_by_minute: list = field(default_factory=list)
    samples: list = field(default_factory=list, repr=False)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def slope_per_min(times_s: list[float], values: list[float]) -> float:
    if len(times_s) < 3:
        return float("nan")
    return float(np.polyfit(np.asarray(times_s) / 60.0, np.asarray(values), 1)[0])


def by_minute(pairs: list[tuple[float, float]], reduce: Callable) -> list[float]:
    """``reduce`` of the values in each whole minute of the run (drift at a glance)."""
    out = []
    for minute in range(int(max((t for t, _ in pairs), default=0.0) // 60.0) + 1):
        values = [v for t, v in pairs if minute * 60.0 <= t < (minute + 1) * 60.0]
        if values:
            out.append(round(float(reduce(values)), 1))
    return out


def isolate_domain() -> dict[str, str]:
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def make_factory(kind: str, config_file: str) -> Callable[[Any], Any]:
    """Pipeline factory for the node; the pipeline is built once and reused across runs."""
    cache: dict[str, Any] = {}

    def factory(config: Any) -> Any:
        if "p" not in cache:
            if kind == "silhouette":
                from nbf_ros.testing.pipelines import SilhouettePipeline

                cache["p"] = SilhouettePipeline(config)
            else:
                from nbf_ros.inference.pipeline import Pipeline

                cache["p"] = Pipeline.from_config(config)
        return cache["p"]

    return factory


def run_case(args: argparse.Namespace, env: dict[str, str], factory: Callable, rate: float,
             people: int) -> RunResult:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    from nbf_ros.ros.conversions import stamp_to_seconds
    from nbf_ros.ros.node import NbfNode

    context = rclpy.Context()
    rclpy.init(context=context)
    overrides = [Parameter("autostart", value=False), Parameter("qos_reliability", value=args.qos),
                 Parameter("config_file", value=args.config), Parameter("fit", value=not args.no_fit),
                 Parameter("tracking_mode", value=args.tracking_mode)]
    overrides += [Parameter(name, value=value) for name, value in args.node_param]
    node = NbfNode(context=context, parameter_overrides=overrides, pipeline_factory=factory)
    collector = rclpy.create_node("bench_collector", context=context)
    latencies: list[tuple[float, float, int]] = []  # (t since start, ms, people)
    t0 = time.monotonic()

    def on_joints(msg: Any) -> None:
        now = time.time()
        latencies.append((time.monotonic() - t0, 1e3 * (now - stamp_to_seconds(msg.header.stamp)),
                          msg.width // 24))

    collector.create_subscription(PointCloud2, "/nbf/joints", on_joints,
                                  QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    executor.add_node(collector)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    samples: list[tuple[float, float, float]] = []  # (t, cpu s, rss MB)
    try:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise RuntimeError("configure failed (see the log above)")
        node.trigger_activate()
        pub_cmd = [sys.executable, "-m", "nbf_ros.apps.camera_publisher", "--rate", str(rate), "--duration",
                   str(args.duration), "--people", str(people), "--width", "640", "--height", "480"]
        if args.qos == "reliable":
            pub_cmd.append("--reliable")
        if args.walkers:
            pub_cmd += ["--video", str(walking_video(people, args.walker_frames))]
        elif args.rendered:
            pub_cmd += ["--rendered", str(args.rendered)] + (["--distance", args.distance] if args.distance else [])
        publisher = subprocess.Popen(pub_cmd, env=env, cwd=REPO)
        t0 = time.monotonic()
        latencies.clear()
        cpu0 = cpu_seconds()
        while publisher.poll() is None:
            samples.append((time.monotonic() - t0, cpu_seconds() - cpu0, rss_mb()))
            time.sleep(1.0)
        time.sleep(1.0)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds() - cpu0
        stats = node.stats
        received, dropped = stats.received, node._slot.dropped
        node_latency = stats.latency_percentiles()
        stage = {k: round(v, 1) for k, v in stats.stage_ms.items()}
        node.trigger_deactivate()
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        collector.destroy_node()
        rclpy.try_shutdown(context=context)
    from nbf_ros.ros.stats import percentiles

    sent = int(round(args.duration * rate))
    latencies = [item for item in latencies if item[0] >= args.warmup]  # first fits, model warm-up
    lat = [ms for _, ms, _ in latencies]
    active = max(args.duration - args.warmup, 1e-6)
    return RunResult(
        rate_hz=rate, people=people, duration_s=args.duration, pipeline=args.pipeline, qos=args.qos,
        frames_sent=sent, frames_received_by_node=received, outputs=len(latencies),
        output_rate_hz=len(latencies) / active, dropped_by_node=dropped,
        lost_in_transport=max(0, sent - received), latency_ms=percentiles(lat),
        node_latency_ms=node_latency, stage_ms=stage, cpu_percent=100.0 * cpu / max(elapsed, 1e-6),
        rss_mb_start=samples[0][2] if samples else float("nan"),
        rss_mb_end=samples[-1][2] if samples else float("nan"),
        rss_mb_max=max((s[2] for s in samples), default=float("nan")),
        rss_slope_mb_per_min=slope_per_min([s[0] for s in samples[len(samples) // 5:]],
                                           [s[2] for s in samples[len(samples) // 5:]]),
        latency_slope_ms_per_min=slope_per_min([t for t, _, _ in latencies], lat),
        people_per_frame=float(np.mean([p for _, _, p in latencies])) if latencies else 0.0,
        latency_p50_by_minute=by_minute([(t, ms) for t, ms, _ in latencies], np.median),
        rss_mb_by_minute=by_minute([(t, r) for t, _, r in samples], np.max),
        samples=[(round(t, 1), round(r, 1)) for t, _, r in samples])


def walking_video(people: int, frames: int) -> Path:
    """``benchmarks/tracking_bench.py``'s rendered walking sequence of ``people`` (1 or 3) as a
    looped video for the camera publisher (MJPG, rendered once per size and cached under out/):
    the people the real detector and BlazePose find, moving as a robot's camera sees them."""
    import cv2
    import torch

    path = REPO / "out" / f"node_bench_walkers{people}_{frames}.avi"
    if path.is_file():
        return path
    sys.path.insert(0, str(REPO / "benchmarks"))
    from tracking_bench import WALKERS, walk_sequence

    from nbf_ros.body.model import BodyModel
    from nbf_ros.config import BodyConfig, resolve_path

    body = BodyModel(resolve_path(BodyConfig().model_path))
    with torch.no_grad():
        _, seq = walk_sequence(WALKERS[people], frames, body)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, seq[0].image.shape[1::-1])
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    for frame in seq + seq[::-1][1:-1]:  # forth and back: a loop without a jump
        writer.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def node_param(text: str) -> tuple[str, Any]:
    """'name=value' -> (name, value read as YAML: 0 -> int, false -> bool, 'on' stays a string)."""
    import yaml

    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    value = yaml.safe_load(raw)
    return name, raw if isinstance(value, bool) and raw.lower() in ("on", "off") else value


def print_table(results: list[RunResult]) -> None:
    head = ("rate", "ppl", "out Hz", "drop", "lost", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms", "CPU %",
            "RSS MB", "RSS/min", "lat/min")
    print(" | ".join(head))
    for r in results:
        lat = r.latency_ms
        print(" | ".join([f"{r.rate_hz:g}", str(r.people), f"{r.output_rate_hz:.1f}", str(r.dropped_by_node),
                          str(r.lost_in_transport),
                          *(f"{lat[k]:.0f}" for k in ("p50", "p90", "p95", "p99")),
                          f"{lat['max']:.0f}", f"{r.cpu_percent:.0f}", f"{r.rss_mb_end:.0f}",
                          f"{r.rss_slope_mb_per_min:+.2f}", f"{r.latency_slope_ms_per_min:+.1f}"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=20.0, help="seconds per case (600 for the documented run)")
    p.add_argument("--rates", default="10,30")
    p.add_argument("--people", default="1,3")
    p.add_argument("--pipeline", choices=("nbf", "silhouette"), default="nbf")
    p.add_argument("--config", default="", help="pipeline YAML for --pipeline nbf (empty: defaults)")
    p.add_argument("--no-fit", action="store_true", help="regression only")
    p.add_argument("--qos", choices=("best_effort", "reliable"), default="reliable",
                   help="input QoS on both sides (best_effort = the node's sensor-data default)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    p.add_argument("--out", default="", help="write the results as JSON here")
    p.add_argument("--rendered", type=int, default=0,
                   help="publish N scenes rendered with the body model (camera_publisher --rendered: people "
                        "the real detector and BlazePose find) instead of drawn silhouettes")
    p.add_argument("--distance", default="", help="with --rendered: MIN,MAX person distance in metres")
    p.add_argument("--walkers", action="store_true",
                   help="publish tracking_bench.py's rendered walking sequence of --people (1 or 3) people, "
                        "forth and back, instead of drawn silhouettes")
    p.add_argument("--walker-frames", type=int, default=48, help="frames of the walking sequence")
    p.add_argument("--node-param", action="append", default=[], type=node_param, metavar="NAME=VALUE",
                   help="a node parameter for every case (value read as YAML), repeatable; e.g. "
                        "camera_info_static_after=0")
    p.add_argument("--warmup", type=float, default=0.0,
                   help="seconds at the start of each case left out of the latency and rate figures")
    p.add_argument("--tracking-mode", choices=("", "on", "off"), default="",
                   help="the node's tracking_mode parameter (empty: from the config)")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    env = isolate_domain()
    factory = make_factory(args.pipeline, args.config)
    results = []
    for rate in (float(r) for r in args.rates.split(",")):
        for people in (int(n) for n in args.people.split(",")):
            print(f"[bench] {args.pipeline}: {rate:g} Hz, {people} people, {args.duration:g} s ...", flush=True)
            results.append(run_case(args, env, factory, rate, people))
    print_table(results)
    for r in results:
        print(f"[bench] {r.rate_hz:g} Hz, {r.people} people: latency p50 by minute {r.latency_p50_by_minute} ms; "
              f"RSS by minute {r.rss_mb_by_minute} MB")
    if args.out:
        Path(args.out).write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
