#!/usr/bin/env bash
# Builds the Rust side (release binary and examples) and runs bench/compare.py with the
# benchmark venv's Python. Arguments go to compare.py (see `bench/run.sh --help`).
#
# Python: $BENCH_PYTHON if set, else bench/.venv (made by bench/setup.sh), else .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bins --examples

py="${BENCH_PYTHON:-}"
if [[ -z "$py" ]]; then
  for candidate in bench/.venv/bin/python .venv/bin/python; do
    if [[ -x "$candidate" ]]; then py="$candidate"; break; fi
  done
fi
if [[ -z "$py" ]]; then
  echo "no Python with torch and grad-cam found: run bench/setup.sh first (or set BENCH_PYTHON)" >&2
  exit 2
fi
exec "$py" bench/compare.py "$@"
