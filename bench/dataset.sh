#!/usr/bin/env bash
# Whole-dataset throughput and peak memory: `gradcam explain DIR` against bench/dataset_loop.py
# (pytorch-grad-cam), each as its own process under /usr/bin/time -v, run alternately.
#
#     bench/dataset.sh [IMAGES_DIR] [REPS] [BATCH_SIZES] [THEIR_BATCH_SIZES]
#
# Defaults: ../shared/data/imagenet-val-1300/images, 1 repetition, our batch sizes "1 8",
# theirs "1 8" ("" for none: `bench/dataset.sh DIR 3 "1 8" ""`). 2 threads on both sides
# (RAYON_NUM_THREADS=2, torch.set_num_threads(2)).
# Prints one line per run: side, batch, images, wall s, images/s (whole process, model
# loading included), peak RSS MiB, user+sys CPU s, and the load average before the run.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-../shared/data/imagenet-val-1300/images}"
reps="${2:-1}"
ours_batches="${3-1 8}"
theirs_batches="${4-1 8}"
py="${BENCH_PYTHON:-.venv/bin/python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cargo build --release --bin gradcam >&2
n=$(find -L "$dir" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.bmp' -o -iname '*.webp' \) | wc -l)

run() { # side batch command...
  local side=$1 batch=$2; shift 2
  local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
  rm -rf "$tmp/out"
  /usr/bin/time -v -o "$tmp/time" "$@" >"$tmp/stdout" 2>"$tmp/stderr" || true
  local wall rss user sys
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tmp/time")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$tmp/time")
  user=$(awk -F': ' '/User time/ {print $2}' "$tmp/time")
  sys=$(awk -F': ' '/System time/ {print $2}' "$tmp/time")
  printf '%-7s batch %-3s %5d images  %8.1f s  %6.2f images/s  %6s MiB  CPU %7.1f s  load %s\n' \
    "$side" "$batch" "$n" "$wall" "$(echo "$n / $wall" | bc -l)" "$rss" "$(echo "$user + $sys" | bc -l)" "$load"
}

read -ra ob <<<"$ours_batches"
read -ra tb <<<"$theirs_batches"
max=$(( ${#ob[@]} > ${#tb[@]} ? ${#ob[@]} : ${#tb[@]} ))
for rep in $(seq "$reps"); do
  for ((i = 0; i < max; i++)); do
    if (( i < ${#ob[@]} )); then
      RAYON_NUM_THREADS=2 run ours "${ob[i]}" target/release/gradcam explain "$dir" --out "$tmp/out" \
        --quiet --batch-size "${ob[i]}"
    fi
    if (( i < ${#tb[@]} )); then
      run theirs "${tb[i]}" "$py" bench/dataset_loop.py "$dir" "$tmp/out" --batch-size "${tb[i]}" --threads 2
    fi
  done
done
