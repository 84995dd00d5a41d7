"""BlazePose-trunk features (issue 13): tapped graph, head, weights, cache, training, backend.

References: the original ONNX model's own outputs (the tapped graph must not change them), plain
torch ops (resampling commutes with the per-tap mix), a save/load round trip, and a tiny
synthetic contrast task whose loss must fall, identically on two runs.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nbf_ros.config import NbfConfig, resolve_path
from nbf_ros.inference.backends import NetArrays, TrunkFeatureBackend
from nbf_ros.nets.bank import MemoryBank
from nbf_ros.nets.feature_head import (TapMix, TrunkFeatureHead, load_head, resample_to_grid,
                                       save_head)
from nbf_ros.nets.trunk import (STANDARD_OUTPUTS, BlazePoseTrunk, TrunkError, TrunkOutput,
                                add_tap_outputs, crops_to_trunk_input, pool_to_grid)
from nbf_ros.nets.weights import WeightsError

MODEL = "models/blazepose_full.onnx"
TAPS = ("enc8", "dec4", "enc32")


@pytest.fixture(scope="module")
def trunk() -> BlazePoseTrunk:
    if not resolve_path(MODEL).is_file():
        pytest.skip(f"{MODEL} not present")
    return BlazePoseTrunk(MODEL, TAPS, 32)


def _crops(b: int = 2, size: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((b, 3, size, size), dtype=np.float32)


def test_tapped_graph_keeps_the_standard_outputs_exactly(trunk):
    import onnxruntime as ort

    original = ort.InferenceSession(str(resolve_path(MODEL)), providers=["CPUExecutionProvider"])
    x = crops_to_trunk_input(_crops())
    want = dict(zip(STANDARD_OUTPUTS, original.run(list(STANDARD_OUTPUTS), {"image": x})))
    got = trunk.run(_crops(), STANDARD_OUTPUTS).standard
    for name in STANDARD_OUTPUTS:  # same nodes, same kernels: bit-identical (measured: max diff 0)
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_taps_lie_on_the_fit_grid(trunk):
    out = trunk.run(_crops(3))
    assert out.taps["enc8"].shape == (3, 32, 32, 32)      # BlazePose stride 8 = crop stride 4
    assert out.taps["dec4"].shape == (3, 48, 32, 32)      # 64 x 64 pooled 2 x 2
    assert out.taps["enc32"].shape == (3, 144, 8, 8)      # coarser: upsampled by the head


def test_unknown_tap_is_an_error():
    import onnx

    model = onnx.load(str(resolve_path(MODEL))) if resolve_path(MODEL).is_file() else None
    if model is None:
        pytest.skip(f"{MODEL} not present")
    with pytest.raises(TrunkError, match="no tensor"):
        add_tap_outputs(model, ["not_a_tensor"])


def test_resize_to_trunk_input_is_bilinear_nhwc():
    x = _crops(1)
    got = crops_to_trunk_input(x)
    want = F.interpolate(torch.from_numpy(x), size=(256, 256), mode="bilinear",
                         align_corners=False).permute(0, 2, 3, 1).numpy()
    assert got.shape == (1, 256, 256, 3)
    np.testing.assert_array_equal(got, want)


def test_pool_to_grid_is_mean_pooling():
    x = np.random.default_rng(1).random((2, 5, 64, 64), dtype=np.float32)
    want = F.avg_pool2d(torch.from_numpy(x), 2).numpy()
    np.testing.assert_allclose(pool_to_grid(x, 32), want, atol=1e-6)
    assert pool_to_grid(x[..., :16, :16], 32).shape == (2, 5, 16, 16)


@pytest.mark.parametrize("side", [8, 32, 64])
def test_mixing_commutes_with_resampling(side):
    """The head mixes each tap at its own resolution; that must equal mixing after resampling."""
    torch.manual_seed(0)
    mix = TapMix(6, 4).eval()
    mix.norm.running_mean.uniform_(-1, 1)
    mix.norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 6, side, side)
    with torch.no_grad():
        before = resample_to_grid(mix(x), 32)
        after = mix(resample_to_grid(x, 32))
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-5)


def _head() -> TrunkFeatureHead:
    torch.manual_seed(0)
    return TrunkFeatureHead([32, 48, 144], 32, 16, 2, 8).eval()


def _taps(b: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(b, 32, 32, 32, generator=g), torch.randn(b, 48, 32, 32, generator=g),
            torch.randn(b, 144, 8, 8, generator=g)]


def test_head_gives_unit_features_on_the_grid():
    with torch.no_grad():
        f = _head()(_taps(3))
    assert f.shape == (3, 8, 32, 32)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(3, 32, 32), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="channels"):
        _head()(_taps()[:2])


def test_head_weights_round_trip(tmp_path: Path):
    head, bank = _head(), MemoryBank(10, 4, 8, 20)
    bank.push_background(F.normalize(torch.randn(5, 8), dim=1))
    save_head(head, bank, TAPS, tmp_path / "h.pt")
    loaded, loaded_bank, taps = load_head(tmp_path / "h.pt")
    assert taps == TAPS
    with torch.no_grad():  # float16 storage: features agree to ~1e-3
        torch.testing.assert_close(loaded(_taps()), head(_taps()), atol=5e-3, rtol=0)
    torch.testing.assert_close(loaded_bank.kernel_features, bank.kernel_features, atol=1e-3, rtol=0)
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="not a feature-head"):
        load_head(tmp_path / "bad.pt")


class _FakeTrunk:
    taps = ("a",)

    def run(self, crops: np.ndarray) -> TrunkOutput:
        return TrunkOutput({"a": crops[:, :2, ::4, ::4] * 10.0}, {})


def test_trunk_cache_fills_resumes_and_reads(tmp_path: Path):
    from nbf_ros.training.trunk_cache import fill_cache, open_cache

    rng = np.random.default_rng(0)
    crops = [{"image": torch.from_numpy(rng.random((3, 16, 16), dtype=np.float32)),
              "kernel_index": torch.from_numpy(rng.integers(-1, 5, (4, 4))),
              "joints3d": torch.from_numpy(rng.random((24, 3), dtype=np.float32))} for _ in range(7)]
    info = {"split": "train"}
    assert fill_cache(tmp_path, _FakeTrunk(), crops, 7, info, chunk=3, time_limit_s=0.0) == 3
    assert fill_cache(tmp_path, _FakeTrunk(), crops, 7, info, chunk=3) == 7
    cache = open_cache(tmp_path)
    batch = cache.batch(np.array([5, 1]))
    want = np.stack([crops[i]["image"].numpy()[:2, ::4, ::4] * 10.0 for i in (1, 5)])
    np.testing.assert_allclose(batch["tap:a"].numpy(), want, atol=1e-2)  # float16 storage
    assert batch["kernel_index"].dtype == torch.int64
    torch.testing.assert_close(batch["joints3d"][1], crops[5]["joints3d"])
    with pytest.raises(ValueError, match="other settings"):
        fill_cache(tmp_path, _FakeTrunk(), crops, 7, {"split": "test"})


def _tiny_context(k: int = 12, o: int = 2):
    from nbf_ros.training.trainer import BodyContext

    def orientation(joints3d: torch.Tensor) -> torch.Tensor:
        w = torch.zeros(joints3d.shape[0], k, o)
        w[..., 0] = 1.0
        return w

    sites = torch.arange(k, dtype=torch.float32)[:, None].repeat(1, 3) * 0.2
    return BodyContext(lambda r, b: torch.zeros(r.shape[0], 24, 3), orientation,
                       torch.eye(k, dtype=torch.bool), sites, torch.zeros(k, dtype=torch.int64))


def _tiny_batch(step: int, k: int = 12) -> dict[str, torch.Tensor]:
    """Taps that encode the kernel id (one-hot + noise): a learnable contrast."""
    g = torch.Generator().manual_seed(step)
    kid = torch.randint(-1, k, (4, 32, 32), generator=g)
    onehot = F.one_hot(kid + 1, k + 1).permute(0, 3, 1, 2).float()
    return {"tap:a": onehot + 0.1 * torch.randn(onehot.shape, generator=g),
            "kernel_index": kid, "joints3d": torch.zeros(4, 24, 3)}


def _tiny_run(steps: int) -> list[float]:
    from nbf_ros.training.head_train import HeadTrainer

    cfg = NbfConfig()
    cfg = replace(cfg, nbv=replace(cfg.nbv, orientation_bins=2),
                  net=replace(cfg.net, feature_dim=8),
                  feature_head=replace(cfg.feature_head, taps="a", hidden_channels=16, layers=1),
                  train=replace(cfg.train, steps=steps, warmup_steps=1, lr=1e-2,
                                max_contrast_pixels=256, background_pixels_per_image=4,
                                background_bank_size=32))
    torch.manual_seed(0)
    head = TrunkFeatureHead([13], 32, 16, 1, 8)
    trainer = HeadTrainer(cfg, _tiny_context(), head)
    return [trainer.train_step(_tiny_batch(s), s)["contrastive"] for s in range(steps)]


def test_tiny_head_training_lowers_the_loss_deterministically():
    torch.set_num_threads(1)
    first, second = _tiny_run(25), _tiny_run(25)
    assert first == second
    assert np.mean(first[-5:]) < 0.7 * np.mean(first[:5]), first


class _FakeUnet:
    name = "fake-unet"

    def run(self, crops: np.ndarray) -> NetArrays:
        b = crops.shape[0]
        return NetArrays(np.zeros((b, 8, 32, 32), np.float32), np.ones((b, 24, 6), np.float32),
                         np.zeros((b, 10), np.float32), np.ones((b, 3), np.float32),
                         np.zeros((b, 24, 32, 32), np.float32))


def test_trunk_backend_keeps_the_netarrays_contract(trunk):
    head = TrunkFeatureHead([32, 48, 144], 32, 16, 1, 8).eval()
    backend = TrunkFeatureBackend(NbfConfig(), _FakeUnet(), head, TAPS)
    arrays = backend.run(_crops(2))
    assert arrays.features.shape == (2, 8, 32, 32) and arrays.features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(arrays.features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(arrays.pose6d, np.ones((2, 24, 6), np.float32))  # the U-Net's body
    with pytest.raises(ValueError, match="crops must be"):
        backend.features(_crops(1, size=64))


def test_one_graph_export_matches_the_pieces(trunk):
    import onnxruntime as ort

    from nbf_ros.inference.trunk_export import trunk_head_graph

    head = TrunkFeatureHead([32, 48, 144], 32, 16, 1, 8).eval()
    model = trunk_head_graph(MODEL, head, TAPS, 128)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = _crops(2)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"crops": x})))
    pieces = trunk.run(x, ("landmarks", "segmentation"))
    with torch.no_grad():
        want = head([torch.from_numpy(pieces.taps[t]) for t in TAPS]).numpy()
    np.testing.assert_allclose(got["features"], want, atol=1e-4, rtol=0)
    # ONNX Resize vs torch's bilinear differ by float rounding only: landmarks within 0.01 px.
    np.testing.assert_allclose(got["landmarks"], pieces.standard["landmarks"], atol=1e-2, rtol=0)
    # Segmentation logits (|x| up to ~20 on noise crops) amplify that rounding: 2 % relative.
    np.testing.assert_allclose(got["segmentation"], pieces.standard["segmentation"], atol=1e-2, rtol=2e-2)
