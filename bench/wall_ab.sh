#!/usr/bin/env bash
# A/B of two gradcam binaries in wall time at THREADS threads: per round, one `gradcam bench
# --json` of each binary (order alternating), each giving the medians of its passes for the
# forward pass and the explanation, and the forward pass's minimum; printed: each side's median
# over the rounds and the median of the rounds' new/old ratios. Wall time is what a user waits
# for, and what the threads' wake-ups cost; a busy machine disturbs it, so run it on an idle
# one with enough rounds.
#
# usage: bench/wall_ab.sh OLD_BINARY NEW_BINARY ROUNDS THREADS -- gradcam bench arguments...
# e.g.   bench/wall_ab.sh /tmp/gradcam-before target/release/gradcam 8 2 -- --model resnet50 --random-weights --iters 10
set -euo pipefail
old="$1" new="$2" rounds="$3" threads="$4"
shift 4
[[ "${1:-}" == "--" ]] && shift
run() { # binary -> "forward explain" medians and the forward minimum, ms per image
  RAYON_NUM_THREADS="$threads" "$1" bench --json "${@:2}" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["forward_ms_per_image"], d["explain_ms_per_image"] or "nan", d["forward_min_ms_per_image"])'
}
rows=()
for ((r = 0; r < rounds; r++)); do
  if ((r % 2 == 0)); then o=$(run "$old" "$@"); n=$(run "$new" "$@")
  else n=$(run "$new" "$@"); o=$(run "$old" "$@"); fi
  echo "round $r: old $o, new $n (forward, explain, forward minimum ms/image)" >&2
  rows+=("$o $n")
done
printf '%s\n' "${rows[@]}" | python3 -c '
import statistics as st, sys
rows = [[float(v) for v in line.split()] for line in sys.stdin]
for i, what in enumerate(["forward", "explain", "forward minimum"]):
    old, new = [r[i] for r in rows], [r[i + 3] for r in rows]
    if any(v != v for v in old + new):
        continue
    ratios = [n / o for o, n in zip(old, new)]
    print(f"{what}: old {st.median(old):.2f} ({min(old):.2f}-{max(old):.2f}) ms/image, "
          f"new {st.median(new):.2f} ({min(new):.2f}-{max(new):.2f}), "
          f"median new/old {st.median(ratios):.3f} over {len(rows)} rounds")'
