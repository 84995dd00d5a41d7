#!/usr/bin/env bash
# GPU checks for a session that has an NVIDIA machine (e.g. the device tool's `run`):
# the CUDA/TensorRT tests, then renderer and pipeline timings on the GPU. Run from the repo root:
#   bash benchmarks/gpu_check.sh            (writes logs under ${OUT:-out}/gpu)
# Needs: python3.11+, a CUDA build of torch (pip install torch), and optionally tensorrt.
set -euo pipefail
OUT_DIR="${OUT:-out}/gpu"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))" | tee "$OUT_DIR/device.txt"
"$PY" -m pip install -q -c constraints.txt --no-deps -e . || true
export PYTHONUNBUFFERED=1
"$PY" -m pytest -q tests/test_gpu.py tests/test_render.py 2>&1 | tee "$OUT_DIR/tests.log"
"$PY" benchmarks/render_bench.py --device cuda 2>&1 | tee "$OUT_DIR/render_bench.log" || \
  echo "render_bench.py has no --device option in this version" | tee -a "$OUT_DIR/render_bench.log"
