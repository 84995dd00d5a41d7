"""CPU z-buffer rasteriser against known geometry (triangles, planes, cubes, spheres)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from nbf_ros.data.occluders import box_mesh, icosphere
from nbf_ros.data.raster import composite, rasterize_mesh, vertex_visibility
from nbf_ros.types import CameraIntrinsics

CAM = CameraIntrinsics(fx=100.0, fy=110.0, cx=31.3, cy=29.7, width=64, height=60)


def _inside_brute(tri2d: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel centres inside a 2D triangle by sign tests (independent of the rasteriser's maths)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    signs = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        pa, pb = tri2d[a], tri2d[b]
        signs.append((pb[0] - pa[0]) * (v - pa[1]) - (pb[1] - pa[1]) * (u - pa[0]))
    s = np.stack(signs)
    return np.all(s >= -1e-9, axis=0) | np.all(s <= 1e-9, axis=0)


def _project(points: np.ndarray, cam: CameraIntrinsics) -> np.ndarray:
    return np.stack([cam.fx * points[:, 0] / points[:, 2] + cam.cx,
                     cam.fy * points[:, 1] / points[:, 2] + cam.cy], 1)


def test_triangle_coverage_depth_and_barycentrics_match_geometry() -> None:
    tri = np.array([[-0.3, -0.2, 2.0], [0.25, -0.1, 2.6], [-0.05, 0.3, 1.7]])
    out = rasterize_mesh(tri, np.array([[0, 1, 2]]), CAM)
    expected = _inside_brute(_project(tri, CAM), CAM.width, CAM.height)
    np.testing.assert_array_equal(out.covered, expected)
    assert expected.sum() > 100
    # Depth: intersection of each pixel ray with the triangle's plane.
    rows, cols = np.nonzero(expected)
    rays = np.stack([(cols - CAM.cx) / CAM.fx, (rows - CAM.cy) / CAM.fy, np.ones(cols.size)], 1)
    normal = np.cross(tri[1] - tri[0], tri[2] - tri[0])
    t = (tri[0] @ normal) / (rays @ normal)
    np.testing.assert_allclose(out.depth[rows, cols], t, rtol=1e-5)
    # Perspective-correct barycentrics give the 3D point on the ray.
    points = out.bary[rows, cols].astype(np.float64) @ tri
    np.testing.assert_allclose(points, rays * t[:, None], atol=2e-5)
    np.testing.assert_allclose(out.bary[rows, cols].sum(1), 1.0, atol=1e-5)
    assert np.all(out.face_id[~expected] == -1) and np.all(np.isinf(out.depth[~expected]))


def test_nearer_surface_wins_in_any_order_and_composite_agrees() -> None:
    near_sq = np.array([[-0.2, -0.2, 1.5], [0.2, -0.2, 1.5], [0.2, 0.2, 1.5], [-0.2, 0.2, 1.5]])
    far_sq = near_sq * [2.0, 2.0, 1.0] + [0.1, 0.0, 1.5]
    quad = np.array([[0, 1, 2], [0, 2, 3]])
    both = np.concatenate([near_sq, far_sq])
    for faces in (np.concatenate([quad, quad + 4]), np.concatenate([quad + 4, quad])):
        out = rasterize_mesh(both, faces, CAM)
        drawn = out.face_id[out.covered]
        near_pixels = _inside_brute(_project(near_sq[[0, 1, 2]], CAM), 64, 60) | \
            _inside_brute(_project(near_sq[[0, 2, 3]], CAM), 64, 60)
        assert np.all(np.isin(faces[out.face_id[near_pixels]], [0, 1, 2, 3]))
        assert np.all(out.depth[near_pixels] == pytest.approx(1.5))
        assert np.any(out.depth[out.covered] > 2.9) and drawn.size > near_pixels.sum()
    separate = composite([rasterize_mesh(far_sq, quad, CAM, mesh_index=0),
                          rasterize_mesh(near_sq, quad, CAM, mesh_index=1)])
    merged = rasterize_mesh(both, np.concatenate([quad, quad + 4]), CAM)
    np.testing.assert_array_equal(separate.covered, merged.covered)
    np.testing.assert_allclose(separate.depth, merged.depth)
    np.testing.assert_array_equal(separate.mesh_id[merged.covered] == 1, merged.face_id[merged.covered] < 2)


def test_cube_silhouette_front_depth_and_backface_culling() -> None:
    verts, faces = box_mesh(np.array([0.4, 0.4, 0.4]))
    verts = verts + [0.0, 0.0, 2.0]
    out = rasterize_mesh(verts, faces, CAM)
    culled = rasterize_mesh(verts, faces, CAM, cull_backfaces=True)
    np.testing.assert_array_equal(out.covered, culled.covered)
    np.testing.assert_allclose(out.depth, culled.depth)
    # Silhouette = convex hull of the projected corners; front face z = 1.8 where it covers.
    corners = np.array(list(itertools.product([-0.2, 0.2], repeat=3))) + [0, 0, 2.0]
    from scipy.spatial import Delaunay

    hull = Delaunay(_project(corners, CAM))
    v, u = np.mgrid[0:60, 0:64]
    inside = hull.find_simplex(np.stack([u.ravel(), v.ravel()], 1)) >= 0
    np.testing.assert_array_equal(out.covered.ravel(), inside)
    front = _inside_brute(_project(corners[[0, 2, 6]], CAM), 64, 60) | \
        _inside_brute(_project(corners[[0, 6, 4]], CAM), 64, 60)
    assert front.sum() > 50
    np.testing.assert_allclose(out.depth[front], 1.8, rtol=1e-6)


def test_sphere_culling_is_lossless_and_depth_is_on_the_sphere() -> None:
    unit, faces = icosphere(3)
    centre, radius = np.array([0.1, -0.05, 1.6]), 0.3
    out = rasterize_mesh(unit * radius + centre, faces, CAM)
    culled = rasterize_mesh(unit * radius + centre, faces, CAM, cull_backfaces=True)
    np.testing.assert_array_equal(out.face_id, culled.face_id)
    rows, cols = np.nonzero(out.covered)
    rays = np.stack([(cols - CAM.cx) / CAM.fx, (rows - CAM.cy) / CAM.fy, np.ones(cols.size)], 1)
    points = rays * out.depth[rows, cols, None]
    # Inside the polyhedron, at most the sagitta of its facets below the true sphere.
    dist = np.linalg.norm(points - centre, axis=1)
    assert np.all(dist <= radius + 1e-6) and np.all(dist > radius * 0.97)


def test_faces_behind_the_near_plane_are_dropped_and_bad_input_rejected() -> None:
    tri = np.array([[-0.3, -0.2, 0.01], [0.25, -0.1, 2.6], [-0.05, 0.3, 1.7]])
    assert not rasterize_mesh(tri, np.array([[0, 1, 2]]), CAM).covered.any()
    with pytest.raises(ValueError):
        rasterize_mesh(tri[:, :2], np.array([[0, 1, 2]]), CAM)
    with pytest.raises(ValueError):
        rasterize_mesh(tri, np.array([[0, 1, 3]]), CAM)


def test_vertex_visibility_front_corners_seen_back_corners_hidden() -> None:
    verts, faces = box_mesh(np.array([0.4, 0.4, 0.4]))
    verts = verts + [0.0, 0.0, 2.0]
    out = rasterize_mesh(verts, faces, CAM)
    seen = vertex_visibility(verts, CAM, out.depth, tolerance=0.01)
    assert np.all(seen[verts[:, 2] < 1.9])       # the front face's corners
    hidden_back = (verts[:, 2] > 2.1) & (np.abs(verts[:, 0]) < 0.3)
    # Back corners project inside the front face: hidden.
    assert not np.any(seen[hidden_back & (np.abs(verts[:, 1]) < 0.3)])
    off = vertex_visibility(verts + [5.0, 0, 0], CAM, out.depth, tolerance=0.01)
    assert not off.any()
