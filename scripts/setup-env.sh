#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv and installs Raftka into it
# in editable mode with its development tools. Sourced by scripts/up and scripts/test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Raftka needs Python 3.11 or newer; '$python' is $("$python" --version 2>&1)." >&2
    echo "Set PYTHON=/path/to/python3.11 and run again." >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
stamp="$venv/.raftka-installed"
# A change of the C accelerator's source also reinstalls, so a stale extension is rebuilt.
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ] || [ "$root/setup.py" -nt "$stamp" ] \
    || [ "$root/common/records/_accel.c" -nt "$stamp" ]; then
    # This machine's pip config names optional local mirrors; hide its "is ignored" chatter.
    "$venv/bin/python" -m pip install --quiet --upgrade pip 2>&1 | { grep -v 'is ignored' || true; }
    # setuptools warns about every editable install of a mapped package layout: not news here.
    PYTHONWARNINGS=ignore "$venv/bin/python" -m pip install --quiet -e "$root[dev,fast]" 2>&1 \
        | { grep -v 'is ignored' || true; }
    touch "$stamp"
fi
# kcat (Debian's package) for the Kafka protocol listener's tests (tests/integration/test_kafka_*):
# installed when this runs as root with apt-get; elsewhere those tests skip and say why.
if ! command -v kcat >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat; } \
        >/dev/null 2>&1 || echo "kcat could not be installed; the kcat tests will skip" >&2
fi
