#!/usr/bin/env bash
# Runs the benchmarks in release mode and prints their tables (also saved to bench-results.md).
# As root. Usage: scripts/bench.sh [NAME...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
require_root
apt_install busybox-static runc crun containerd conmon
cargo build --release --workspace --bins
cargo bench -p execdriver-tests --bench bench -- "$@" | tee bench-results.md
