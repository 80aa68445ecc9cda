#!/usr/bin/env bash
# Builds bench-venv/: a separate environment for the peer engines (Ray Data, Daft) so
# their pins never touch deepspark's .venv. Each peer is installed on its own: one that
# fails to install is recorded by benchmarks/run.py as "not installed", never fatal.
# Usage: benchmarks/setup_peers.sh [python] [venv-dir]
set -uo pipefail
PYTHON="${1:-python3}"
VENV="${2:-bench-venv}"
cd "$(dirname "$0")/.."

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" || { echo "setup_peers: cannot create $VENV"; exit 0; }
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
"${PIP[@]}" --upgrade pip >/dev/null 2>&1 || true
# The same model runtime and decoder as the deepspark variants, then each peer.
"${PIP[@]}" onnxruntime pillow simplejpeg numpy pyarrow psutil || echo "setup_peers: base packages failed"
for peer in "ray[data]" daft; do
    if "${PIP[@]}" "$peer"; then
        echo "setup_peers: installed $peer"
    else
        echo "setup_peers: could not install $peer (the benchmark records it as skipped)"
    fi
done
"$VENV/bin/python" -m pip list 2>/dev/null | grep -i -E '^(ray|daft|onnxruntime|pillow|numpy|pyarrow) ' || true
