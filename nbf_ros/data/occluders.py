"""Occluder geometry: textured boxes, bars and blobs placed between the camera and a person.

Occluders are real 3D meshes rasterised with the people, so the z-buffer decides exactly which
pixels they hide (and the truth masks follow). Other bodies as occluders are made by the scene
module (they need the body model); this module places them too (:func:`sample_placement`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
from scipy.spatial.transform import Rotation

from nbf_ros.config import SyntheticOcclusionConfig
from nbf_ros.data.appearance import SolidTexture, Split, make_texture, texture_id
from nbf_ros.types import CameraIntrinsics

OccluderKind = Literal["box", "bar", "blob", "body"]
OCCLUDER_KINDS: tuple[OccluderKind, ...] = ("box", "bar", "blob", "body")
MIN_OCCLUDER_DEPTH = 0.25
"""Metres; occluders are never placed nearer than this (the rasteriser's near plane is 0.05)."""
MIN_GAP_TO_PERSON = 0.2
"""Metres between an occluder's centre and the person's root depth."""


@dataclass
class OccluderMesh:
    """A textured mesh in the camera frame; ``local`` are the texture coordinates (metres)."""

    kind: OccluderKind
    vertices: np.ndarray  # V x 3
    faces: np.ndarray     # F x 3
    local: np.ndarray     # V x 3
    texture: SolidTexture


@dataclass(frozen=True)
class Placement:
    """Where an occluder goes: its centre (camera frame), depth and nominal size (metres)."""

    kind: OccluderKind
    centre: np.ndarray
    size: float


def box_mesh(dims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box centred at 0 with side lengths ``dims`` (3,): 24 vertices (4 per side, so
    vertex normals are the side normals) and 12 outward counter-clockwise triangles."""
    half = np.asarray(dims, dtype=np.float64) / 2.0
    verts, faces = [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u, v = (axis + 1) % 3, (axis + 2) % 3
            quad = []
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = np.zeros(3)
                p[axis], p[u], p[v] = sign, a, b
                quad.append(p * half)
            base = len(verts)
            verts += quad
            tri = [[base, base + 1, base + 2], [base, base + 2, base + 3]]
            faces += tri if sign > 0 else [t[::-1] for t in tri]
    return np.array(verts), np.array(faces, dtype=np.int64)


@functools.lru_cache(maxsize=4)
def icosphere(subdivisions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere mesh (outward counter-clockwise faces) by subdividing an icosahedron."""
    t = (1.0 + 5 ** 0.5) / 2.0
    verts = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t],
             [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    faces = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
             [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
             [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    v = [np.array(p, dtype=np.float64) / np.linalg.norm(p) for p in verts]
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def midpoint(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = v[a] + v[b]
                v.append(m / np.linalg.norm(m))
                cache[key] = len(v) - 1
            return cache[key]

        new_faces = []
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            new_faces += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        faces = new_faces
    return np.array(v), np.array(faces, dtype=np.int64)


def choose_kind(rng: np.random.Generator, cfg: SyntheticOcclusionConfig,
                allow_body: bool = True) -> OccluderKind:
    weights = np.array([cfg.weight_box, cfg.weight_bar, cfg.weight_blob,
                        cfg.weight_body if allow_body else 0.0])
    if weights.sum() <= 0:
        raise ValueError("occlusion weights must not all be zero")
    return OCCLUDER_KINDS[int(rng.choice(4, p=weights / weights.sum()))]


def sample_placement(rng: np.random.Generator, kind: OccluderKind, camera: CameraIntrinsics,
                     person_box: np.ndarray, person_depth: float,
                     cfg: SyntheticOcclusionConfig) -> Optional[Placement]:
    """Centre on the ray through a random pixel of the person's box, between camera and person.

    The nominal size makes the occluder span ``cfg.size_frac`` of the box height in the image.
    Returns None when the person is too close to the camera to fit anything in front.
    """
    far = person_depth - MIN_GAP_TO_PERSON
    near = max(MIN_OCCLUDER_DEPTH, 0.4 * person_depth)
    if far <= near:
        return None
    x0, y0, x1, y1 = np.asarray(person_box, dtype=np.float64)
    u = rng.uniform(x0 + 0.1 * (x1 - x0), x1 - 0.1 * (x1 - x0))
    v = rng.uniform(y0 + 0.1 * (y1 - y0), y1 - 0.1 * (y1 - y0))
    depth = rng.uniform(near, far)
    centre = np.array([(u - camera.cx) / camera.fx * depth, (v - camera.cy) / camera.fy * depth, depth])
    size = rng.uniform(*cfg.size_frac) * (y1 - y0) * depth / camera.fy
    return Placement(kind=kind, centre=centre, size=float(size))


def make_occluder(rng: np.random.Generator, placement: Placement, split: Split) -> OccluderMesh:
    """A box, bar or blob mesh for ``placement`` with a texture of the split."""
    s = placement.size
    if placement.kind == "box":
        local, faces = box_mesh(s * rng.uniform([0.5, 0.5, 0.3], [1.5, 1.5, 1.0]))
        rot = Rotation.from_euler("yxz", [rng.uniform(-np.pi, np.pi), rng.normal(0, 0.2),
                                          rng.normal(0, 0.3)])
    elif placement.kind == "bar":
        length, thick = s * rng.uniform(2.0, 5.0), s * rng.uniform(0.1, 0.3)
        local, faces = box_mesh(np.array([thick, length, thick * rng.uniform(0.5, 1.5)]))
        angle = (0.0, np.pi / 2, rng.uniform(-np.pi, np.pi))[int(rng.choice(3, p=[0.5, 0.3, 0.2]))]
        rot = Rotation.from_euler("zy", [angle, rng.uniform(-np.pi, np.pi)])
    elif placement.kind == "blob":
        unit, faces = icosphere(2)
        bumps = 1.0 + 0.15 * np.sin(unit @ rng.normal(0, 3.0, (3, 3))).sum(1) / 3.0
        local = unit * bumps[:, None] * (0.5 * s * rng.uniform(0.6, 1.4, 3))
        rot = Rotation.from_rotvec(rng.normal(0, 1.0, 3))
    else:
        raise ValueError(f"make_occluder does not build {placement.kind!r} occluders")
    texture = make_texture(texture_id(rng, split), texture_prob=0.8)
    return OccluderMesh(kind=placement.kind, vertices=rot.apply(local) + placement.centre,
                        faces=faces, local=local, texture=texture)
