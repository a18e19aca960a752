#!/usr/bin/env bash
# Runs the benchmarks side by side with runc, crun, containerd (ctr + containerd-shim-runc-v2)
# and conmon, all from Debian packages, and prints the tables (also written to
# bench-results.md) and the chart (docs/src/bench.svg). As root, best on an otherwise idle machine.
# Usage: scripts/bench.sh [start|exec|many|memory|throughput|oci|cri|scale...]   (default: all)
#        BENCH_ROUNDS=N scripts/bench.sh   (rounds per latency figure; default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
require_root
apt_install busybox-static runc crun containerd containernetworking-plugins conmon libc6-dev
# The `oci` section's `docker run` (a private dockerd, started and stopped by the benchmark).
apt_install_quiet_services docker.io
build_release
cargo bench -p execdriver-tests --bench bench -- "$@"
