#!/usr/bin/env bash
# Runs every test, on a fresh machine too: installs what the tests need, builds, tests.
# As root: the integration tests make real containers.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
require_root
apt_install busybox-static iproute2 procps util-linux
cargo build --workspace --bins
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"
