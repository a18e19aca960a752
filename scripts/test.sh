#!/usr/bin/env bash
# Runs every test, on a fresh machine too: installs what the tests need, builds, tests.
# As root: the integration tests make real containers.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
require_root
# libc6-dev: the static libc the tests' syscall helper links; util-linux: setpriv.
apt_install busybox-static iproute2 procps libc6-dev util-linux
cargo build --workspace --bins
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"
