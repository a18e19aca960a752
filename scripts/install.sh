#!/usr/bin/env bash
# Installs execdriver: the binaries, their man pages and bash, zsh and fish completions
# (generated from their clap definitions by execdriver-docgen), the systemd unit, the default
# config (never over one that exists), so `execdriverd` and `execdriverctl` are on the PATH. Or, with --uninstall, removes
# what an install put there (the config stays unless --purge).
#
#   scripts/install.sh [--prefix /usr/local] [--destdir DIR] [--from BINDIR]
#   scripts/install.sh --uninstall [--purge] [--prefix ...] [--destdir ...]
#
# --prefix   where bin/ and share/ go (default /usr/local); the unit's ExecStart points there.
# --destdir  a staging root prepended to every path (packaging, tests); nothing is enabled.
# --from     take the binaries from BINDIR instead of building them (release, the shim static).
# The unit goes to /etc/systemd/system and the config to /etc/execdriver/config.toml. With
# systemd running and no --destdir, the unit is loaded (daemon-reload) but not started: start
# it with `systemctl enable --now execdriverd`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

prefix=/usr/local destdir= from= uninstall= purge=
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --destdir) destdir=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    --purge) purge=1; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
case $prefix in /*) ;; *) echo "install.sh: --prefix must be absolute" >&2; exit 2 ;; esac

bins=(execdriverd execdriverctl execdriver-shim execdriver-runc nsinit)
bindir=$destdir$prefix/bin
unitdir=$destdir/etc/systemd/system
confdir=$destdir/etc/execdriver
sharedir=$destdir$prefix/share/execdriver
manifest=$sharedir/installed-files

systemd_live() { [ -z "$destdir" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

if [ -n "$uninstall" ]; then
  if [ ! -f "$manifest" ]; then
    echo "install.sh: nothing installed under $destdir$prefix (no $manifest)" >&2
    exit 1
  fi
  if systemd_live && systemctl is-enabled --quiet execdriverd 2>/dev/null; then
    # Stopping the service stops only the daemon (KillMode=process); containers run on.
    systemctl disable --now execdriverd || true
  fi
  while IFS= read -r f; do
    rm -f "$destdir$f"
    echo "removed $destdir$f"
  done < "$manifest"
  rm -f "$manifest"
  rmdir "$sharedir" 2>/dev/null || true
  if [ -n "$purge" ]; then
    rm -f "$confdir/config.toml" && rmdir "$confdir" 2>/dev/null || true
    echo "removed $confdir/config.toml"
  fi
  systemd_live && systemctl daemon-reload || true
  exit 0
fi

if [ -z "$from" ]; then
  build_release
  from=target/release
fi
for b in "${bins[@]}" execdriver-docgen; do
  [ -x "$from/$b" ] || { echo "install.sh: $from/$b is missing (build first, or give --from)" >&2; exit 1; }
done

install -d "$bindir" "$unitdir" "$confdir" "$sharedir"
installed=()
for b in "${bins[@]}"; do
  install -m 0755 "$from/$b" "$bindir/$b"
  installed+=("$prefix/bin/$b")
done
# Man pages and completions, from the binaries' own clap definitions (so they never drift).
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
"$from/execdriver-docgen" man "$gen/man"
"$from/execdriver-docgen" completions "$gen/completions"
install_doc() { # FILE DIR-UNDER-PREFIX NAME
  install -D -m 0644 "$1" "$destdir$prefix/$2/$3"
  installed+=("$prefix/$2/$3")
}
for f in "$gen"/man/*.1; do install_doc "$f" share/man/man1 "$(basename "$f")"; done
for f in "$gen"/completions/bash/*; do
  install_doc "$f" share/bash-completion/completions "$(basename "$f")"
done
for f in "$gen"/completions/zsh/*; do install_doc "$f" share/zsh/site-functions "$(basename "$f")"; done
for f in "$gen"/completions/fish/*; do
  install_doc "$f" share/fish/vendor_completions.d "$(basename "$f")"
done
# The unit, its paths pointed at this prefix.
sed "s#/usr/local/bin/#$prefix/bin/#g" contrib/systemd/execdriverd.service > "$unitdir/execdriverd.service"
chmod 0644 "$unitdir/execdriverd.service"
installed+=("/etc/systemd/system/execdriverd.service")
install -d "$destdir/etc/systemd/user"
sed "s#/usr/local/bin/#$prefix/bin/#g" contrib/systemd/user/execdriverd.service \
  > "$destdir/etc/systemd/user/execdriverd.service"
chmod 0644 "$destdir/etc/systemd/user/execdriverd.service"
installed+=("/etc/systemd/user/execdriverd.service")
if [ -e "$confdir/config.toml" ]; then
  echo "kept $confdir/config.toml (it exists; the default is contrib/config.toml)"
else
  install -m 0644 contrib/config.toml "$confdir/config.toml"
fi
printf '%s\n' "${installed[@]}" > "$manifest"
for f in "${installed[@]}"; do echo "installed $destdir$f"; done
if systemd_live; then
  systemctl daemon-reload
  echo "start it with: systemctl enable --now execdriverd"
fi
