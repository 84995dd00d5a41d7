"""Rotation conversions: torch (differentiable, batched over leading dims) and a few numpy ones.

Axis-angle is what the body model takes; the 6D representation (Zhou et al. 2019, first two
columns of the rotation matrix) is what networks regress because it is continuous. The numpy
helpers at the end wrap ``scipy.spatial.transform.Rotation`` (same numbers) so that runtime code
asks geometry for a rotation instead of depending on scipy's API; the offline data generator
still uses ``Rotation`` objects directly.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, ... x 3 -> ... x 3 x 3; smooth at zero (Taylor terms below 1e-4 rad)."""
    angle_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)  # ... x 1
    small = angle_sq < 1e-8
    safe_sq = torch.where(small, torch.ones_like(angle_sq), angle_sq)
    angle = safe_sq.sqrt()
    # sin(t)/t and (1-cos t)/t^2 with their series near 0 so gradients stay finite.
    sinc = torch.where(small, 1.0 - angle_sq / 6.0, torch.sin(angle) / angle)
    cosc = torch.where(small, 0.5 - angle_sq / 24.0, (1.0 - torch.cos(angle)) / safe_sq)
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*x.shape, 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(skew)
    return eye + sinc[..., None] * skew + cosc[..., None] * (skew @ skew)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """... x 3 x 3 rotation matrices -> ... x 3 axis-angle (angle in [0, pi]).

    Goes through quaternions, which is stable near 0 and pi where the log-map formula is not.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """... x 3 x 3 -> ... x 4 (w, x, y, z), w >= 0; picks the best-conditioned of four candidates."""
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    q_abs_sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                            1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    q_abs = torch.sqrt(torch.clamp(q_abs_sq, min=1e-12))
    # Each row: the quaternion computed from the diagonal element of that index (times 4|q_i|).
    candidates = torch.stack([
        torch.stack([q_abs[..., 0] ** 2, m[..., 2, 1] - m[..., 1, 2],
                     m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], q_abs[..., 1] ** 2,
                     m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1],
                     q_abs[..., 2] ** 2, m[..., 2, 1] + m[..., 1, 2]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 2, 0] + m[..., 0, 2],
                     m[..., 2, 1] + m[..., 1, 2], q_abs[..., 3] ** 2], -1),
    ], -2)
    candidates = candidates / (2.0 * q_abs[..., :, None])
    best = q_abs.argmax(-1)
    quat = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    quat = F.normalize(quat, dim=-1)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """... x 4 (w, x, y, z) -> ... x 3 axis-angle."""
    xyz = quat[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    half = torch.atan2(sin_half, quat[..., :1])
    angle = 2.0 * half
    small = sin_half < 1e-6
    # angle / sin(angle/2) -> 2 (1 + angle^2/24) near 0.
    scale = torch.where(small, 2.0 + angle * angle / 12.0,
                        angle / torch.where(small, torch.ones_like(sin_half), sin_half))
    return xyz * scale


def rotation_6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """... x 6 -> ... x 3 x 3 by Gram-Schmidt; the 6 numbers are the first two matrix columns."""
    a1, a2 = rot6d[..., 0:3], rot6d[..., 3:6]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """... x 3 x 3 -> ... x 6 (first two columns, column-major)."""
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


# -- numpy (scipy) ---------------------------------------------------------------------------------
def axis_angle_to_quaternion_xyzw(axis_angle: np.ndarray) -> np.ndarray:
    """... x 3 axis-angle -> ... x 4 unit quaternion (x, y, z, w): scalar last, as ROS messages
    (geometry_msgs/Quaternion) and scipy order it, unlike the torch (w, x, y, z) above."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(axis_angle, dtype=np.float64)).as_quat()


def turn_about_local_axis(axis_angle: np.ndarray, axis: str, angle: float) -> np.ndarray:
    """... x 3 axis-angle R -> axis-angle of R * R_axis(angle): the rotation turned by ``angle``
    radians about its own (local) ``axis`` ('x', 'y' or 'z'), e.g. a body about its vertical."""
    from scipy.spatial.transform import Rotation

    return (Rotation.from_rotvec(axis_angle) * Rotation.from_euler(axis, angle)).as_rotvec()
