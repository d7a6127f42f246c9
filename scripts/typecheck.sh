#!/usr/bin/env bash
# mypy cannot follow setuptools' editable-install import hook, so give it a link tree that
# lays the top-level folders out as the raftka namespace they are installed as.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tree="$root/.build/typecheck"
rm -rf "$tree" && mkdir -p "$tree/raftka"
ln -s "$root/proto/raftka/v1" "$tree/raftka/v1"
for pkg in common controller broker client ops; do ln -s "$root/$pkg" "$tree/raftka/$pkg"; done
cd "$root"
MYPYPATH="$tree" "$root/.venv/bin/python" -m mypy --strict --explicit-package-bases \
    "$tree/raftka/common" "$tree/raftka/controller" "$tree/raftka/broker" "$tree/raftka/client" "$tree/raftka/ops" tests scripts
