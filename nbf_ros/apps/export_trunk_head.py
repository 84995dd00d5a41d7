"""Export BlazePose trunk + feature head as one ONNX graph (docs/features.md)::

    python -m nbf_ros.apps.export_trunk_head --weights models/nbf_trunk_head.pt \
        --out models/nbf_trunk_head.onnx

Input ``crops`` B x 3 x 128 x 128 in [0, 1]; outputs BlazePose's landmarks, world_landmarks,
pose_flag, segmentation, heatmaps and ``features`` B x D x 32 x 32. Not shipped (it embeds the
13 MB trunk): built on demand from the two shipped files.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from nbf_ros.config import load_config, resolve_path
from nbf_ros.inference.trunk_export import trunk_head_graph
from nbf_ros.nets.feature_head import load_head


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="pipeline config (trunk path, crop size)")
    parser.add_argument("--weights", default=None, help="default: feature_head.weights_path")
    parser.add_argument("--out", default="models/nbf_trunk_head.onnx")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    head, _, taps = load_head(resolve_path(args.weights or cfg.feature_head.weights_path))
    model = trunk_head_graph(cfg.feature_head.trunk_path, head, taps, cfg.net.crop_size)
    out = resolve_path(args.out)
    out.write_bytes(model.SerializeToString())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
