#!/usr/bin/env bash
# Makes a root filesystem for containers.
#
#   scripts/make-rootfs.sh DIR           a busybox one, from Debian's busybox-static
#   scripts/make-rootfs.sh DIR IMAGE     one unpacked from an image: IMAGE is an OCI image
#                                        layout (a directory, as `skopeo copy ... oci:DIR` makes,
#                                        or a tarball of one), a `docker save` tarball, or a
#                                        filesystem tarball (`docker export`); layers are applied
#                                        in order, with their whiteouts.
# DIR must not exist or be empty. As root, so owners and modes are kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -ge 1 ] && [ "$1" != -h ] && [ "$1" != --help ] && exit 2
  exit 0
fi
dir=$1
if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
  echo "make-rootfs.sh: $dir is not empty" >&2
  exit 1
fi
if [ $# -eq 1 ]; then
  [ -x /bin/busybox ] || { require_root; apt_install busybox-static; }
  make_rootfs "$dir"
else
  command -v python3 >/dev/null || { require_root; apt_install python3; }
  mkdir -p "$dir"
  python3 "$here/unpack-image.py" "$2" "$dir"
fi
echo "$dir: $(find "$dir" -mindepth 1 | wc -l) entries"
