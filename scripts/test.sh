#!/usr/bin/env bash
# Runs every test, on a fresh machine too: installs what the tests need, builds, builds and
# checks the documentation (scripts/docs.sh), tests.
# As root: the integration tests make real containers.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
require_root
# libc6-dev: the static libc the tests' syscall helper links; util-linux: setpriv; passwd:
# useradd for the rootless tests' users; uidmap: newuidmap/newgidmap (rootless Podman);
# slirp4netns: the user-mode network's tests.
apt_install busybox-static iproute2 procps libc6-dev util-linux passwd uidmap slirp4netns
# The engines tests/tests/engines/ runs on private paths (each started and stopped by the test),
# and the reference runtimes: Docker, Podman + conmon, containerd + ctr, runc, crun.
apt_install_quiet_services docker.io podman conmon containerd containernetworking-plugins runc crun
# The Python example harness (tests/tests/surface.rs runs it against a daemon of its own).
pip_install grpc:grpcio grpc_tools:grpcio-tools
cargo build --workspace --bins
# The book, man pages and completions; fails on a flag missing from its reference page, a
# stale API page or a broken relative link (mdBook is installed once into a cache).
bash scripts/docs.sh
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"
