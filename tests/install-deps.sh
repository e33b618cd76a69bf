#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the tests and the benchmarks need,
# only those that are missing. Run as root (or with sudo available).
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  liburcu-dev libxxhash-dev libmicrohttpd-dev libgnutls28-dev libsnappy-dev zlib1g-dev
  libprotobuf-c-dev protobuf-c-compiler libyaml-dev libpcre2-dev
  libcurl4-openssl-dev libjansson-dev systemtap-sdt-dev
  valgrind curl openssl procps
  prometheus prometheus-node-exporter golang-go wrk gnuplot-nox
  python3 python3-kubernetes python3-snappy python3-yaml
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The prometheus package may start a system service; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl stop prometheus prometheus-node-exporter || true
fi
