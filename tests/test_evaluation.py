"""The occlusion protocol helpers: patch grid, pasting, worst-position search, metrics."""
import numpy as np
import pytest

from nbf_ros.evaluation.metrics import pck_head, procrustes_aligned, roc_auc, root_aligned_error
from nbf_ros.evaluation.occlusion import Patch, joints_under_patch, paste_patch, patch_grid, worst_patch


def test_grid_follows_the_224_protocol():
    grid = patch_grid(224, 80)
    assert grid[0] == Patch(0, 0, 80) and all(p.side == 80 for p in grid)
    xs = sorted({p.x for p in grid})
    assert xs[1] - xs[0] == 10 and xs[-1] + 80 <= 224 and len(grid) == len(xs) ** 2
    scaled = patch_grid(128, 40)
    assert scaled[0].side == round(40 * 128 / 224)


def test_paste_and_joints_under_patch():
    crop = np.zeros((10, 10, 3), np.uint8)
    out = paste_patch(crop, Patch(2, 3, 4), np.full((4, 4, 3), 9, np.uint8))
    assert out[3:7, 2:6].min() == 9 and out.sum() == 9 * 16 * 3 and crop.sum() == 0
    joints = np.array([[3.0, 4.0], [8.0, 8.0]])
    assert joints_under_patch(joints, Patch(2, 3, 4)).tolist() == [True, False]


def test_worst_patch_finds_the_position_that_hurts_most():
    truth = np.zeros((24, 3))
    truth[:, 0] = np.arange(24) * 0.01

    def regress(crops):  # error grows with the brightness hidden in the top-left 8 x 8 block
        damage = crops[:, :8, :8].mean(axis=(1, 2, 3)) / 255.0
        out = np.repeat(truth[None], len(crops), 0).copy()
        out[:, 5, 1] += damage
        return out

    grid = patch_grid(32, 56, stride_224=28)  # side 8, stride 4
    patch, err = worst_patch(np.zeros((32, 32, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8), grid,
                             truth, regress, batch=5)
    assert patch == Patch(0, 0, 8) and err > 0


def test_metrics_reference_values():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(24, 3))
    shifted = truth + 1.0
    assert np.allclose(root_aligned_error(shifted, truth), 0.0)
    rot = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    similar = 2.0 * truth @ rot.T + 0.3
    assert np.allclose(procrustes_aligned(similar, truth), truth, atol=1e-9)
    uv = rng.normal(size=(24, 2)) * 50
    assert pck_head(uv, uv).all()
    far = uv + 1e3
    assert not pck_head(far, uv).any()


def test_roc_auc_equals_comparing_every_pair_with_ties_half():
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 6, 300).astype(float)  # many ties
    positive = rng.random(300) < 0.3 + 0.1 * scores
    pos, neg = scores[positive], scores[~positive]
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (pos.size * neg.size)
    assert roc_auc(scores, positive) == pytest.approx(brute, abs=1e-12)
    assert roc_auc(-scores, positive) == pytest.approx(1.0 - brute, abs=1e-12)
    assert np.isnan(roc_auc(scores, np.ones(300, bool)))  # one class only
