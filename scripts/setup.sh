#!/usr/bin/env bash
# Create .venv/ in the repository root and install nbf_ros with pinned dependencies.
# Idempotent: a second run only checks what is installed. Offline except for PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
# torch==2.13.0 (pinned in constraints.txt) is the CPU wheel that lies on this machine's disk.
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -c constraints.txt -e ".[ros,bags,onnx,data,dev]"
echo "[setup] ok: $(.venv/bin/python -c 'import torch, smplx, numpy; print("torch", torch.__version__, "numpy", numpy.__version__)')"
