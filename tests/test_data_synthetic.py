"""Synthetic scenes and crops: determinism, geometric consistency of every truth field."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from nbf_ros.config import NetConfig, SyntheticConfig
from nbf_ros.data import appearance as app
from nbf_ros.data.crops import downsample_labels, render_crop
from nbf_ros.data.dataset import ShardDataset, SyntheticCropDataset, write_shards
from nbf_ros.data.scene import (OCCLUDED_BY_OBJECT, SELF_OCCLUDED, VISIBLE,
                                joint_visibility_state, normalised_joint_visibility, render_scene)
from nbf_ros.geometry.camera import project_points
from nbf_ros.types import BodyParams

CFG = SyntheticConfig()


def _occluded_cfg() -> SyntheticConfig:
    return dataclasses.replace(CFG, occlusion=dataclasses.replace(CFG.occlusion, prob=1.0))


def _params(sample) -> BodyParams:
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)[None]  # noqa: E731
    return BodyParams(t(sample.betas), t(sample.global_orient), t(sample.body_pose), t(sample.transl))


def test_crop_is_deterministic_by_seed_and_split(body, labels) -> None:
    a, b = render_crop(11, CFG, body, labels), render_crop(11, CFG, body, labels)
    for name, value in a.__dict__.items():
        np.testing.assert_array_equal(value, getattr(b, name), err_msg=name)
    c = render_crop(12, CFG, body, labels)
    assert not np.array_equal(a.image, c.image)
    d = render_crop(11, dataclasses.replace(CFG, split="test"), body, labels)
    assert not np.array_equal(a.body_pose, d.body_pose)


def test_crop_truth_is_consistent_with_the_body_and_the_camera(body, labels) -> None:
    net = NetConfig()
    for seed in range(3):
        s = render_crop(seed, CFG, body, labels, net)
        out = body(_params(s))
        # joints3d are the body model's joints for the stored parameters (transl included).
        np.testing.assert_allclose(out.joints[0].detach().numpy(), s.joints3d, atol=1e-5)
        # joints2d = pinhole projection of joints3d with the crop camera.
        fx, fy, cx, cy = s.crop_camera
        ref = project_points(torch.as_tensor(s.joints3d), fx, fy, cx, cy).numpy()
        np.testing.assert_allclose(s.joints2d, ref, atol=1e-6)
        # The crop follows the inference rule: its camera is the image camera seen through it.
        ifx, ify, icx, icy, _, _ = s.image_camera
        x0, y0, side = s.crop_box
        k = net.crop_size / side
        np.testing.assert_allclose([fx, fy, cx, cy], [ifx * k, ify * k, k * (icx + 0.5 - x0) - 0.5,
                                                      k * (icy + 0.5 - y0) - 0.5], rtol=1e-9)
        # The person is inside the crop and the person mask agrees with the kernel labels.
        assert s.person_mask.sum() > 5
        assert np.all((s.kernel_index >= 0) <= (s.person_mask > 0))
        assert s.image.shape == (128, 128, 3) and s.kernel_index.shape == (32, 32)


def test_kernel_map_matches_projected_kernels(body, labels) -> None:
    """At full resolution, the label at a visible kernel's projection is that kernel (or a near
    neighbour on the surface: the pixel centre may fall on an adjacent face)."""
    net = NetConfig(crop_size=192, feature_stride=1)
    rest_kernels = labels.rest_vertices[labels.kernel_vertex_ids]
    exact, near, total = 0, 0, 0
    for seed in range(3):
        s = render_crop(seed, CFG, body, labels, net, occlusion=False)
        verts = body(_params(s)).vertices[0].detach().numpy()[labels.kernel_vertex_ids]
        fx, fy, cx, cy = s.crop_camera
        uv = np.rint(np.stack([fx * verts[:, 0] / verts[:, 2] + cx, fy * verts[:, 1] / verts[:, 2] + cy], 1))
        ids = np.nonzero((s.kernel_visibility == 1.0) & np.all((uv >= 1) & (uv < 191), axis=1))[0]
        cols, rows = uv[ids, 0].astype(int), uv[ids, 1].astype(int)
        # Kernels on the silhouette may project just off the body: keep interior ones.
        interior = np.all([s.kernel_index[rows + dv, cols + du] >= 0
                           for du in (-1, 0, 1) for dv in (-1, 0, 1)], axis=0)
        ids, rows, cols = ids[interior], rows[interior], cols[interior]
        got = s.kernel_index[rows, cols]
        dist = np.linalg.norm(rest_kernels[np.maximum(got, 0)] - rest_kernels[ids], axis=1)
        exact += int((got == ids).sum())
        near += int(((got >= 0) & (dist < 0.1)).sum())
        total += ids.size
    assert total > 60
    assert exact / total > 0.85 and near / total > 0.95


def test_occlusion_masks_cover_the_hidden_person(body, labels) -> None:
    cfg = _occluded_cfg()
    seen_occlusion = False
    for seed in range(6):
        s = render_crop(seed, cfg, body, labels)
        # Whatever hides the person is an occluder: occluded <= occluder coverage per block.
        assert np.all(s.occluded_mask <= s.occluder_mask + 1e-6)
        assert np.all(s.joint_surface_seen <= s.joint_surface_self_seen + 1e-12)
        hidden = s.joint_state == OCCLUDED_BY_OBJECT
        assert np.all(s.joint_visibility[hidden] < 0.5)
        assert np.all(s.joint_visibility[s.joint_state == VISIBLE] >= 0.5)
        assert np.all(s.kernel_index[s.person_mask == 0] == -1)
        seen_occlusion |= s.occluded_mask.sum() > 1
    assert seen_occlusion
    clean = render_crop(0, cfg, body, labels, occlusion=False)
    assert clean.occluder_mask.sum() == 0 and clean.occluded_mask.sum() == 0
    np.testing.assert_allclose(clean.joint_surface_seen, clean.joint_surface_self_seen)
    assert not np.any(clean.joint_state == OCCLUDED_BY_OBJECT)
    exposed = clean.joint_surface_self_seen >= 0.15
    assert exposed.sum() > 5
    np.testing.assert_allclose(clean.joint_visibility[exposed], 1.0)


def test_scene_truth_is_consistent(body, labels) -> None:
    cfg = dataclasses.replace(_occluded_cfg(), max_people=2)
    for seed in range(2):
        scene = render_scene(seed, cfg, body, labels)
        h, w = scene.image.shape[:2]
        assert (w, h) == (scene.camera.width, scene.camera.height) and scene.image.dtype == np.uint8
        assert len(scene.people) >= 1
        np.testing.assert_array_equal(scene.kernel_index >= 0, scene.person_index >= 0)
        assert not np.any(scene.occluder_mask & (scene.person_index >= 0))
        np.testing.assert_array_equal(scene.occluder_index >= 0, scene.occluder_mask)
        assert scene.occluder_index.max() < len(scene.occluder_kinds)
        for i, person in enumerate(scene.people):
            out = body(person.params())
            np.testing.assert_allclose(out.joints[0].detach().numpy(), person.joints3d, atol=1e-5)
            rows, cols = np.nonzero(scene.person_index == i)
            if rows.size == 0:
                continue
            x0, y0, x1, y1 = person.bbox
            assert cols.min() >= x0 - 1 and cols.max() <= x1 + 1
            assert rows.min() >= y0 - 1 and rows.max() <= y1 + 1
            vx0, vy0, vx1, vy1 = person.visible_bbox
            assert vx0 >= x0 - 1.5 and vx1 <= x1 + 1.5 and vy0 >= y0 - 1.5 and vy1 <= y1 + 1.5
        # The occlusion mask marks pixels where some person's own surface is hidden.
        assert not np.any(scene.occlusion_mask & (scene.person_index < 0) & ~scene.occluder_mask
                          & np.isinf(scene.depth))


def test_crop_pixels_outside_the_image_are_black_and_unlabelled(body, labels) -> None:
    cfg = dataclasses.replace(CFG, camera=dataclasses.replace(CFG.camera, truncation_prob=1.0),
                              box_jitter_shift=0.3)
    found = False
    for seed in range(12):
        s = render_crop(seed, cfg, body, labels)
        outside = s.inside_mask == 0
        if outside.any():
            found = True
            assert np.all(s.kernel_index[outside] == -1) and np.all(s.person_mask[outside] == 0)
            block = np.kron(outside, np.ones((4, 4), bool))
            assert np.all(s.image[block] == 0)
    assert found


def test_downsample_labels_majority_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 3, size=(8, 12))
    got = downsample_labels(labels, 4)
    for i in range(2):
        for j in range(3):
            block = labels[4 * i:4 * i + 4, 4 * j:4 * j + 4].ravel()
            values, counts = np.unique(block, return_counts=True)
            assert got[i, j] == values[np.argmax(counts)]  # np.unique sorts: ties -> smaller
    np.testing.assert_array_equal(downsample_labels(labels, 4, "center"), labels[2::4, 2::4])
    fg = downsample_labels(labels, 4, "foreground")
    for i in range(2):
        for j in range(3):
            block = labels[4 * i:4 * i + 4, 4 * j:4 * j + 4].ravel()
            values, counts = np.unique(block[block >= 0], return_counts=True)
            expected = values[np.argmax(counts)] if (block >= 0).mean() >= 0.25 else -1
            assert fg[i, j] == expected
    thin = np.full((4, 4), -1)
    thin[:, 1] = 7  # a one-pixel-wide limb: background wins the plain majority
    assert downsample_labels(thin, 4)[0, 0] == -1 and downsample_labels(thin, 4, "foreground")[0, 0] == 7


def test_dataset_workers_and_shards_round_trip(body, labels, tmp_path: Path) -> None:
    ds = SyntheticCropDataset(body, CFG, NetConfig(), length=5, seed=100, kernels=labels)
    direct = [ds[i] for i in range(5)]
    assert direct[0]["image"].shape == (3, 128, 128) and direct[0]["image"].dtype == torch.float32
    assert direct[0]["kernel_index"].dtype == torch.int64
    assert direct[0]["kernel_visibility"].shape == (labels.num_kernels,)
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2)
    batch = next(iter(loader))
    for name in direct[0]:
        torch.testing.assert_close(batch[name], torch.stack([d[name] for d in direct]))
    write_shards(tmp_path, CFG, 5, 100, body=body, shard_size=2, kernels=labels, progress=False)
    shards = ShardDataset(tmp_path)
    assert len(shards) == 5 and shards.config == CFG
    for i in (0, 3, 4):
        for name, value in direct[i].items():
            torch.testing.assert_close(shards[i][name], value)
    # Resuming with other settings into the same directory is refused.
    with pytest.raises(ValueError):
        write_shards(tmp_path, CFG, 6, 100, body=body, shard_size=2, kernels=labels, progress=False)


def test_texture_and_photo_splits_are_disjoint() -> None:
    rng = np.random.default_rng(0)
    assert all(app.texture_id(rng, "train") % 2 == 0 for _ in range(50))
    assert all(app.texture_id(rng, "test") % 2 == 1 for _ in range(50))
    train, test = set(app.photo_sources("train")), set(app.photo_sources("test"))
    assert train and test and not train & test
    assert "skimage:astronaut" not in train | test
    assert len(test) * 3 <= len(train) + 3


def test_joint_visibility_state_and_normalisation_rules() -> None:
    seen = np.array([0.5, 0.1, 0.05, 0.3, 0.0])
    own = np.array([0.5, 0.5, 0.05, 0.5, 0.0])
    np.testing.assert_array_equal(joint_visibility_state(seen, own),
                                  [VISIBLE, OCCLUDED_BY_OBJECT, SELF_OCCLUDED, VISIBLE, SELF_OCCLUDED])
    np.testing.assert_allclose(normalised_joint_visibility(seen, own), [1.0, 0.2, 1 / 3, 0.6, 0.0])


def test_exterior_vertices_exclude_hidden_geometry(labels) -> None:
    from nbf_ros.data.occluders import box_mesh
    from nbf_ros.data.scene import exterior_vertices

    outer_v, outer_f = box_mesh(np.array([1.0, 1.0, 1.0]))
    inner_v, inner_f = box_mesh(np.array([0.3, 0.3, 0.3]))
    verts = np.concatenate([outer_v, inner_v])
    faces = np.concatenate([outer_f, inner_f + len(outer_v)])
    ext = exterior_vertices(verts, faces, size=64)
    assert ext[:len(outer_v)].all() and not ext[len(outer_v):].any()
    # The body: most vertices are outside, every joint has some nearby outer surface.
    assert 0.8 < labels.exterior.mean() <= 1.0
    assert np.all(labels.joint_region.sum(1) >= 20)
    assert not np.any(labels.joint_region[:, ~labels.exterior])


def test_bad_generator_settings_are_rejected(body, labels) -> None:
    bad = [dataclasses.replace(CFG, camera=dataclasses.replace(CFG.camera, distance_m=(5.0, 1.0))),
           dataclasses.replace(CFG, occlusion=dataclasses.replace(CFG.occlusion, prob=1.5)),
           dataclasses.replace(CFG, max_people=0)]
    for cfg in bad:
        with pytest.raises(ValueError, match="SyntheticConfig"):
            render_crop(0, cfg, body, labels)
    with pytest.raises(ValueError, match="split"):
        render_crop(0, dataclasses.replace(CFG, split="val"), body, labels)
    with pytest.raises(ValueError, match="multiple"):
        render_crop(0, CFG, body, labels, NetConfig(crop_size=130, feature_stride=4))
