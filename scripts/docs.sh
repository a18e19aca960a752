#!/usr/bin/env bash
# Builds the book (docs/ -> target/book/index.html) with mdBook, after regenerating what it
# takes from the code (the gRPC reference page from the proto's comments), and the man pages
# and shell completions (target/man, target/completions) from the clap definitions. Then
# checks the docs against the code: every flag in its reference page, the API page current,
# every relative link resolving (tests/tests/docs/). Needs no root.
#
#   scripts/docs.sh            # build and check
#   scripts/docs.sh --open     # ... and print the path to open
#
# mdBook is installed once with cargo into a cache (EXECDRIVER_CACHE, default
# ~/.cache/execdriver), pinned to MDBOOK_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."

MDBOOK_VERSION=0.5.4
cache=${EXECDRIVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/execdriver}
mdbook=$cache/mdbook-$MDBOOK_VERSION/bin/mdbook
if [ ! -x "$mdbook" ]; then
  echo "docs.sh: installing mdbook $MDBOOK_VERSION into $cache (once)"
  cargo install mdbook --locked --version "$MDBOOK_VERSION" --no-default-features \
    --root "$cache/mdbook-$MDBOOK_VERSION"
fi

target=${CARGO_TARGET_DIR:-target}
cargo build --bin execdriver-docgen
docgen=$target/debug/execdriver-docgen
"$docgen" api docs/src/grpc-reference.md
rm -rf "$target/man" "$target/completions"
"$docgen" man "$target/man"
"$docgen" completions "$target/completions"

"$mdbook" build docs
cargo test -p execdriver-tests --test docs
echo "docs.sh: the book is in target/book/index.html; man pages in $target/man"
if [ "${1:-}" = --open ]; then echo "open target/book/index.html"; fi
