# Shared set-up for the scripts: root check and Debian packages.

require_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "$0: run as root (containers need namespaces, mounts and cgroups)" >&2
    exit 1
  fi
}

# apt_install PKG...: installs the Debian packages that are not installed yet.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

# apt_install_quiet_services PKG...: as apt_install, without starting the packages' services
# (docker.io and containerd enable theirs on install; a system dockerd would make docker0 and
# iptables rules on the host). A policy-rc.d that refuses every start is in place during the
# install, unless the machine already has one.
apt_install_quiet_services() {
  local policy=/usr/sbin/policy-rc.d made=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made=1
  fi
  local rc=0
  apt_install "$@" || rc=$?
  [ -n "$made" ] && rm -f "$policy"
  return $rc
}

# build_release: the release binaries, with the shim and the CLI linked statically and
# position-dependent. The shim runs once per container: no dynamic loader at each start, only
# the part of libc it uses, and no relocated pages of its own (idle, each shim keeps about 110
# KiB private). The CLI runs once per command a user types (about 2 ms less per `execdriverctl
# run --rm`, measured). Needs libc6-dev's static libc.
build_release() {
  apt_install libc6-dev
  cargo build --release --workspace --bins
  # In a target directory of their own, so that no later cargo run takes them for stale.
  local flags="-C target-feature=+crt-static -C relocation-model=static"
  CARGO_TARGET_DIR=target/static cargo rustc --release -p execdriver-shim --bin execdriver-shim -- $flags
  CARGO_TARGET_DIR=target/static cargo rustc --release -p execdriver-driver --bin execdriverctl -- $flags
  install -m 0755 target/static/release/execdriver-shim target/static/release/execdriverctl target/release/
}

# make_rootfs DIR: a busybox root filesystem from Debian's busybox-static.
make_rootfs() {
  local dir=$1
  mkdir -p "$dir"/{bin,sbin,etc,proc,sys,dev,tmp,root,var,mnt}
  chmod 1777 "$dir/tmp"
  cp /bin/busybox "$dir/bin/busybox"
  for a in $("$dir/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -sf busybox "$dir/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$dir/etc/passwd"
  printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$dir/etc/group"
}

# pip_install MODULE:PACKAGE...: installs the PyPI packages whose module python3 cannot import
# (python3 and pip from Debian when missing).
pip_install() {
  command -v python3 >/dev/null || apt_install python3
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  local missing=()
  for mp in "$@"; do
    python3 -c "import ${mp%%:*}" 2>/dev/null || missing+=("${mp#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing from PyPI: ${missing[*]}" >&2
  local pip=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
  "${pip[@]}" "${missing[@]}" \
    || "${pip[@]}" --break-system-packages "${missing[@]}"
}
