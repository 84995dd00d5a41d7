"""`nbf-ros export`: the network as ONNX (for onnxruntime and TensorRT), checked on export.

Also ``python -m nbf_ros.apps.export``; ``--tensorrt`` builds (or reuses) the cached TensorRT
engine. The export itself is ``nbf_ros.inference.export``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from nbf_ros.config import load_config, resolve_path
from nbf_ros.inference.export import export_onnx


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="nbf-ros export", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="pipeline config YAML (defaults if absent)")
    parser.add_argument("--onnx", default="models/nbf_net.onnx", help="output ONNX path")
    parser.add_argument("--tensorrt", action="store_true",
                        help="also build (or reuse) the cached TensorRT engine (needs an NVIDIA GPU)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    path = export_onnx(config, resolve_path(args.onnx))
    print(f"wrote {path}")
    if args.tensorrt:
        import dataclasses

        from nbf_ros.inference.backends import TensorRTBackend

        inference = dataclasses.replace(config.inference, backend="tensorrt", onnx_path=str(path))
        backend = TensorRTBackend(dataclasses.replace(config, inference=inference))
        print(f"TensorRT engine ready ({backend.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
