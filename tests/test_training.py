"""Training maths against brute-force references, the bank, checkpoints and strict weight loading."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nbf_ros.config import NbfConfig, NetConfig, TrainConfig, to_dict
from nbf_ros.evaluation.metrics import mpjpe, pa_mpjpe
from nbf_ros.geometry.camera import project_points, translation_to_weak_perspective
from nbf_ros.geometry.rotations import axis_angle_to_matrix
from nbf_ros.nets.bank import MemoryBank, ema_bank_update
from nbf_ros.nets.weights import WeightsError, load_network, save_weights
from nbf_ros.training.checkpoint import load_checkpoint, save_checkpoint
from nbf_ros.training.context import kernel_adjacency
from nbf_ros.training.losses import (background_loss, gaussian_heatmap_targets,
                                     kernel_contrastive_loss, weak_perspective_project)
from nbf_ros.training.trainer import BodyContext, Trainer

T = 0.07


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors


def _unit(*shape: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _tiny_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    n, k, o, d, m = 7, 6, 2, 4, 3
    feats = _unit(n, d, seed=seed)
    kid = torch.randint(0, k, (n,), generator=gen)
    bins = torch.softmax(torch.randn(n, o, generator=gen), dim=1)
    bank = _unit(k, o, d, seed=seed + 1)
    bg = _unit(m, d, seed=seed + 2)
    excluded = torch.rand(k, k, generator=gen) < 0.3
    excluded = excluded | excluded.T | torch.eye(k, dtype=torch.bool)
    return feats, kid, bins, bank, bg, excluded


def _brute_contrast(feats, kid, bins, bank, bg, excluded, bg_weight):
    total = 0.0
    k, o, _ = bank.shape
    for i in range(feats.shape[0]):
        f, ki = feats[i].double(), int(kid[i])
        negs = sum(math.exp(float(f @ bank[j, b].double()) / T)
                   for j in range(k) if not excluded[ki, j] for b in range(o))
        negs += sum(bg_weight * math.exp(float(f @ bg[m_].double()) / T) for m_ in range(bg.shape[0]))
        for b in range(o):
            pos = math.exp(float(f @ bank[ki, b].double()) / T)
            total += float(bins[i, b]) * -math.log(pos / (pos + negs))
    return total / feats.shape[0]


def test_contrastive_loss_matches_brute_force() -> None:
    feats, kid, bins, bank, bg, excluded = _tiny_problem()
    got = kernel_contrastive_loss(feats, kid, bins, bank, bg, excluded, T, 5e-3)
    assert float(got) == pytest.approx(_brute_contrast(feats, kid, bins, bank, bg, excluded, 5e-3), rel=1e-5)
    # Without a background bank only kernels are negatives.
    got0 = kernel_contrastive_loss(feats, kid, bins, bank, bg[:0], excluded, T, 5e-3)
    assert float(got0) == pytest.approx(_brute_contrast(feats, kid, bins, bank, bg[:0], excluded, 5e-3), rel=1e-5)


def test_contrastive_loss_ignores_neighbours_and_own_other_bins() -> None:
    """Moving an excluded neighbour's entries, or the kernel's bin that has zero weight, changes nothing."""
    feats, kid, bins, bank, bg, excluded = _tiny_problem(3)
    feats, kid = feats[:1], kid[:1]
    k0 = int(kid[0])
    bins = torch.tensor([[1.0, 0.0]])
    excluded = torch.eye(bank.shape[0], dtype=torch.bool)
    neighbour = (k0 + 1) % bank.shape[0]
    excluded[k0, neighbour] = excluded[neighbour, k0] = True
    base = kernel_contrastive_loss(feats, kid, bins, bank, bg, excluded, T, 5e-3)
    moved = bank.clone()
    moved[neighbour] = feats[0]  # a neighbour identical to the feature: would be a hard negative
    moved[k0, 1] = feats[0]      # the same kernel's other bin: neither positive nor negative here
    assert float(kernel_contrastive_loss(feats, kid, bins, moved, bg, excluded, T, 5e-3)) == pytest.approx(float(base))
    other = bank.clone()
    other[(k0 + 2) % bank.shape[0]] = feats[0]  # a non-neighbour: the loss must grow
    assert float(kernel_contrastive_loss(feats, kid, bins, other, bg, excluded, T, 5e-3)) > float(base) + 0.1


def test_background_loss_matches_brute_force() -> None:
    feats, _, _, bank, bg, _ = _tiny_problem(1)
    proto = F.normalize(bg.mean(0), dim=0)
    want = 0.0
    for f in feats.double():
        pos = math.exp(float(f @ proto.double()) / T)
        negs = sum(math.exp(float(f @ e.double()) / T) for e in bank.reshape(-1, bank.shape[-1]))
        want += -math.log(pos / (pos + negs))
    assert float(background_loss(feats, bank, proto, T)) == pytest.approx(want / feats.shape[0], rel=1e-5)


def test_ema_update_matches_per_kernel_loop() -> None:
    feats, kid, bins, bank, _, _ = _tiny_problem(2)
    got = ema_bank_update(bank, feats, kid, bins, 0.9)
    want = bank.clone()
    for k in range(bank.shape[0]):
        rows = (kid == k).nonzero().flatten()
        for o in range(bank.shape[1]):
            w = bins[rows, o]
            if len(rows) == 0 or float(w.sum()) == 0.0:
                continue
            mean = (w[:, None] * feats[rows]).sum(0) / w.sum()
            alpha = 0.1 * float(w.sum()) / len(rows)
            want[k, o] = F.normalize((1 - alpha) * bank[k, o] + alpha * mean, dim=0)
    torch.testing.assert_close(got, want)
    unseen = sorted(set(range(bank.shape[0])) - set(kid.tolist()))
    assert unseen, "the fixture should leave some kernel unseen"
    torch.testing.assert_close(got[unseen], bank[unseen])


def test_ema_update_reduces_to_coke_with_one_bin() -> None:
    bank = _unit(3, 1, 4, seed=5)
    feats = _unit(4, 4, seed=6)
    kid = torch.tensor([1, 1, 2, 1])
    got = ema_bank_update(bank, feats, kid, torch.ones(4, 1), 0.9)
    want1 = F.normalize(0.9 * bank[1, 0] + 0.1 * feats[[0, 1, 3]].mean(0), dim=0)
    want2 = F.normalize(0.9 * bank[2, 0] + 0.1 * feats[2], dim=0)
    torch.testing.assert_close(got[1, 0], want1)
    torch.testing.assert_close(got[2, 0], want2)
    torch.testing.assert_close(got[0], bank[0])


def test_background_fifo_wraps_and_counts() -> None:
    bank = MemoryBank(2, 1, 2, background_size=4)
    rows = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    bank.push_background(rows[:3])
    assert int(bank.background_count) == 3
    bank.push_background(rows[3:6])  # rows 4, 5 overwrite the two oldest (0, 1)
    assert int(bank.background_count) == 4 and int(bank.background_ptr) == 2
    torch.testing.assert_close(bank.background_features, rows[[4, 5, 2, 3]])
    torch.testing.assert_close(bank.background_prototype(), F.normalize(rows[2:6].mean(0), dim=0))


def test_kernel_adjacency_from_faces() -> None:
    # Two triangles (0,1,2) and (2,1,3); vertices 0,1 -> kernel 0, 2 -> kernel 1, 3 -> kernel 2.
    adj = kernel_adjacency(np.array([[0, 1, 2], [2, 1, 3]]), np.array([0, 0, 1, 2]), 4)
    want = np.eye(4, dtype=bool)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        want[a, b] = want[b, a] = True
    np.testing.assert_array_equal(adj.numpy(), want)
    with pytest.raises(ValueError):
        kernel_adjacency(np.array([[0, 1, 5]]), np.array([0, 0, 1, 2]), 4)


def test_pa_mpjpe_removes_similarity_transforms() -> None:
    target = torch.randn(2, 24, 3, generator=torch.Generator().manual_seed(0))
    rot = axis_angle_to_matrix(torch.tensor([[0.3, -1.2, 0.5], [2.0, 0.1, 0.0]]))
    pred = 1.7 * target @ rot.transpose(1, 2) + torch.tensor([0.5, -2.0, 3.0])
    assert float(pa_mpjpe(pred, target).max()) < 1e-4
    shifted = target + torch.tensor([1.0, 2.0, 3.0])
    assert float(mpjpe(shifted, target).max()) < 1e-6
    assert float(mpjpe(pred, target).min()) > 0.1


def test_weak_perspective_matches_pinhole_on_the_body_plane() -> None:
    """Points at the translation's depth project identically under both camera models."""
    size, f = 128, 300.0
    principal = torch.tensor([[60.0, 70.0]])
    transl = torch.tensor([[0.2, -0.1, 4.0]])
    cam = translation_to_weak_perspective(transl, f, principal, size)
    pts = torch.tensor([[[0.3, 0.5, 0.0], [-0.4, -0.8, 0.0]]])
    want = project_points(pts + transl[:, None], f, f, principal[0, 0], principal[0, 1])
    torch.testing.assert_close(weak_perspective_project(pts, cam, size), want, atol=1e-4, rtol=0)


def test_heatmap_targets_peak_at_the_joint() -> None:
    joints = torch.tensor([[[4 * 5 + 1.5, 4 * 9 + 1.5], [0.0, 127.0]]])
    hm = gaussian_heatmap_targets(joints, 128, 4, 1.0)
    assert hm.shape == (1, 2, 32, 32)
    torch.testing.assert_close(hm.sum((-2, -1)), torch.ones(1, 2))
    assert int(hm[0, 0].flatten().argmax()) == 9 * 32 + 5


# --- trainer, checkpoints and weights ---------------------------------------------------------
K, O = 12, 2
NET = NetConfig(crop_size=32, feature_dim=8, base_channels=8, head_channels=8,
                regressor_reduced_channels=4, regressor_hidden=16)


def _context() -> BodyContext:
    """A differentiable stand-in for the body model and NBV with the same interfaces."""
    rest = torch.randn(24, 3, generator=torch.Generator().manual_seed(1)) * 0.3
    directions = F.normalize(torch.randn(K, 3, generator=torch.Generator().manual_seed(2)), dim=-1)

    def joints_fn(rotmats: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        local = torch.einsum("bjxy,jy->bjx", rotmats, rest)  # each joint rotated by its own matrix
        return local + betas[:, None, :3] * 0.05

    def orientation(joints3d: torch.Tensor) -> torch.Tensor:
        z = torch.tanh(joints3d[:, :1, 2:3] - joints3d[:, 12:13, 2:3])  # B x 1 x 1
        logits = torch.stack([directions[None, :, 2] * z[..., 0], -directions[None, :, 2] * z[..., 0]], -1)
        return torch.softmax(4.0 * logits, dim=-1)  # B x K x O

    adjacency = torch.eye(K, dtype=torch.bool)
    adjacency[torch.arange(K - 1), torch.arange(1, K)] = True
    adjacency = adjacency | adjacency.T
    return BodyContext(joints_fn, orientation, adjacency, torch.randn(K, 3) * 0.3, torch.arange(K) % 3)


def _batch(seed: int, b: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(b, 3, 32, 32, generator=g),
            "kernel_index": torch.randint(-1, K, (b, 8, 8), generator=g),
            "joints2d": torch.rand(b, 24, 2, generator=g) * 32,
            "joints3d": torch.randn(b, 24, 3, generator=g) * 0.3,
            "betas": torch.randn(b, 10, generator=g),
            "global_orient": torch.randn(b, 3, generator=g),
            "body_pose": torch.randn(b, 69, generator=g) * 0.2,
            "transl": torch.tensor([[0.1, 0.2, 3.0]]).repeat(b, 1),
            "crop_camera": torch.tensor([[50.0, 50.0, 15.5, 15.5]]).repeat(b, 1)}


def _config(tmp_path) -> NbfConfig:
    base = NbfConfig()
    return replace(base, net=NET, nbv=replace(base.nbv, orientation_bins=O, feature_dim=8),
                   train=TrainConfig(out_dir=str(tmp_path), batch_size=2, steps=10, warmup_steps=2,
                                     background_bank_size=16, max_contrast_pixels=64,
                                     background_pixels_per_image=4))


def test_training_step_is_finite_and_moves_the_bank(tmp_path) -> None:
    trainer = Trainer(_config(tmp_path), _context(), torch.device("cpu"))
    before = trainer.bank.kernel_features.clone()
    terms = trainer.train_step(_batch(0), 0)
    assert all(math.isfinite(v) for v in terms.values())
    assert int(trainer.bank.background_count) == 8
    assert not torch.equal(before, trainer.bank.kernel_features)


@pytest.mark.parametrize("target", ["surface", "part"])
def test_alternative_feature_targets_train_and_keep_the_bank_format(tmp_path, target: str) -> None:
    cfg = _config(tmp_path)
    cfg = replace(cfg, train=replace(cfg.train, feature_target=target, part_count=4,
                                     surface_sigma_m=0.3))
    trainer = Trainer(cfg, _context(), torch.device("cpu"))
    before = trainer.bank.kernel_features.clone()
    for step in range(2):
        terms = trainer.train_step(_batch(step), step)
        assert all(math.isfinite(v) for v in terms.values())
    bank = trainer.bank.kernel_features
    assert bank.shape == (K, O, 8) and not torch.equal(before, bank)
    assert torch.allclose(bank.norm(dim=-1), torch.ones(K, O), atol=1e-5)
    if target == "part":  # every kernel of a patch holds its patch's entry, before and after
        patches = trainer.target.class_of_kernel
        assert len(set(patches.tolist())) == 4
        for kernel in range(K):
            first = int((patches == patches[kernel]).nonzero()[0])
            assert torch.equal(bank[kernel], bank[first])


def test_resume_reproduces_the_next_step(tmp_path) -> None:
    cfg = _config(tmp_path)
    key = to_dict(cfg)
    a = Trainer(cfg, _context(), torch.device("cpu"))
    for step in range(2):
        a.train_step(_batch(step), step)
    save_checkpoint(tmp_path / "last.pt", a.net, a.bank, a.optimizer, 2, 4, 1.0, key)
    want = a.train_step(_batch(2), 2)
    torch.manual_seed(123)  # a different global RNG state must not matter
    b = Trainer(cfg, _context(), torch.device("cpu"))
    state = load_checkpoint(tmp_path / "last.pt", b.net, b.bank, key)
    b.optimizer.load_state_dict(state.optimizer)
    assert (state.step, state.images_seen) == (2, 4)
    got = b.train_step(_batch(2), 2)
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-6)
    torch.testing.assert_close(b.bank.kernel_features, a.bank.kernel_features)
    with pytest.raises(WeightsError, match="different configuration"):
        load_checkpoint(tmp_path / "last.pt", b.net, b.bank, {**key, "train": {**key["train"], "seed": 1}})
    # A setting added to the code since the checkpoint (with its default) does not block resuming.
    load_checkpoint(tmp_path / "last.pt", b.net, b.bank, {**key, "new_section": {"x": 1}})


def test_weights_round_trip_and_strict_errors(tmp_path) -> None:
    torch.manual_seed(0)
    cfg = _config(tmp_path)
    trainer = Trainer(cfg, _context(), torch.device("cpu"))
    trainer.train_step(_batch(0), 0)
    path = tmp_path / "w.pt"
    save_weights(trainer.net, trainer.bank, path)
    net, bank = load_network(path, NET)
    assert not net.training
    torch.testing.assert_close(bank.kernel_features, trainer.bank.kernel_features, atol=1e-3, rtol=0)
    x = torch.rand(1, 3, 32, 32)
    trainer.net.eval()
    with torch.no_grad():  # float16 storage: features agree to ~1e-2
        torch.testing.assert_close(net(x).features, trainer.net(x).features, atol=2e-2, rtol=0)

    with pytest.raises(WeightsError, match="not found"):
        load_network(tmp_path / "missing.pt", NET)
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightsError, match="not a readable"):
        load_network(tmp_path / "corrupt.pt", NET)
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(WeightsError, match="must hold a dict"):
        load_network(tmp_path / "tensor.pt", NET)
    with pytest.raises(WeightsError, match="feature_dim"):
        load_network(path, replace(NET, feature_dim=16))
    with pytest.raises(WeightsError, match="shape|missing"):
        load_network(path, replace(NET, base_channels=16))
    with pytest.raises(WeightsError, match="missing"):
        load_network(path, replace(NET, encoder_blocks=(2, 1, 1, 1)))


def test_feature_counts_on_a_constructed_map() -> None:
    """Pixels whose feature equals a bank entry are classified as that entry."""
    from nbf_ros.evaluation.metrics import feature_counts

    bank = _unit(3, 2, 4, seed=7)
    proto = F.normalize(-bank.reshape(-1, 4).mean(0), dim=0)
    feats = torch.stack([bank[0, 1], bank[2, 0], bank[1, 1], proto]).T.reshape(1, 4, 2, 2)
    kernel_index = torch.tensor([[[0, 1], [1, -1]]])  # pixel 1 is wrong (looks like kernel 2)
    bins = torch.tensor([[[0.2, 0.8], [0.9, 0.1], [0.9, 0.1]]])  # kernel 1's true bin is 0
    adjacency = torch.eye(3, dtype=torch.bool)
    adjacency[1, 2] = adjacency[2, 1] = True
    sites = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.05, 0.0, 0.0]])
    c = feature_counts(feats, kernel_index, bins, bank, proto, adjacency, sites, torch.tensor([0, 1, 2]))
    assert (c.fg_pixels, c.kernel_correct, c.neighbour_correct, c.within_10cm) == (3, 2, 3, 3)
    assert c.part_correct == 2
    # Pixel 0 and 2 match their own kernel exactly (2 of 3 kernels below: 2/3); pixel 1's kernel
    # is less similar than kernel 2 but more than kernel 0 or not: checked against brute force.
    per_kernel = (feats.reshape(4, 4).T[:3] @ bank.reshape(6, 4).T).reshape(3, 3, 2).max(-1).values
    truth = torch.tensor([0, 1, 1])
    want = sum(float((per_kernel[i] < per_kernel[i, truth[i]]).float().mean()) for i in range(3))
    assert c.rank_sum == pytest.approx(want)
    assert c.true_bin_counts == [1, 1]  # right pixels: kernel 0 (true bin 1), kernel 1 (true bin 0)
    assert c.summary()["bin_majority_baseline"] == 0.5
    assert c.bin_correct == 1  # pixel 0 (bin 1 of kernel 0) right; pixel 2 has bin 1, truth 0
    assert (c.bg_pixels, c.bg_correct) == (1, 1)
    # Left/right: kernels 1 and 2 sit on the same side, so the confusion of pixel 1 is no swap;
    # with kernel 2 moved to the other side of the midplane it is one of 2 lateral pixels.
    assert (c.lateral_pixels, c.side_swapped) == (2, 0)
    sites[2, 0] = -1.0
    c = feature_counts(feats, kernel_index, bins, bank, proto, adjacency, sites, torch.tensor([0, 1, 2]))
    assert (c.lateral_pixels, c.side_swapped) == (2, 1) and c.summary()["left_right_swap"] == 0.5


def test_step_sampler_is_a_function_of_the_step() -> None:
    from itertools import islice

    from nbf_ros.training.data import StepSampler

    full = list(islice(iter(StepSampler(10, 4, 0, seed=3)), 40))
    assert full[:10] == list(range(10))  # epoch 0 in order
    assert sorted(full[10:20]) == list(range(10)) and full[10:20] != list(range(10))
    resumed = list(islice(iter(StepSampler(10, 4, 5, seed=3)), 20))
    assert resumed == full[20:40]
    ranks = [list(islice(iter(StepSampler(10, 2, 0, seed=3, rank=r, world=2)), 4)) for r in (0, 1)]
    assert ranks == [[0, 1, 4, 5], [2, 3, 6, 7]]


def test_kernel_remap_reorders_generator_labels_into_nbv_order() -> None:
    from nbf_ros.training.data import kernel_remap

    generator = np.array([10, 20, 30, 40])
    nbv = np.array([10, 30, 20, 40])  # the same sites, two swapped
    remap = kernel_remap(generator, nbv)
    np.testing.assert_array_equal(remap, [0, 2, 1, 3])
    np.testing.assert_array_equal(nbv[remap], generator)  # same vertex after re-indexing
    with pytest.raises(ValueError, match="not the NBV's"):
        kernel_remap(generator, np.array([10, 30, 20, 50]))


def test_radius_exclusion_adds_nearby_kernels_only() -> None:
    from nbf_ros.training.trainer import excluded_negatives

    ctx = _context()
    ctx.kernel_sites = torch.zeros(K, 3)
    ctx.kernel_sites[:, 0] = torch.arange(K) * 0.04  # kernels 4 cm apart on a line
    assert torch.equal(excluded_negatives(ctx, 0.0), ctx.adjacency)
    wide = excluded_negatives(ctx, 0.10)
    assert bool(wide[0, 2]) and not bool(wide[0, 3])  # 8 cm in, 12 cm out
    assert bool((wide | ~ctx.adjacency).all())  # a superset of the 1-hop rule


def test_data_mean_body_keeps_upright_root_and_averages_joints() -> None:
    from nbf_ros.geometry.rotations import rotation_6d_to_matrix
    from nbf_ros.training.trainer import data_mean_body

    batch = _batch(4, b=2)
    batch["body_pose"] = torch.zeros(2, 69)
    batch["body_pose"][0, 0] = 0.4   # joint 1 about x: +0.4 and -0.4 average to the identity
    batch["body_pose"][1, 0] = -0.4
    batch["body_pose"][:, 3 * 5 + 1] = 0.3  # joint 6 about y in both samples
    pose6d, cam = data_mean_body(batch, 32)
    rot = rotation_6d_to_matrix(pose6d)
    torch.testing.assert_close(rot[0], torch.diag(torch.tensor([1.0, -1.0, -1.0])))
    torch.testing.assert_close(rot[1], torch.eye(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(rot[6], axis_angle_to_matrix(torch.tensor([0.0, 0.3, 0.0])), atol=1e-6, rtol=0)
    assert cam.shape == (3,)
    net = Trainer(_config(Path("/tmp")), _context(), torch.device("cpu")).net
    net.regressor.set_initial(pose6d, torch.zeros(10), cam)
    with pytest.raises(ValueError):
        net.regressor.set_initial(pose6d[:5], torch.zeros(10), cam)
