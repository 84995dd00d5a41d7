"""Training crops: one person rendered directly into the crop that inference would take.

The crop follows the inference rule (``CropBox.around_bbox(box, NetConfig.crop_scale)``) around
the person's projected full-body box clipped to the image, with jitter. A crop is a pinhole
camera with crop intrinsics, so it is rasterised at the crop size directly; crop pixels that fall
outside the full image are black, as ``extract_crop`` pads them at inference. A person whose crop
side in the image is smaller than the crop size is rendered, downsampled to that side and
upsampled back, as inference upsamples small people.

Labels at the feature stride (``NetConfig.feature_stride``): ``kernel_index``/``part_index``
take the majority label of each stride x stride block (``cfg.label_downsample == "majority"``,
ties to the smaller label, so background -1 wins a tie), the majority among labelled pixels of
blocks at least 25% labelled (``"foreground"``) or the block's centre pixel (``"center"``:
pixel stride*i + stride//2); masks are the covered fraction of each block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from nbf_ros.config import NetConfig, SyntheticConfig
from nbf_ros.data import appearance as app
from nbf_ros.data.depth_sensor import DepthSensor, sensor_depth
from nbf_ros.data.raster import composite, rasterize_mesh
from nbf_ros.data.scene import (MAX_CAMERA_TRIES, BodyLabels, CameraRig, PersonGeometry, box_of,
                                check_config, make_rng, person_drawable, person_visibility,
                                pixel_labels, render_view, sample_camera, sample_occluders,
                                sample_person)
from nbf_ros.geometry.camera import CropBox, project
from nbf_ros.types import CameraIntrinsics

FOREGROUND_MIN_FRACTION = 0.25
"""label_downsample "foreground": a block is labelled when at least this share of it is."""
INTEGER_FIELDS = ("joint_state",)
"""Besides the *_index maps, fields returned as int64 tensors."""
VISIBLE_BOX_RESOLUTION = 96
"""Pixels (at most) of the cheap render that finds the visible box."""


@dataclass
class CropSample:
    """One training crop and its truth (numpy). S = crop size, R = S / stride, K = kernels.

    Attributes:
        image: S x S x 3 uint8 RGB.
        kernel_index, part_index: R x R int64 (-1: background, occluder or outside the image).
        person_mask, occluder_mask, occluded_mask, inside_mask: R x R float32 fractions of each
            block that show the person / show an occluder / hide the person behind another mesh /
            lie inside the full image.
        joints2d: 24 x 2 crop pixels. joints3d: 24 x 3 metres (camera frame).
        betas (10,), global_orient (3,), body_pose (69,), transl (3,): body parameters.
        crop_camera: (4,) fx, fy, cx, cy of the crop camera (crop pixels).
        image_camera: (6,) fx, fy, cx, cy, width, height of the full image it was cut from.
        crop_box: (3,) x0, y0, side of the crop in full-image pixels.
        bbox: (4,) full-body box in crop pixels.
        joint_visibility: (24,) 1 = visible .. 0 = hidden (by occluders, by the body itself)
            or outside the crop/image (``scene.Visibility.joint``).
        joint_state: (24,) int VISIBLE (0) / OCCLUDED_BY_OBJECT (1) / SELF_OCCLUDED (2, also
            out of view).
        joint_surface_seen, joint_surface_self_seen: (24,) raw fraction of each joint's nearby
            surface seen in the crop, with / without the other meshes.
        kernel_visibility: (K,) fraction of each kernel's vertices seen.
        depth: S x S float32 metres (NaN = no data): what an aligned RGB-D sensor reports for the
            crop (``depth_sensor.sensor_depth``: quantised disparity, holes, flying pixels, a
            wall behind the scene), or None when not asked for (``render_crop(depth=...)``).
    """

    image: np.ndarray
    kernel_index: np.ndarray
    part_index: np.ndarray
    person_mask: np.ndarray
    occluder_mask: np.ndarray
    occluded_mask: np.ndarray
    inside_mask: np.ndarray
    joints2d: np.ndarray
    joints3d: np.ndarray
    betas: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    crop_camera: np.ndarray
    image_camera: np.ndarray
    crop_box: np.ndarray
    bbox: np.ndarray
    joint_visibility: np.ndarray
    joint_state: np.ndarray
    joint_surface_seen: np.ndarray
    joint_surface_self_seen: np.ndarray
    kernel_visibility: np.ndarray
    depth: Optional[np.ndarray] = None

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The training dict: ``image`` 3 x S x S float32 in [0, 1]; label maps and joint_state
        int64; the rest float32 (see the class attributes for shapes)."""
        out: dict[str, torch.Tensor] = {
            "image": torch.from_numpy(self.image).permute(2, 0, 1).float().div_(255.0)}
        for name, value in self.__dict__.items():
            if name == "image" or value is None:
                continue
            arr = np.asarray(value)
            integer = name.endswith("_index") or name in INTEGER_FIELDS
            out[name] = torch.from_numpy(arr.astype(np.int64 if integer else np.float32))
        return out


def downsample_labels(labels: np.ndarray, stride: int, mode: str = "majority") -> np.ndarray:
    """H x W int labels (-1 = none) -> (H/stride) x (W/stride).

    Modes: "majority" (most frequent label of the block, -1 included; ties to the smaller),
    "foreground" (most frequent label >= 0 when at least FOREGROUND_MIN_FRACTION of the block
    is labelled, else -1: thin limbs keep their labels), "center" (pixel stride*i + stride//2).
    """
    h, w = labels.shape
    if h % stride or w % stride:
        raise ValueError(f"label map {labels.shape} is not divisible by stride {stride}")
    if mode == "center":
        return labels[stride // 2::stride, stride // 2::stride].copy()
    if mode not in ("majority", "foreground"):
        raise ValueError(f"unknown label_downsample {mode!r}")
    blocks = labels.reshape(h // stride, stride, w // stride, stride).transpose(0, 2, 1, 3)
    blocks = np.sort(blocks.reshape(h // stride, w // stride, stride * stride), axis=-1)
    counts = (blocks[..., :, None] == blocks[..., None, :]).sum(-1)   # ... x n: votes of each entry
    if mode == "foreground":
        counts = np.where(blocks >= 0, counts, 0)
    best = np.argmax(counts, axis=-1)                                  # first max = smallest label
    out = np.take_along_axis(blocks, best[..., None], -1)[..., 0]
    if mode == "foreground":
        labelled = (blocks >= 0).mean(-1)
        out = np.where(labelled >= FOREGROUND_MIN_FRACTION, out, -1)
    return out


def downsample_mask(mask: np.ndarray, stride: int) -> np.ndarray:
    """H x W bool -> (H/stride) x (W/stride) float32 covered fraction."""
    h, w = mask.shape
    return mask.reshape(h // stride, stride, w // stride, stride).mean(axis=(1, 3)).astype(np.float32)


def inside_image_mask(crop: CropBox, camera: CameraIntrinsics, size: int) -> np.ndarray:
    """size x size bool: crop pixel centres that map inside the full image."""
    k = crop.side / size
    coords = (np.arange(size) + 0.5) * k - 0.5
    u_ok = (coords + crop.x0 >= -0.5) & (coords + crop.x0 <= camera.width - 0.5)
    v_ok = (coords + crop.y0 >= -0.5) & (coords + crop.y0 <= camera.height - 0.5)
    return v_ok[:, None] & u_ok[None, :]


def crop_to_image_affine(crop: CropBox, size: int) -> np.ndarray:
    """2 x 3 map of crop pixel centres to image pixel coordinates (inverse of CropBox.affine)."""
    k = crop.side / size
    return np.array([[k, 0.0, 0.5 * k + crop.x0 - 0.5], [0.0, k, 0.5 * k + crop.y0 - 0.5]])


def jittered_crop(rng: np.random.Generator, box: np.ndarray, cfg: SyntheticConfig,
                  crop_scale: float) -> CropBox:
    """CropBox.around_bbox of the box moved by N(0, shift) x side and scaled by exp(N(0, scale))."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 1.0)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) + rng.normal(0, cfg.box_jitter_shift, 2) * side
    scale = np.exp(rng.normal(0, cfg.box_jitter_scale))
    half = np.array([x1 - x0, y1 - y0]) * scale / 2
    return CropBox.around_bbox(np.concatenate([centre - half, centre + half]), crop_scale)


def _sample_target(rng: np.random.Generator, cfg: SyntheticConfig, body: torch.nn.Module,
                   labels: BodyLabels) -> tuple[CameraRig, PersonGeometry]:
    for _ in range(MAX_CAMERA_TRIES):
        rig = sample_camera(rng, cfg.camera)
        person = sample_person(rng, cfg, body, labels, rig)
        if person is not None:
            return rig, person
    raise RuntimeError("could not place a person in view; check SyntheticConfig.camera ranges")


def render_crop(seed: int, cfg: SyntheticConfig, body: torch.nn.Module, labels: BodyLabels,
                net: NetConfig = NetConfig(), occlusion: Optional[bool] = None,
                depth: Optional[DepthSensor] = None) -> CropSample:
    """One training crop, deterministic by (seed, cfg.split).

    Args:
        seed: sample seed.
        cfg: generator settings. body: the BodyModel. labels: from ``body_labels(body, ...)``.
        net: crop size, feature stride and crop scale (same crop rule as inference).
        occlusion: occluders on/off (None: ``cfg.occlusion.enabled``).
        depth: also render the sensor's aligned depth of the crop with this sensor model (its own
            random stream: the image, people and occluders are the same with or without it).
    """
    check_config(cfg)
    size, stride = net.crop_size, net.feature_stride
    if size % stride:
        raise ValueError(f"crop_size {size} must be a multiple of feature_stride {stride}")
    rng = make_rng(seed, cfg.split, stream=2)
    rig, person = _sample_target(rng, cfg, body, labels)
    cam = rig.intrinsics
    in_image = _clip_box(box_of(project(person.vertices, cam)), cam)
    drawables = [person_drawable(person, labels, 0)]
    enabled = cfg.occlusion.enabled if occlusion is None else occlusion
    if enabled:
        drawables += sample_occluders(rng, _with_enabled(cfg, True), body, labels, rig, cam, person,
                                    in_image, allow_body=True)
    box = in_image
    if rng.random() < cfg.visible_box_prob:
        box = visible_box(drawables, cam, in_image)
    crop = jittered_crop(rng, box, cfg, net.crop_scale)
    ccam = crop.crop_intrinsics(cam, size)
    inside = inside_image_mask(crop, cam, size)
    box_crop = box_of(project(person.vertices, ccam))
    background = app.random_background(rng, cfg.split, (cam.width, cam.height), cfg.appearance)
    view = render_view(drawables, ccam, background.render(crop_to_image_affine(crop, size), size, size),
                       app.random_light(rng, cfg.appearance))
    image = app.finish_image(view.colour, rng, cfg.appearance, lowres_side=crop.side)
    image[~inside] = 0
    maps = pixel_labels(view, drawables, labels, inside)
    vis = person_visibility(person.vertices, view.rasters[0], view.front, ccam, labels,
                            cfg.visibility_tolerance_m, inside)
    hidden = view.rasters[0].covered & (maps.person != 0) & inside
    mode = cfg.label_downsample
    return CropSample(
        image=image, kernel_index=downsample_labels(maps.kernel, stride, mode),
        part_index=downsample_labels(maps.part, stride, mode),
        person_mask=downsample_mask(maps.person == 0, stride),
        occluder_mask=downsample_mask(maps.occluder, stride),
        occluded_mask=downsample_mask(hidden, stride), inside_mask=downsample_mask(inside, stride),
        joints2d=project(person.joints, ccam), joints3d=person.joints, betas=person.betas,
        global_orient=person.global_orient, body_pose=person.body_pose, transl=person.transl,
        crop_camera=np.array([ccam.fx, ccam.fy, ccam.cx, ccam.cy]),
        image_camera=np.array([cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height], np.float64),
        crop_box=np.array([crop.x0, crop.y0, crop.side]), bbox=box_crop,
        joint_visibility=vis.joint, joint_state=vis.joint_state, joint_surface_seen=vis.joint_seen,
        joint_surface_self_seen=vis.joint_self_seen,
        kernel_visibility=vis.kernel,
        depth=None if depth is None else crop_depth(view.front.depth, person, cam, inside, depth,
                                                    make_rng(seed, cfg.split, stream=7)))


def crop_depth(zbuffer: np.ndarray, person: PersonGeometry, cam: CameraIntrinsics, inside: np.ndarray,
               sensor: DepthSensor, rng: np.random.Generator) -> np.ndarray:
    """The sensor's depth of a crop: the meshes' z-buffer over a fronto-parallel wall 0.5-4 m
    behind the person's pelvis, through ``sensor_depth`` (the full image's focal sets the
    disparity); NaN outside the image."""
    wall = float(person.joints[0, 2]) + rng.uniform(0.5, 4.0)
    z = np.where(np.isfinite(zbuffer), zbuffer, wall)
    out = sensor_depth(z, cam.fx, rng, sensor)
    out[~inside] = np.nan
    return out


def _clip_box(box: np.ndarray, cam: CameraIntrinsics) -> np.ndarray:
    """x0, y0, x1, y1 clipped to the image's pixel-edge extent."""
    lo = np.array([-0.5, -0.5, -0.5, -0.5])
    hi = np.array([cam.width, cam.height, cam.width, cam.height]) - 0.5
    return np.clip(box, lo, hi)


def visible_box(drawables: list, cam: CameraIntrinsics, region: np.ndarray,
                resolution: int = VISIBLE_BOX_RESOLUTION) -> np.ndarray:
    """Box (image pixels) of the visible pixels of drawable 0 inside ``region``.

    Rendered through a square crop camera over ``region`` at ``resolution`` px at most (cheap);
    falls back to ``region`` when nothing of the person is visible.
    """
    side = max(region[2] - region[0], region[3] - region[1], 1.0)
    window = CropBox(float(region[0]), float(region[1]), float(side))
    size = int(max(8, min(resolution, round(side))))
    wcam = window.crop_intrinsics(cam, size)
    rasters = [rasterize_mesh(d.vertices, d.faces, wcam, cull_backfaces=d.cull, mesh_index=i)
               for i, d in enumerate(drawables)]
    rows, cols = np.nonzero(composite(rasters).mesh_id == 0)
    if rows.size == 0:
        return region
    corners = np.array([[cols.min() - 0.5, rows.min() - 0.5], [cols.max() + 0.5, rows.max() + 0.5]])
    return _clip_box(window.crop_to_image(corners, size).reshape(-1), cam)


def _with_enabled(cfg: SyntheticConfig, enabled: bool) -> SyntheticConfig:
    from dataclasses import replace

    return replace(cfg, occlusion=replace(cfg.occlusion, enabled=enabled))
