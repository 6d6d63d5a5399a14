#!/usr/bin/env bash
# Steady-state companion of compare.py: each side runs REPS back-to-back runs in one process
# (model loaded, one warm-up), as in a loop over a dataset, instead of compare.py's single runs
# after a quiet pause. The sides alternate ROUNDS times per case; the table gives the median
# over rounds of each process's median ms per image, and the ratio theirs / ours.
#
#     bench/steady.sh [ROUNDS] [REPS]        # defaults 3 and 10
#
# BENCH_CASES=REGEX keeps the cases whose line below ("model weights layer theirs method batch")
# matches, e.g. BENCH_CASES='resnet50 .* layer4 .* 1$'.
#
# Same models, weights, inputs and threads (2 per side) as compare.py; run bench/run.sh once
# first, which makes the ResNet-50 checkpoint and the input in $BENCH_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
reps="${2:-10}"
cache="${BENCH_CACHE:-$HOME/.cache/gradcam-bench}"
py="${BENCH_PYTHON:-}"
for candidate in bench/.venv/bin/python .venv/bin/python; do
  if [[ -z "$py" && -x "$candidate" ]]; then py="$candidate"; fi
done
input="$cache/input-8x3x224x224-seed0.npy"
resnet="$cache/resnet50-random-seed0.legacy.pth"
cargo build --release --examples >&2
lite0="$(target/release/examples/bench_cam --lite0-path)"
export RAYON_NUM_THREADS=2 BENCH_THREADS=2

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
field() { "$py" -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['median_ms_per_image'])"; }

printf '| case | ours ms/img | theirs ms/img | ratio theirs/ours |\n|---|---:|---:|---:|\n'
# model, our weights argument, our layer, their layer, method, batch
while read -r model ours_w ours_layer their_layer method batch; do
  [[ "$model $ours_w $ours_layer $their_layer $method $batch" =~ ${BENCH_CASES:-.} ]] || continue
  case "$model" in
    efficientnet_lite0) their_w="$lite0" ;;
    *) their_w="$resnet" ;;
  esac
  ours=() theirs=()
  for _ in $(seq "$rounds"); do
    ours+=("$(target/release/examples/bench_cam "$model" "$ours_w" "$ours_layer" "$method" "$batch" "$reps" \
      --input "$input" | field)")
    theirs+=("$("$py" bench/torch_side.py case "$model" "$their_w" "$their_layer" "$method" "$batch" "$reps" \
      "$input" | field)")
  done
  o=$(printf '%s\n' "${ours[@]}" | median)
  t=$(printf '%s\n' "${theirs[@]}" | median)
  printf '| %s %s %s b%s | %.1f | %.1f | %.2f |\n' "$model" "$method" "$ours_layer" "$batch" "$o" "$t" \
    "$(echo "$t / $o" | bc -l)"
done <<EOF
efficientnet_lite0 - - - forward 1
efficientnet_lite0 - - - forward 8
resnet50 $resnet - - forward 1
resnet50 $resnet - - forward 8
efficientnet_lite0 - head head gradcam 1
efficientnet_lite0 - head head gradcam 8
resnet50 $resnet layer4 layer4 gradcam 1
resnet50 $resnet layer4 layer4 gradcam 8
efficientnet_lite0 - blocks.8 blocks.8 gradcam 1
efficientnet_lite0 - blocks.8 blocks.8 gradcam 8
resnet50 $resnet layer3 layer3 gradcam 1
resnet50 $resnet layer3 layer3 gradcam 8
EOF
