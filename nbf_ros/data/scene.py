"""Synthetic people in front of robot-like cameras, rendered with exact per-pixel ground truth.

Public entry points:
- :func:`render_scene` -> :class:`SyntheticScene`: a full image with 1..N people and occluders
  (benchmark, demo, ROS tests);
- :func:`render_crop` -> :class:`CropSample`: one person rendered directly into the crop that
  inference would take around them (a crop is a pinhole camera with crop intrinsics), with
  labels at the network's feature stride (training; see ``nbf_ros/data/dataset.py``).

Stages: sample camera -> sample people (pose, shape, outfit) and place them on the ground ->
occluders -> rasterise every mesh (z-buffer) -> shade and texture -> background -> camera
artefacts -> truth (joints, boxes, kernel/part/person maps, visibilities, occlusion masks).

Everything is a deterministic function of (seed, split, config, body model, kernel layout).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from nbf_ros.body.nbv import assign_vertices_to_kernels, kernel_parts, select_kernel_vertices
from nbf_ros.config import SyntheticCameraConfig, SyntheticConfig
from nbf_ros.data import appearance as app
from nbf_ros.data.occluders import (OccluderMesh, choose_kind, make_occluder, sample_placement)
from nbf_ros.data.poses import PoseSampler, upright_orientation
from nbf_ros.data.raster import MeshRaster, composite, empty_raster, rasterize_mesh, vertex_visibility
from nbf_ros.geometry.camera import project
from nbf_ros.types import NUM_BETAS, BodyParams, CameraIntrinsics

LOG = logging.getLogger(__name__)

GENERATOR_VERSION = 3
"""Bumped whenever the same (seed, config, body, kernels) would render differently; include it
in any cache key of rendered samples."""
_SPLIT_CODE = {"train": 0, "test": 1}
_MIN_PERSON_DEPTH = 0.3
_FRAME_MARGIN = 0.02  # fraction of the image size kept free around fully visible people
_PLACEMENT_SUBSAMPLE = 7  # every n-th vertex tests a placement
MAX_CAMERA_TRIES = 20  # cameras tried before giving up on placing anyone


def check_config(cfg: SyntheticConfig) -> None:
    """Raise ValueError naming the first SyntheticConfig value the generator cannot use."""
    c, a, o = cfg.camera, cfg.appearance, cfg.occlusion
    ranges = {"camera.hfov_deg": c.hfov_deg, "camera.height_m": c.height_m,
              "camera.pitch_deg": c.pitch_deg, "camera.distance_m": c.distance_m,
              "appearance.ambient": a.ambient, "appearance.blur_sigma_px": a.blur_sigma_px,
              "appearance.noise_std": a.noise_std, "appearance.jpeg_quality": a.jpeg_quality,
              "occlusion.size_frac": o.size_frac}
    for name, (lo, hi) in ranges.items():
        if not lo <= hi:
            raise ValueError(f"SyntheticConfig.{name} = ({lo}, {hi}) is not an ordered range")
    probabilities = {"camera.truncation_prob": c.truncation_prob, "camera.min_joints_in_frame":
                     c.min_joints_in_frame, "pose.interp_prob": cfg.pose.interp_prob,
                     "pose.random_pose_prob": cfg.pose.random_pose_prob,
                     "appearance.photo_background_prob": a.photo_background_prob,
                     "appearance.texture_prob": a.texture_prob, "appearance.blur_prob": a.blur_prob,
                     "appearance.jpeg_prob": a.jpeg_prob, "occlusion.prob": o.prob,
                     "visible_box_prob": cfg.visible_box_prob}
    for name, value in probabilities.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"SyntheticConfig.{name} = {value} must lie in [0, 1]")
    if c.distance_m[0] <= 0 or c.hfov_deg[0] <= 0 or c.hfov_deg[1] >= 180:
        raise ValueError("SyntheticConfig.camera: distances must be > 0 and the FOV in (0, 180) deg")
    if cfg.max_people < 1 or o.max_occluders < 1 or c.max_placement_tries < 1:
        raise ValueError("SyntheticConfig: max_people, occlusion.max_occluders and "
                         "camera.max_placement_tries must be >= 1")
    if any(w <= 0 or h <= 0 for w, h in c.image_sizes):
        raise ValueError(f"SyntheticConfig.camera.image_sizes must be positive, got {c.image_sizes}")


def make_rng(seed: int, split: str, stream: int = 0) -> np.random.Generator:
    """The generator of one sample: seeds are mixed with the split (and a stream id)."""
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return np.random.default_rng([int(seed), _SPLIT_CODE[split], int(stream)])


# --- the body and its kernel layout ---------------------------------------------------------
@dataclass(frozen=True)
class BodyLabels:
    """Per-vertex truth tables of a body model, computed once (numpy).

    Attributes:
        faces: F x 3. lbs_weights: V x 24. rest_vertices: V x 3 (zero shape and pose).
        rest_joints: 24 x 3. kernel_vertex_ids: (K,) vertices carrying the NBV kernels.
        vertex_kernel: (V,) nearest kernel of each vertex (rest pose).
        vertex_part: (V,) limb id (nbv.LIMBS) of each vertex. kernel_part: (K,).
        exterior: (V,) bool, the vertex can be seen from outside the rest mesh (mouth interior
            and similar hidden geometry is not).
        joint_region: 24 x V bool, each joint's "nearby surface" (:func:`joint_regions`).
    """

    faces: np.ndarray
    lbs_weights: np.ndarray
    rest_vertices: np.ndarray
    rest_joints: np.ndarray
    kernel_vertex_ids: np.ndarray
    vertex_kernel: np.ndarray
    vertex_part: np.ndarray
    kernel_part: np.ndarray
    exterior: np.ndarray
    joint_region: np.ndarray

    @property
    def num_kernels(self) -> int:
        return int(self.kernel_vertex_ids.size)


def body_labels(body: torch.nn.Module, kernel_vertex_ids: Optional[np.ndarray] = None,
                num_kernels: int = 858, kernel_seed: int = 0,
                joint_surface_margin_m: float = 0.06,
                joint_skinned_margin_m: float = 0.18) -> BodyLabels:
    """Truth tables for ``body`` (~0.5 s; build once and share).

    Kernels default to ``select_kernel_vertices(template, K, seed)``, exactly as
    ``NeuralBodyVolume`` lays them out; pass the NBV's ``kernel_vertex_ids`` to be explicit.
    """
    with torch.no_grad():
        out = body(BodyParams.zeros(1))
        # The template itself (as the NBV lays its kernels on it), not a re-skinned copy.
        rest_fn = getattr(body, "rest_vertices", None)
        rest_t = rest_fn(torch.zeros(1, NUM_BETAS)) if callable(rest_fn) else out.vertices
    rest = rest_t[0].double().numpy()
    joints = out.joints[0].double().numpy()
    faces = np.asarray(body.faces, dtype=np.int64)
    weights = np.asarray(torch.as_tensor(body.lbs_weights).detach().double().numpy())
    if kernel_vertex_ids is None:
        kernel_vertex_ids = select_kernel_vertices(rest, num_kernels, kernel_seed)
    ids = np.asarray(kernel_vertex_ids, dtype=np.int64)
    exterior = exterior_vertices(rest, faces)
    return BodyLabels(faces=faces, lbs_weights=weights, rest_vertices=rest, rest_joints=joints,
                      kernel_vertex_ids=ids, vertex_kernel=assign_vertices_to_kernels(rest, ids),
                      vertex_part=kernel_parts(weights, np.arange(rest.shape[0])),
                      kernel_part=kernel_parts(weights, ids), exterior=exterior,
                      joint_region=joint_regions(rest, joints, exterior, weights,
                                                 joint_surface_margin_m, joint_skinned_margin_m))


def _view_directions() -> np.ndarray:
    """26 unit directions: the faces, edges and corners of a cube seen from its centre."""
    grid = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                     if (i, j, k) != (0, 0, 0)], dtype=np.float64)
    return grid / np.linalg.norm(grid, axis=1, keepdims=True)


def exterior_vertices(rest: np.ndarray, faces: np.ndarray, size: int = 256,
                      distance: float = 4.0) -> np.ndarray:
    """(V,) bool: vertices seen in at least one of 26 views around the rest mesh."""
    centre = 0.5 * (rest.min(0) + rest.max(0))
    radius = float(np.linalg.norm(rest - centre, axis=1).max())
    focal = 0.5 * size * distance / (radius * 1.05)
    cam = CameraIntrinsics(focal, focal, (size - 1) / 2.0, (size - 1) / 2.0, size, size)
    seen = np.zeros(rest.shape[0], bool)
    for d in _view_directions():
        z_axis = -d
        helper = np.array([0.0, 1.0, 0.0]) if abs(z_axis[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
        x_axis = np.cross(helper, z_axis)
        x_axis /= np.linalg.norm(x_axis)
        rot = np.stack([x_axis, np.cross(z_axis, x_axis), z_axis])   # rows: camera axes
        verts = (rest - (centre + distance * d)) @ rot.T
        raster = rasterize_mesh(verts, faces, cam)
        tol = 0.005 + 1.5 * verts[:, 2] / focal
        seen |= vertex_visibility(verts, cam, raster.depth, tol)
    return seen


def joint_regions(rest: np.ndarray, joints: np.ndarray, exterior: np.ndarray, lbs_weights: np.ndarray,
                  margin: float, skinned_margin: float) -> np.ndarray:
    """24 x V bool: each joint's nearby outer surface in the rest pose.

    The exterior vertices within (nearest exterior distance + ``margin``) of the joint, plus the
    exterior vertices the joint skins most within (nearest + ``skinned_margin``): a ball alone
    would see only the back of the spine joints (they lie near the back) and miss the front of
    the torso, which is what a camera in front of the person sees.
    """
    dist = np.linalg.norm(rest[None] - joints[:, None], axis=2)          # 24 x V
    dist[:, ~exterior] = np.inf
    nearest = dist.min(axis=1, keepdims=True)
    skinned = np.argmax(lbs_weights, axis=1)[None] == np.arange(joints.shape[0])[:, None]
    return (dist <= nearest + margin) | (skinned & (dist <= nearest + skinned_margin))


def resolve_labels(body: torch.nn.Module, kernels, cfg: SyntheticConfig) -> BodyLabels:
    """``kernels`` may be a BodyLabels, a (K,) kernel vertex id array, or None (config's K)."""
    if isinstance(kernels, BodyLabels):
        return kernels
    return body_labels(body, kernels, cfg.num_kernels, cfg.kernel_seed, cfg.joint_surface_margin_m,
                       cfg.joint_skinned_margin_m)


def pose_bodies(body: torch.nn.Module, betas: np.ndarray, global_orient: np.ndarray,
                body_pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """B bodies without translation -> (B x V x 3, B x 24 x 3) float64, camera frame."""
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    params = BodyParams(as_t(betas), as_t(global_orient), as_t(body_pose),
                        torch.zeros(len(betas), 3))
    with torch.no_grad():
        out = body(params)
    return out.vertices.double().numpy(), out.joints.double().numpy()


# --- cameras ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraRig:
    """Intrinsics plus the camera's mounting: height above the ground and its rotation.

    ``level_to_camera`` maps the level frame (x right, y down, z forward and horizontal, origin
    at the camera) into the optical frame; the ground is the plane y = height in the level frame.
    """

    intrinsics: CameraIntrinsics
    level_to_camera: Rotation
    height: float


def sample_camera(rng: np.random.Generator, cfg: SyntheticCameraConfig) -> CameraRig:
    """Random image size, field of view, principal point, height, pitch and roll."""
    width, height = cfg.image_sizes[int(rng.integers(len(cfg.image_sizes)))]
    hfov = np.deg2rad(rng.uniform(*cfg.hfov_deg))
    fx = width / 2.0 / np.tan(hfov / 2.0)
    fy = fx * (1.0 + rng.normal(0.0, cfg.aspect_jitter))
    cx = (width - 1) / 2.0 + rng.normal(0.0, cfg.centre_jitter) * width
    cy = (height - 1) / 2.0 + rng.normal(0.0, cfg.centre_jitter) * height
    pitch = np.deg2rad(rng.uniform(*cfg.pitch_deg))
    roll = np.deg2rad(rng.uniform(-cfg.roll_deg, cfg.roll_deg))
    rot = Rotation.from_euler("z", roll) * Rotation.from_euler("x", pitch)
    return CameraRig(CameraIntrinsics(float(fx), float(fy), float(cx), float(cy), int(width), int(height)),
                     rot, float(rng.uniform(*cfg.height_m)))


# --- people ----------------------------------------------------------------------------------
@dataclass
class PersonGeometry:
    """A posed, placed person (camera frame) and their look."""

    betas: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    vertices: np.ndarray   # V x 3
    joints: np.ndarray     # 24 x 3
    outfit: app.Outfit
    key_poses: tuple[str, ...] = ()


def _sampler(cfg: SyntheticConfig) -> PoseSampler:
    p = cfg.pose
    return PoseSampler(noise_std=p.noise_std_rad, interp_prob=p.interp_prob,
                       random_pose_prob=p.random_pose_prob, betas_std=p.betas_std,
                       betas_clip=p.betas_clip)


def _person_orientation(rng: np.random.Generator, cfg: SyntheticConfig, rig: CameraRig) -> np.ndarray:
    lean = np.deg2rad(cfg.pose.lean_std_deg)
    body_to_level = upright_orientation(rng.uniform(-np.pi, np.pi), rng.normal(0, lean),
                                        rng.normal(0, lean))
    return (rig.level_to_camera * body_to_level).as_rotvec()


def _in_frame_ok(rng_allow_trunc: bool, joints2d: np.ndarray, uv_box: np.ndarray,
                 camera: CameraIntrinsics, cfg: SyntheticCameraConfig) -> bool:
    w, h = camera.width, camera.height
    if uv_box[3] - uv_box[1] < cfg.min_person_height_px:
        return False
    if rng_allow_trunc:
        inside = (joints2d[:, 0] >= 0) & (joints2d[:, 0] <= w - 1) & (joints2d[:, 1] >= 0) \
            & (joints2d[:, 1] <= h - 1)
        return inside.mean() >= cfg.min_joints_in_frame
    mx, my = _FRAME_MARGIN * w, _FRAME_MARGIN * h
    return bool(uv_box[0] >= mx and uv_box[1] >= my and uv_box[2] <= w - 1 - mx
                and uv_box[3] <= h - 1 - my)


def place_on_ground(vertices: np.ndarray, joints: np.ndarray, rig: CameraRig, distance: float,
                    azimuth: float) -> np.ndarray:
    """Translation (camera frame) that puts the lowest vertex on the ground and the root at
    ``distance`` metres (horizontal) and ``azimuth`` radians (right positive) from the camera."""
    to_level = rig.level_to_camera.inv()
    lowest = float(to_level.apply(vertices)[:, 1].max())  # y points down in the level frame
    return _ground_shift(lowest, to_level.apply(joints[0]), rig, distance, azimuth)


def _ground_shift(lowest: float, root_level: np.ndarray, rig: CameraRig, distance: float,
                  azimuth: float) -> np.ndarray:
    target = np.array([distance * np.sin(azimuth), rig.height, distance * np.cos(azimuth)])
    shift = np.array([target[0] - root_level[0], target[1] - lowest, target[2] - root_level[2]])
    return rig.level_to_camera.apply(shift)


def sample_person(rng: np.random.Generator, cfg: SyntheticConfig, body: torch.nn.Module,
                  labels: BodyLabels, rig: CameraRig) -> Optional[PersonGeometry]:
    """A person with a natural pose standing on the ground in view (None if no placement fits)."""
    drawn = _sampler(cfg).sample(rng)
    orient = _person_orientation(rng, cfg, rig)
    verts0, joints0 = pose_bodies(body, drawn.betas[None], orient[None], drawn.body_pose[None])
    verts0, joints0 = verts0[0], joints0[0]
    cam_cfg, cam = cfg.camera, rig.intrinsics
    allow_trunc = rng.random() < cam_cfg.truncation_prob
    half_fov = np.arctan((cam.width / 2.0) / cam.fx)
    lo, hi = np.log(cam_cfg.distance_m[0]), np.log(cam_cfg.distance_m[1])
    coarse = verts0[::_PLACEMENT_SUBSAMPLE]  # enough to test a placement; exact box later
    to_level = rig.level_to_camera.inv()
    lowest, root_level = float(to_level.apply(verts0)[:, 1].max()), to_level.apply(joints0[0])
    for _ in range(cam_cfg.max_placement_tries):
        distance = float(np.exp(rng.uniform(lo, hi)))
        azimuth = float(rng.uniform(-half_fov, half_fov) * (1.1 if allow_trunc else 0.85))
        transl = _ground_shift(lowest, root_level, rig, distance, azimuth)
        if coarse[:, 2].min() + transl[2] < _MIN_PERSON_DEPTH:
            continue
        joints = joints0 + transl
        uv = project(coarse + transl, cam)
        box = np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
        if _in_frame_ok(allow_trunc, project(joints, cam), box, cam, cam_cfg):
            verts = verts0 + transl
            outfit = app.random_outfit(rng, cfg.split, labels.lbs_weights, labels.rest_vertices,
                                       labels.rest_joints, cfg.appearance)
            return PersonGeometry(drawn.betas, orient, drawn.body_pose, transl, verts, joints,
                                  outfit, drawn.key_names)
    return None


def _other_body(rng: np.random.Generator, cfg: SyntheticConfig, body: torch.nn.Module,
                labels: BodyLabels, rig: CameraRig, root: np.ndarray) -> PersonGeometry:
    """Another person with its root at ``root`` (camera frame): a body-shaped occluder."""
    drawn = _sampler(cfg).sample(rng)
    orient = _person_orientation(rng, cfg, rig)
    verts0, joints0 = pose_bodies(body, drawn.betas[None], orient[None], drawn.body_pose[None])
    transl = root - joints0[0, 0]
    outfit = app.random_outfit(rng, cfg.split, labels.lbs_weights, labels.rest_vertices,
                               labels.rest_joints, cfg.appearance)
    return PersonGeometry(drawn.betas, orient, drawn.body_pose, transl, verts0[0] + transl,
                          joints0[0] + transl, outfit, drawn.key_names)


# --- drawing ---------------------------------------------------------------------------------
@dataclass
class Drawable:
    """A mesh to draw: vertices (camera frame), texture points per vertex, its colour function.

    ``person`` is the index of the labelled person it is (or -1 for occluders and unlabelled
    bodies); ``kind`` is 'person' for body meshes, else the occluder kind.
    """

    vertices: np.ndarray
    faces: np.ndarray
    tex_points: np.ndarray
    colour: Callable[[np.ndarray, np.ndarray], np.ndarray]
    person: int
    kind: str
    cull: bool


def person_drawable(person: PersonGeometry, labels: BodyLabels, index: int,
                    kind: str = "person") -> Drawable:
    outfit = person.outfit
    return Drawable(person.vertices, labels.faces, labels.rest_vertices,
                    lambda pts, vid: app.outfit_colours(outfit, pts, vid), index, kind, True)


def occluder_drawable(occ: OccluderMesh) -> Drawable:
    tex = occ.texture
    return Drawable(occ.vertices, occ.faces, occ.local, lambda pts, vid: tex(pts), -1, occ.kind, True)


@dataclass
class ViewRender:
    """Per-mesh rasters, their composite and the shaded colours (before artefacts)."""

    rasters: list[MeshRaster]
    front: MeshRaster
    colour: np.ndarray       # H x W x 3 float
    vertex_of_pixel: np.ndarray  # H x W int64: dominant vertex of the front face (-1 empty)


def render_view(drawables: Sequence[Drawable], camera: CameraIntrinsics,
                background: np.ndarray, light: app.Light) -> ViewRender:
    """Rasterise and shade all meshes over ``background`` (H x W x 3 float)."""
    rasters = [rasterize_mesh(d.vertices, d.faces, camera, cull_backfaces=d.cull, mesh_index=i)
               for i, d in enumerate(drawables)]
    front = composite(rasters) if rasters else empty_raster(camera.height, camera.width)
    colour = background.copy()
    dominant = np.full(front.face_id.shape, -1, np.int64)
    for i, d in enumerate(drawables):
        sel = front.mesh_id == i
        if not sel.any():
            continue
        tri = d.faces[front.face_id[sel]]                       # N x 3
        bary = front.bary[sel].astype(np.float64)               # N x 3
        # einsum: n = pixel, k = triangle corner, c = xyz
        points = np.einsum("nk,nkc->nc", bary, d.tex_points[tri])
        corners = d.vertices[tri]                                # flat shading: face normals
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        vid = tri[np.arange(len(tri)), np.argmax(bary, axis=1)]
        colour[sel] = app.shade(d.colour(points, vid), normals, light)
        dominant[sel] = vid
    return ViewRender(rasters, front, colour, dominant)


@dataclass
class PixelLabels:
    """Per-pixel truth maps (-1 = none)."""

    person: np.ndarray   # H x W int32 labelled person index
    kernel: np.ndarray   # H x W int64 kernel index of the visible surface point
    part: np.ndarray     # H x W int64 limb id (nbv.LIMBS)
    occluder: np.ndarray  # H x W bool front-most surface is an occluder / unlabelled body


def pixel_labels(view: ViewRender, drawables: Sequence[Drawable], labels: BodyLabels,
                 valid: Optional[np.ndarray]) -> PixelLabels:
    person_of_mesh = np.array([d.person for d in drawables] + [-1], np.int32)
    person = person_of_mesh[view.front.mesh_id]   # mesh_id -1 picks the trailing -1
    is_person = person >= 0
    vid = np.where(is_person, view.vertex_of_pixel, 0)
    kernel = np.where(is_person, labels.vertex_kernel[vid], -1)
    part = np.where(is_person, labels.vertex_part[vid], -1)
    occluder = view.front.covered & ~is_person
    if valid is not None:
        person = np.where(valid, person, -1)
        kernel, part = np.where(valid, kernel, -1), np.where(valid, part, -1)
        occluder &= valid
    return PixelLabels(person.astype(np.int32), kernel.astype(np.int64), part.astype(np.int64), occluder)


VISIBLE, OCCLUDED_BY_OBJECT, SELF_OCCLUDED = 0, 1, 2
SELF_VISIBLE_MIN = 0.15
"""A joint whose nearby surface is seen less than this even without other meshes is
self-occluded (or outside the view). About half of a joint's nearby surface faces the camera when
the joint is in plain view, so the raw seen fraction of an exposed joint is ~0.4-0.6."""


@dataclass
class Visibility:
    """Visibility of one person's surface.

    Attributes:
        vertex: (V,) bool, seen (in view, front-most among all meshes).
        kernel: (K,) fraction of the kernel's vertices seen. kernel_self: (K,) same with the
            person's own mesh only.
        joint_seen, joint_self_seen: (24,) raw fraction of each joint's nearby surface seen with
            all meshes / with the person's own mesh only.
        joint: (24,) visibility in [0, 1] (1 = visible, 0 = hidden or out of view):
            joint_seen / max(joint_self_seen, SELF_VISIBLE_MIN).
        joint_state: (24,) VISIBLE / OCCLUDED_BY_OBJECT / SELF_OCCLUDED
            (:func:`joint_visibility_state`).
    """

    vertex: np.ndarray
    kernel: np.ndarray
    kernel_self: np.ndarray
    joint_seen: np.ndarray
    joint_self_seen: np.ndarray
    joint: np.ndarray
    joint_state: np.ndarray


def person_visibility(vertices: np.ndarray, own: MeshRaster, front: MeshRaster,
                      camera: CameraIntrinsics, labels: BodyLabels, tolerance: float,
                      valid: Optional[np.ndarray]) -> Visibility:
    """Vertex, kernel and joint visibility by depth tests against the z-buffers.

    The depth tolerance grows with the pixel footprint (1.5 pixels at the vertex's depth) so
    that slanted surfaces at a distance are not called hidden by their own pixel.
    """
    tol = tolerance + 1.5 * vertices[:, 2] / camera.fx
    seen = vertex_visibility(vertices, camera, front.depth, tol, valid)
    seen_self = vertex_visibility(vertices, camera, own.depth, tol, valid)
    k = labels.num_kernels
    count = np.maximum(np.bincount(labels.vertex_kernel, minlength=k), 1)

    def frac(s: np.ndarray) -> np.ndarray:
        return np.bincount(labels.vertex_kernel, s.astype(np.float64), minlength=k) / count

    region = labels.joint_region.astype(np.float64)
    size = np.maximum(region.sum(1), 1.0)
    joint_seen, joint_self = region @ seen / size, region @ seen_self / size
    return Visibility(vertex=seen, kernel=frac(seen), kernel_self=frac(seen_self),
                      joint_seen=joint_seen, joint_self_seen=joint_self,
                      joint=normalised_joint_visibility(joint_seen, joint_self),
                      joint_state=joint_visibility_state(joint_seen, joint_self))


def normalised_joint_visibility(seen: np.ndarray, self_seen: np.ndarray) -> np.ndarray:
    """Joint visibility in [0, 1]: the share of what the person alone shows of the joint's
    surface that is not hidden by other meshes; joints the body itself hides (self seen below
    SELF_VISIBLE_MIN) score at most seen / SELF_VISIBLE_MIN, out-of-view joints 0."""
    return np.clip(np.asarray(seen) / np.maximum(np.asarray(self_seen), SELF_VISIBLE_MIN), 0.0, 1.0)


def joint_visibility_state(joint_seen: np.ndarray, joint_self_seen: np.ndarray,
                           object_ratio: float = 0.5) -> np.ndarray:
    """(..., 24) int64 state per joint: VISIBLE (0), OCCLUDED_BY_OBJECT (1), SELF_OCCLUDED (2).

    From the raw seen fractions: self-occluded (or out of view) when the self fraction is below
    SELF_VISIBLE_MIN; occluded by an object when other meshes hide more than
    ``1 - object_ratio`` of what the person alone shows; visible otherwise.
    """
    vis = np.asarray(joint_seen, dtype=np.float64)
    own = np.asarray(joint_self_seen, dtype=np.float64)
    state = np.where(vis >= object_ratio * own, VISIBLE, OCCLUDED_BY_OBJECT)
    return np.where(own < SELF_VISIBLE_MIN, SELF_OCCLUDED, state).astype(np.int64)


# --- full scenes -----------------------------------------------------------------------------
@dataclass
class PersonTruth:
    """Ground truth of one person in a full image (numpy).

    Attributes:
        betas (10,), global_orient (3,), body_pose (69,), transl (3,): body parameters (camera
            optical frame), such that the body model gives ``joints3d``.
        joints3d: 24 x 3 metres. joints2d: 24 x 2 pixels (may lie outside the image).
        bbox: (4,) x0, y0, x1, y1 tight box of the whole projected body (occluded and
            out-of-image parts included). visible_bbox: (4,) box of its visible pixels (nan if
            none). joint_visibility: (24,) 1 = visible .. 0 = hidden or out of view (see
            ``Visibility.joint``); joint_state: (24,) VISIBLE / OCCLUDED_BY_OBJECT /
            SELF_OCCLUDED; joint_surface_seen / joint_surface_self_seen: (24,) raw fractions of
            each joint's nearby surface seen with / without the other meshes.
            kernel_visibility: (K,) fraction of each kernel's vertices seen.
        occluded_fraction: share of the person's own pixels hidden by other meshes.
        key_poses: names of the key poses the pose came from.
    """

    betas: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    joints3d: np.ndarray
    joints2d: np.ndarray
    bbox: np.ndarray
    visible_bbox: np.ndarray
    joint_visibility: np.ndarray
    joint_state: np.ndarray
    joint_surface_seen: np.ndarray
    joint_surface_self_seen: np.ndarray
    kernel_visibility: np.ndarray
    occluded_fraction: float
    key_poses: tuple[str, ...] = ()

    def params(self) -> BodyParams:
        """Batch-of-one BodyParams (float32)."""
        t = lambda a: torch.as_tensor(a, dtype=torch.float32)[None]  # noqa: E731
        return BodyParams(t(self.betas), t(self.global_orient), t(self.body_pose), t(self.transl))


@dataclass
class SyntheticScene:
    """A rendered full image and its truth.

    Attributes:
        image: H x W x 3 uint8 RGB. camera: its intrinsics. people: one PersonTruth each.
        person_index / kernel_index / part_index: H x W per-pixel maps (-1 = none).
        occluder_mask: H x W bool, an occluder is the front-most surface.
        occlusion_mask: H x W bool, a person's surface is hidden here by another mesh (an
            occluder or another person) -- "occluder pixels in front of a person".
        depth: H x W float32 z-buffer (inf = background).
        occluder_index: H x W int32, which occluder (index into ``occluder_kinds``) is the
            front-most surface (-1 = none): each occluder's own mask is occluder_index == i.
        camera_height: metres above the ground.
    """

    seed: int
    image: np.ndarray
    camera: CameraIntrinsics
    people: list[PersonTruth]
    person_index: np.ndarray
    kernel_index: np.ndarray
    part_index: np.ndarray
    occluder_mask: np.ndarray
    occlusion_mask: np.ndarray
    depth: np.ndarray
    occluder_index: np.ndarray
    camera_height: float = 0.0
    occluder_kinds: list[str] = field(default_factory=list)


def sample_occluders(rng: np.random.Generator, cfg: SyntheticConfig, body: torch.nn.Module,
                   labels: BodyLabels, rig: CameraRig, camera: CameraIntrinsics,
                   person: PersonGeometry, box: np.ndarray, allow_body: bool) -> list[Drawable]:
    """0..max_occluders occluders between the camera and ``person`` (box in ``camera`` pixels)."""
    occ_cfg = cfg.occlusion
    out: list[Drawable] = []
    if not occ_cfg.enabled or rng.random() >= occ_cfg.prob:
        return out
    for _ in range(int(rng.integers(1, occ_cfg.max_occluders + 1))):
        kind = choose_kind(rng, occ_cfg, allow_body)
        placement = sample_placement(rng, kind, camera, box, float(person.joints[0, 2]), occ_cfg)
        if placement is None:
            break
        if kind == "body":
            other = _other_body(rng, cfg, body, labels, rig, placement.centre)
            out.append(person_drawable(other, labels, -1, kind="body"))
        else:
            out.append(occluder_drawable(make_occluder(rng, placement, cfg.split)))
    return out


def box_of(points2d: np.ndarray) -> np.ndarray:
    return np.array([points2d[:, 0].min(), points2d[:, 1].min(), points2d[:, 0].max(), points2d[:, 1].max()])


def _camera_and_people(rng: np.random.Generator, cfg: SyntheticConfig, body: torch.nn.Module,
                       labels: BodyLabels) -> tuple[CameraRig, list[PersonGeometry]]:
    """A camera and 1..max_people people who fit in its view (new camera if none fits)."""
    for _ in range(MAX_CAMERA_TRIES):
        rig = sample_camera(rng, cfg.camera)
        people = []
        for _ in range(int(rng.integers(1, cfg.max_people + 1))):
            person = sample_person(rng, cfg, body, labels, rig)
            if person is not None:
                people.append(person)
        if people:
            return rig, people
    raise RuntimeError("could not place a person in view; check SyntheticConfig.camera ranges")


def render_scene(seed: int, cfg: SyntheticConfig, body: torch.nn.Module, kernels=None) -> SyntheticScene:
    """A full image with 1..cfg.max_people people (and occluders), deterministic by seed.

    Args:
        seed: sample seed (mixed with ``cfg.split``).
        cfg: generator settings.
        body: the BodyModel (forward(BodyParams) -> vertices/joints, ``faces``, ``lbs_weights``).
        kernels: a BodyLabels from :func:`body_labels` (reuse it: building it costs ~0.1 s), the
            NBV's (K,) kernel vertex ids, or None for ``select_kernel_vertices`` with the config.
    """
    check_config(cfg)
    labels = resolve_labels(body, kernels, cfg)
    rng = make_rng(seed, cfg.split, stream=1)
    rig, people = _camera_and_people(rng, cfg, body, labels)
    cam = rig.intrinsics
    drawables = [person_drawable(p, labels, i) for i, p in enumerate(people)]
    for p in people:
        box = box_of(project(p.vertices, cam))
        drawables += sample_occluders(rng, cfg, body, labels, rig, cam, p, box, allow_body=False)
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    background = app.random_background(rng, cfg.split, (cam.width, cam.height), cfg.appearance)
    view = render_view(drawables, cam, background.render(identity, cam.width, cam.height),
                       app.random_light(rng, cfg.appearance))
    maps = pixel_labels(view, drawables, labels, None)
    truths, hidden_any = [], np.zeros(maps.person.shape, bool)
    for i, p in enumerate(people):
        truth, hidden = _person_truth(p, i, view, maps, cam, labels, cfg)
        truths.append(truth)
        hidden_any |= hidden
    image = app.finish_image(view.colour, rng, cfg.appearance)
    return SyntheticScene(seed=seed, image=image, camera=cam, people=truths,
                          person_index=maps.person, kernel_index=maps.kernel, part_index=maps.part,
                          occluder_mask=maps.occluder, occlusion_mask=hidden_any,
                          depth=view.front.depth, occluder_index=_occluder_index(view, drawables),
                          camera_height=rig.height,
                          occluder_kinds=[d.kind for d in drawables if d.person < 0])


def _occluder_index(view: ViewRender, drawables: Sequence[Drawable]) -> np.ndarray:
    """H x W int32 index of the front-most occluder among the occluder drawables, -1 if none."""
    numbering = np.full(len(drawables) + 1, -1, np.int32)
    occluders = [i for i, d in enumerate(drawables) if d.person < 0]
    numbering[occluders] = np.arange(len(occluders), dtype=np.int32)
    return numbering[view.front.mesh_id]


def _person_truth(p: PersonGeometry, index: int, view: ViewRender, maps: PixelLabels,
                  cam: CameraIntrinsics, labels: BodyLabels, cfg: SyntheticConfig
                  ) -> tuple[PersonTruth, np.ndarray]:
    own = view.rasters[index]
    vis = person_visibility(p.vertices, own, view.front, cam, labels, cfg.visibility_tolerance_m, None)
    hidden = own.covered & (maps.person != index)
    rows, cols = np.nonzero(maps.person == index)
    visible_box = (np.array([cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5, rows.max() + 0.5])
                   if rows.size else np.full(4, np.nan))
    own_pixels = max(int(own.covered.sum()), 1)
    truth = PersonTruth(betas=p.betas, global_orient=p.global_orient, body_pose=p.body_pose,
                        transl=p.transl, joints3d=p.joints, joints2d=project(p.joints, cam),
                        bbox=box_of(project(p.vertices, cam)), visible_bbox=visible_box,
                        joint_visibility=vis.joint, joint_state=vis.joint_state,
                        joint_surface_seen=vis.joint_seen, joint_surface_self_seen=vis.joint_self_seen,
                        kernel_visibility=vis.kernel, occluded_fraction=float(hidden.sum() / own_pixels),
                        key_poses=p.key_poses)
    return truth, hidden
