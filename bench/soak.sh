#!/usr/bin/env bash
# Soak test of `gradcam serve` on the loopback: N mixed requests from several clients, good,
# bad, slow (stalled bodies) and oversized, with the status counts, p50/p99 latency and the
# server's RSS every 1,000 requests.
#
#   bench/soak.sh [N=10000] [CLIENTS=8]
#
# Needs target/release/gradcam (cargo build --release; or BIN=path) and a Python 3 (PYTHON, default
# python3; the standard library only). Expected statuses: good 200 (or 503 when the queue is
# full), bad 400/422, slow 408, oversized 413; anything else counts as unexpected.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
CLIENTS=${2:-8}
PORT=${PORT:-18931}
PYTHON=${PYTHON:-python3}
BIN=${BIN:-target/release/gradcam}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }

"$BIN" serve --addr "127.0.0.1:$PORT" --workers 2 --queue 8 --read-timeout 2 \
    --max-body-mb 2 --timeout 30 2>/tmp/gradcam-soak-serve.log &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

"$PYTHON" - "$N" "$CLIENTS" "$PORT" "$SERVER" <<'PY'
import collections, socket, sys, threading, time

n, clients, port, pid = (int(a) for a in sys.argv[1:5])
image = open("assets/cat_dog.jpg", "rb").read()
boundary = "soak-boundary"

def form(name, content):
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"x.jpg\"\r\n\r\n").encode() \
        + content + f"\r\n--{boundary}--\r\n".encode()

def request(path, body, ctype, length=None):
    length = len(body) if length is None else length
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {length}\r\n\r\n").encode() + body

MP = f"multipart/form-data; boundary={boundary}"
# kind -> (request bytes, stall after sending, expected statuses); the mix repeats every 10.
kinds = {
    "good": (request("/v1/explain?overlay=false", form("image", image), MP), False, {200, 503}),
    "bad_image": (request("/v1/explain", b"just text", "text/plain"), False, {422}),
    "bad_param": (request("/v1/explain?top_k=0", form("image", image), MP), False, {400}),
    "slow": (request("/v1/explain", image[:500], "image/jpeg", length=len(image)), True, {408}),
    "oversized": (request("/v1/explain", b"\0" * (3 << 20), "image/jpeg"), False, {413}),
}
mix = ["good", "good", "bad_image", "bad_param", "bad_image", "slow", "oversized", "bad_param", "good", "bad_image"]

def send(kind):
    data, stall, _ = kinds[kind]
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(120)
    start = time.monotonic()
    try:
        s.sendall(data)
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
    except OSError:
        status = -1  # reset or refused
    finally:
        s.close()
    return status, time.monotonic() - start

lock = threading.Lock()
counts = collections.Counter()
latency = collections.defaultdict(list)
done = [0]
unexpected = [0]
next_index = [0]

def rss_mb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")

def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] * 1e3 if v else float("nan")

print(f"| requests | good p50 / p99 (ms) | all p50 / p99 (ms) | RSS (MB) | statuses | unexpected |")
print(f"|---|---|---|---|---|---|")
window = collections.defaultdict(list)

def worker():
    while True:
        with lock:
            i = next_index[0]
            if i >= n:
                return
            next_index[0] += 1
        kind = mix[i % len(mix)]
        status, seconds = send(kind)
        with lock:
            counts[(kind, status)] += 1
            window[kind].append(seconds)
            window["all"].append(seconds)
            if status not in kinds[kind][2]:
                unexpected[0] += 1
            done[0] += 1
            if done[0] % 1000 == 0 or done[0] == n:
                statuses = collections.Counter()
                for (k, s), c in counts.items():
                    statuses[s] += c
                text = ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items()))
                print(f"| {done[0]} | {pct(window['good'], .5):.0f} / {pct(window['good'], .99):.0f} | "
                      f"{pct(window['all'], .5):.0f} / {pct(window['all'], .99):.0f} | {rss_mb():.0f} | {text} | {unexpected[0]} |",
                      flush=True)
                window.clear()

threads = [threading.Thread(target=worker) for _ in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print()
for (kind, status), c in sorted(counts.items()):
    print(f"{kind:10s} {status}: {c}")
sys.exit(1 if unexpected[0] else 0)
PY
