"""Shared fixtures: a small untrained network file, so pipeline tests never depend on the
quality (or presence) of the shipped weights; a seeded random Neural Body Volume for the fitter's
tests."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from nbf_ros.config import NbfConfig, save_config


@pytest.fixture(scope="session")
def untrained_weights(tmp_path_factory):
    """Path of an untrained NBFNet + memory bank (with background features) in the shipped format."""
    from nbf_ros.nets.model import NBFNet
    from nbf_ros.nets.bank import MemoryBank
    from nbf_ros.nets.weights import save_weights

    cfg = NbfConfig()
    torch.manual_seed(0)
    net = NBFNet(cfg.net)
    bank = MemoryBank(cfg.nbv.num_kernels, cfg.nbv.orientation_bins, cfg.net.feature_dim, 64)
    bank.push_background(F.normalize(torch.randn(64, cfg.net.feature_dim), dim=-1))
    path = tmp_path_factory.mktemp("weights") / "untrained_net.pt"
    save_weights(net, bank, path)
    return path


@pytest.fixture(scope="session")
def untrained_config(untrained_weights, tmp_path_factory) -> tuple[NbfConfig, str]:
    """(config, YAML path) using the untrained weights, few fitting iterations, fixed boxes."""
    cfg = NbfConfig()
    cfg = dataclasses.replace(
        cfg, inference=dataclasses.replace(cfg.inference, weights_path=str(untrained_weights)),
        # No time budgets: what a test sees must not depend on the machine's load.
        fit=dataclasses.replace(cfg.fit, max_iters=3, budget_ms=1e6, frame_budget_ms=0.0),
        detector=dataclasses.replace(cfg.detector, kind="full_frame"))
    path = tmp_path_factory.mktemp("config") / "pipeline.yaml"
    save_config(cfg, path)
    return cfg, str(path)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny tensors: on a busy shared CPU two threads stall
    each other at OpenMP barriers. The previous count is restored after the module."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def body():
    """The shipped body model (one torch thread, as the data generator's tests expect)."""
    from nbf_ros.body.model import load_body_model
    from nbf_ros.config import resolve_path

    torch.set_num_threads(1)
    return load_body_model(resolve_path("models/nbf_body.npz"))


@pytest.fixture(scope="module")
def labels(body):
    """The generator's per-vertex truth tables for 300 kernels."""
    from nbf_ros.data.scene import body_labels

    return body_labels(body, num_kernels=300)


@pytest.fixture(scope="module")
def random_nbv():
    """(config, body, NBV with seeded random kernel features, unit background feature): the fitter
    tests' world, where the truth renders the observation exactly. Module scope: each test module
    gets its own, created after torch.manual_seed(0) like before."""
    from nbf_ros.body.model import BodyModel
    from nbf_ros.body.nbv import NeuralBodyVolume
    from nbf_ros.config import resolve_path

    torch.manual_seed(0)
    config = NbfConfig()
    body = BodyModel(resolve_path(config.body.model_path))
    nbv = NeuralBodyVolume(body, config.nbv, seed=3)
    background = F.normalize(torch.randn(config.nbv.feature_dim, generator=torch.Generator().manual_seed(9)), dim=0)
    return config, body, nbv, background
