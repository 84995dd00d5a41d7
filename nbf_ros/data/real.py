"""Loaders for real data a user may have: 3DPW sequence files and a generic .npz format.

Both produce the same per-sample dict as the synthetic crops (``CropSample.to_tensors``), so a
trainer can mix them. Real data has no dense labels: ``kernel_index``/``part_index`` are -1
everywhere (the contrastive loss ignores them), ``person_mask``/``occluder_mask``/
``occluded_mask`` and ``kernel_visibility`` are 0, ``joint_visibility`` is 1 for joints inside
the crop (and inside the image) and 0 otherwise (``joint_state`` VISIBLE / SELF_OCCLUDED, the
code for "out of view"), and the raw surface fractions are NaN (unknown).

3DPW (von Marcard et al., ECCV 2018; sign-up required, never shipped here): each
``sequenceFiles/<split>/<name>.pkl`` is a Python-2 pickle of a dict with ``sequence``, ``betas``
(per actor, 10), ``poses`` (per actor, N x 72 world frame), ``trans`` (per actor, N x 3),
``jointPositions`` (per actor, N x 72), ``cam_poses`` (N x 4 x 4 world -> camera),
``cam_intrinsics`` (3 x 3), ``campose_valid`` (per actor, N). Images are
``imageFiles/<sequence>/image_%05d.jpg``. Pickles can run code when loaded, so these are read
with an Unpickler that only rebuilds numpy arrays (:func:`load_numpy_pickle`); anything else
is refused.

Generic .npz (``allow_pickle=False``), one row per person instance, N rows:
    image_paths   (N,) str    image file, absolute or relative to the .npz's folder
    intrinsics    N x 4       fx, fy, cx, cy (pixels)
    boxes         N x 4       person box x0, y0, x1, y1 (pixels)
    betas         N x 10      body parameters in the camera optical frame (our convention:
    global_orient N x 3       x right, y down, z forward; the body model's own parameters, so
    body_pose     N x 69      that the configured body model gives the joints)
    transl        N x 3
    joints3d      N x 24 x 3  optional; if absent, computed with the body model
3DPW's parameters (SMPL, world frame) are converted to that convention: the root rotation and
translation are moved into the camera frame (translation through the body model's rest root
joint, since SMPL rotates about it). With the embedded (non-SMPL) body, 3DPW's betas are only
approximately meaningful; ``joints3d`` always comes from 3DPW's own joint positions.
"""
from __future__ import annotations

import importlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch.utils.data import Dataset

from nbf_ros.config import NetConfig
from nbf_ros.data.crops import CropSample, inside_image_mask
from nbf_ros.data.scene import SELF_OCCLUDED, VISIBLE
from nbf_ros.geometry.camera import CropBox, extract_crop
from nbf_ros.types import NUM_BETAS, NUM_JOINTS, BodyParams, CameraIntrinsics

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    # Python 3 protocol-2 pickles turn raw array bytes into text and back through this codec
    # call; it converts data and runs nothing.
    ("_codecs", "encode"),
}
GENERIC_KEYS = ("image_paths", "intrinsics", "boxes", "betas", "global_orient", "body_pose", "transl")
THREEDPW_BOX_MARGIN = 0.15
"""3DPW has no boxes: the projected joints' box grown by this fraction of its size per side
(joints lie inside the body, so the skin extends beyond them)."""


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds only numpy arrays, dtypes and scalars (plus plain Python containers)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        if module.startswith("numpy.core") and _has_module("numpy._core"):
            module = "numpy._core" + module[len("numpy.core"):]  # numpy >= 2 renamed the module
        return getattr(importlib.import_module(module), name)


def _has_module(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def load_numpy_pickle(path: str | Path) -> Any:
    """Load a pickle that may contain only numpy arrays and Python containers/strings/numbers.

    Python-2 pickles (3DPW's) are read with latin-1 string decoding, as numpy arrays need.
    Raises pickle.UnpicklingError naming the first forbidden class.
    """
    data = Path(path).read_bytes()
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def _str(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


# --- one real sample -> the crop-sample dict -------------------------------------------------
@dataclass(frozen=True)
class RealInstance:
    """One person in one real image, in our conventions (camera optical frame, metres)."""

    image_path: Path
    camera: np.ndarray      # (4,) fx, fy, cx, cy
    box: np.ndarray         # (4,)
    betas: np.ndarray       # (10,)
    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    joints3d: np.ndarray    # 24 x 3


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


def crop_real_instance(inst: RealInstance, net: NetConfig, num_kernels: int) -> CropSample:
    """Crop the image around the instance's box (inference crop rule) -> CropSample."""
    image = _read_rgb(inst.image_path)
    h, w = image.shape[:2]
    size, stride = net.crop_size, net.feature_stride
    cam = CameraIntrinsics(*[float(v) for v in inst.camera], width=w, height=h)
    crop = CropBox.around_bbox(inst.box, net.crop_scale)
    ccam = crop.crop_intrinsics(cam, size)
    z = np.maximum(inst.joints3d[:, 2], 1e-6)
    uv = np.stack([ccam.fx * inst.joints3d[:, 0] / z + ccam.cx,
                   ccam.fy * inst.joints3d[:, 1] / z + ccam.cy], 1)
    inside = inside_image_mask(crop, cam, size)
    cols, rows = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
    in_crop = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size) & (inst.joints3d[:, 2] > 0)
    visible = in_crop & inside[np.clip(rows, 0, size - 1), np.clip(cols, 0, size - 1)]
    r = size // stride
    affine = crop.affine(size)
    corners = np.asarray(inst.box, dtype=np.float64).reshape(2, 2)
    box_crop = (corners @ affine[:, :2].T + affine[:, 2]).reshape(-1)
    return CropSample(
        image=extract_crop(image, crop, size), kernel_index=np.full((r, r), -1, np.int64),
        part_index=np.full((r, r), -1, np.int64), person_mask=np.zeros((r, r), np.float32),
        occluder_mask=np.zeros((r, r), np.float32), occluded_mask=np.zeros((r, r), np.float32),
        inside_mask=inside.reshape(r, stride, r, stride).mean(axis=(1, 3)).astype(np.float32),
        joints2d=uv, joints3d=inst.joints3d, betas=inst.betas, global_orient=inst.global_orient,
        body_pose=inst.body_pose, transl=inst.transl,
        crop_camera=np.array([ccam.fx, ccam.fy, ccam.cx, ccam.cy]),
        image_camera=np.array([cam.fx, cam.fy, cam.cx, cam.cy, w, h], np.float64),
        crop_box=np.array([crop.x0, crop.y0, crop.side]), bbox=box_crop,
        joint_visibility=visible.astype(np.float64),
        joint_state=np.where(visible, VISIBLE, SELF_OCCLUDED).astype(np.int64),
        joint_surface_seen=np.full(NUM_JOINTS, np.nan), joint_surface_self_seen=np.full(NUM_JOINTS, np.nan),
        kernel_visibility=np.zeros(num_kernels))


class _RealDataset(Dataset):
    def __init__(self, instances: Sequence[RealInstance], net: NetConfig, num_kernels: int) -> None:
        self.instances, self.net, self.num_kernels = list(instances), net, int(num_kernels)

    def __len__(self) -> int:
        return len(self.instances)

    def sample(self, index: int) -> CropSample:
        return crop_real_instance(self.instances[index], self.net, self.num_kernels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.sample(index).to_tensors()


# --- generic .npz ----------------------------------------------------------------------------
def _body_joints(body: torch.nn.Module, betas, orient, pose, transl) -> np.ndarray:
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        return body(BodyParams(t(betas), t(orient), t(pose), t(transl))).joints.double().numpy()


def read_generic_npz(path: str | Path, body: Optional[torch.nn.Module] = None) -> list[RealInstance]:
    """Instances of a generic .npz (format in the module docstring); validates every array."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in GENERIC_KEYS if k not in npz.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}; required: {list(GENERIC_KEYS)}")
        arr = {k: npz[k] for k in npz.files}
    n = len(arr["image_paths"])
    shapes = {"intrinsics": (n, 4), "boxes": (n, 4), "betas": (n, NUM_BETAS), "global_orient": (n, 3),
              "body_pose": (n, 3 * (NUM_JOINTS - 1)), "transl": (n, 3), "joints3d": (n, NUM_JOINTS, 3)}
    for key, shape in shapes.items():
        if key in arr and arr[key].shape != shape:
            raise ValueError(f"{path}: {key} has shape {arr[key].shape}, expected {shape}")
    if "joints3d" in arr:
        joints = arr["joints3d"].astype(np.float64)
    elif body is not None:
        joints = _body_joints(body, arr["betas"], arr["global_orient"], arr["body_pose"], arr["transl"])
    else:
        raise ValueError(f"{path} has no joints3d: pass the body model to compute them")
    root = path.parent
    return [RealInstance(image_path=_resolve(root, _str(arr["image_paths"][i])),
                         camera=arr["intrinsics"][i].astype(np.float64),
                         box=arr["boxes"][i].astype(np.float64),
                         betas=arr["betas"][i].astype(np.float64),
                         global_orient=arr["global_orient"][i].astype(np.float64),
                         body_pose=arr["body_pose"][i].astype(np.float64),
                         transl=arr["transl"][i].astype(np.float64), joints3d=joints[i])
            for i in range(n)]


def _resolve(root: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else root / p


def write_generic_npz(path: str | Path, instances: Sequence[RealInstance]) -> None:
    """Write instances in the generic format (image paths stored as given)."""
    stack = lambda name: np.stack([getattr(i, name) for i in instances])  # noqa: E731
    np.savez(path, image_paths=np.array([str(i.image_path) for i in instances]),
             intrinsics=stack("camera"), boxes=stack("box"), betas=stack("betas"),
             global_orient=stack("global_orient"), body_pose=stack("body_pose"),
             transl=stack("transl"), joints3d=stack("joints3d"))


class GenericNpzDataset(_RealDataset):
    """Crops of the people listed in a generic .npz file (see module docstring)."""

    def __init__(self, path: str | Path, body: Optional[torch.nn.Module] = None,
                 net: NetConfig = NetConfig(), num_kernels: int = 858) -> None:
        super().__init__(read_generic_npz(path, body), net, num_kernels)


# --- 3DPW ------------------------------------------------------------------------------------
def threedpw_instances(sequence_file: str | Path, image_root: str | Path, body: torch.nn.Module,
                       frame_step: int = 1) -> list[RealInstance]:
    """All (actor, frame) instances with a valid camera pose of one 3DPW sequence file.

    Args:
        sequence_file: ``sequenceFiles/<split>/<name>.pkl``.
        image_root: the folder holding ``imageFiles/`` (or ``imageFiles`` itself).
        body: the body model (its rest root joint converts the translation to the camera frame).
        frame_step: keep every n-th frame.
    """
    seq = load_numpy_pickle(sequence_file)
    if not isinstance(seq, dict):
        raise ValueError(f"{sequence_file}: not a 3DPW sequence dict")
    name = _str(seq["sequence"])
    root = Path(image_root)
    image_dir = root / name if (root / name).is_dir() else root / "imageFiles" / name
    k = np.asarray(seq["cam_intrinsics"], dtype=np.float64)
    camera = np.array([k[0, 0], k[1, 1], k[0, 2], k[1, 2]])
    cam_poses = np.asarray(seq["cam_poses"], dtype=np.float64)
    out = []
    for actor in range(len(seq["poses"])):
        betas = np.asarray(seq["betas"][actor], dtype=np.float64).reshape(-1)[:NUM_BETAS]
        poses = np.asarray(seq["poses"][actor], dtype=np.float64)
        trans = np.asarray(seq["trans"][actor], dtype=np.float64)
        joints_w = np.asarray(seq["jointPositions"][actor], dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
        valid = np.asarray(seq["campose_valid"][actor]).astype(bool)
        frames = [f for f in range(0, len(poses), frame_step) if valid[f]]
        if not frames:
            continue
        rest_root = _rest_root(body, betas)
        for f in frames:
            out.append(_threedpw_instance(image_dir / f"image_{f:05d}.jpg", camera, cam_poses[f],
                                          betas, poses[f], trans[f], joints_w[f], rest_root))
    return out


def _rest_root(body: torch.nn.Module, betas: np.ndarray) -> np.ndarray:
    zeros = np.zeros((1, 3))
    return _body_joints(body, betas[None], zeros, np.zeros((1, 69)), zeros)[0, 0]


def _threedpw_instance(image: Path, camera: np.ndarray, world_to_cam: np.ndarray, betas: np.ndarray,
                       pose: np.ndarray, trans: np.ndarray, joints_w: np.ndarray,
                       rest_root: np.ndarray) -> RealInstance:
    """World-frame SMPL parameters -> camera-frame parameters, joints and box.

    SMPL maps a rest point v to R_go (v - J0) + J0 + trans; in the camera, R_c (.) + t_c. With
    orientation R_c R_go the body model gives R_c R_go (v - J0) + J0 + transl, hence
    transl = R_c (J0 + trans) + t_c - J0.
    """
    rot_c, t_c = world_to_cam[:3, :3], world_to_cam[:3, 3]
    orient = (Rotation.from_matrix(rot_c) * Rotation.from_rotvec(pose[:3])).as_rotvec()
    transl = rot_c @ (rest_root + trans) + t_c - rest_root
    joints = joints_w @ rot_c.T + t_c
    z = np.maximum(joints[:, 2], 1e-6)
    uv = np.stack([camera[0] * joints[:, 0] / z + camera[2], camera[1] * joints[:, 1] / z + camera[3]], 1)
    lo, hi = uv.min(0), uv.max(0)
    grow = (hi - lo) * THREEDPW_BOX_MARGIN
    return RealInstance(image_path=image, camera=camera, box=np.concatenate([lo - grow, hi + grow]),
                        betas=betas, global_orient=orient, body_pose=pose[3:], transl=transl,
                        joints3d=joints)


class ThreeDPWDataset(_RealDataset):
    """Crops of 3DPW people from sequence files (see module docstring for the layout)."""

    def __init__(self, sequence_files: Sequence[str | Path], image_root: str | Path,
                 body: torch.nn.Module, net: NetConfig = NetConfig(), frame_step: int = 1,
                 num_kernels: int = 858) -> None:
        instances: list[RealInstance] = []
        for path in sequence_files:
            instances += threedpw_instances(path, image_root, body, frame_step)
        super().__init__(instances, net, num_kernels)
