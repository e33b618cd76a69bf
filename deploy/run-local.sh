#!/usr/bin/env bash
# Runs metrics-adapter locally in the foreground: installs the Debian packages
# that are missing (tests/install-deps.sh), builds into build/, and starts
# build/bin/metrics-adapter on 127.0.0.1:8080 (remote write at
# /api/v1/write, self-metrics at /metrics, health at /healthz). Ctrl-C stops it.
#
# Extra arguments are passed to the adapter and override the defaults below,
# for example:  deploy/run-local.sh --listen-address=127.0.0.1:9201 --log-level=debug
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target metrics-adapter

# exec: the adapter is the foreground process, so Ctrl-C (SIGINT) reaches it
# directly and it shuts down cleanly.
exec build/bin/metrics-adapter \
  --listen-address=127.0.0.1:8080 \
  --log-level=info \
  "$@"
