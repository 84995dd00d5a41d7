"""A small made-up SMPL-format body (cylinders on SMPL's 24-joint skeleton) for data tests.

It loads through smplx like the shipped model, so the data generator's tests do not depend on
the size of ``models/nbf_body.npz``; ``ToyBody`` mimics the BodyModel interface the generator
uses (forward(BodyParams) -> vertices/joints, ``faces``, ``lbs_weights``, ``v_template``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nbf_ros.types import JOINT_PARENTS, NUM_BETAS, NUM_JOINTS, BodyParams

# Rough T-pose joints (x = subject's left, y up, z front), metres.
_JOINTS = np.array([
    [0.0, 0.0, 0.0], [0.07, -0.09, 0.0], [-0.07, -0.09, 0.0], [0.0, 0.11, -0.01],
    [0.1, -0.48, 0.0], [-0.1, -0.48, 0.0], [0.0, 0.25, 0.0], [0.09, -0.88, -0.03],
    [-0.09, -0.88, -0.03], [0.0, 0.31, 0.0], [0.11, -0.93, 0.1], [-0.11, -0.93, 0.1],
    [0.0, 0.52, -0.01], [0.08, 0.43, 0.0], [-0.08, 0.43, 0.0], [0.0, 0.6, 0.04],
    [0.18, 0.45, -0.01], [-0.18, 0.45, -0.01], [0.44, 0.45, -0.02], [-0.44, 0.45, -0.02],
    [0.7, 0.45, -0.01], [-0.7, 0.45, -0.01], [0.79, 0.45, -0.01], [-0.79, 0.45, -0.01],
])
_RADIUS = {0: 0.13, 3: 0.12, 6: 0.12, 9: 0.1, 1: 0.08, 2: 0.08, 4: 0.06, 5: 0.06, 7: 0.045,
           8: 0.045, 12: 0.05, 13: 0.05, 14: 0.05, 16: 0.05, 17: 0.05, 18: 0.04, 19: 0.04,
           20: 0.035, 21: 0.035}


def _cylinder(a: np.ndarray, b: np.ndarray, radius: float, segments: int = 10, rings: int = 4):
    """Closed cylinder from a to b: vertices and outward counter-clockwise faces."""
    axis = b - a
    length = np.linalg.norm(axis)
    d = axis / length
    helper = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    ang = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    circle = np.cos(ang)[:, None] * e1 + np.sin(ang)[:, None] * e2
    verts = [a + t * axis + radius * circle for t in np.linspace(0, 1, rings + 1)]
    verts = np.concatenate(verts + [a[None], b[None]])
    faces = []
    for r in range(rings):
        for s in range(segments):
            i0, i1 = r * segments + s, r * segments + (s + 1) % segments
            j0, j1 = i0 + segments, i1 + segments
            faces += [[i0, i1, j1], [i0, j1, j0]]
    bottom, top = len(verts) - 2, len(verts) - 1
    last = rings * segments
    for s in range(segments):
        faces.append([bottom, (s + 1) % segments, s])
        faces.append([top, last + s, last + (s + 1) % segments])
    faces = np.array(faces)
    # Make the winding outward whatever the handedness of (e1, e2, d).
    centre = (a + b) / 2
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = np.sum(normal * (tri.mean(1) - centre), 1) < 0
    faces[flip] = faces[flip][:, ::-1]
    return verts, faces


def build_toy_struct() -> dict[str, np.ndarray]:
    """SMPL-format arrays (keys smplx's SMPL expects) of the toy body."""
    verts, faces, weights = [], [], []
    offset = 0
    for child, parent in enumerate(JOINT_PARENTS):
        if parent < 0 or parent not in _RADIUS:
            continue
        v, f = _cylinder(_JOINTS[parent], _JOINTS[child], _RADIUS[parent])
        w = np.zeros((len(v), NUM_JOINTS))
        w[:, parent] = 1.0
        verts.append(v), faces.append(f + offset), weights.append(w)
        offset += len(v)
    head_v, head_f = _cylinder(_JOINTS[15] - [0, 0.05, 0], _JOINTS[15] + [0, 0.2, 0], 0.09)
    hw = np.zeros((len(head_v), NUM_JOINTS))
    hw[:, 15] = 1.0
    verts.append(head_v), faces.append(head_f + offset), weights.append(hw)
    offset += len(head_v)
    # One hidden vertex per joint (not in any face) so J_regressor reproduces the skeleton.
    verts.append(_JOINTS.copy())
    jw = np.eye(NUM_JOINTS)
    weights.append(jw)
    v_template = np.concatenate(verts)
    regressor = np.zeros((NUM_JOINTS, len(v_template)))
    regressor[np.arange(NUM_JOINTS), offset + np.arange(NUM_JOINTS)] = 1.0
    rng = np.random.default_rng(0)
    shapedirs = np.zeros((len(v_template), 3, NUM_BETAS))
    shapedirs[:, :, 0] = v_template * 0.04                      # overall size
    shapedirs[:, 0, 1] = v_template[:, 0] * 0.05                # width
    shapedirs[:, :, 2:] = rng.normal(0, 0.002, (len(v_template), 3, NUM_BETAS - 2))
    kintree = np.array([[4294967295] + list(JOINT_PARENTS[1:]), list(range(NUM_JOINTS))], np.int64)
    return {"v_template": v_template, "shapedirs": shapedirs,
            "posedirs": np.zeros((len(v_template), 3, 207)), "J_regressor": regressor,
            "weights": np.concatenate(weights), "kintree_table": kintree,
            "f": np.concatenate(faces).astype(np.int64)}


@dataclass
class ToyOutput:
    vertices: torch.Tensor  # B x V x 3
    joints: torch.Tensor    # B x 24 x 3


class ToyBody:
    """smplx.SMPL on the toy arrays with the generator-facing interface of BodyModel."""

    def __init__(self) -> None:
        import smplx
        from smplx.utils import Struct
        from smplx.vertex_ids import vertex_ids

        struct = build_toy_struct()
        # smplx's extra joints pick fixed SMPL vertex ids; point them at vertex 0 (unused here).
        extra = {name: 0 for name in vertex_ids["smplh"]}
        self._smpl = smplx.SMPL(model_path="", data_struct=Struct(**struct), num_betas=NUM_BETAS,
                                vertex_ids=extra)
        self.faces = struct["f"]
        self.lbs_weights = struct["weights"]
        self.v_template = struct["v_template"]

    def __call__(self, params: BodyParams) -> ToyOutput:
        out = self._smpl(betas=params.betas, global_orient=params.global_orient,
                         body_pose=params.body_pose, transl=params.transl)
        return ToyOutput(out.vertices, out.joints[:, :NUM_JOINTS])


def write_toy_npz(path: Path) -> Path:
    np.savez(path, **build_toy_struct())
    return path


def test_toy_body_poses_and_keeps_its_skeleton() -> None:
    body = ToyBody()
    params = BodyParams.zeros(1)
    out = body(params)
    np.testing.assert_allclose(out.joints[0].numpy(), _JOINTS, atol=1e-5)
    params.body_pose[0, 3 * 3] = 1.0  # bend the left knee (body joint 4 = index 3 in body_pose)
    bent = body(params).joints[0].numpy()
    assert np.linalg.norm(bent[7] - _JOINTS[7]) > 0.1
