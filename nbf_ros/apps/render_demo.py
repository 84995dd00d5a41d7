"""`nbf-ros render-demo`: the embedded body's Neural Body Volume rendered for a few poses.

Writes, per pose, the rendered feature map shown as colour (the first three principal components
of the kernel features), the coverage map, and both side by side; useful to look at what the
fitting compares with the image. Uses the trained kernel features when a weights file is given.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from nbf_ros.body.model import BodyModel
from nbf_ros.body.nbv import NeuralBodyVolume
from nbf_ros.config import NbfConfig, load_config, resolve_path
from nbf_ros.render import RenderCamera, render_gaussians
from nbf_ros.types import BodyParams, CameraIntrinsics

LOG = logging.getLogger(__name__)


def demo_poses() -> dict[str, BodyParams]:
    """A few recognisable poses, 3 m in front of the camera, upright."""
    def pose(**joints: tuple[float, float, float]) -> BodyParams:
        body_pose = torch.zeros(1, 69)
        names = {"l_shoulder": 15, "r_shoulder": 16, "l_elbow": 17, "r_elbow": 18, "l_hip": 0,
                 "r_hip": 1, "l_knee": 3, "r_knee": 4}
        for name, aa in joints.items():
            body_pose[0, 3 * names[name]:3 * names[name] + 3] = torch.tensor(aa)
        return BodyParams(torch.zeros(1, 10), torch.tensor([[np.pi, 0.0, 0.0]]), body_pose,
                          torch.tensor([[0.0, 0.2, 3.0]]))
    return {
        "t_pose": pose(),
        "arms_down": pose(l_shoulder=(0, 0, -1.2), r_shoulder=(0, 0, 1.2)),
        "walking": pose(l_hip=(-0.5, 0, 0), r_hip=(0.4, 0, 0), r_knee=(0.6, 0, 0),
                        l_shoulder=(0.4, 0, -1.2), r_shoulder=(-0.4, 0, 1.2)),
        "reaching": pose(r_shoulder=(0, -1.2, 0.3), r_elbow=(0, -0.3, 0), l_shoulder=(0, 0, -1.2)),
    }


def pca_colours(features: np.ndarray) -> np.ndarray:
    """N x D features -> N x 3 colours in [0, 1] from their first three principal components."""
    centred = features - features.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[:3].T
    lo, hi = proj.min(0), proj.max(0)
    return (proj - lo) / np.maximum(hi - lo, 1e-9)


def render_pose(body: BodyModel, nbv: NeuralBodyVolume, params: BodyParams, size: int,
                config: NbfConfig) -> tuple[np.ndarray, np.ndarray]:
    """(H x W x 3 uint8 PCA colour of the rendered features, H x W uint8 coverage)."""
    camera = CameraIntrinsics(1.1 * size, 1.1 * size, size / 2 - 0.5, size / 2 - 0.5, size, size)
    with torch.no_grad():
        state = nbv(body(params))
        feats = nbv.kernel_features(state)  # 1 x K x D
        colours = torch.from_numpy(pca_colours(feats[0].double().numpy())).float()[None]
        out = render_gaussians(state.means, state.precisions, colours, RenderCamera.from_intrinsics(camera),
                               size, size, config.render)
    rgb = (out.features[0].clamp(0, 1).numpy() * 255).astype(np.uint8)
    return rgb, (out.coverage[0].numpy() * 255).astype(np.uint8)


def main(argv: Optional[list[str]] = None) -> int:
    import cv2

    parser = argparse.ArgumentParser(prog="nbf-ros render-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="render_demo", help="output folder")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--config", help="pipeline config YAML (body, NBV, render settings)")
    parser.add_argument("--weights", help="use the trained kernel features of this weights file")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    body = BodyModel(resolve_path(config.body.model_path), num_betas=config.body.num_betas)
    nbv = NeuralBodyVolume(body, config.nbv)
    if args.weights:
        from nbf_ros.fitting.fitter import bank_for_bins
        from nbf_ros.nets.weights import load_memory_bank

        bank = load_memory_bank(resolve_path(args.weights))
        nbv.set_feature_bank(bank_for_bins(bank.kernel_features, config.nbv.orientation_bins))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, params in demo_poses().items():
        rgb, coverage = render_pose(body, nbv, params, args.size, config)
        side = np.concatenate([rgb, np.repeat(coverage[..., None], 3, axis=2)], axis=1)
        for suffix, image in (("features", rgb), ("coverage", coverage), ("side_by_side", side)):
            path = out / f"{name}_{suffix}.png"
            cv2.imwrite(str(path), image[..., ::-1] if image.ndim == 3 else image)
        print(f"{name}: coverage > 0.5 on {int((coverage > 127).sum())} px -> {out / (name + '_side_by_side.png')}")
    return 0
