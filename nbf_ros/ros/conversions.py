"""ROS message <-> numpy conversions, as small pure functions (no torch, no node state).

Why not cv_bridge: it is not installable here (ROS 2's cv_bridge is not on PyPI) and the
conversions we need are a few lines of numpy, which we can test byte by byte. Inputs are read by
attribute (``encoding``, ``height``, ``width``, ``step``, ``data``, ``k`` ...), so the functions
accept rclpy messages and ``rosbags`` messages alike.

Output messages carry the *input image's* header (stamp and frame_id): 3D points are in that
camera's optical frame (REP-103: x right, y down, z forward), metres.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from nbf_ros.errors import NbfError
from nbf_ros.geometry.depth import depth_to_metres
from nbf_ros.inference.overlay import SKELETON_RGB, TEXT_RGB, person_label, visibility_colour
from nbf_ros.types import JOINT_PARENTS, NUM_JOINTS, CameraIntrinsics, Person

# encoding -> (numpy dtype, channels, channel order of the colour channels)
ENCODINGS: dict[str, tuple[type, int, str]] = {
    "rgb8": (np.uint8, 3, "rgb"),
    "bgr8": (np.uint8, 3, "bgr"),
    "rgba8": (np.uint8, 4, "rgb"),
    "bgra8": (np.uint8, 4, "bgr"),
    "mono8": (np.uint8, 1, "mono"),
    "8UC1": (np.uint8, 1, "mono"),
    "8UC3": (np.uint8, 3, "bgr"),  # OpenCV's default channel order
    "mono16": (np.uint16, 1, "mono"),
    "16UC1": (np.uint16, 1, "mono"),
    "rgb16": (np.uint16, 3, "rgb"),
    "bgr16": (np.uint16, 3, "bgr"),
}
"""Supported sensor_msgs/Image encodings (names as in sensor_msgs/image_encodings.hpp)."""


class ImageError(NbfError, ValueError):
    """An image message that cannot be used; ``reason`` is a short key counted in diagnostics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class CameraInfoError(NbfError, ValueError):
    """A CameraInfo whose K cannot describe a pinhole camera (zero, negative or non-finite)."""


# -- images ----------------------------------------------------------------------------------------
def image_to_rgb(msg: Any, max_side: int = 4096) -> np.ndarray:
    """sensor_msgs/Image -> H x W x 3 uint8 RGB (a new, contiguous array).

    16-bit images are scaled to 8 bits (v / 257, rounded: 65535 -> 255); alpha is dropped; grey
    is replicated to three channels. Raises ImageError (with ``reason``) for an unsupported
    encoding, a zero or too large size (either side > ``max_side``), a row step smaller than
    width x pixel size, or a data length different from step x height.
    """
    encoding = str(msg.encoding)
    if encoding not in ENCODINGS:
        raise ImageError("encoding", f"unsupported image encoding {encoding!r}; supported: "
                         f"{', '.join(ENCODINGS)}")
    dtype, channels, order = ENCODINGS[encoding]
    pixels = _pixels(msg, dtype, channels, max_side)
    if pixels.dtype.itemsize == 2:
        pixels = np.round(pixels.astype(np.float32) / 257.0).astype(np.uint8)
    return _to_rgb(pixels, order)


DEPTH_ENCODINGS: dict[str, type] = {"16UC1": np.uint16, "mono16": np.uint16, "32FC1": np.float32}
"""Depth encodings: 16-bit millimetres (0 = no data) or 32-bit float metres (0/NaN = no data)."""


def depth_image_to_metres(msg: Any, max_side: int = 4096) -> np.ndarray:
    """sensor_msgs/Image depth (``16UC1``/``mono16`` millimetres, ``32FC1`` metres) -> H x W
    float32 metres, NaN where there is no data (``geometry.depth.depth_to_metres``). Raises
    ImageError like ``image_to_rgb`` (reason ``encoding`` for any other encoding)."""
    encoding = str(msg.encoding)
    if encoding not in DEPTH_ENCODINGS:
        raise ImageError("encoding", f"unsupported depth encoding {encoding!r}; supported: "
                         f"{', '.join(DEPTH_ENCODINGS)}")
    return depth_to_metres(_pixels(msg, DEPTH_ENCODINGS[encoding], 1, max_side)[:, :, 0])


def _pixels(msg: Any, dtype: type, channels: int, max_side: int) -> np.ndarray:
    """The H x W x C array of an Image message's data (native byte order), size and layout
    checked (ImageError)."""
    encoding = str(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError("size", f"empty image {width} x {height}")
    if max(height, width) > max_side:
        raise ImageError("too_large", f"image {width} x {height} exceeds max_image_side = {max_side}")
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if step < row_bytes:
        raise ImageError("step", f"step {step} < width x pixel size = {row_bytes} ({encoding})")
    raw = np.frombuffer(msg.data, dtype=np.uint8) if len(msg.data) else np.zeros(0, np.uint8)
    if raw.size != step * height:
        raise ImageError("data_size", f"data has {raw.size} bytes, expected step x height = "
                         f"{step} x {height} = {step * height}")
    rows = raw.reshape(height, step)[:, :row_bytes]
    wire = np.dtype(dtype).newbyteorder(">" if int(msg.is_bigendian) else "<")
    return np.ascontiguousarray(rows).view(wire).reshape(height, width, channels).astype(dtype)


def _to_rgb(pixels: np.ndarray, order: str) -> np.ndarray:
    """H x W x C uint8 in ``order`` -> H x W x 3 RGB, contiguous."""
    if order == "mono":
        return np.ascontiguousarray(np.repeat(pixels[:, :, :1], 3, axis=2))
    rgb = pixels[:, :, :3]
    if order == "bgr":
        rgb = rgb[:, :, ::-1]
    return np.ascontiguousarray(rgb)


@dataclass
class EncodedImage:
    """The wire fields of a sensor_msgs/Image (without header)."""

    encoding: str
    height: int
    width: int
    step: int
    data: bytes
    is_bigendian: int = 0


def encode_image(rgb: np.ndarray, encoding: str = "rgb8", row_padding: int = 0) -> EncodedImage:
    """H x W x 3 uint8 RGB -> image fields in ``encoding`` (the inverse of ``image_to_rgb``).

    Grey encodings use the mean of the channels; 16-bit ones scale by 257 (so that a round trip
    through ``image_to_rgb`` is exact); ``row_padding`` extra bytes per row exercise ``step``.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected H x W x 3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}")
    dtype, channels, order = ENCODINGS[encoding]
    if order == "mono":
        pixels = np.round(rgb.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
    else:
        pixels = rgb[:, :, ::-1] if order == "bgr" else rgb
        if channels == 4:
            pixels = np.concatenate([pixels, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    if np.dtype(dtype).itemsize == 2:
        pixels = pixels.astype("<u2") * 257
    height, width = rgb.shape[:2]
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    if row_padding:
        rows = np.hstack([rows, np.zeros((height, row_padding), np.uint8)])
    return EncodedImage(encoding, height, width, rows.shape[1], rows.tobytes(), 0)


def rgb_to_image_msg(rgb: np.ndarray, header: Any, encoding: str = "rgb8"):
    """H x W x 3 uint8 RGB -> sensor_msgs/Image with ``header``."""
    return _image_msg(encode_image(rgb, encoding), header)


def _image_msg(fields: EncodedImage, header: Any):
    """sensor_msgs/Image with ``header`` carrying the encoded ``fields``."""
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header = header
    msg.height, msg.width, msg.step = fields.height, fields.width, fields.step
    msg.encoding, msg.is_bigendian = fields.encoding, fields.is_bigendian
    msg.data = fields.data
    return msg


def encode_depth(depth_m: np.ndarray, encoding: str = "16UC1") -> EncodedImage:
    """H x W metres (NaN = no data) -> depth image fields: ``16UC1`` millimetres (rounded, 0 =
    no data) or ``32FC1`` metres (NaN kept); the inverse of ``depth_image_to_metres``."""
    from nbf_ros.geometry.depth import metres_to_millimetres

    depth_m = np.asarray(depth_m)
    if depth_m.ndim != 2:
        raise ValueError(f"expected an H x W depth image, got shape {depth_m.shape}")
    if encoding == "16UC1":
        pixels = metres_to_millimetres(depth_m).astype("<u2")
    elif encoding == "32FC1":
        pixels = depth_m.astype("<f4")
    else:
        raise ValueError(f"unsupported depth encoding {encoding!r}")
    height, width = depth_m.shape
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    return EncodedImage(encoding, height, width, rows.shape[1], rows.tobytes(), 0)


def depth_to_image_msg(depth_m: np.ndarray, header: Any, encoding: str = "16UC1"):
    """H x W metres (NaN = no data) -> sensor_msgs/Image (``16UC1`` mm or ``32FC1`` m)."""
    return _image_msg(encode_depth(depth_m, encoding), header)


# -- camera info -----------------------------------------------------------------------------------
def camera_info_to_intrinsics(msg: Any) -> CameraIntrinsics:
    """sensor_msgs/CameraInfo -> intrinsics from K (row-major 3 x 3); raises CameraInfoError.

    Width or height 0 (some drivers leave them unset) is kept as 0 and replaced by the image
    size in ``geometry.camera.intrinsics_for_image``. Distortion is not modelled: subscribe to a
    rectified image.
    """
    k = np.asarray(list(msg.k), dtype=np.float64)
    if k.size != 9:
        raise CameraInfoError(f"CameraInfo.k must have 9 values, got {k.size}")
    if not np.all(np.isfinite(k)):
        raise CameraInfoError(f"CameraInfo.k has non-finite values: {k.tolist()}")
    fx, fy, cx, cy = k[0], k[4], k[2], k[5]
    if fx <= 0 or fy <= 0:
        raise CameraInfoError(f"CameraInfo.k has no valid focal length (fx={fx}, fy={fy}); "
                              "is the camera calibrated?")
    return CameraIntrinsics(float(fx), float(fy), float(cx), float(cy), int(msg.width), int(msg.height))


# -- time ------------------------------------------------------------------------------------------
def stamp_to_seconds(stamp: Any) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds: exact, so stamps can be compared and used
    as keys (image/CameraInfo pairing, matching outputs to inputs)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


# -- joints as a point cloud -------------------------------------------------------------------------
JOINT_CLOUD_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("confidence", "<f4"),
                              ("visibility", "<f4"), ("person_id", "<u4"), ("joint_id", "<u4")])
"""Layout of one ``~/joints`` point (interfaces.md): 28 bytes, little endian, no padding."""


def people_to_joint_array(people: Sequence[Person]) -> np.ndarray:
    """People -> (len(people) * 24,) structured array of JOINT_CLOUD_DTYPE, person-major."""
    points = np.zeros(len(people) * NUM_JOINTS, dtype=JOINT_CLOUD_DTYPE)
    for i, person in enumerate(people):
        block = points[i * NUM_JOINTS:(i + 1) * NUM_JOINTS]
        joints = np.asarray(person.joints3d, dtype=np.float64).reshape(NUM_JOINTS, 3)
        block["x"], block["y"], block["z"] = joints[:, 0], joints[:, 1], joints[:, 2]
        block["confidence"] = np.asarray(person.joint_confidence, dtype=np.float64).reshape(NUM_JOINTS)
        block["visibility"] = np.asarray(person.joint_visibility, dtype=np.float64).reshape(NUM_JOINTS)
        block["person_id"] = int(person.id)
        block["joint_id"] = np.arange(NUM_JOINTS)
    return points


def people_to_pointcloud(people: Sequence[Person], header: Any):
    """People -> sensor_msgs/PointCloud2 (unorganised: height 1, width = 24 x people)."""
    from sensor_msgs.msg import PointCloud2, PointField

    points = people_to_joint_array(people)
    type_ids = {"<f4": PointField.FLOAT32, "<u4": PointField.UINT32}
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, len(points)
    msg.fields = [PointField(name=name, offset=JOINT_CLOUD_DTYPE.fields[name][1],
                             datatype=type_ids[JOINT_CLOUD_DTYPE.fields[name][0].str], count=1)
                  for name in JOINT_CLOUD_DTYPE.names]
    msg.is_bigendian = False
    msg.point_step = JOINT_CLOUD_DTYPE.itemsize
    msg.row_step = msg.point_step * msg.width
    msg.data = points.tobytes()
    msg.is_dense = bool(np.all(np.isfinite(points["x"]) & np.isfinite(points["y"])
                               & np.isfinite(points["z"])))
    return msg


_POINTFIELD_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def pointcloud_to_array(msg: Any) -> np.ndarray:
    """sensor_msgs/PointCloud2 -> structured array named by its fields (any layout, for readers)."""
    endian = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": [f.name for f in msg.fields],
                      "formats": [endian + _POINTFIELD_DTYPES[int(f.datatype)] for f in msg.fields],
                      "offsets": [int(f.offset) for f in msg.fields], "itemsize": int(msg.point_step)})
    count = int(msg.width) * int(msg.height)
    raw = np.frombuffer(msg.data, dtype=np.uint8) if len(msg.data) else np.zeros(0, np.uint8)
    if raw.size != count * int(msg.point_step):
        raise ValueError(f"PointCloud2 data has {raw.size} bytes, expected {count * int(msg.point_step)}")
    return raw.view(dtype) if count else np.zeros(0, dtype)


# -- poses -----------------------------------------------------------------------------------------
def root_quaternion(global_orient: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) -> unit quaternion (x, y, z, w), ROS order."""
    from nbf_ros.geometry.rotations import axis_angle_to_quaternion_xyzw

    return axis_angle_to_quaternion_xyzw(np.asarray(global_orient, dtype=np.float64).reshape(3))


def people_to_pose_array(people: Sequence[Person], header: Any):
    """One pose per person: the pelvis position and the body's global orientation."""
    from geometry_msgs.msg import Pose, PoseArray

    msg = PoseArray()
    msg.header = header
    for person in people:
        pose = Pose()
        pelvis = np.asarray(person.joints3d, dtype=np.float64)[0]
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in pelvis)
        q = root_quaternion(person.global_orient)
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in q)
        msg.poses.append(pose)
    return msg


# -- markers ---------------------------------------------------------------------------------------
# Colours come from the one palette (inference/overlay.py), so RViz and the debug image agree.
SKELETON_RGBA = (*SKELETON_RGB, 1.0)
TEXT_RGBA = (*TEXT_RGB, 1.0)
LINE_WIDTH_M = 0.03
JOINT_DIAMETER_M = 0.06
TEXT_HEIGHT_M = 0.12
LABEL_ABOVE_HEAD_M = 0.25
HEAD_JOINT = 15
SKELETON_ID, JOINTS_ID, LABEL_ID = 0, 1, 2
"""Marker ids inside a person's namespace: stable, so RViz replaces instead of accumulating."""
SURFACE_NAMESPACE = "body_surface"
"""Namespace of the body-surface markers, one per person with marker id = person id (stable, like
the ids above): one namespace, so RViz's MarkerArray display hides every surface with one tick."""
# The mean nearest-neighbour spacing of the 858 NBV kernels on the template mesh is 3.6 cm
# (10-90 %: 3.2-4.3 cm), so 4 cm spheres just touch and read as a closed surface.
SURFACE_POINT_DIAMETER_M = 0.04
# Translucent, so that the skeleton and joints inside the body stay visible.
SURFACE_ALPHA = 0.6
# Brightness of a surface point whose nearest joint is fully occluded (1 = fully visible).
SURFACE_OCCLUDED_BRIGHTNESS = 0.35


def person_namespace(person_id: int) -> str:
    return f"person_{int(person_id)}"


def _point(xyz: Iterable[float]):
    from geometry_msgs.msg import Point

    x, y, z = (float(v) for v in xyz)
    return Point(x=x, y=y, z=z)


def _colour(rgba: Sequence[float]):
    from std_msgs.msg import ColorRGBA

    r, g, b, a = (float(v) for v in rgba)
    return ColorRGBA(r=r, g=g, b=b, a=a)


def _points(xyz: np.ndarray) -> list:
    """N x 3 -> N geometry_msgs/Point; via ``tolist`` (~10x faster than ``_point`` per row, which
    matters for the ~860 body-surface points per person)."""
    from geometry_msgs.msg import Point

    return [Point(x=x, y=y, z=z) for x, y, z in np.asarray(xyz, dtype=np.float64).tolist()]


def _colours(rgba: np.ndarray) -> list:
    """N x 4 -> N std_msgs/ColorRGBA (as ``_points``)."""
    from std_msgs.msg import ColorRGBA

    return [ColorRGBA(r=r, g=g, b=b, a=a) for r, g, b, a in np.asarray(rgba, dtype=np.float64).tolist()]


def _duration(seconds: float):
    from builtin_interfaces.msg import Duration

    sec = int(math.floor(seconds))
    return Duration(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def _base_marker(header: Any, ns: str, marker_id: int, kind: int, lifetime_s: float):
    from visualization_msgs.msg import Marker

    marker = Marker()
    marker.header = header
    marker.ns, marker.id, marker.type, marker.action = ns, marker_id, kind, Marker.ADD
    marker.pose.orientation.w = 1.0
    marker.lifetime = _duration(lifetime_s)
    return marker


def person_markers(person: Person, header: Any, lifetime_s: float) -> list:
    """Skeleton LINE_LIST, joint SPHERE_LIST coloured by visibility, and a text label."""
    from visualization_msgs.msg import Marker

    ns = person_namespace(person.id)
    joints = np.asarray(person.joints3d, dtype=np.float64).reshape(NUM_JOINTS, 3)
    if not np.all(np.isfinite(joints)):
        return []
    skeleton = _base_marker(header, ns, SKELETON_ID, Marker.LINE_LIST, lifetime_s)
    skeleton.scale.x = LINE_WIDTH_M
    skeleton.color = _colour(SKELETON_RGBA)
    for child, parent in enumerate(JOINT_PARENTS):
        if parent >= 0:
            skeleton.points.extend([_point(joints[parent]), _point(joints[child])])
    spheres = _base_marker(header, ns, JOINTS_ID, Marker.SPHERE_LIST, lifetime_s)
    spheres.scale.x = spheres.scale.y = spheres.scale.z = JOINT_DIAMETER_M
    spheres.color = _colour(visibility_colour(1.0))
    visibility = np.asarray(person.joint_visibility, dtype=np.float64).reshape(NUM_JOINTS)
    spheres.points = [_point(j) for j in joints]
    spheres.colors = [_colour(visibility_colour(v)) for v in visibility]
    label = _base_marker(header, ns, LABEL_ID, Marker.TEXT_VIEW_FACING, lifetime_s)
    head = joints[HEAD_JOINT]
    label.pose.position = _point(head + np.array([0.0, -LABEL_ABOVE_HEAD_M, 0.0]))  # y is down
    label.scale.z = TEXT_HEIGHT_M
    label.color = _colour(TEXT_RGBA)
    label.text = person_label(person)
    return [skeleton, spheres, label]


def surface_colours(points: np.ndarray, joints: np.ndarray, visibility: np.ndarray) -> np.ndarray:
    """K x 4 RGBA in 0..1: the skeleton colour, dimmed by the visibility of each point's nearest
    joint (K x 3 points, 24 x 3 joints, (24,) visibility; NaN visibility counts as occluded).

    The fit gives visibility per joint, not per point; the nearest joint is a free, good enough
    proxy to show which part of the body the fit believes hidden.
    """
    points, joints = np.asarray(points, dtype=np.float64), np.asarray(joints, dtype=np.float64)
    visibility = np.asarray(visibility, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or joints.ndim != 2 or joints.shape[1] != 3 \
            or visibility.shape != (len(joints),):
        raise ValueError(f"expected K x 3 points, J x 3 joints, (J,) visibility; got {points.shape}, "
                         f"{joints.shape}, {visibility.shape}")
    nearest = np.argmin(((points[:, None, :] - joints[None, :, :]) ** 2).sum(-1), axis=1)
    seen = np.clip(np.nan_to_num(visibility, nan=0.0), 0.0, 1.0)[nearest]
    brightness = SURFACE_OCCLUDED_BRIGHTNESS + (1.0 - SURFACE_OCCLUDED_BRIGHTNESS) * seen
    rgb = brightness[:, None] * np.asarray(SKELETON_RGBA[:3])
    return np.column_stack([rgb, np.full(len(points), SURFACE_ALPHA)])


def surface_marker(person: Person, header: Any, lifetime_s: float):
    """Body-surface SPHERE_LIST of ``person.surface_points`` (K x 3), or None when the person has
    no surface points or any point or joint is not finite (never draw a garbage body)."""
    from visualization_msgs.msg import Marker

    if person.surface_points is None:
        return None
    points = np.asarray(person.surface_points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"surface_points must be K x 3, got {points.shape}")
    joints = np.asarray(person.joints3d, dtype=np.float64).reshape(NUM_JOINTS, 3)
    if not (np.all(np.isfinite(points)) and np.all(np.isfinite(joints))):
        return None
    visibility = np.asarray(person.joint_visibility, dtype=np.float64).reshape(NUM_JOINTS)
    marker = _base_marker(header, SURFACE_NAMESPACE, int(person.id), Marker.SPHERE_LIST, lifetime_s)
    marker.scale.x = marker.scale.y = marker.scale.z = SURFACE_POINT_DIAMETER_M
    marker.color = _colour(SKELETON_RGBA[:3] + (SURFACE_ALPHA,))
    marker.points = _points(points)
    marker.colors = _colours(surface_colours(points, joints, visibility))
    return marker


def _delete_marker(header: Any, ns: str, marker_id: int):
    from visualization_msgs.msg import Marker

    marker = Marker()
    marker.header = header
    marker.ns, marker.id, marker.action = ns, int(marker_id), Marker.DELETE
    return marker


def people_to_markers(people: Sequence[Person], header: Any, lifetime_s: float,
                      vanished_ids: Iterable[int] = ()):
    """One MarkerArray per frame: every person's markers (and body surface when the person has
    ``surface_points``), DELETE for people gone since last frame."""
    from visualization_msgs.msg import MarkerArray

    msg = MarkerArray()
    for pid in vanished_ids:
        for marker_id in (SKELETON_ID, JOINTS_ID, LABEL_ID):
            msg.markers.append(_delete_marker(header, person_namespace(pid), marker_id))
        msg.markers.append(_delete_marker(header, SURFACE_NAMESPACE, pid))
    for person in people:
        msg.markers.extend(person_markers(person, header, lifetime_s))
        surface = surface_marker(person, header, lifetime_s)
        if surface is not None:
            msg.markers.append(surface)
    return msg


def delete_all_markers(header: Any):
    """A MarkerArray that clears everything this publisher drew (sent on deactivate)."""
    from visualization_msgs.msg import Marker, MarkerArray

    marker = Marker()
    marker.header = header
    marker.action = Marker.DELETEALL
    return MarkerArray(markers=[marker])
