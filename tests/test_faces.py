"""Faces on the rendered people (nbf_ros/data/appearance.py, ``SyntheticAppearanceConfig.faces``):
features land where a face has them, nothing else of a scene changes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nbf_ros.config import SyntheticAppearanceConfig, SyntheticConfig, resolve_path
from nbf_ros.data import appearance as app


@pytest.fixture(scope="module")
def body():
    from nbf_ros.body.model import BodyModel

    return BodyModel(resolve_path("models/nbf_body.npz"))


@pytest.fixture(scope="module")
def labels(body):
    from nbf_ros.data.scene import body_labels

    return body_labels(body)


def outfit(labels, faces: bool) -> app.Outfit:
    return app.random_outfit(np.random.default_rng(7), "test", labels.lbs_weights, labels.rest_vertices,
                             labels.rest_joints, SyntheticAppearanceConfig(faces=faces))


def test_nose_tip_is_the_most_forward_head_vertex_and_the_face_is_head_skin_in_front(labels):
    face = outfit(labels, True).face
    head = np.argmax(labels.lbs_weights, axis=1) == 15
    assert face.nose_tip[2] == labels.rest_vertices[head, 2].max()
    assert not (face.vertices & ~head).any()
    assert face.vertices.sum() > 100
    assert (labels.rest_vertices[face.vertices, 2] > face.nose_tip[2] - app.Face.DEPTH_M).all()


def test_features_are_painted_where_a_face_has_them(labels):
    face = outfit(labels, True).face
    tip = face.nose_tip
    at = lambda x, y: tip + np.array([x, y, -0.01])  # noqa: E731  a point on the face plane
    eye_x, eye_y = app.Face.IRIS[:2]
    points = np.stack([at(eye_x, eye_y), at(-eye_x, eye_y), at(*app.Face.MOUTH[:2]),
                       at(0.05, 0.0), at(eye_x, eye_y) - [0.0, 0.0, 0.2]])  # cheek; behind the face
    skin = np.tile([0.5, 0.4, 0.3], (len(points), 1))
    painted = face.paint(points, skin)
    np.testing.assert_allclose(painted[0], app.IRIS)
    np.testing.assert_allclose(painted[1], app.IRIS)  # both eyes
    np.testing.assert_allclose(painted[2], face.skin * app.LIP_TINT)
    np.testing.assert_allclose(painted[3:], skin[3:])  # cheek and the back of the head keep skin


def test_faces_off_is_the_old_outfit(labels):
    """Off (the default) there is no face; on, the same draws give the same outfit except that
    the hair starts higher (the brows show): only head vertices between the two lines change."""
    off, on = outfit(labels, False), outfit(labels, True)
    assert off.face is None and not SyntheticAppearanceConfig().faces
    for a, b in zip(off.textures, on.textures):
        np.testing.assert_array_equal(a(labels.rest_vertices[:50]), b(labels.rest_vertices[:50]))
    changed = off.regions != on.regions
    height = labels.rest_vertices[:, 1] - labels.rest_joints[15, 1]
    assert changed.any() and (off.regions[changed] == app.HAIR).all() and (on.regions[changed] == app.SKIN).all()
    assert ((height[changed] > 0.04) & (height[changed] <= app.FOREHEAD_HAIR_LINE_M)).all()


def test_a_scene_with_faces_differs_only_on_heads(body, labels):
    """Same seed, faces on and off: no extra random draw, so only head pixels change."""
    from nbf_ros.data.scene import render_scene

    base = SyntheticConfig(split="test")
    look = dataclasses.replace(base.appearance, opencv_doc_photos=False, jpeg_prob=0.0, blur_prob=0.0)
    scenes = [render_scene(3, dataclasses.replace(base, appearance=dataclasses.replace(look, faces=f)),
                           body, labels) for f in (False, True)]
    changed = np.any(scenes[0].image != scenes[1].image, axis=2)
    assert changed.any()
    near_head = np.zeros_like(changed)
    cam = scenes[0].camera
    for person in scenes[0].people:
        u, v = person.joints2d[15]
        radius = 0.2 * cam.fy / person.joints3d[15, 2]  # 20 cm around the head joint, in pixels
        rows, cols = np.mgrid[:changed.shape[0], :changed.shape[1]]
        near_head |= (cols - u) ** 2 + (rows - v) ** 2 <= radius ** 2
    assert not (changed & ~near_head).any()
