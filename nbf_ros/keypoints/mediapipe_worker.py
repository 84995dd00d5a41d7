"""BlazePose in its own process: a tiny framed protocol over stdin/stdout, and the worker loop.

Why a separate process: mediapipe 0.10.21 (the last wheel that ships the BlazePose models) needs
protobuf < 5 and numpy < 2, which cannot share a venv with our onnx (protobuf >= 6.31) and
numpy 2. The worker runs under the interpreter of a small helper venv
(``python3 -m venv .venv-mediapipe && .venv-mediapipe/bin/pip install mediapipe==0.10.21``) and
is started by ``nbf_ros.keypoints.runtime``. The same ``run_pose`` is used in-process when
mediapipe is importable beside nbf_ros.

This file must run as a plain script in that venv: it imports only the standard library and
numpy at module level (mediapipe inside ``main``), never nbf_ros.

Message framing (both directions): ``MAGIC`` (4 bytes), header length (uint32 little endian),
a UTF-8 JSON header, then the raw C-order bytes of each array listed in ``header["arrays"]``
(name, dtype, shape) in that order. No pickle: only the dtypes in ``DTYPES`` are accepted and
sizes are checked before anything is allocated.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from typing import BinaryIO, Optional

import numpy as np

MAGIC = b"NBFM"
DTYPES = ("uint8", "float32", "float64", "int64")
MAX_HEADER_BYTES = 1 << 20
MAX_ARRAY_BYTES = 1 << 30
_LENGTH = struct.Struct("<I")


class ProtocolError(RuntimeError):
    """A malformed or unexpected message on the helper's pipe."""


def write_message(stream: BinaryIO, header: dict, arrays: Optional[dict[str, np.ndarray]] = None) -> None:
    """Send ``header`` (JSON-serialisable) and named arrays; flushes the stream."""
    arrays = arrays or {}
    specs, payloads = [], []
    for name, value in arrays.items():
        value = np.ascontiguousarray(value)
        if value.dtype.name not in DTYPES:
            raise ProtocolError(f"array {name!r}: dtype {value.dtype} not in {DTYPES}")
        specs.append({"name": name, "dtype": value.dtype.name, "shape": list(value.shape)})
        payloads.append(value.tobytes())
    body = json.dumps({**header, "arrays": specs}).encode("utf-8")
    stream.write(MAGIC + _LENGTH.pack(len(body)) + body)
    for payload in payloads:
        stream.write(payload)
    stream.flush()


def read_message(stream: BinaryIO) -> Optional[tuple[dict, dict[str, np.ndarray]]]:
    """The next (header, arrays), or None at a clean end of stream (before a message starts)."""
    start = stream.read(len(MAGIC) + _LENGTH.size)
    if not start:
        return None
    if len(start) < len(MAGIC) + _LENGTH.size or start[:len(MAGIC)] != MAGIC:
        raise ProtocolError(f"bad message start {start[:8]!r}")
    (size,) = _LENGTH.unpack(start[len(MAGIC):])
    if size > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {size} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = json.loads(_read_exact(stream, size).decode("utf-8"))
    except ValueError as exc:
        raise ProtocolError(f"header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    arrays = {}
    for spec in header.pop("arrays", []):
        name, dtype, shape = _array_spec(spec)
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        arrays[name] = np.frombuffer(_read_exact(stream, nbytes), dtype=dtype).reshape(shape)
    return header, arrays


def _array_spec(spec: object) -> tuple[str, str, tuple[int, ...]]:
    if not isinstance(spec, dict):
        raise ProtocolError(f"bad array spec {spec!r}")
    name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
    if not isinstance(name, str) or dtype not in DTYPES or not isinstance(shape, list) \
            or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ProtocolError(f"bad array spec {spec!r}")
    if int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize > MAX_ARRAY_BYTES:
        raise ProtocolError(f"array {name!r} of shape {shape} exceeds {MAX_ARRAY_BYTES} bytes")
    return name, dtype, tuple(shape)


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            raise ProtocolError(f"stream ended {left} bytes before the end of a message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# -- BlazePose -----------------------------------------------------------------------------------
def make_pose(min_confidence: float, tracking: bool, segmentation: bool):
    """mediapipe's BlazePose full (model_complexity=1: the only model the wheel ships)."""
    import mediapipe as mp

    return mp.solutions.pose.Pose(static_image_mode=not tracking, model_complexity=1,
                                  smooth_landmarks=tracking, enable_segmentation=segmentation,
                                  min_detection_confidence=min_confidence,
                                  min_tracking_confidence=min_confidence)


def run_pose(pose, image_rgb: np.ndarray) -> dict[str, np.ndarray]:
    """H x W x 3 uint8 RGB -> arrays (empty dict: nobody found).

    Keys: landmarks 33 x 3 (normalised x, y in 0..1 across the image, relative z), visibility
    (33,), world 33 x 3 metres, and mask H x W float32 when segmentation is enabled.
    """
    result = pose.process(np.ascontiguousarray(image_rgb))
    if result.pose_landmarks is None or result.pose_world_landmarks is None:
        return {}
    marks = result.pose_landmarks.landmark
    out = {"landmarks": np.array([[m.x, m.y, m.z] for m in marks], dtype=np.float32),
           "visibility": np.array([m.visibility for m in marks], dtype=np.float32),
           "world": np.array([[m.x, m.y, m.z] for m in result.pose_world_landmarks.landmark],
                             dtype=np.float32)}
    if getattr(result, "segmentation_mask", None) is not None:
        out["mask"] = np.asarray(result.segmentation_mask, dtype=np.float32)
    return out


def _serve(pose, inp: BinaryIO, out: BinaryIO) -> None:
    while True:
        message = read_message(inp)
        if message is None:
            return
        header, arrays = message
        try:
            image = arrays.get("image")
            if header.get("cmd") != "process" or image is None or image.dtype != np.uint8 \
                    or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected cmd 'process' with an H x W x 3 uint8 image, got {header}")
            found = run_pose(pose, image)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, the worker stays up
            write_message(out, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            continue
        write_message(out, {"ok": True, "found": bool(found)}, found)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="BlazePose helper process (framed stdin/stdout)")
    parser.add_argument("--min-confidence", type=float, default=0.5)
    parser.add_argument("--tracking", action="store_true")
    parser.add_argument("--segmentation", action="store_true")
    args = parser.parse_args(argv)
    # The protocol owns the real stdout; anything printed or logged to fd 1 goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        import mediapipe

        pose = make_pose(args.min_confidence, args.tracking, args.segmentation)
    except Exception as exc:  # noqa: BLE001 - ImportError and mediapipe's own start-up errors
        write_message(out, {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                            "python": sys.executable})
        return 2
    write_message(out, {"ok": True, "mediapipe": getattr(mediapipe, "__version__", "?"),
                        "numpy": np.__version__})
    with pose:
        _serve(pose, sys.stdin.buffer, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
