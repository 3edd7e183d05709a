#!/usr/bin/env bash
# HTTPS load benchmark: sluice-proxy intercepting HTTPS against HAProxy
# (TLS termination and re-encryption) and Squid (ssl_bump), all in front of
# an nginx TLS origin on loopback. See bench/README.md, "HTTPS (intercepted)
# load", for the method.
#
# Usage: bash bench/tls_load.sh
#
# Environment:
#   ROUNDS=3            interleaved rounds (direct sluice squid haproxy, ...)
#   DURATION=5          seconds per measured run
#   WARMUP=1            seconds of unrecorded kept-alive load per path first
#   CONNS=32            tunnels of the loaded kept-alive run (the other uses 1)
#   NEWCONN_CONNS=8     concurrent workers of the new-tunnel-per-request runs
#   IDLE_CONNS=1000     idle intercepted tunnels of the memory measurement
#                       (0: skip it)
#   ORIGIN_CORE=0       CPU for nginx
#   PROXY_CORE=1        CPU shared by the load client and the proxy under test
#   SLUICE_PROXY_BIN    use this sluice-proxy binary; nothing is built
#   TLS_LOAD_CLIENT_BIN use this tls_load_client binary
#   SLUICE_BUILD_DIR    build directory (default: <repo>/build)
#   SLUICE_SKIP_BUILD=1 do not build; use the binaries if they are there
#   SLUICE_SKIP_DEPS=1  do not run .ci/install-deps.sh
#   PROFILE=1           after the rounds, one more (unrecorded) kept-alive run
#                       at CONNS against sluice under `perf record`; its
#                       self time by library and by symbol is printed at the end
#   KEEP_TMP=1          keep the temp dir (configs, certificates, logs, results)
#
# All traffic stays on 127.0.0.1. Every process started here is stopped on
# exit, within a few seconds.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
NEWCONN_CONNS=${NEWCONN_CONNS:-8}
IDLE_CONNS=${IDLE_CONNS:-1000}
ORIGIN_CORE=${ORIGIN_CORE:-0}
PROXY_CORE=${PROXY_CORE:-1}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$REPO/bench"

BENCH_NAME=tls_load.sh
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

for v in ROUNDS DURATION WARMUP CONNS NEWCONN_CONNS IDLE_CONNS ORIGIN_CORE PROXY_CORE; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
((ROUNDS >= 1 && DURATION >= 1 && CONNS >= 1 && NEWCONN_CONNS >= 1)) ||
  die "ROUNDS, DURATION, CONNS, NEWCONN_CONNS must be >= 1"

# --- dependencies and binaries ------------------------------------------------------

if [[ ${SLUICE_SKIP_DEPS:-0} != 1 ]]; then
  SLUICE_BENCH_DEPS=1 bash "$REPO/.ci/install-deps.sh" >&2
fi
export PATH="$PATH:/usr/sbin:/sbin"
for tool in nginx squid haproxy curl openssl python3 taskset setsid timeout ps; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
CERTGEN=/usr/lib/squid/security_file_certgen
[[ -x $CERTGEN ]] || die "$CERTGEN not found (Debian's squid-openssl has it)"
squid -v | grep -q -- '--with-openssl' || die "this squid has no OpenSSL (install squid-openssl)"

find_sluice sluice-proxy tls_load_client
if ((!HAVE_SLUICE)); then
  log "SKIPPING sluice: no sluice-proxy binary at $SLUICE_BIN" \
    "(not built yet or the build failed; set SLUICE_PROXY_BIN to use another)"
fi
CLIENT_BIN=${TLS_LOAD_CLIENT_BIN:-${SLUICE_BUILD_DIR:-$REPO/build}/bench/tls_load_client}
[[ -x $CLIENT_BIN ]] || die "no load client at $CLIENT_BIN (cmake --build build --target tls_load_client)"

ncpu=$(nproc)
if ((ORIGIN_CORE >= ncpu || PROXY_CORE >= ncpu)); then
  log "only $ncpu CPU(s): pinning everything to CPU 0 (figures not comparable)"
  ORIGIN_CORE=0
  PROXY_CORE=0
fi

# The idle run holds IDLE_CONNS tunnels: the client needs that many
# descriptors, the proxies twice as many.
want_fds=$((2 * IDLE_CONNS + 512))
if (($(ulimit -n) < want_fds)); then
  ulimit -n "$want_fds" 2>/dev/null || log "could not raise the descriptor limit to $want_fds"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-tls-load.XXXXXX")
chmod 755 "$TMP"
RESULTS="$TMP/results.txt"
: >"$RESULTS"

# CPU time (clock ticks) of every process in the session PID leads: the
# server and its helpers (Squid's certificate generator).
session_ticks() {
  local sum=0 p t
  for p in $(ps -o pid= --sid "$1" 2>/dev/null); do
    t=$(cpu_ticks "$p" 2>/dev/null) || continue
    sum=$((sum + t))
  done
  echo "$sum"
}

# tprobe CAFILE URL [PROXY]: true once one request returns 200 with body "ok".
tprobe() {
  local body
  body=$(curl -sS --max-time 2 --noproxy '' --cacert "$1" ${3:+-x "http://$3"} "$2" 2>/dev/null) ||
    return 1
  [[ $body == ok ]]
}

wait_tprobe() {  # wait_tprobe PID SECONDS CAFILE URL [PROXY]
  local pid=$1 deadline=$((SECONDS + $2))
  shift 2
  while ((SECONDS < deadline)); do
    alive "$pid" || return 1
    tprobe "$@" && return 0
    sleep 0.1
  done
  return 1
}

# --- certificates ------------------------------------------------------------------------

# A test CA (P-256) signs the origin's certificate (localhost and
# 127.0.0.1); HAProxy serves that certificate too, and Squid signs the
# certificates it generates with the same CA. sluice has its own CA, made by
# `sluice-proxy ca init`.
PKI="$TMP/pki"
mkdir -p "$PKI"
TEST_CA="$PKI/ca.pem"
(
  cd "$PKI"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -out ca.pem -subj "/CN=sluice bench test CA" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout origin.key -out origin.csr -subj "/CN=localhost"
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" >origin.ext
  openssl x509 -req -in origin.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days 2 -out origin.pem -extfile origin.ext
  cat origin.pem origin.key >origin-with-key.pem
) >"$PKI/openssl.log" 2>&1 || { cat "$PKI/openssl.log" >&2; die "making the test certificates failed"; }

# --- servers -----------------------------------------------------------------------

declare -A PID_OF LABEL_OF CLIENT_ARGS

# direct: the nginx TLS origin on ORIGIN_CORE.
ORIGIN_PORT=$(free_port)
ORIGIN="127.0.0.1:$ORIGIN_PORT"
ORIGIN_HOST="localhost:$ORIGIN_PORT"
mkdir -p "$TMP/nginx"
user_line=""
if (($(id -u) == 0)); then user_line="user $(id -un) $(id -gn);"; fi
temp_lines=""
nginx_flags=$(nginx -V 2>&1)
for m in fastcgi uwsgi scgi; do
  if [[ $nginx_flags != *"--without-http_${m}_module"* ]]; then
    temp_lines+="  ${m}_temp_path $TMP/nginx/${m}_temp;"$'\n'
  fi
done
fill "$BENCH/nginx_tls.conf.tmpl" "$TMP/nginx/nginx.conf" \
  "DIR=$TMP/nginx" "PORT=$ORIGIN_PORT" "USER_LINE=$user_line" \
  "TEMP_PATH_LINES=$temp_lines" "CERT=$PKI/origin.pem" "KEY=$PKI/origin.key"
start_bg "$TMP/nginx/stdout.log" taskset -c "$ORIGIN_CORE" \
  nginx -p "$TMP/nginx/" -e "$TMP/nginx/nginx-error.log" -c "$TMP/nginx/nginx.conf"
PID_OF[direct]=$START_PID
if ! wait_tprobe "$START_PID" 10 "$TEST_CA" "https://$ORIGIN_HOST/"; then
  cat "$TMP/nginx/stdout.log" "$TMP/nginx/nginx-error.log" >&2 2>/dev/null || true
  die "nginx TLS origin did not start"
fi
LABEL_OF[direct]="direct (client -> nginx, TLS)"
CLIENT_ARGS[direct]="--server $ORIGIN --name localhost --cafile $TEST_CA"

# sluice: intercepts localhost and 127.0.0.1 (both name the origin). Its
# leaf cache holds one certificate, so tunnels that alternate between the
# two names mint a leaf every time (the cold runs), while tunnels to one
# name always hit (every other run).
SLUICE_ADMIN=""
start_sluice() {
  local dir="$TMP/sluice" addr="" deadline line
  mkdir -p "$dir/ca"
  "$SLUICE_BIN" ca init --out "$dir/ca" >"$dir/ca-init.log" 2>&1 || {
    log "SKIPPING sluice: sluice-proxy ca init failed:"
    sed 's/^/  /' "$dir/ca-init.log" >&2
    return 1
  }
  cat >"$dir/sluice.yaml" <<EOF
listen: ["127.0.0.1:$(free_port)"]
workers: 1
admin: {listen: "127.0.0.1:$(free_port)"}
access_log: {enabled: false}
ssrf: {allow: ["127.0.0.0/8"]}
shutdown_grace: 0s
connect: {allowed_ports: [$ORIGIN_PORT]}
intercept:
  hosts: [localhost, "127.0.0.1"]
  ca: {cert: "$dir/ca/ca.pem", key: "$dir/ca/ca-key.pem"}
  leaf_cache: 1
upstream_tls: {ca_bundle: "$TEST_CA"}
EOF
  start_bg "$dir/stderr.log" taskset -c "$PROXY_CORE" "$SLUICE_BIN" --config "$dir/sluice.yaml"
  PID_OF[sluice]=$START_PID
  deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)) && alive "$START_PID"; do
    line=$(grep -m1 'sluice-proxy listening proxy=' "$dir/stderr.log" 2>/dev/null) || line=""
    if [[ -n $line ]]; then
      addr=${line#*listening proxy=}
      addr=${addr%% *}
      SLUICE_ADMIN=$(sed -n 's/.* admin=\([^ ]*\).*/\1/p' <<<"$line")
      break
    fi
    sleep 0.05
  done
  if [[ -z $addr ]]; then
    log "SKIPPING sluice: sluice-proxy did not report listening; its stderr:"
    sed 's/^/  /' "$dir/stderr.log" >&2
    return 1
  fi
  echo "RSS path=sluice when=start kb=$(rss_kb "$START_PID")" >>"$RESULTS"
  if ! tprobe "$dir/ca/ca.pem" "https://$ORIGIN_HOST/" "$addr"; then
    log "SKIPPING sluice: an intercepted request through sluice-proxy at $addr failed:"
    curl -sS -i --max-time 2 --noproxy '' --cacert "$dir/ca/ca.pem" -x "http://$addr" \
      "https://$ORIGIN_HOST/" >&2 || true
    sed 's/^/  /' "$dir/stderr.log" >&2
    return 1
  fi
  LABEL_OF[sluice]="sluice-proxy, 1 worker, intercepting"
  CLIENT_ARGS[sluice]="--server $addr --connect $ORIGIN_HOST --cafile $dir/ca/ca.pem"
  CLIENT_ARGS[sluice_cold]="--server $addr --connect $ORIGIN_HOST,127.0.0.1:$ORIGIN_PORT --cafile $dir/ca/ca.pem"
}
if ((HAVE_SLUICE)); then start_sluice || true; fi

# squid: bumps every CONNECT (squid-openssl).
SQUID_PORT=$(free_port)
mkdir -p "$TMP/squid"
user_line=""
squid_user=""
if (($(id -u) == 0)); then
  # Squid run as root switches to cache_effective_user; its files (and the
  # CA key it signs with) must be readable by that user.
  squid_user=proxy
  id "$squid_user" >/dev/null 2>&1 || squid_user=nobody
  user_line="cache_effective_user $squid_user"
fi
start_squid() {
  local dir="$TMP/squid"
  cp "$PKI/ca.pem" "$PKI/ca.key" "$dir/"
  "$CERTGEN" -c -s "$dir/ssl_db" -M 16MB >"$dir/certgen-init.log" 2>&1 || {
    log "SKIPPING squid: $CERTGEN -c failed:"
    cat "$dir/certgen-init.log" >&2
    return 1
  }
  if [[ -n $squid_user ]]; then chown -R "$squid_user" "$dir"; fi
  fill "$BENCH/squid_tls.conf.tmpl" "$dir/squid.conf" \
    "DIR=$dir" "PORT=$SQUID_PORT" "ORIGIN_PORT=$ORIGIN_PORT" "USER_LINE=$user_line" \
    "CA_CERT=$dir/ca.pem" "CA_KEY=$dir/ca.key" "ORIGIN_CA=$TEST_CA"
  start_bg "$dir/stdout.log" taskset -c "$PROXY_CORE" squid -N -f "$dir/squid.conf"
  PID_OF[squid]=$START_PID
  if ! wait_tprobe "$START_PID" 15 "$TEST_CA" "https://$ORIGIN_HOST/" "127.0.0.1:$SQUID_PORT"; then
    log "SKIPPING squid: it did not start or did not relay; its logs:"
    curl -sS -i --max-time 2 --noproxy '' --cacert "$TEST_CA" -x "http://127.0.0.1:$SQUID_PORT" \
      "https://$ORIGIN_HOST/" >&2 || true
    cat "$dir/stdout.log" "$dir/squid-cache.log" >&2 2>/dev/null || true
    return 1
  fi
  LABEL_OF[squid]="squid, ssl_bump (bump all), no cache"
  CLIENT_ARGS[squid]="--server 127.0.0.1:$SQUID_PORT --connect $ORIGIN_HOST --cafile $TEST_CA"
  echo "RSS path=squid when=start kb=$(rss_kb "$START_PID")" >>"$RESULTS"
}
start_squid || true

# haproxy: TLS termination and re-encryption; clients connect to it directly.
HAPROXY_PORT=$(free_port)
mkdir -p "$TMP/haproxy"
fill "$BENCH/haproxy_tls.cfg.tmpl" "$TMP/haproxy/haproxy.cfg" \
  "PORT=$HAPROXY_PORT" "ORIGIN_PORT=$ORIGIN_PORT" \
  "CERT_AND_KEY=$PKI/origin-with-key.pem" "CA=$TEST_CA"
start_bg "$TMP/haproxy/stdout.log" taskset -c "$PROXY_CORE" haproxy -db -f "$TMP/haproxy/haproxy.cfg"
PID_OF[haproxy]=$START_PID
if wait_tprobe "$START_PID" 10 "$TEST_CA" "https://localhost:$HAPROXY_PORT/"; then
  LABEL_OF[haproxy]="haproxy, TLS terminated and re-encrypted"
  CLIENT_ARGS[haproxy]="--server 127.0.0.1:$HAPROXY_PORT --name localhost --cafile $TEST_CA"
  echo "RSS path=haproxy when=start kb=$(rss_kb "$START_PID")" >>"$RESULTS"
else
  log "SKIPPING haproxy: it did not start; its output:"
  cat "$TMP/haproxy/stdout.log" >&2 || true
fi

PATHS=()
for p in direct sluice squid haproxy; do
  [[ -n ${CLIENT_ARGS[$p]:-} ]] && PATHS+=("$p")
done

# --- measuring -----------------------------------------------------------------------

declare -A DEAD

mark_dead() {  # mark_dead PATH [WHEN]
  local path=$1 when=${2:-} status="" logf dir="$TMP/$1"
  DEAD[$path]=1
  wait "${PID_OF[$path]}" 2>/dev/null || status=$?
  log "$path: its server exited${when:+ $when}${status:+ (wait status $status)}; no more runs for it"
  echo "DEAD path=$path status=${status:-0}" >>"$RESULTS"
  [[ $path == direct ]] && dir="$TMP/nginx"
  for logf in "$dir/stderr.log" "$dir/stdout.log" "$dir/squid-cache.log" "$dir/nginx-error.log"; do
    [[ -s $logf ]] && tail -n 20 "$logf" | sed "s|^|  $path: |" >&2
  done
  return 0
}

# The client's JSON as key=value pairs (first_error left out: it has spaces).
json_kv() {
  python3 -c 'import json, sys
d = json.loads(sys.stdin.readline())
print(" ".join("%s=%s" % (k, v) for k, v in d.items()
               if k not in ("first_error", "mode", "conns")))
if d.get("first_error"):
    print("first error: " + d["first_error"], file=sys.stderr)'
}

# run_client PATH KIND CONNS SECONDS ROUND: one client run against PATH's
# server; KIND is keepalive, warm (a new tunnel per request, one name) or
# cold (a new tunnel per request, alternating names: path sluice_cold).
# ROUND=warmup is not recorded.
run_client() {
  local path=$1 kind=$2 conns=$3 secs=$4 round=$5 server=$1 mode=keepalive
  local before="" after="" ticks=- pid kv line
  [[ $kind == cold ]] && server=sluice
  [[ $kind != keepalive ]] && mode=newconn
  [[ -n ${DEAD[$server]:-} ]] && return 0
  pid=${PID_OF[$server]}
  if ! alive "$pid"; then
    mark_dead "$server"
    return 0
  fi
  [[ $server == direct ]] && pid=""
  if [[ -n $pid ]]; then before=$(session_ticks "$pid"); fi
  # shellcheck disable=SC2086  # CLIENT_ARGS holds words
  timeout -k 2 $((secs + 30)) taskset -c "$PROXY_CORE" "$CLIENT_BIN" ${CLIENT_ARGS[$path]} \
    --mode "$mode" --conns "$conns" --duration "$secs" >"$TMP/client.out" 2>"$TMP/client.err" &
  CLIENT_PID=$!
  if ! wait "$CLIENT_PID"; then
    CLIENT_PID=""
    log "load client failed on $path $kind c=$conns: $(cat "$TMP/client.out" "$TMP/client.err")"
    return 0
  fi
  CLIENT_PID=""
  if [[ -n $pid ]]; then after=$(session_ticks "$pid"); fi
  if ! alive "${PID_OF[$server]}"; then
    mark_dead "$server" "during the $kind run at c=$conns (round $round)"
    return 0
  fi
  [[ -n $before && -n $after ]] && ticks=$((after - before))
  [[ $round == warmup || $round == profile ]] && return 0
  kv=$(json_kv <"$TMP/client.out" 2>"$TMP/client.err2") || {
    log "no result from the load client on $path $kind c=$conns: $(<"$TMP/client.out")"
    return 0
  }
  [[ -s $TMP/client.err2 ]] && log "$path $kind c=$conns: $(<"$TMP/client.err2")"
  line="RESULT round=$round path=$path kind=$kind conns=$conns $kv cpu_ticks=$ticks"
  echo "$line" >>"$RESULTS"
  echo "$line"
}

# idle_run PATH: IDLE_CONNS tunnels, one request each, then held open
# while the server's RSS is read.
idle_run() {
  local path=$1 pid before after deadline ready=""
  [[ -n ${DEAD[$path]:-} ]] && return 0
  pid=${PID_OF[$path]}
  alive "$pid" || { mark_dead "$path"; return 0; }
  before=$(rss_kb "$pid")
  # shellcheck disable=SC2086
  taskset -c "$PROXY_CORE" "$CLIENT_BIN" ${CLIENT_ARGS[$path]} --mode idle \
    --conns "$IDLE_CONNS" --hold 300 >"$TMP/idle.out" 2>"$TMP/idle.err" &
  CLIENT_PID=$!
  deadline=$((SECONDS + 120))
  while ((SECONDS < deadline)) && alive "$CLIENT_PID"; do
    ready=$(grep -m1 '^READY ' "$TMP/idle.out" 2>/dev/null) && break
    sleep 0.2
  done
  if [[ -z $ready ]]; then
    log "idle run on $path: the client did not get ready: $(cat "$TMP/idle.out" "$TMP/idle.err")"
  else
    sleep 1
    after=$(rss_kb "$pid")
    local kv
    kv=$(grep -m1 '^{' "$TMP/idle.out" | json_kv 2>/dev/null) || kv=""
    local open=${ready#READY open=}
    local line="IDLE path=$path conns=$IDLE_CONNS open=${open%% *} rss_before_kb=$before rss_after_kb=$after ${kv}"
    echo "$line" >>"$RESULTS"
    echo "$line"
  fi
  kill -TERM "$CLIENT_PID" 2>/dev/null || true
  wait "$CLIENT_PID" 2>/dev/null || true
  CLIENT_PID=""
  alive "$pid" || mark_dead "$path" "during the idle run"
  return 0
}

print_run_header "sluice HTTPS (intercepted) load benchmark" "$(nginx -v 2>&1 | sed 's/.*version: //'), $(squid -v | sed -n '1s/.*Version /squid-openssl /p'), $(haproxy -v | sed -n '1s/^HAProxy version \([^ ]*\).*/haproxy \1/p'), $(openssl version | cut -d' ' -f1-2)"
echo "pinning: nginx on CPU $ORIGIN_CORE; the load client and the proxy under test on CPU $PROXY_CORE"
echo "plan: $ROUNDS interleaved rounds x ${#PATHS[@]} paths (${PATHS[*]}): kept-alive c=$CONNS and c=1," \
  "new tunnel per request c=$NEWCONN_CONNS (sluice also cold), ${DURATION}s each; then $IDLE_CONNS idle tunnels per proxy"
echo

if ((WARMUP > 0)); then
  for p in "${PATHS[@]}"; do run_client "$p" keepalive "$CONNS" "$WARMUP" warmup; done
fi
for ((r = 1; r <= ROUNDS; r++)); do
  for p in "${PATHS[@]}"; do
    run_client "$p" keepalive "$CONNS" "$DURATION" "$r"
    run_client "$p" keepalive 1 "$DURATION" "$r"
    run_client "$p" warm "$NEWCONN_CONNS" "$DURATION" "$r"
    if [[ $p == sluice ]]; then
      run_client sluice_cold cold "$NEWCONN_CONNS" "$DURATION" "$r"
    fi
  done
done

PERF_REPORT=""
if [[ ${PROFILE:-0} == 1 && -n ${CLIENT_ARGS[sluice]:-} && -z ${DEAD[sluice]:-} ]]; then
  if command -v perf >/dev/null; then
    perf record -F 999 -o "$TMP/perf.data" -p "${PID_OF[sluice]}" \
      -- sleep $((DURATION + 1)) >"$TMP/perf-record.log" 2>&1 &
    perf_pid=$!
    run_client sluice keepalive "$CONNS" "$DURATION" profile
    wait "$perf_pid" || log "perf record failed: $(<"$TMP/perf-record.log")"
    PERF_REPORT="$TMP/perf-report.txt"
    {
      perf report -i "$TMP/perf.data" --no-children --sort dso --stdio 2>/dev/null |
        grep -E '^ +[0-9]' | sed 's/ *$//' | head -n 12
      echo
      perf report -i "$TMP/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
        grep -E '^ +[0-9]' | cut -c1-150 | sed 's/ *$//' | head -n 30
    } >"$PERF_REPORT" || true
  else
    log "PROFILE=1 but perf is not installed"
  fi
fi

if ((IDLE_CONNS > 0)); then
  for p in sluice haproxy squid; do
    [[ -n ${CLIENT_ARGS[$p]:-} ]] && idle_run "$p"
  done
fi

# sluice's own TLS counters over the whole run.
if [[ -n ${CLIENT_ARGS[sluice]:-} && -z ${DEAD[sluice]:-} && -n $SLUICE_ADMIN ]]; then
  curl -sS --max-time 5 --noproxy '' "http://$SLUICE_ADMIN/metrics" 2>/dev/null |
    grep -E '^sluice_proxy_(origin_tls_handshakes_total|tls_leaf_cache_(hits|misses|evictions)_total|tunnels_read_total|origin_tls_failures_total)' |
    sed 's/^/METRIC /' >>"$RESULTS" || log "could not read sluice's metrics at $SLUICE_ADMIN"
fi

sleep 1
for p in "${PATHS[@]}"; do
  [[ $p == direct || -n ${DEAD[$p]:-} ]] && continue
  alive "${PID_OF[$p]}" || { mark_dead "$p" "after the last run"; continue; }
  echo "RSS path=$p when=after kb=$(rss_kb "${PID_OF[$p]}")" >>"$RESULTS"
done
echo "META clk_tck=$(getconf CLK_TCK) conns=$CONNS newconn_conns=$NEWCONN_CONNS rounds=$ROUNDS duration=$DURATION idle_conns=$IDLE_CONNS" >>"$RESULTS"
for p in "${PATHS[@]}"; do
  echo "LABEL path=$p text=${LABEL_OF[$p]}" >>"$RESULTS"
done

echo
python3 "$BENCH/summarize_tls.py" "$RESULTS"
if [[ -n $PERF_REPORT && -s $PERF_REPORT ]]; then
  echo "## sluice under perf (kept-alive, $CONNS tunnels): self time by library, then by symbol"
  echo
  echo '```'
  cat "$PERF_REPORT"
  echo '```'
fi
