"""CUDA / TensorRT paths. They skip cleanly on machines without an NVIDIA GPU (like CI here);
`benchmarks/gpu_check.sh` runs them plus GPU timings where one is available."""
import dataclasses

import numpy as np
import pytest
import torch

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_renderer_cuda_matches_cpu():
    from nbf_ros.config import RenderConfig
    from nbf_ros.render import RenderCamera, render_gaussians

    g = torch.Generator().manual_seed(0)
    means = torch.randn(1, 200, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 3.0])
    prec = 4000.0 * torch.eye(3).expand(1, 200, 3, 3)
    feats = torch.randn(1, 200, 8, generator=g)
    cam = RenderCamera(*(torch.tensor([v]) for v in (60.0, 60.0, 31.5, 31.5)))
    cpu = render_gaussians(means, prec, feats, cam, 64, 64, RenderConfig())
    gcam = RenderCamera(*(t.cuda() for t in (cam.fx, cam.fy, cam.cx, cam.cy)))
    gpu = render_gaussians(means.cuda(), prec.cuda(), feats.cuda(), gcam, 64, 64, RenderConfig())
    torch.testing.assert_close(gpu.features.cpu(), cpu.features, atol=1e-4, rtol=1e-4)


@cuda
def test_pipeline_on_cuda(untrained_config):
    from nbf_ros.config import SyntheticConfig
    from nbf_ros.data.scene import render_scene
    from nbf_ros.inference.pipeline import Pipeline

    cfg = untrained_config[0]
    cfg = dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference, device="cuda"))
    pipeline = Pipeline.from_config(cfg)
    scene = render_scene(1, SyntheticConfig(split="test"), pipeline.body)
    result = pipeline.process(scene.image, scene.camera, boxes=np.stack([p.bbox for p in scene.people]))
    assert all(np.isfinite(p.joints3d).all() for p in result.people)


@cuda
def test_tensorrt_engine_matches_onnxruntime(untrained_config, tmp_path):
    pytest.importorskip("tensorrt")
    from nbf_ros.inference.backends import OnnxRuntimeBackend, TensorRTBackend
    from nbf_ros.inference.export import export_onnx

    cfg = untrained_config[0]
    onnx_path = export_onnx(cfg, tmp_path / "net.onnx")
    inf = dataclasses.replace(cfg.inference, onnx_path=str(onnx_path), engine_path=str(tmp_path / "engines"),
                              enable_fp16=False)
    trt_backend = TensorRTBackend(dataclasses.replace(cfg, inference=inf))
    ort_backend = OnnxRuntimeBackend(dataclasses.replace(cfg, inference=inf))
    crops = np.random.default_rng(0).random((2, 3, cfg.net.crop_size, cfg.net.crop_size), dtype=np.float32)
    a, b = trt_backend.run(crops), ort_backend.run(crops)
    np.testing.assert_allclose(a.features, b.features, atol=1e-3)
    np.testing.assert_allclose(a.pose6d, b.pose6d, atol=1e-3)
    # The engine is cached under a key of ONNX hash + TensorRT version + GPU: a second backend reuses it.
    assert len(list((tmp_path / "engines").glob("*.engine"))) == 1
    TensorRTBackend(dataclasses.replace(cfg, inference=inf))
    assert len(list((tmp_path / "engines").glob("*.engine"))) == 1


def test_onnxruntime_backend_matches_torch(untrained_config, tmp_path):
    """The CPU check of the graph TensorRT builds on a GPU: the exported U-Net against the torch
    U-Net (``load_unet_backend``: without the trunk features that ``load_backend`` adds on top)."""
    from nbf_ros.inference.backends import OnnxRuntimeBackend, load_unet_backend
    from nbf_ros.inference.export import export_onnx

    cfg = untrained_config[0]
    onnx_path = export_onnx(cfg, tmp_path / "net.onnx")
    ort_cfg = dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference, backend="onnxruntime",
                                                                      onnx_path=str(onnx_path)))
    crops = np.random.default_rng(1).random((3, 3, cfg.net.crop_size, cfg.net.crop_size), dtype=np.float32)
    a, b = load_unet_backend(cfg)[0].run(crops), OnnxRuntimeBackend(ort_cfg).run(crops)
    for name in ("features", "pose6d", "betas", "cam", "heatmaps"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=2e-3, err_msg=name)


def test_backend_errors_are_clear(untrained_config, tmp_path):
    from nbf_ros.inference.backends import BackendError, OnnxRuntimeBackend, load_backend

    cfg = untrained_config[0]
    missing = dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference, onnx_path=str(tmp_path / "x.onnx")))
    with pytest.raises(BackendError, match="nbf-ros export"):
        OnnxRuntimeBackend(missing)
    corrupt = tmp_path / "bad.onnx"
    corrupt.write_bytes(b"not onnx")
    bad = dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference, onnx_path=str(corrupt)))
    with pytest.raises(BackendError, match="bad.onnx"):
        OnnxRuntimeBackend(bad)
    if not torch.cuda.is_available():
        gpu = dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference, backend="tensorrt"))
        with pytest.raises(BackendError):
            load_backend(gpu)
