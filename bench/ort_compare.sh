#!/usr/bin/env bash
# Builds the release binary and runs bench/ort_compare.py (gradcam's forward against ONNX
# Runtime's on the same export and inputs) with the benchmark venv's Python. Arguments go to
# ort_compare.py (see `bench/ort_compare.sh --help`).
#
# Python: $BENCH_PYTHON if set, else bench/.venv (bench/setup.sh; needs onnxruntime), else .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bins

py="${BENCH_PYTHON:-}"
if [[ -z "$py" ]]; then
  for candidate in bench/.venv/bin/python .venv/bin/python; do
    if [[ -x "$candidate" ]]; then py="$candidate"; break; fi
  done
fi
if [[ -z "$py" ]]; then
  echo "no Python with torch and onnxruntime found: run bench/setup.sh first (or set BENCH_PYTHON)" >&2
  exit 2
fi
exec "$py" bench/ort_compare.py "$@"
