"""The occlusion benchmark's test-set cache: exact round trip, and a rebuild (None) whenever the
file was made for other settings or is not a readable cache."""
from pathlib import Path

import numpy as np
import torch

from nbf_ros.types import BodyParams, CameraIntrinsics

from script_loader import load_script

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "occlusion_bench.py"


def load_bench():
    return load_script(BENCH, "occlusion_bench_under_test")


def fake_cases(bench, count: int = 3):
    rng = np.random.default_rng(0)
    cases = []
    for i in range(count):
        t = lambda n: torch.from_numpy(rng.normal(size=(1, n))).float()  # noqa: E731
        cases.append(bench.Case(["clean", "advocc80", "occluders"][i % 3], i,
                                rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
                                CameraIntrinsics(100.0 + i, 101.0, 7.5, 8.0, 16, 16),
                                BodyParams(t(10), t(3), t(69), t(3)), rng.normal(size=(24, 3)),
                                rng.normal(size=(24, 2)), rng.random(24) > 0.5))
    return cases


def test_cases_round_trip_exactly(tmp_path):
    bench = load_bench()
    cases, key = fake_cases(bench), {"version": 1, "people": 3, "weights_sha256": "ab"}
    path = tmp_path / "cases.npz"
    bench.save_cases(path, cases, key)
    loaded = bench.load_cases(path, key)
    assert len(loaded) == len(cases)
    for a, b in zip(cases, loaded):
        assert (a.condition, a.index, a.camera) == (b.condition, b.index, b.camera)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.visible, b.visible)
        np.testing.assert_allclose(a.joints3d, b.joints3d)
        np.testing.assert_allclose(a.joints2d, b.joints2d)
        for name in ("betas", "global_orient", "body_pose", "transl"):
            torch.testing.assert_close(getattr(a.params, name), getattr(b.params, name))


def test_other_settings_or_a_broken_file_mean_rebuild(tmp_path):
    bench = load_bench()
    path = tmp_path / "cases.npz"
    assert bench.load_cases(path, {}) is None  # no file
    bench.save_cases(path, fake_cases(bench), {"weights_sha256": "ab"})
    assert bench.load_cases(path, {"weights_sha256": "cd"}) is None  # other weights
    path.write_bytes(b"not a zip file")
    assert bench.load_cases(path, {"weights_sha256": "ab"}) is None
