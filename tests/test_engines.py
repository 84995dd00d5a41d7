"""nbf_ros.engines: open an ONNX graph, run it, fail in one clear line (no GPU needed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nbf_ros.engines import EngineError, EngineOptions, open_graph

NANODET = "models/nanodet_g.onnx"
REBUILD = "python3 tools/build_pretrained_models.py"


def test_onnxruntime_graph_runs_with_fixed_threads():
    graph = open_graph(NANODET, REBUILD, EngineOptions(threads=1))
    assert graph.name == "onnxruntime/CPUExecutionProvider"
    assert graph.input_names == ("image",)
    out = graph.run({"image": np.zeros((1, 3, 416, 416), np.float32)}, ["cls_stride32", "reg_stride32"])
    assert list(out) == ["cls_stride32", "reg_stride32"]
    assert out["cls_stride32"].shape == (1, 169, 80) and out["reg_stride32"].shape == (1, 169, 44)
    assert set(graph.run({"image": np.zeros((1, 3, 416, 416), np.float32)})) == set(graph.output_names)


def test_missing_and_corrupt_files_name_the_file_and_the_rebuild(tmp_path):
    with pytest.raises(EngineError, match=r"nope\.onnx: ONNX model not found.*build_pretrained_models"):
        open_graph(tmp_path / "nope.onnx", REBUILD)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx file")
    with pytest.raises(EngineError) as info:
        open_graph(bad, REBUILD)
    assert "bad.onnx" in str(info.value) and REBUILD in str(info.value)
    assert "\n" not in str(info.value)


def test_wrong_inputs_and_options_are_clear():
    graph = open_graph(NANODET, REBUILD)
    with pytest.raises(EngineError, match="inputs are"):
        graph.run({"x": np.zeros((1, 3, 416, 416), np.float32)})
    with pytest.raises(EngineError, match="run failed"):
        graph.run({"image": np.zeros((1, 3, 10, 10), np.float32)})
    with pytest.raises(EngineError, match="threads"):
        open_graph(NANODET, REBUILD, EngineOptions(threads=-1))
    with pytest.raises(EngineError, match="unknown engine kind"):
        open_graph(NANODET, REBUILD, EngineOptions(kind="tvm"))  # type: ignore[arg-type]


def test_tensorrt_without_runtime_or_gpu_is_one_line(tmp_path):
    try:
        import tensorrt  # noqa: F401
        have_trt = True
    except ImportError:
        have_trt = False
    if have_trt and torch.cuda.is_available():
        pytest.skip("TensorRT and a GPU are present (tests/test_gpu.py covers the engine)")
    with pytest.raises(EngineError) as info:
        open_graph(NANODET, REBUILD, EngineOptions(kind="tensorrt", cache_dir=str(tmp_path)))
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensorrt_nanodet_matches_onnxruntime_and_is_cached(tmp_path):
    pytest.importorskip("tensorrt")
    x = np.random.default_rng(0).standard_normal((1, 3, 416, 416)).astype(np.float32)
    options = EngineOptions(kind="tensorrt", fp16=False, cache_dir=str(tmp_path))
    trt_out = open_graph(NANODET, REBUILD, options).run({"image": x})
    ort_out = open_graph(NANODET, REBUILD).run({"image": x})
    for name, value in ort_out.items():
        np.testing.assert_allclose(trt_out[name], value, atol=2e-3, err_msg=name)
    open_graph(NANODET, REBUILD, options)  # the second open reuses the engine
    assert len(list(tmp_path.glob("nanodet_g_*.engine"))) == 1
