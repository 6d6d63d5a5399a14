#!/usr/bin/env bash
# Peak memory of one big image, in the CLI and in `gradcam serve`.
#
#   bench/memory.sh [IMAGE...]
#
# With no IMAGE, makes a 6000x4000 (24 Mpx) PNG and JPEG of assets/cat_dog.jpg (Pillow's
# bilinear, plus +-8 noise so that the PNG is photo-sized, 44 MB) in $WORK (default
# /tmp/gradcam-memory) with $PYTHON (needs Pillow and NumPy; default: bench/.venv's python).
# For each image it prints:
#   cli    the maximum RSS of `gradcam explain IMAGE` (GNU time's "Maximum resident set size");
#   serve  the server's RSS before the request, its peak during a POST /v1/explain of the image
#          (as a multipart upload, with the default overlay and heat-map PNGs), and its RSS
#          1 s after the answer (VmRSS / VmHWM of /proc/PID/status; the peak is reset after
#          start-up by writing 5 to /proc/PID/clear_refs, so the model load does not count).
# Needs target/release/gradcam (or BIN), curl and GNU time (/usr/bin/time). Linux only.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/gradcam}
WORK=${WORK:-/tmp/gradcam-memory}
PORT=${PORT:-18941}
PYTHON=${PYTHON:-bench/.venv/bin/python}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
mkdir -p "$WORK"

if [ $# -eq 0 ]; then
    if [ ! -f "$WORK/big24.png" ]; then
        "$PYTHON" - "$WORK" <<'PY'
import sys
import numpy as np
from PIL import Image
work = sys.argv[1]
big = Image.open("assets/cat_dog.jpg").convert("RGB").resize((6000, 4000), Image.BILINEAR)
a = np.asarray(big).astype(np.int16)
a = np.clip(a + np.random.default_rng(0).integers(-8, 9, a.shape), 0, 255).astype(np.uint8)
Image.fromarray(a).save(f"{work}/big24.png")
Image.fromarray(a).save(f"{work}/big24.jpg", quality=90)
PY
    fi
    set -- "$WORK/big24.png" "$WORK/big24.jpg"
fi

mb() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

for image in "$@"; do
    name=$(basename "$image")
    rm -rf "$WORK/out-$name"
    /usr/bin/time -v "$BIN" explain "$image" --max-pixels 64000000 --out "$WORK/out-$name/" \
        >/dev/null 2>"$WORK/time-$name.txt"
    peak=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/time-$name.txt")
    echo "$name cli peak_mb=$(mb "$peak")"

    size_mb=$(( $(stat -c %s "$image") / 1000000 + 2 ))
    "$BIN" serve --addr "127.0.0.1:$PORT" --workers 1 --max-body-mb "$size_mb" \
        --max-pixels 64000000 --timeout 120 2>"$WORK/serve.log" &
    server=$!
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo 5 >"/proc/$server/clear_refs"
    before=$(status_kb "$server" VmRSS)
    code=$(curl -s -o "$WORK/response.json" -w '%{http_code}' -F "image=@$image" \
        "http://127.0.0.1:$PORT/v1/explain")
    sleep 1
    after=$(status_kb "$server" VmRSS)
    hwm=$(status_kb "$server" VmHWM)
    kill "$server"
    wait "$server" 2>/dev/null || true
    echo "$name serve status=$code rss_before_mb=$(mb "$before") peak_mb=$(mb "$hwm")" \
        "rss_after_mb=$(mb "$after") response_mb=$(( $(stat -c %s "$WORK/response.json") / 1000000 ))"
done
