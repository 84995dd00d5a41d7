"""A short rendered video with exact truth: people in front of a fixed camera and an occluder
that moves across the main person, for the no-camera demo (``nbf-ros demo``) and its test.

Built from the synthetic generator's pieces (``nbf_ros.data.scene``): the same body model,
outfits, shading, rasteriser and truth (joints, visibility, occlusion), but with a fixed camera
rig and scripted people instead of random draws, so consecutive frames form one scene. The main
person stands still; an optional second person walks slowly; a box (a cart or a cabinet) slides
in front of the main person from left to right over the sequence, so the middle frames show
them partly hidden. Everything is a deterministic function of ``SequenceConfig`` (seed included);
nothing is written to disk here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from nbf_ros.body.pose_limits import mirror_body_pose
from nbf_ros.config import SyntheticAppearanceConfig, SyntheticConfig
from nbf_ros.data import appearance as app
from nbf_ros.data.depth_sensor import sensor_depth
from nbf_ros.data.occluders import OccluderMesh, box_mesh
from nbf_ros.data.poses import (KEY_POSES, PoseSampler, key_pose_vector, slerp_body_pose,
                                upright_orientation)
from nbf_ros.data.scene import (BodyLabels, CameraRig, PersonGeometry, PersonTruth, _person_truth,
                                body_labels, occluder_drawable, person_drawable, pixel_labels,
                                place_on_ground, pose_bodies, render_view)
from nbf_ros.types import CameraIntrinsics

SPLIT = "test"
"""Held-out textures and background photos: the demo never shows training material."""


@dataclass(frozen=True)
class SequenceConfig:
    """The demo scene (metres, radians unless named otherwise).

    Camera: ``hfov_deg`` horizontal field of view, mounted ``camera_height_m`` above the ground
    and pitched down by ``camera_pitch_deg``. Main person: ``main_distance_m`` ahead at
    ``main_azimuth`` (right positive), turned by ``main_yaw`` (0 faces the camera), in key pose
    ``main_pose``. Second person (when ``people`` is 2): starts at ``walker_start_x_m`` (level
    frame, right positive) at ``walker_distance_m`` and walks ``walker_step_m`` per frame along
    x, swinging between ``walk_a`` and its mirror. Occluder: a box ``occluder_size_m`` (width,
    height, depth) standing on the ground ``occluder_distance_m`` ahead, sliding over
    ``occluder_travel_m`` (centred on the line of sight to the main person) during the sequence.
    """

    frames: int = 20
    width: int = 640
    height: int = 480
    people: int = 2
    seed: int = 7
    hfov_deg: float = 70.0
    camera_height_m: float = 1.2
    camera_pitch_deg: float = 5.0
    main_distance_m: float = 3.2
    main_azimuth: float = -0.05
    main_yaw: float = 0.35
    main_pose: str = "waving"
    walker_distance_m: float = 4.6
    walker_start_x_m: float = 1.9
    walker_step_m: float = -0.03
    walker_yaw: float = -1.2
    occluder_distance_m: float = 2.0
    occluder_size_m: tuple[float, float, float] = (0.55, 1.05, 0.35)
    occluder_travel_m: float = 1.8
    # Camera noise (fraction of full scale); other artefacts are off.
    noise_std: float = 0.01
    # The aligned depth stream (``SequenceFrame.depth``): a wall this far ahead closes the scene
    # (nothing else stands behind the people), seen through the synthetic RGB-D sensor
    # (``data/depth_sensor.py``: quantised disparity, holes, flying pixels).
    wall_distance_m: float = 7.0

    def validate(self) -> None:
        """Raise ValueError for a configuration that cannot render a sensible sequence."""
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.people not in (1, 2):
            raise ValueError(f"people must be 1 or 2, got {self.people}")
        if self.width < 64 or self.height < 64:
            raise ValueError(f"image must be at least 64 x 64, got {self.width} x {self.height}")
        if not 0.0 < self.occluder_distance_m < self.main_distance_m:
            raise ValueError("the occluder must stand between the camera and the main person "
                             f"(0 < {self.occluder_distance_m} < {self.main_distance_m})")
        if self.main_pose not in KEY_POSES:
            raise ValueError(f"unknown main_pose {self.main_pose!r}; known: {sorted(KEY_POSES)}")


@dataclass
class SequenceFrame:
    """One frame: H x W x 3 uint8 RGB, the truth of every person (index 0 = main person), the
    share of the main person's pixels the occluder hides, and the aligned depth an RGB-D camera
    in the same place would report (H x W float32 metres, NaN = no data)."""

    index: int
    image: np.ndarray
    people: list[PersonTruth]
    main_occluded_fraction: float
    depth: Optional[np.ndarray] = None


@dataclass
class _Actor:
    """A scripted person: shape, outfit, orientation and where they stand."""

    betas: np.ndarray
    orient: np.ndarray
    outfit: app.Outfit
    distance: float
    x0: float
    step: float
    pose: Optional[np.ndarray]  # fixed body pose, or None for the walk cycle


def camera_rig(cfg: SequenceConfig) -> CameraRig:
    """The fixed camera: pinhole from the field of view, level except for the pitch."""
    fx = cfg.width / 2.0 / np.tan(np.deg2rad(cfg.hfov_deg) / 2.0)
    intrinsics = CameraIntrinsics(float(fx), float(fx), (cfg.width - 1) / 2.0, (cfg.height - 1) / 2.0,
                                  cfg.width, cfg.height)
    return CameraRig(intrinsics, Rotation.from_euler("x", np.deg2rad(cfg.camera_pitch_deg)),
                     cfg.camera_height_m)


def _walk_pose(index: int) -> np.ndarray:
    """(69,) walk cycle: a stride, swinging to the mirrored stride over ~8 frames."""
    stride = key_pose_vector(KEY_POSES["walk_a"])
    t = 0.5 + 0.5 * np.sin(2.0 * np.pi * index / 8.0)
    return slerp_body_pose(stride, mirror_body_pose(stride), float(t))


def _actors(cfg: SequenceConfig, rig: CameraRig, labels: BodyLabels,
            rng: np.random.Generator) -> list[_Actor]:
    sampler = PoseSampler(betas_std=0.8, betas_clip=2.0)
    level = rig.level_to_camera

    def actor(yaw: float, distance: float, x0: float, step: float, pose: Optional[np.ndarray]) -> _Actor:
        orient = (level * upright_orientation(yaw)).as_rotvec()
        outfit = app.random_outfit(rng, SPLIT, labels.lbs_weights, labels.rest_vertices,
                                   labels.rest_joints, SyntheticAppearanceConfig())
        return _Actor(sampler.sample_betas(rng), orient, outfit, distance, x0, step, pose)

    main_x = cfg.main_distance_m * np.tan(cfg.main_azimuth)
    out = [actor(cfg.main_yaw, cfg.main_distance_m, main_x, 0.0, key_pose_vector(KEY_POSES[cfg.main_pose]))]
    if cfg.people == 2:
        out.append(actor(cfg.walker_yaw, cfg.walker_distance_m, cfg.walker_start_x_m, cfg.walker_step_m, None))
    return out


def _place(actor: _Actor, index: int, body: torch.nn.Module, rig: CameraRig) -> PersonGeometry:
    """The actor posed and standing on the ground at frame ``index``."""
    pose = actor.pose if actor.pose is not None else _walk_pose(index)
    verts, joints = pose_bodies(body, actor.betas[None], actor.orient[None], pose[None])
    x = actor.x0 + actor.step * index
    transl = place_on_ground(verts[0], joints[0], rig, float(np.hypot(x, actor.distance)),
                             float(np.arctan2(x, actor.distance)))
    return PersonGeometry(actor.betas, actor.orient, pose, transl, verts[0] + transl,
                          joints[0] + transl, actor.outfit)


def _occluder(cfg: SequenceConfig, rig: CameraRig, index: int, texture: app.SolidTexture) -> OccluderMesh:
    """The box at frame ``index``: standing on the ground, sliding left to right."""
    local, faces = box_mesh(np.asarray(cfg.occluder_size_m, dtype=np.float64))
    t = index / max(cfg.frames - 1, 1)
    sight_x = cfg.occluder_distance_m * np.tan(cfg.main_azimuth)
    x = sight_x + (t - 0.5) * cfg.occluder_travel_m
    # Level frame: y points down and the ground is y = camera height.
    centre_level = np.array([x, rig.height - cfg.occluder_size_m[1] / 2.0,
                             cfg.occluder_distance_m + cfg.occluder_size_m[2] / 2.0])
    verts = rig.level_to_camera.apply(local) + rig.level_to_camera.apply(centre_level)
    return OccluderMesh(kind="box", vertices=verts, faces=faces, local=local, texture=texture)


def render_sequence(cfg: SequenceConfig, body: torch.nn.Module,
                    labels: Optional[BodyLabels] = None) -> tuple[CameraIntrinsics, Iterator[SequenceFrame]]:
    """The camera and a generator of ``cfg.frames`` frames (rendered lazily, ~0.3 s each).

    Args:
        body: the BodyModel (forward(BodyParams) -> vertices/joints, ``faces``, ``lbs_weights``).
        labels: ``body_labels(body)`` if already built (it costs ~1 s).
    """
    cfg.validate()
    labels = labels if labels is not None else body_labels(body)
    rig = camera_rig(cfg)
    cam = rig.intrinsics
    rng = np.random.default_rng([cfg.seed, 0x5E0])
    actors = _actors(cfg, rig, labels, rng)
    texture = app.make_texture(app.texture_id(rng, SPLIT), texture_prob=1.0)
    # Procedural background (photos depend on optional packages: the same images on every
    # machine), and no per-frame artefact draws (no flicker).
    look = dataclasses.replace(SyntheticAppearanceConfig(), photo_background_prob=0.0, blur_prob=0.0,
                               jpeg_prob=0.0, colour_jitter=0.0, noise_std=(cfg.noise_std, cfg.noise_std),
                               emulate_resolution=False)
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    background = app.random_background(rng, SPLIT, (cam.width, cam.height), look).render(
        identity, cam.width, cam.height)
    light = app.random_light(rng, look)
    truth_cfg = SyntheticConfig(split=SPLIT)

    def frames() -> Iterator[SequenceFrame]:
        for index in range(cfg.frames):
            people = [_place(a, index, body, rig) for a in actors]
            drawables = [person_drawable(p, labels, i) for i, p in enumerate(people)]
            drawables.append(occluder_drawable(_occluder(cfg, rig, index, texture)))
            view = render_view(drawables, cam, background, light)
            maps = pixel_labels(view, drawables, labels, None)
            truths = [_person_truth(p, i, view, maps, cam, labels, truth_cfg)[0] for i, p in enumerate(people)]
            image = app.finish_image(view.colour, np.random.default_rng([cfg.seed, index]), look)
            z = np.where(np.isfinite(view.front.depth), view.front.depth, cfg.wall_distance_m)
            depth = sensor_depth(z, cam.fx, np.random.default_rng([cfg.seed, index, 0xD]))
            yield SequenceFrame(index, image, truths, float(truths[0].occluded_fraction), depth)

    return cam, frames()
