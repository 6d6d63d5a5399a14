#!/usr/bin/env bash
# Cost of every --method on EfficientNet-Lite0 at its default layer, relative to Grad-CAM:
# ms per map, the fastest of REPS runs of `gradcam bench --method M --iters 1` (each after
# its warm-up; guided methods included), methods alternated round by round so that load on
# the machine falls on all of them alike. Prints a markdown table for README.md.
#
#   bench/methods.sh [REPS]        (default 5; builds the release binary first)
#
# sscam and iscam are left out: 35 and 10 times Score-CAM's 1280 forward passes per image.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
cargo build --release --bin gradcam >&2
bin=target/release/gradcam
methods=$("$bin" models | awk '/^methods:/{on=1; next} on && NF {print $1}')
declare -A best
for round in $(seq "$reps"); do
  for m in $methods; do
    case $m in sscam|iscam) continue ;; esac
    # One timed run per round (sess: its 122 windows make one run take seconds).
    ms=$("$bin" bench --method "$m" --iters 1 --json \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["explain_min_ms_per_image"])')
    prev=${best[$m]:-}
    if [[ -z $prev ]] || python3 -c "import sys; sys.exit(not $ms < $prev)"; then best[$m]=$ms; fi
  done
  echo "round $round of $reps done" >&2
done
base=${best[gradcam]}
echo "| method | ms per map | x Grad-CAM |"
echo "|---|---:|---:|"
for m in $methods; do
  [[ -n ${best[$m]:-} ]] || continue
  python3 -c "print(f'| \`$m\` | {${best[$m]}:.1f} | {${best[$m]}/$base:.2f} |')"
done
