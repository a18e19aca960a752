#!/usr/bin/env bash
# The main job, on a fresh machine too: build, make a busybox rootfs, start execdriverd on a
# private socket, run a container through the gRPC API with execdriverctl, show its output,
# stop the daemon. As root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
require_root
apt_install busybox-static
build_release
bin=target/release
work=$(mktemp -d /tmp/execdriver-demo.XXXXXX)
daemon=
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$work"
  for h in /sys/fs/cgroup/*/; do rmdir "$h/execdriver-demo" 2>/dev/null || true; done
}
trap cleanup EXIT
make_rootfs "$work/rootfs"
"$bin/execdriverd" --root "$work/state" --socket "$work/execdriverd.sock" --cgroup-parent execdriver-demo \
  2> "$work/daemon.log" &
daemon=$!
for _ in $(seq 100); do [ -S "$work/execdriverd.sock" ] && break; sleep 0.05; done
ctl() { "$bin/execdriverctl" --socket "$work/execdriverd.sock" "$@"; }
echo "== execdriverctl info"
ctl info
echo "== execdriverctl run --rm --hostname demo -- sh -c '...'"
ctl run --rm --rootfs "$work/rootfs" --hostname demo --env GREETING=hello -- \
  sh -c 'echo "$GREETING from $(hostname), I am pid $$"; echo "processes I can see:"; ps -o pid,comm'
echo "== exit code $?"
