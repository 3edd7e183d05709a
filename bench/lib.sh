# shellcheck shell=bash
# Shell shared by bench/load.sh and bench/tls_load.sh; sourced, not run.
# The sourcing script sets BENCH_NAME (its name in messages) and REPO, and
# runs under `set -euo pipefail`. Sourcing installs the EXIT/INT/TERM traps
# that stop every server started with start_bg and remove $TMP.

log() { echo "${BENCH_NAME:-bench}: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- process bookkeeping and cleanup -----------------------------------------

TMP=""
PIDS=()  # every server started here; each leads its own process group
CLIENT_PID=""  # the load client run in progress, if any

alive() { kill -0 "$1" 2>/dev/null; }

stop_all() {
  local pid deadline
  ((${#PIDS[@]})) || return 0
  for pid in "${PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  deadline=$((SECONDS + 4))
  for pid in "${PIDS[@]}"; do
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$pid"; then
      log "pid $pid ignored SIGTERM; sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  PIDS=()
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $CLIENT_PID ]]; then kill -TERM "$CLIENT_PID" 2>/dev/null || true; fi
  stop_all
  if [[ -n $TMP && -d $TMP ]]; then
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
      log "kept temp dir $TMP"
    else
      rm -rf -- "$TMP"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts "$@" in its own session (so its children can be stopped together),
# output to file $1. Sets START_PID. setsid does not fork here because a
# background child of a non-interactive shell is never a group leader, so
# START_PID is the server itself (taskset execs it too).
start_bg() {
  local out=$1
  shift
  setsid "$@" >"$out" 2>&1 </dev/null &
  START_PID=$!
  PIDS+=("$START_PID")
}

# --- small helpers -------------------------------------------------------------

free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# CPU time (utime + stime, all threads) of a process, in clock ticks.
cpu_ticks() {
  local line rest
  read -r line <"/proc/$1/stat" || return 1
  rest=${line##*) }
  # shellcheck disable=SC2086
  set -- $rest
  echo $((${12} + ${13}))
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# fill TEMPLATE OUT NAME=VALUE...: replaces @NAME@ with VALUE.
fill() {
  local tmpl=$1 out=$2 kv text
  shift 2
  text=$(<"$tmpl")
  for kv in "$@"; do
    text=${text//@${kv%%=*}@/${kv#*=}}
  done
  printf '%s\n' "$text" >"$out"
}

# probe URL [PROXY]: true once one request returns 200 with body "ok".
probe() {
  local body
  body=$(curl -sS --max-time 2 --noproxy '' ${2:+-x "http://$2"} "$1" 2>/dev/null) || return 1
  [[ $body == ok ]]
}

# wait_probe PID SECONDS URL [PROXY]
wait_probe() {
  local pid=$1 deadline=$((SECONDS + $2))
  shift 2
  while ((SECONDS < deadline)); do
    alive "$pid" || return 1
    probe "$@" && return 0
    sleep 0.1
  done
  return 1
}

# --- the sluice binary -----------------------------------------------------------------

# find_sluice TARGET...: sets SLUICE_BIN (and BUILD_NOTE, HAVE_SLUICE),
# building the given targets first unless SLUICE_PROXY_BIN or
# SLUICE_SKIP_BUILD=1 says otherwise.
# shellcheck disable=SC2034  # the variables are the caller's
find_sluice() {
  BUILD_NOTE=""
  if [[ -n ${SLUICE_PROXY_BIN:-} ]]; then
    SLUICE_BIN=$SLUICE_PROXY_BIN
    BUILD_NOTE="given binary"
  else
    BUILD_DIR=${SLUICE_BUILD_DIR:-$REPO/build}
    SLUICE_BIN="$BUILD_DIR/proxy/sluice-proxy"
    if [[ ${SLUICE_SKIP_BUILD:-0} != 1 ]]; then
      if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
        log "configuring $BUILD_DIR (Release)"
        cmake -S "$REPO" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2 ||
          log "cmake configure failed"
      fi
      log "building $* in $BUILD_DIR"
      cmake --build "$BUILD_DIR" --target "$@" >&2 ||
        log "build of $* failed"
    fi
    if [[ -f $BUILD_DIR/CMakeCache.txt ]]; then
      local bt
      bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
      BUILD_NOTE="build type ${bt:-default (RelWithDebInfo)}"
      if grep -q '^SLUICE_SANITIZE:BOOL=ON' "$BUILD_DIR/CMakeCache.txt"; then
        BUILD_NOTE+=", SANITIZERS ON (numbers meaningless)"
      fi
      [[ $bt == Debug ]] && BUILD_NOTE+=" (DEBUG: numbers meaningless)"
    fi
  fi
  HAVE_SLUICE=0
  [[ -x $SLUICE_BIN ]] && HAVE_SLUICE=1
  return 0
}

# print_run_header TITLE PEERS: the head of a results file (the machine,
# its load, the sluice binary and commit, the peers' versions). Reads
# HAVE_SLUICE, SLUICE_BIN, BUILD_NOTE and REPO.
print_run_header() {
  local title=$1 peers=$2 load1 bin_note="not measured"
  echo "# $title"
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host: $(uname -srm), $(nproc) CPU(s), $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)"
  read -r load1 _ </proc/loadavg
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  if awk -v l="$load1" 'BEGIN { exit !(l > 1.0) }'; then
    echo "WARNING: the machine is busy (load $load1); req/s and latency will be noisy"
  fi
  if ((HAVE_SLUICE)); then
    bin_note="$SLUICE_BIN, built $(date -u -r "$SLUICE_BIN" '+%Y-%m-%d %H:%M UTC')${BUILD_NOTE:+, $BUILD_NOTE}"
  fi
  echo "sluice: commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo '+uncommitted changes'); $bin_note"
  echo "peers: $peers"
}
