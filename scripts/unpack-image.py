#!/usr/bin/env python3
"""Unpacks an image into a root filesystem: unpack-image.py IMAGE DIR.

IMAGE: an OCI image layout (directory or tarball), a `docker save` tarball, or a plain
filesystem tarball (`docker export`). Layers are applied in order with OCI whiteouts
(`.wh.NAME` removes NAME, `.wh..wh..opq` empties its directory of what lower layers put
there). Nothing is written outside DIR: names with `..` or absolute hard links are refused, no
path is followed through a symlink, and an entry replaces (never writes through) what is at
its path.
"""
import io
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile

WH = ".wh."
OPAQUE = ".wh..wh..opq"


# Python before 3.11.4 (Debian 12 has 3.11.2) has no extraction filters; the checks here are
# this script's own either way.
HAS_FILTERS = hasattr(tarfile, "data_filter")
TRUSTED = {"filter": "fully_trusted"} if HAS_FILTERS else {}
DATA = {"filter": "data"} if HAS_FILTERS else {}


class Refused(Exception):
    pass


def clean(name):
    """A member name as a relative path inside the root; refuses escapes."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise Refused(f"{name!r} leaves the root")
    return parts


def inside(root, parts):
    """root/parts, refusing any parent that is a symlink (nothing is followed)."""
    cur = root
    for p in parts[:-1]:
        cur = os.path.join(cur, p)
        if os.path.islink(cur):
            raise Refused(f"{'/'.join(parts)!r} goes through the symlink {cur!r}")
    return os.path.join(root, *parts)


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def apply_layer(tar, root):
    members = tar.getmembers()
    # Whiteouts first: they remove what lower layers put there, not this layer's entries.
    for m in members:
        parts = clean(m.name)
        if not parts:
            continue
        base = parts[-1]
        if base == OPAQUE:
            d = os.path.dirname(inside(root, parts))
            if os.path.isdir(d) and not os.path.islink(d):
                for e in os.listdir(d):
                    remove(os.path.join(d, e))
        elif base.startswith(WH):
            remove(inside(root, parts[:-1] + [base[len(WH):]]))
    for m in members:
        parts = clean(m.name)
        if not parts or parts[-1].startswith(WH):
            continue
        path = inside(root, parts)
        if m.isdir():
            if os.path.lexists(path) and not (os.path.isdir(path) and not os.path.islink(path)):
                remove(path)
        else:
            remove(path)
        if m.islnk():
            target = inside(root, clean(m.linkname))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.link(target, path, follow_symlinks=False)
            continue
        if m.ischr() or m.isblk() or m.isfifo():
            # Device nodes come from the runtime's /dev; a fifo is made as asked.
            if m.isfifo():
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.mkfifo(path, m.mode & 0o7777)
            continue
        # Checked above; tarfile itself follows nothing here, as the path is free.
        m.name = "/".join(parts)
        tar.extract(m, root, set_attrs=True, numeric_owner=True, **TRUSTED)


def plain_members(t):
    """The files and directories of an outer tarball, named relative to where it is unpacked."""
    out = []
    for m in t.getmembers():
        parts = clean(m.name)
        if parts and (m.isfile() or m.isdir()):
            m.name = "/".join(parts)
            out.append(m)
    return out


def blob(layout, digest):
    algo, hexd = digest.split(":", 1)
    if not (algo.isalnum() and hexd.isalnum()):
        raise Refused(f"{digest!r} is no digest")
    return os.path.join(layout, "blobs", algo, hexd)


def oci_layers(layout):
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    desc = index["manifests"][0]
    while True:
        with open(blob(layout, desc["digest"])) as f:
            doc = json.load(f)
        if "manifests" in doc:  # an index: this machine's platform, or the first
            pick = [
                m for m in doc["manifests"]
                if m.get("platform", {}).get("os") == "linux"
                and m.get("platform", {}).get("architecture") in ("amd64", os.uname().machine)
            ]
            desc = (pick or doc["manifests"])[0]
            continue
        return [blob(layout, l["digest"]) for l in doc["layers"]]


def open_layer(path):
    try:
        return tarfile.open(path, "r:*")
    except tarfile.ReadError as e:
        raise Refused(f"{path}: not a tar layer this unpacker reads (zstd?): {e}")


def main(image, root):
    root = os.path.realpath(root)
    os.makedirs(root, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if os.path.isdir(image):
            if not os.path.exists(os.path.join(image, "index.json")):
                raise Refused(f"{image}: a directory without index.json is no OCI image layout")
            layers = oci_layers(image)
        else:
            with tarfile.open(image, "r:*") as t:
                names = set(t.getnames())
                top = {n.lstrip("./") for n in names}
                if "index.json" in top and "oci-layout" in top:
                    t.extractall(tmp, members=plain_members(t), **DATA)
                    layers = oci_layers(tmp)
                elif "manifest.json" in top:
                    t.extractall(tmp, members=plain_members(t), **DATA)
                    with open(os.path.join(tmp, "manifest.json")) as f:
                        manifest = json.load(f)
                    layers = [os.path.join(tmp, *clean(l)) for l in manifest[0]["Layers"]]
                else:
                    layers = [image]
        for n, layer in enumerate(layers, 1):
            with open_layer(layer) as t:
                apply_layer(t, root)
            print(f"layer {n}/{len(layers)} applied", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1], sys.argv[2])
    except (Refused, OSError, KeyError, ValueError, tarfile.TarError) as e:
        print(f"unpack-image.py: {e}", file=sys.stderr)
        sys.exit(1)
