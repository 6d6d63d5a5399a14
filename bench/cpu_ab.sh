#!/usr/bin/env bash
# A/B of two gradcam binaries in CPU time of one thread per forward pass, which a busy machine
# disturbs far less than wall time: per round and binary, the CPU time (user + system) of a
# `gradcam bench --forward-only` of LONG passes minus one of SHORT passes (perf stat's task-clock), over LONG - SHORT;
# the binaries alternate, and the medians (min-max) over the rounds are printed with the ratio.
#
# usage: bench/cpu_ab.sh OLD_BINARY NEW_BINARY ROUNDS SHORT LONG -- gradcam bench arguments...
# e.g.   bench/cpu_ab.sh /tmp/gradcam-before target/release/gradcam 5 3 23 -- --model resnet50 --random-weights
set -euo pipefail
old="$1" new="$2" rounds="$3" short="$4" long="$5"
shift 5
[[ "${1:-}" == "--" ]] && shift
cpu_ms() { # binary iters -> CPU milliseconds of one run
  local f
  f=$(mktemp)
  RAYON_NUM_THREADS=1 perf stat -x, -e task-clock -o "$f" "$1" bench --forward-only --warmup 1 --iters "$2" "${@:3}" >/dev/null
  awk -F, '/task-clock/ { printf "%.2f", $1 }' "$f"; rm -f "$f"
}
per_pass() { # binary -> CPU ms per pass
  local a b
  a=$(cpu_ms "$1" "$short" "${@:2}")
  b=$(cpu_ms "$1" "$long" "${@:2}")
  awk -v a="$a" -v b="$b" -v n=$((long - short)) 'BEGIN { printf "%.2f", (b - a) / n }'
}
olds=() news=()
for ((r = 0; r < rounds; r++)); do
  if ((r % 2 == 0)); then o=$(per_pass "$old" "$@"); n=$(per_pass "$new" "$@")
  else n=$(per_pass "$new" "$@"); o=$(per_pass "$old" "$@"); fi
  olds+=("$o") news+=("$n")
  echo "round $r: old $o ms, new $n ms" >&2
done
python3 - "${olds[*]}" "${news[*]}" <<'PY'
import statistics, sys
old, new = ([float(v) for v in a.split()] for a in sys.argv[1:3])
mo, mn = statistics.median(old), statistics.median(new)
print(f"old {mo:.2f} ({min(old):.2f}-{max(old):.2f}) ms/pass, new {mn:.2f} ({min(new):.2f}-{max(new):.2f}), new/old {mn / mo:.3f}")
PY
