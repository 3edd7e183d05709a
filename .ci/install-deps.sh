#!/usr/bin/env bash
# Installs the Debian 12 packages sluice needs, only when some are missing.
# Safe to run with no standard input (CI) and as root or via sudo.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-url1.81-dev libboost-json1.81-dev libssl-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libyaml-cpp-dev prometheus-cpp-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  curl openssl ca-certificates python3 python3-requests testssl.sh
  openjdk-17-jdk-headless
)
# The HTTPS integration tests run a Node client (npm ci installs its pinned
# packages). Debian's nodejs and npm only when the commands are absent: a
# Node installed otherwise (e.g. NodeSource, whose nodejs conflicts with
# Debian's npm) is used as it is.
if ! command -v node >/dev/null 2>&1; then PKGS+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then PKGS+=(npm); fi
# Only the benchmark script needs these; install with SLUICE_BENCH_DEPS=1.
if [[ "${SLUICE_BENCH_DEPS:-0}" == "1" ]]; then
  PKGS+=(wrk nginx-light squid-openssl haproxy)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq </dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
