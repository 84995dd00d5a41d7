"""The stored pose prior: equal to what its build tool computes, loaded by the fitter, and a
one-line error naming the file and the rebuild command when it is missing or corrupt."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nbf_ros.body.model import BodyModel
from nbf_ros.config import NbfConfig, resolve_path
from nbf_ros.fitting.fitter import Fitter
from nbf_ros.fitting.pose_prior import PosePriorError, load_pose_prior, save_pose_prior
from nbf_ros.nets.bank import MemoryBank

from script_loader import load_script

TOOL = Path(__file__).resolve().parents[1] / "tools" / "build_pose_prior.py"


def build_tool():
    return load_script(TOOL, "build_pose_prior")


def test_shipped_prior_equals_the_tool_result():
    """Float32 linear algebra may differ in the last bits between BLAS builds, hence the rtol."""
    shipped = load_pose_prior(resolve_path(NbfConfig().fit.pose_prior_path))
    built = build_tool().build_pose_prior()
    np.testing.assert_allclose(shipped.mean.numpy(), built.mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(shipped.precision_cholesky.numpy(), built.precision_cholesky.numpy(),
                               rtol=1e-5, atol=1e-5)
    with np.load(resolve_path(NbfConfig().fit.pose_prior_path), allow_pickle=False) as data:
        assert int(data["seed"]) == build_tool().SEED and int(data["samples"]) == build_tool().SAMPLES


def test_fitter_loads_the_prior_from_the_configured_file(tmp_path):
    cfg = NbfConfig()
    body = BodyModel(resolve_path(cfg.body.model_path))
    bank = MemoryBank(cfg.nbv.num_kernels, cfg.nbv.orientation_bins, cfg.net.feature_dim, 8)
    bank.push_background(F.normalize(torch.randn(8, cfg.net.feature_dim), dim=-1))
    shipped = load_pose_prior(resolve_path(cfg.fit.pose_prior_path))
    fitter = Fitter.from_config(cfg, body, bank)
    assert torch.equal(fitter.pose_prior.mean, shipped.mean)
    assert torch.equal(fitter.pose_prior.precision_cholesky, shipped.precision_cholesky)
    # Another file named by the config is the one used.
    other = save_pose_prior(dataclasses.replace(shipped, mean=shipped.mean + 1.0), tmp_path / "p.npz",
                            seed=0, samples=1, ridge=0.0)
    cfg = dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, pose_prior_path=str(other)))
    assert torch.equal(Fitter.from_config(cfg, body, bank).pose_prior.mean, shipped.mean + 1.0)


def test_missing_or_corrupt_prior_is_one_line_naming_file_and_fix(tmp_path):
    shipped = load_pose_prior(resolve_path(NbfConfig().fit.pose_prior_path))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(resolve_path(NbfConfig().fit.pose_prior_path).read_bytes()[:2000])
    no_key = tmp_path / "no_key.npz"
    np.savez(no_key, mean=shipped.mean.numpy())
    wrong = tmp_path / "wrong_shape.npz"
    save_pose_prior(dataclasses.replace(shipped, mean=shipped.mean[:60]), wrong, 0, 1, 0.0)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array(["x", None], dtype=object), mean=shipped.mean.numpy(),
             precision_cholesky=shipped.precision_cholesky.numpy())
    for path in (tmp_path / "missing.npz", garbage, truncated, no_key, wrong, pickled):
        with pytest.raises(PosePriorError) as err:
            load_pose_prior(path)
        message = str(err.value)
        assert "\n" not in message and str(path) in message, message
        assert "tools/build_pose_prior.py" in message, message
