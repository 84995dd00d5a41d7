"""NBFNet: output shapes and normalisation, input checks, ONNX export parity, heatmap decoding."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nbf_ros.config import NetConfig
from nbf_ros.geometry.rotations import rotation_6d_to_matrix
from nbf_ros.nets import INPUT_NAME, OUTPUT_NAMES, ExportWrapper, NBFNet, heatmap_keypoints

SMALL = NetConfig(crop_size=64, feature_dim=16, base_channels=8, head_channels=16,
                  regressor_reduced_channels=8, regressor_hidden=32)


@pytest.fixture(scope="module")
def net() -> NBFNet:
    torch.manual_seed(0)
    return NBFNet(SMALL).eval()


def test_output_shapes_and_unit_features(net: NBFNet) -> None:
    out = net(torch.rand(2, 3, 64, 64))
    assert out.features.shape == (2, 16, 16, 16)
    assert out.pose6d.shape == (2, 24, 6)
    assert out.betas.shape == (2, 10)
    assert out.cam.shape == (2, 3)
    assert out.heatmaps.shape == (2, 24, 16, 16)
    torch.testing.assert_close(out.features.norm(dim=1), torch.ones(2, 16, 16), atol=1e-5, rtol=0)


def test_fresh_regressor_starts_at_the_mean_body() -> None:
    """A new net predicts (almost) the upright, facing-the-camera mean body: HMR's start."""
    torch.manual_seed(0)
    out = NBFNet(SMALL).eval()(torch.rand(1, 3, 64, 64))
    root = rotation_6d_to_matrix(out.pose6d[0, 0])
    torch.testing.assert_close(root, torch.diag(torch.tensor([1.0, -1.0, -1.0])), atol=0.05, rtol=0)
    torch.testing.assert_close(out.cam[0, 0], torch.tensor(1.0), atol=0.05, rtol=0)


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (1, 1, 64, 64), (3, 64, 64)])
def test_bad_input_shape_is_rejected(net: NBFNet, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="crops"):
        net(torch.rand(*shape))


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        NBFNet(NetConfig(crop_size=100))


def test_onnx_export_matches_torch(net: NBFNet, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    x = torch.rand(2, 3, 64, 64)
    path = tmp_path / "net.onnx"
    torch.onnx.export(ExportWrapper(net), (x,), str(path), input_names=[INPUT_NAME],
                      output_names=list(OUTPUT_NAMES), opset_version=17, dynamo=False,
                      dynamic_axes={INPUT_NAME: {0: "batch"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x2 = torch.rand(3, 3, 64, 64)  # a different batch size exercises the dynamic axis
    got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x2.numpy()})
    with torch.no_grad():
        want = net(x2).as_tuple()
    for name, g, w in zip(OUTPUT_NAMES, got, want):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=1e-3, err_msg=name)


def test_heatmap_keypoints_finds_a_sharp_peak() -> None:
    """A single sharp logit peak at feature pixel (x=5, y=9) decodes to its crop-pixel centre."""
    logits = torch.full((1, 2, 16, 16), -50.0)
    logits[0, 0, 9, 5] = 50.0
    logits[0, 1] = 0.0  # flat: centre of the map, low confidence
    uv, conf = heatmap_keypoints(logits, stride=4)
    torch.testing.assert_close(uv[0, 0], torch.tensor([5 * 4 + 1.5, 9 * 4 + 1.5]))
    torch.testing.assert_close(uv[0, 1], torch.tensor([7.5 * 4 + 1.5, 7.5 * 4 + 1.5]))
    assert conf[0, 0] > 0.99 and conf[0, 1] < 0.05
