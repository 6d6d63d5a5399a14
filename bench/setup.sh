#!/usr/bin/env bash
# Creates bench/.venv with what bench/compare.py needs: torch, torchvision, pytorch-grad-cam
# 1.5.7 (PyPI `grad-cam`), OpenCV, NumPy, Pillow; and /usr/bin/time for peak memory.
#
#   bench/setup.sh                      # torch from PyPI (on Linux x86-64: the CUDA build, large)
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bench/setup.sh    # CPU-only torch
#
# PYTHON picks the interpreter (default python3; needs the venv module: apt-get install
# python3-venv).
set -euo pipefail
cd "$(dirname "$0")"

if [[ ! -x /usr/bin/time ]]; then
  if command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
    apt-get update && apt-get install -y time
  else
    echo "warning: /usr/bin/time is missing (Debian: sudo apt-get install time); compare.py needs it" \
         "for the end-to-end and memory cases (or pass --skip-e2e --skip-memory)" >&2
  fi
fi

"${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install --upgrade pip
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
  .venv/bin/python -m pip install --index-url "$TORCH_INDEX_URL" torch torchvision
fi
.venv/bin/python -m pip install torch torchvision grad-cam==1.5.7 opencv-python-headless numpy pillow
.venv/bin/python -c "import torch, torchvision, pytorch_grad_cam, cv2, PIL; print('ok: torch', torch.__version__)"
