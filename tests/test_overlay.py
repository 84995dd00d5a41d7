"""The one palette and the two overlay looks (inference/overlay.py); the RViz markers use the
same palette."""
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
    assert overlay.to_rgb8(overlay.REPORT_VISIBLE_RGB) == (40, 220, 60)
    assert overlay.to_rgb8(overlay.REPORT_OCCLUDED_RGB) == (235, 60, 40)
    assert overlay.to_rgb8(overlay.REPORT_BONE_RGB) == (250, 250, 250)
    assert overlay.to_rgb8(overlay.REPORT_BOX_RGB) == (80, 160, 255)
    assert overlay.to_rgb8(overlay.SKELETON_RGB) == (51, 153, 255)
    assert overlay.to_rgb8(overlay.DEBUG_BOX_RGB) == (255, 255, 0)


def test_markers_take_their_colours_from_the_palette():
    from nbf_ros.ros import conversions as conv

    assert conv.SKELETON_RGBA == (*overlay.SKELETON_RGB, 1.0)
    assert conv.TEXT_RGBA == (*overlay.TEXT_RGB, 1.0)


def test_both_looks_draw_joint_colours_by_visibility_on_a_copy():
    image = np.zeros((300, 200, 3), np.uint8)
    for visibility, report, debug in ((1.0, overlay.REPORT_VISIBLE_RGB, overlay.VISIBLE_RGB),
                                      (0.0, overlay.REPORT_OCCLUDED_RGB, overlay.OCCLUDED_RGB)):
        person = _person(visibility)
        u, v = np.round(person.joints2d[10]).astype(int)
        out = overlay.render_overlay(image, FrameResult(people=[person]))
        assert tuple(out[v, u]) == overlay.to_rgb8(report)
        out = overlay.debug_overlay(image, [person])
        assert tuple(out[v, u]) == overlay.to_rgb8(debug)
    assert not image.any()
