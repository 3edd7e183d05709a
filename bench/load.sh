#!/usr/bin/env bash
# End-to-end load benchmark: sluice-proxy against a direct connection, Squid
# and HAProxy, all on loopback. See bench/README.md for the method.
#
# Usage: bash bench/load.sh
#
# Environment:
#   ROUNDS=3            interleaved rounds (A B B2 C D, A B B2 C D, ...)
#   DURATION=5          seconds per wrk run
#   WARMUP=1            seconds of unrecorded load per path before round 1
#   CONNS=32            connections of the loaded run (the other run uses 1)
#   ORIGIN_CORE=0       CPU for nginx
#   PROXY_CORE=1        CPU shared by wrk and the proxy under test
#   SLUICE_PROXY_BIN    use this sluice-proxy binary; nothing is built
#   SLUICE_BUILD_DIR    build directory (default: <repo>/build)
#   SLUICE_SKIP_BUILD=1 do not build; use the binary if it is there
#   SLUICE_SKIP_DEPS=1  do not run .ci/install-deps.sh
#   SLUICE_POOL_IDLE=N  set sluice's limits.pool_max_idle_per_host (default:
#                       sluice's own default, 8, which is below CONNS)
#   KEEP_TMP=1          keep the temp dir (configs, logs, raw results)
#
# All traffic stays on 127.0.0.1. Every process started here is stopped on
# exit, within a few seconds.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
ORIGIN_CORE=${ORIGIN_CORE:-0}
PROXY_CORE=${PROXY_CORE:-1}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$REPO/bench"
LUA="$BENCH/wrk_proxy.lua"

BENCH_NAME=load.sh
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

[[ ${SLUICE_POOL_IDLE:-0} =~ ^[0-9]+$ ]] || die "SLUICE_POOL_IDLE must be a whole number"
for v in ROUNDS DURATION WARMUP CONNS ORIGIN_CORE PROXY_CORE; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
((ROUNDS >= 1 && DURATION >= 1 && CONNS >= 1)) || die "ROUNDS, DURATION, CONNS must be >= 1"

# --- dependencies and the sluice binary ------------------------------------------

if [[ ${SLUICE_SKIP_DEPS:-0} != 1 ]]; then
  SLUICE_BENCH_DEPS=1 bash "$REPO/.ci/install-deps.sh" >&2
fi
export PATH="$PATH:/usr/sbin:/sbin"
for tool in wrk nginx squid haproxy curl python3 taskset setsid timeout; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

find_sluice sluice-proxy
if ((!HAVE_SLUICE)); then
  log "SKIPPING paths B and B2: no sluice-proxy binary at $SLUICE_BIN" \
    "(not built yet or the build failed; set SLUICE_PROXY_BIN to use another)"
fi

ncpu=$(nproc)
if ((ORIGIN_CORE >= ncpu || PROXY_CORE >= ncpu)); then
  log "only $ncpu CPU(s): pinning everything to CPU 0 (figures not comparable)"
  ORIGIN_CORE=0
  PROXY_CORE=0
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-load.XXXXXX")
chmod 755 "$TMP"
RESULTS="$TMP/results.txt"
: >"$RESULTS"

# --- servers -----------------------------------------------------------------------

declare -A PID_OF ADDR_OF TARGET_OF LABEL_OF

# A: nginx origin on ORIGIN_CORE.
ORIGIN_PORT=$(free_port)
ORIGIN="127.0.0.1:$ORIGIN_PORT"
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
fill "$BENCH/nginx.conf.tmpl" "$TMP/nginx/nginx.conf" \
  "DIR=$TMP/nginx" "PORT=$ORIGIN_PORT" "USER_LINE=$user_line" "TEMP_PATH_LINES=$temp_lines"
start_bg "$TMP/nginx/stdout.log" taskset -c "$ORIGIN_CORE" \
  nginx -p "$TMP/nginx/" -e "$TMP/nginx/nginx-error.log" -c "$TMP/nginx/nginx.conf"
PID_OF[direct]=$START_PID
if ! wait_probe "$START_PID" 10 "http://$ORIGIN/"; then
  cat "$TMP/nginx/stdout.log" "$TMP/nginx/nginx-error.log" >&2 2>/dev/null || true
  die "nginx origin did not start"
fi
ADDR_OF[direct]=$ORIGIN
LABEL_OF[direct]="A direct (wrk -> nginx)"

# B and B2: sluice-proxy, one worker; B2 sends every request through a rate
# limit whose rate is far above what the machine can do.
start_sluice() {  # start_sluice NAME WITH_LIMIT LABEL
  local name=$1 limit=$2 label=$3 dir="$TMP/$1" addr="" deadline
  mkdir -p "$dir"
  {
    echo "listen: [\"127.0.0.1:$(free_port)\"]"
    echo "workers: 1"
    echo "admin: {listen: \"off\"}"
    echo "access_log: {enabled: false}"
    echo "ssrf: {allow: [\"127.0.0.0/8\"]}"
    echo "shutdown_grace: 0s"
    if [[ -n ${SLUICE_POOL_IDLE:-} ]]; then
      echo "limits: {pool_max_idle_per_host: $SLUICE_POOL_IDLE}"
    fi
    if [[ $limit == 1 ]]; then
      echo "rate_limits: {big: {rate: 100000000, period: 1s, burst: 1000000}}"
      echo "routes: [{host: \"127.0.0.1\", limit: big}]"
    fi
  } >"$dir/sluice.yaml"
  start_bg "$dir/stderr.log" taskset -c "$PROXY_CORE" "$SLUICE_BIN" --config "$dir/sluice.yaml"
  PID_OF[$name]=$START_PID
  deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)) && alive "$START_PID"; do
    addr=$(sed -n 's/.*sluice-proxy listening proxy=\([^ ]*\).*/\1/p' "$dir/stderr.log" 2>/dev/null | head -n1)
    [[ -n $addr ]] && break
    sleep 0.05
  done
  if [[ -z $addr ]]; then
    log "SKIPPING $name: sluice-proxy did not report listening; its stderr:"
    sed 's/^/  /' "$dir/stderr.log" >&2
    return 1
  fi
  echo "RSS path=$name when=start kb=$(rss_kb "$START_PID")" >>"$RESULTS"
  if ! probe "http://$ORIGIN/" "$addr"; then
    log "SKIPPING $name: a request through sluice-proxy at $addr failed:"
    curl -sS -i --max-time 2 --noproxy '' -x "http://$addr" "http://$ORIGIN/" >&2 || true
    sed 's/^/  /' "$dir/stderr.log" >&2
    return 1
  fi
  ADDR_OF[$name]=$addr
  TARGET_OF[$name]="http://$ORIGIN/"
  LABEL_OF[$name]=$label
}
if ((HAVE_SLUICE)); then
  start_sluice sluice 0 "B sluice-proxy, 1 worker" || true
  start_sluice sluice_limit 1 "B2 sluice-proxy, every request through a limiter" || true
fi

# C: Squid forward proxy.
SQUID_PORT=$(free_port)
mkdir -p "$TMP/squid"
user_line=""
if (($(id -u) == 0)); then
  # Squid run as root switches to cache_effective_user; its files must be
  # writable by that user.
  squid_user=proxy
  id "$squid_user" >/dev/null 2>&1 || squid_user=nobody
  user_line="cache_effective_user $squid_user"
  chown "$squid_user" "$TMP/squid"
fi
fill "$BENCH/squid.conf.tmpl" "$TMP/squid/squid.conf" \
  "DIR=$TMP/squid" "PORT=$SQUID_PORT" "ORIGIN_PORT=$ORIGIN_PORT" "USER_LINE=$user_line"
start_bg "$TMP/squid/stdout.log" taskset -c "$PROXY_CORE" squid -N -f "$TMP/squid/squid.conf"
PID_OF[squid]=$START_PID
if wait_probe "$START_PID" 15 "http://$ORIGIN/" "127.0.0.1:$SQUID_PORT"; then
  ADDR_OF[squid]="127.0.0.1:$SQUID_PORT"
  TARGET_OF[squid]="http://$ORIGIN/"
  LABEL_OF[squid]="C squid, forward proxy, no cache"
  echo "RSS path=squid when=start kb=$(rss_kb "$START_PID")" >>"$RESULTS"
else
  log "SKIPPING squid: it did not start or did not relay; its logs:"
  cat "$TMP/squid/stdout.log" "$TMP/squid/squid-cache.log" >&2 2>/dev/null || true
fi

# D: HAProxy reverse-proxy hop.
HAPROXY_PORT=$(free_port)
mkdir -p "$TMP/haproxy"
fill "$BENCH/haproxy.cfg.tmpl" "$TMP/haproxy/haproxy.cfg" \
  "PORT=$HAPROXY_PORT" "ORIGIN_PORT=$ORIGIN_PORT"
start_bg "$TMP/haproxy/stdout.log" taskset -c "$PROXY_CORE" haproxy -db -f "$TMP/haproxy/haproxy.cfg"
PID_OF[haproxy]=$START_PID
if wait_probe "$START_PID" 10 "http://127.0.0.1:$HAPROXY_PORT/"; then
  ADDR_OF[haproxy]="127.0.0.1:$HAPROXY_PORT"
  LABEL_OF[haproxy]="D haproxy, reverse-proxy hop"
  echo "RSS path=haproxy when=start kb=$(rss_kb "$START_PID")" >>"$RESULTS"
else
  log "SKIPPING haproxy: it did not start; its output:"
  cat "$TMP/haproxy/stdout.log" >&2 || true
fi

PATHS=()
for p in direct sluice sluice_limit squid haproxy; do
  [[ -n ${ADDR_OF[$p]:-} ]] && PATHS+=("$p")
done

# --- measuring -----------------------------------------------------------------------

declare -A DEAD  # paths whose server exited; they are not run again

# mark_dead PATH [WHEN]: reports that PATH's server exited and shows the end
# of its log; its runs so far stay in the results, flagged.
mark_dead() {
  local path=$1 when=${2:-} status=""
  DEAD[$path]=1
  # The exit status tells a crash (signal) from a clean exit.
  wait "${PID_OF[$path]}" 2>/dev/null || status=$?
  log "$path: its server exited${when:+ $when}${status:+ (wait status $status)}; no more runs for it"
  echo "DEAD path=$path status=${status:-0}" >>"$RESULTS"
  local logf dir="$TMP/$path"
  [[ $path == direct ]] && dir="$TMP/nginx"
  for logf in "$dir/stderr.log" "$dir/stdout.log" "$dir/squid-cache.log" "$dir/nginx-error.log"; do
    [[ -s $logf ]] && tail -n 20 "$logf" | sed "s|^|  $path: |" >&2
  done
  return 0
}

# run_wrk PATH CONNS SECONDS ROUND: one wrk run; ROUND=warmup is not recorded.
run_wrk() {
  local path=$1 conns=$2 secs=$3 round=$4 out line before="" after="" ticks=- pid
  local args=(-t1 "-c$conns" "-d${secs}s" --timeout 5s -s "$LUA" "http://${ADDR_OF[$path]}/")
  [[ -n ${DEAD[$path]:-} ]] && return 0
  [[ -n ${TARGET_OF[$path]:-} ]] && args+=(-- "${TARGET_OF[$path]}")
  pid=${PID_OF[$path]}
  if ! alive "$pid"; then
    mark_dead "$path"
    return 0
  fi
  [[ $path == direct ]] && pid=""
  if [[ -n $pid ]]; then before=$(cpu_ticks "$pid") || before=""; fi
  # In the background, so that a signal stops the script at once.
  timeout -k 2 $((secs + 15)) taskset -c "$PROXY_CORE" wrk "${args[@]}" >"$TMP/wrk.out" 2>&1 &
  CLIENT_PID=$!
  if ! wait "$CLIENT_PID"; then
    CLIENT_PID=""
    log "wrk failed on $path c=$conns: $(<"$TMP/wrk.out")"
    return 0
  fi
  CLIENT_PID=""
  out=$(<"$TMP/wrk.out")
  if [[ -n $pid ]]; then after=$(cpu_ticks "$pid" 2>/dev/null) || after=""; fi
  if ! alive "${PID_OF[$path]}"; then
    mark_dead "$path" "during the run at c=$conns (round $round)"
    return 0
  fi
  [[ -n $before && -n $after ]] && ticks=$((after - before))
  [[ $round == warmup ]] && return 0
  line=$(grep '^WRKRESULT ' <<<"$out" | head -n1)
  if [[ -z $line ]]; then
    log "no WRKRESULT line from wrk on $path c=$conns: $out"
    return 0
  fi
  line="RESULT round=$round path=$path conns=$conns ${line#WRKRESULT } cpu_ticks=$ticks"
  echo "$line" >>"$RESULTS"
  echo "$line"
}

print_run_header "sluice load benchmark" "$(nginx -v 2>&1 | sed 's/.*version: //'), $(squid -v | sed -n '1s/.*Version /squid /p'), $(haproxy -v | sed -n '1s/^HAProxy version \([^ ]*\).*/haproxy \1/p'), $(wrk -v 2>&1 | sed -n '1s/^\(wrk [^ ]*\).*/\1/p')"
if [[ -n ${SLUICE_POOL_IDLE:-} ]]; then
  echo "sluice config: limits.pool_max_idle_per_host=$SLUICE_POOL_IDLE"
fi
echo "pinning: nginx on CPU $ORIGIN_CORE; wrk and the proxy under test on CPU $PROXY_CORE"
echo "plan: $ROUNDS interleaved rounds x ${#PATHS[@]} paths (${PATHS[*]}), c=$CONNS then c=1, ${DURATION}s each, wrk -t1, keep-alive"
echo

if ((WARMUP > 0)); then
  for p in "${PATHS[@]}"; do run_wrk "$p" "$CONNS" "$WARMUP" warmup; done
fi
for ((r = 1; r <= ROUNDS; r++)); do
  for p in "${PATHS[@]}"; do
    run_wrk "$p" "$CONNS" "$DURATION" "$r"
    run_wrk "$p" 1 "$DURATION" "$r"
  done
done

sleep 1
for p in "${PATHS[@]}"; do
  [[ $p == direct || -n ${DEAD[$p]:-} ]] && continue
  alive "${PID_OF[$p]}" || { mark_dead "$p" "after the last run"; continue; }
  echo "RSS path=$p when=after kb=$(rss_kb "${PID_OF[$p]}")" >>"$RESULTS"
done
echo "META clk_tck=$(getconf CLK_TCK) conns=$CONNS rounds=$ROUNDS duration=$DURATION" >>"$RESULTS"
for p in "${PATHS[@]}"; do
  echo "LABEL path=$p text=${LABEL_OF[$p]}" >>"$RESULTS"
done

echo
python3 "$BENCH/summarize.py" "$RESULTS"
