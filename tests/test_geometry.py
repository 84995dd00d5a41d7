"""Rotations against scipy, cameras against explicit pinhole maths."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from nbf_ros.geometry.camera import (CropBox, extract_crop, intrinsics_for_image, project,
                                     project_points, translation_to_weak_perspective,
                                     weak_perspective_to_translation)
from nbf_ros.geometry.rotations import (axis_angle_to_matrix, axis_angle_to_quaternion_xyzw,
                                        matrix_to_axis_angle, matrix_to_rotation_6d,
                                        rotation_6d_to_matrix, turn_about_local_axis)
from nbf_ros.types import CameraIntrinsics


def random_rotvecs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = rng.uniform(0, np.pi * 0.999, size=(n, 1))
    angles[:3] = [[0.0], [1e-9], [np.pi - 1e-4]]
    return axes * angles


def test_axis_angle_to_matrix_matches_scipy():
    rv = random_rotvecs(200)
    ours = axis_angle_to_matrix(torch.from_numpy(rv)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(rv).as_matrix(), atol=1e-10)


def test_matrix_to_axis_angle_round_trip_including_near_pi():
    rv = random_rotvecs(200, seed=1)
    back = matrix_to_axis_angle(torch.from_numpy(Rotation.from_rotvec(rv).as_matrix())).numpy()
    # Compare rotations, not vectors (at pi, v and -v are the same rotation).
    diff = Rotation.from_rotvec(back) * Rotation.from_rotvec(rv).inv()
    assert np.max(diff.magnitude()) < 1e-6


def test_axis_angle_gradient_finite_at_zero():
    rv = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    axis_angle_to_matrix(rv).sum().backward()
    assert torch.isfinite(rv.grad).all()
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (torch.randn(4, 3, dtype=torch.float64,
                                                                        requires_grad=True),))


def test_6d_round_trip():
    mats = torch.from_numpy(Rotation.random(50, random_state=3).as_matrix())
    np.testing.assert_allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(mats)).numpy(),
                               mats.numpy(), atol=1e-12)


def test_crop_intrinsics_agree_with_affine_crop():
    camera = CameraIntrinsics(500.0, 480.0, 320.0, 240.0, 640, 480)
    box = CropBox.around_bbox([200, 100, 300, 400], scale=1.2)
    size = 128
    crop_cam = box.crop_intrinsics(camera, size)
    pts = torch.tensor([[0.3, -0.2, 3.0], [-0.1, 0.4, 2.5]], dtype=torch.float64)
    uv_img = project_points(pts, camera.fx, camera.fy, camera.cx, camera.cy).numpy()
    uv_crop = project_points(pts, crop_cam.fx, crop_cam.fy, crop_cam.cx, crop_cam.cy).numpy()
    affine = box.affine(size)
    np.testing.assert_allclose(uv_img @ affine[:, :2].T + affine[:, 2], uv_crop, atol=1e-9)
    np.testing.assert_allclose(box.crop_to_image(uv_crop, size), uv_img, atol=1e-9)


def test_extract_crop_moves_a_dot_where_the_affine_says():
    image = np.zeros((100, 120, 3), np.uint8)
    image[40, 70] = 255
    box = CropBox(50.0, 20.0, 40.0)
    crop = extract_crop(image, box, 40)  # scale 1: a pure shift
    assert crop[40 - 20, 70 - 50].tolist() == [255, 255, 255]


def test_weak_perspective_round_trip_and_projection():
    torch.manual_seed(0)
    size = 128
    focal = torch.tensor([300.0, 900.0], dtype=torch.float64)
    principal = torch.tensor([[60.0, 70.0], [63.5, 63.5]], dtype=torch.float64)
    cam = torch.tensor([[0.9, 0.05, -0.1], [1.2, -0.02, 0.2]], dtype=torch.float64)
    transl = weak_perspective_to_translation(cam, focal, principal, size)
    np.testing.assert_allclose(translation_to_weak_perspective(transl, focal, principal, size).numpy(),
                               cam.numpy(), atol=1e-12)
    # A point at the body's depth plane (z = 0 in body coordinates) projects identically.
    x = torch.tensor([[0.2, -0.3, 0.0]], dtype=torch.float64)
    for b in range(2):
        p = x + transl[b]
        uv = project_points(p, focal[b], focal[b], principal[b, 0], principal[b, 1])
        n = cam[b, 0] * (x[:, :2] + cam[b, 1:])
        uv_weak = (n + 1) * size / 2 - 0.5
        np.testing.assert_allclose(uv.numpy(), uv_weak.numpy(), atol=1e-9)


def test_scaled_intrinsics_keep_pixel_centre_convention():
    cam = CameraIntrinsics(100.0, 100.0, 63.5, 63.5, 128, 128)
    small = cam.scaled(0.25)
    assert (small.width, small.height) == (32, 32)
    assert small.cx == pytest.approx(15.5)
    assert small.fx == pytest.approx(25.0)


def test_default_intrinsics_documented_rule():
    cam = CameraIntrinsics.default_for(640, 480)
    assert cam.fx == pytest.approx(800.0) and cam.cx == 320.0 and cam.cy == 240.0


def test_project_points_same_numbers_for_numpy_and_torch():
    cam = CameraIntrinsics(500.0, 510.0, 320.5, 240.25, 640, 480)
    pts = np.random.default_rng(3).normal(0, 1, (50, 3)) + [0, 0, 4]
    pts[0, 2] = -1.0  # behind the camera: clamped by default, exact with min_depth=None
    want = project_points(torch.as_tensor(pts), cam.fx, cam.fy, cam.cx, cam.cy).numpy()
    np.testing.assert_array_equal(project_points(pts, cam.fx, cam.fy, cam.cx, cam.cy), want)
    exact = project(pts, cam)
    np.testing.assert_array_equal(exact[1:], want[1:])
    assert exact[0, 0] == pytest.approx(cam.fx * pts[0, 0] / -1.0 + cam.cx)


def test_intrinsics_for_image_default_unsized_scaled_and_as_given():
    assert intrinsics_for_image(None, 640, 480) == CameraIntrinsics.default_for(640, 480)
    calibrated = CameraIntrinsics(500.0, 510.0, 320.0, 240.0, 640, 480)
    assert intrinsics_for_image(calibrated, 640, 480) is calibrated
    assert intrinsics_for_image(calibrated, 320, 240).fx == pytest.approx(250.0)  # a resized stream
    unsized = CameraIntrinsics(500.0, 510.0, 320.0, 240.0, 0, 0)
    assert intrinsics_for_image(unsized, 800, 600) == CameraIntrinsics(500.0, 510.0, 320.0, 240.0, 800, 600)
    # the CLI's explicit intrinsics are meant for the images given: sized, never scaled
    given = intrinsics_for_image(CameraIntrinsics(500.0, 510.0, 320.0, 240.0, 1, 1), 800, 600, rescale=False)
    assert given == CameraIntrinsics(500.0, 510.0, 320.0, 240.0, 800, 600)


def test_numpy_rotation_helpers_match_scipy():
    rotvecs = np.random.default_rng(4).normal(0, 1.5, (20, 3))
    np.testing.assert_array_equal(axis_angle_to_quaternion_xyzw(rotvecs), Rotation.from_rotvec(rotvecs).as_quat())
    turned = turn_about_local_axis(rotvecs, "y", 0.7)
    want = Rotation.from_rotvec(rotvecs).as_matrix() @ Rotation.from_euler("y", 0.7).as_matrix()
    np.testing.assert_allclose(Rotation.from_rotvec(turned).as_matrix(), want, atol=1e-12)
