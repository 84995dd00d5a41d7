"""The one palette and the one overlay (inference/overlay.py); the RViz markers use the same
palette, so a saved overlay, the debug image and RViz agree."""
import numpy as np

from nbf_ros.inference import overlay
from nbf_ros.types import NUM_JOINTS, FrameResult, Person


def _person(visibility: float) -> Person:
    uv = np.column_stack([np.linspace(60, 140, NUM_JOINTS), np.linspace(40, 260, NUM_JOINTS)])
    joints3d = np.column_stack([np.zeros(NUM_JOINTS), np.linspace(-0.9, 0.9, NUM_JOINTS),
                                np.full(NUM_JOINTS, 3.0)])
    return Person(id=1, bbox=np.array([50.0, 30.0, 150.0, 270.0]), joints3d=joints3d, joints2d=uv,
                  joint_visibility=np.full(NUM_JOINTS, visibility), confidence=0.9,
                  betas=np.zeros(10), global_orient=np.array([np.pi, 0.0, 0.0]), body_pose=np.zeros(69),
                  transl=joints3d[0], joint_confidence=np.ones(NUM_JOINTS))


def test_palette_converts_to_the_8_bit_colours_the_images_use():
    assert overlay.to_rgb8(overlay.SKELETON_RGB) == (51, 153, 255)
    assert overlay.to_rgb8(overlay.BOX_RGB) == (255, 255, 0)
    assert overlay.to_rgb8(overlay.visibility_colour(1.0)) == overlay.to_rgb8(overlay.VISIBLE_RGB)
    assert overlay.to_rgb8(overlay.visibility_colour(float("nan"))) == overlay.to_rgb8(overlay.OCCLUDED_RGB)


def test_markers_take_their_colours_from_the_palette():
    from nbf_ros.ros import conversions as conv

    assert conv.SKELETON_RGBA == (*overlay.SKELETON_RGB, 1.0)
    assert conv.TEXT_RGBA == (*overlay.TEXT_RGB, 1.0)
    assert conv.visibility_colour(0.3) == overlay.visibility_colour(0.3)


def test_overlay_draws_joint_colours_by_visibility_on_a_copy():
    image = np.zeros((300, 200, 3), np.uint8)
    for visibility in (1.0, 0.0, 0.5):
        person = _person(visibility)
        u, v = np.round(person.joints2d[10]).astype(int)
        out = overlay.draw_overlay(image, [person])
        assert tuple(out[v, u]) == overlay.to_rgb8(overlay.visibility_colour(visibility))
    assert not image.any()


def test_saved_overlay_is_the_debug_image(tmp_path):
    import cv2

    image = np.full((300, 200, 3), 90, np.uint8)
    person = _person(0.7)
    path = overlay.save_overlay(image, FrameResult(people=[person]), tmp_path / "o.png")
    np.testing.assert_array_equal(cv2.imread(str(path))[..., ::-1], overlay.draw_overlay(image, [person]))


def test_bad_joints_are_left_out_without_raising():
    person = _person(1.0)
    person.joints2d[3] = np.nan
    person.joints2d[4] = 1e9
    person.joint_visibility[5] = np.nan
    out = overlay.draw_overlay(np.zeros((300, 200, 3), np.uint8), [person])
    assert out.any()
