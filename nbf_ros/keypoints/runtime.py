"""Where BlazePose runs: in this process when mediapipe is importable here, else in a helper process.

``make_runner`` picks: (1) ``import mediapipe`` works in this interpreter -> in-process;
(2) the helper interpreter ``detector.mediapipe_python`` exists -> a worker process
(``mediapipe_worker.py``) started on first use, fed frames over a pipe; (3) neither ->
:class:`MediaPipeUnavailable`, a one-line ImportError that names the setup command.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import selectors
import subprocess
from pathlib import Path
from typing import Optional, Protocol

import numpy as np

from nbf_ros.config import DetectorConfig, resolve_path
from nbf_ros.detection.base import check_image
from nbf_ros.errors import NbfError
from nbf_ros.keypoints.blazepose import BlazePoseResult
from nbf_ros.keypoints.mediapipe_worker import ProtocolError, read_message, write_message

LOG = logging.getLogger(__name__)

SETUP_COMMAND = ("python3 -m venv .venv-mediapipe && "
                 ".venv-mediapipe/bin/pip install mediapipe==0.10.21")
WORKER_SCRIPT = Path(__file__).resolve().with_name("mediapipe_worker.py")
# Importing mediapipe and building the graph takes a few seconds; jax's import is the slow part.
START_TIMEOUT_S = 120.0


class MediaPipeUnavailable(NbfError, ImportError):
    """MediaPipe cannot run here; the message says how to set it up."""


class PoseRunner(Protocol):
    """Runs BlazePose on one image (H x W x 3 uint8 RGB) -> estimate in pixels, or None."""

    def estimate(self, image_rgb: np.ndarray) -> Optional[BlazePoseResult]: ...

    def close(self) -> None: ...


def mediapipe_importable() -> bool:
    """True when ``import mediapipe`` would work in this interpreter (not imported here)."""
    return importlib.util.find_spec("mediapipe") is not None


def helper_python(config: DetectorConfig) -> Optional[Path]:
    """The configured helper interpreter if it exists ("" in the config = none)."""
    if not config.mediapipe_python:
        return None
    path = resolve_path(config.mediapipe_python)
    return path if path.is_file() and os.access(path, os.X_OK) else None


def make_runner(config: DetectorConfig) -> PoseRunner:
    """In-process when mediapipe imports here, else the helper process; raises when neither."""
    if not 0.0 <= config.mediapipe_min_confidence <= 1.0:
        raise ValueError("detector.mediapipe_min_confidence must be in [0, 1], got "
                         f"{config.mediapipe_min_confidence}")
    if mediapipe_importable():
        return InProcessRunner(config)
    python = helper_python(config)
    if python is None:
        raise MediaPipeUnavailable(
            f"mediapipe is not installed here and the helper interpreter "
            f"{config.mediapipe_python!r} does not exist; set it up (from the repository root) "
            f"with `{SETUP_COMMAND}` (docs/mediapipe.md)")
    return SubprocessRunner(python, config)


def _result(arrays: dict[str, np.ndarray], width: int, height: int) -> Optional[BlazePoseResult]:
    if not arrays:
        return None
    return BlazePoseResult.from_normalised(arrays["landmarks"], arrays["visibility"],
                                           arrays["world"], width, height, arrays.get("mask"))


class InProcessRunner:
    """mediapipe imported into this interpreter (needs protobuf < 7 and a mediapipe build for
    this numpy; see docs/mediapipe.md)."""

    def __init__(self, config: DetectorConfig) -> None:
        from nbf_ros.keypoints.mediapipe_worker import make_pose

        self._pose = make_pose(config.mediapipe_min_confidence, config.mediapipe_tracking,
                               segmentation=True)

    def estimate(self, image_rgb: np.ndarray) -> Optional[BlazePoseResult]:
        from nbf_ros.keypoints.mediapipe_worker import run_pose

        height, width = check_image(image_rgb)
        return _result(run_pose(self._pose, image_rgb), width, height)

    def close(self) -> None:
        self._pose.close()


class SubprocessRunner:
    """BlazePose in a worker process of the helper venv; started on the first ``estimate``.

    One request at a time (like the pipeline). If the worker dies, the next call raises
    RuntimeError with its exit code; a later call starts a new one.
    """

    def __init__(self, python: Path, config: DetectorConfig) -> None:
        self.python = Path(python)
        self.args = ["--min-confidence", str(config.mediapipe_min_confidence), "--segmentation"]
        if config.mediapipe_tracking:
            self.args.append("--tracking")
        self._proc: Optional[subprocess.Popen] = None
        self.versions: dict = {}

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2")
        # -I: isolated mode, so the helper venv never sees this process's PYTHONPATH or cwd.
        proc = subprocess.Popen([str(self.python), "-I", str(WORKER_SCRIPT), *self.args],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        try:
            ready = self._receive(proc, START_TIMEOUT_S)
        except RuntimeError:
            self._stop(proc)
            raise
        header, _ = ready
        if not header.get("ok"):
            self._stop(proc)
            raise MediaPipeUnavailable(
                f"the mediapipe helper {self.python} cannot run BlazePose "
                f"({header.get('error', 'unknown error')}); set it up with `{SETUP_COMMAND}`")
        self.versions = {k: header[k] for k in ("mediapipe", "numpy") if k in header}
        LOG.info("mediapipe helper started: %s %s", self.python, self.versions)
        return proc

    def _receive(self, proc: subprocess.Popen, timeout_s: Optional[float] = None) -> tuple[dict, dict]:
        assert proc.stdout is not None
        if timeout_s is not None:
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                if not sel.select(timeout_s):
                    raise RuntimeError(f"mediapipe helper gave no answer in {timeout_s:.0f} s")
        try:
            message = read_message(proc.stdout)
        except ProtocolError as exc:
            raise RuntimeError(f"mediapipe helper: {exc}") from exc
        if message is None:
            code = proc.wait(timeout=10)
            raise RuntimeError(f"mediapipe helper exited with code {code} (its stderr says why)")
        return message

    def estimate(self, image_rgb: np.ndarray) -> Optional[BlazePoseResult]:
        height, width = check_image(image_rgb)
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        proc = self._proc
        assert proc.stdin is not None
        try:
            write_message(proc.stdin, {"cmd": "process"}, {"image": image_rgb})
            header, arrays = self._receive(proc)
        except (BrokenPipeError, RuntimeError) as exc:
            self._stop(proc)
            self._proc = None
            raise RuntimeError(f"mediapipe helper failed: {exc}") from exc
        if not header.get("ok"):
            raise RuntimeError(f"mediapipe helper: {header.get('error')}")
        return _result(arrays, width, height)

    @staticmethod
    def _stop(proc: subprocess.Popen) -> None:
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop the worker (it exits at the end of its input)."""
        if self._proc is not None:
            self._stop(self._proc)
            self._proc = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
