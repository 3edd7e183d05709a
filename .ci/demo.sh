#!/usr/bin/env bash
# The demo command: install what is missing, build, and show
#   1. sluice-proxy (standalone) pacing traffic so a rate-limited upstream
#      never answers 429;
#   2. a fleet: sluice-quota-server and 3 sidecars with skewed demand sharing
#      one global limit, the shares moving when the demand moves.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/sluice-ccache}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ROOT}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
SECONDS_PER_PHASE=${DEMO_SECONDS:-8}
bash .ci/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target sluice-proxy sluice-quota-server -j "$(nproc)"

TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
# Waits up to 5 s for FILE ($1) to match the regex $2; stops the demo with
# the file's content if it never does.
wait_for() {
  for _ in $(seq 100); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "demo: gave up waiting for '$2' in $1:" >&2
  cat "$1" >&2 || true
  exit 1
}

echo "== upstream: allows 10 requests/s (burst 5), answers 429 beyond that"
/usr/bin/python3 -u tests/integration/demo_upstream.py --port 0 --rate 10 --period 1 --burst 5 \
  --port-file "$TMP/port" > "$TMP/upstream.log" 2>&1 &
PIDS+=($!)
wait_for "$TMP/port" "^[0-9]+"
UP=$(cat "$TMP/port")
cat > "$TMP/sluice.yaml" <<YAML
listen: ["127.0.0.1:0"]
admin: {listen: "127.0.0.1:0"}
access_log: {enabled: false}
ssrf: {allow: ["127.0.0.0/8"]}     # the demo upstream is on loopback
rate_limits:
  demo-api: {rate: 9, period: 1s, burst: 4, max_wait: 30s}   # a little under the upstream
routes:
  - {host: 127.0.0.1, limit: demo-api}
YAML
build/proxy/sluice-proxy --config "$TMP/sluice.yaml" 2> "$TMP/sluice.log" &
PIDS+=($!)
wait_for "$TMP/sluice.log" listening
PROXY=$(grep -o 'proxy=[^ ]*' "$TMP/sluice.log" | cut -d= -f2)
ADMIN=$(grep -o 'admin=[^ ]*' "$TMP/sluice.log" | cut -d= -f2)
echo "   upstream 127.0.0.1:$UP   sluice-proxy $PROXY   admin http://$ADMIN/metrics"

tail -f "$TMP/upstream.log" | sed 's/^/  upstream: /' &
PIDS+=($!)
echo
echo "== phase 1: 8 clients call the upstream directly for ${SECONDS_PER_PHASE}s"
/usr/bin/python3 .ci/demo_client.py "http://127.0.0.1:$UP/" - "$SECONDS_PER_PHASE" 8
echo
sleep 1  # let the upstream's own bucket refill after phase 1
echo "== phase 2: the same clients through sluice (http_proxy=http://$PROXY)"
/usr/bin/python3 .ci/demo_client.py "http://127.0.0.1:$UP/" "http://$PROXY" "$SECONDS_PER_PHASE" 8
sleep 1.2
echo
echo "== sluice's view (from /metrics)"
curl -s "http://$ADMIN/metrics" | grep -E '^sluice_proxy_(requests_total|limiter_admitted_total|upstream_responses_total)' | grep -v ' 0$' || true
echo
echo "Phase 1 shows the upstream answering 429; phase 2 shows 429s=0 while the"
echo "upstream still serves about 10 requests per second."

# ---------------------------------------------------------------------------
echo
echo "== phase 3: a fleet. The upstream now allows 30 requests/s (burst 10)."
/usr/bin/python3 -u tests/integration/demo_upstream.py --port 0 --rate 30 --period 1 --burst 10 \
  --port-file "$TMP/port2" > "$TMP/upstream2.log" 2>&1 &
PIDS+=($!)
wait_for "$TMP/port2" "^[0-9]+"
UP2=$(cat "$TMP/port2")
cat > "$TMP/quota.yaml" <<YAML
listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
resources:
  demo-api: {rate: 28, period: 1s, burst: 6}   # a little under the upstream
YAML
build/quota-server/sluice-quota-server --config "$TMP/quota.yaml" 2> "$TMP/quota.log" &
PIDS+=($!)
wait_for "$TMP/quota.log" listening
GRPC=$(grep -o 'grpc=[^ ]*' "$TMP/quota.log" | cut -d= -f2)
QADMIN=$(grep -o 'admin=[^ ]*' "$TMP/quota.log" | cut -d= -f2)
FLEET=()
for name in A B C; do
  cat > "$TMP/sidecar-$name.yaml" <<YAML
listen: ["127.0.0.1:0"]
admin: {listen: "127.0.0.1:0"}
access_log: {enabled: false}
ssrf: {allow: ["127.0.0.0/8"]}
quota: {servers: ["$GRPC"], sidecar_id: "sidecar-$name"}
rate_limits:
  demo-api: {rate: 9, period: 1s, burst: 3, max_wait: 30s, resource: demo-api}
routes:
  - {host: 127.0.0.1, limit: demo-api}
YAML
  POD_NAME=$name build/proxy/sluice-proxy --config "$TMP/sidecar-$name.yaml" 2> "$TMP/sidecar-$name.log" &
  PIDS+=($!)
  wait_for "$TMP/sidecar-$name.log" listening
  FLEET+=("http://$(grep -o 'proxy=[^ ]*' "$TMP/sidecar-$name.log" | cut -d= -f2)")
done
echo "   quota server grpc=$GRPC, status page http://$QADMIN/ (JSON at /status)"
echo "   sidecars A, B, C lease 'demo-api' (28/s for the whole fleet)"
sleep 2  # a fresh quota server learns for ttl + grace (1.5 s) before granting
(IFS=,; /usr/bin/python3 .ci/demo_fleet.py "http://127.0.0.1:$UP2/" "http://$QADMIN" \
  "$SECONDS_PER_PHASE" "${FLEET[*]}" 8,3,1 1,3,8)
echo
echo "== the upstream's own count (200s / 429s per second, last lines)"
tail -n 4 "$TMP/upstream2.log" | sed 's/^/  upstream: /'
echo
echo "Phase 3: each client thread offers 4 requests/s, so A (8 threads) wants 32/s,"
echo "B 12/s and C 4/s: max-min gives C 4, B 12, A 12 of the 28/s. After the shift"
echo "A and C swap. The fleet's total stays under the upstream's limit with no"
echo "429s, and the shares follow the demand within about a second."

# ---------------------------------------------------------------------------
echo
echo "== phase 4: a ban. A third upstream (no rate limit) bans the caller 3 s in:"
echo "   every request is answered 429 + Retry-After: 4 for 4 seconds."
/usr/bin/python3 -u tests/integration/demo_upstream.py --port 0 --rate 1000 --period 1 \
  --ban-after 3 --ban-for 4 --port-file "$TMP/port3" > "$TMP/upstream3.log" 2>&1 &
PIDS+=($!)
wait_for "$TMP/port3" "^[0-9]+"
UP3=$(cat "$TMP/port3")
(IFS=,; /usr/bin/python3 .ci/demo_fleet.py "http://127.0.0.1:$UP3/" "http://$QADMIN" \
  6 "${FLEET[*]}" 2,2,2 2,2,2)
echo
echo "== the upstream's log: one 429, silence until the ban ends, then a gentle restart"
grep -E "^t=" "$TMP/upstream3.log" | sed 's/^/  upstream: /'
echo
echo "Phase 4: the first 429 reached one sidecar; it told the quota server, which"
echo "paused all three within milliseconds for as long as Retry-After asked. After"
echo "the ban one probe went first, then the rate ramped back up (docs/pause.md)."
