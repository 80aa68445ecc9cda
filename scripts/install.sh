#!/usr/bin/env bash
# Builds the project's virtual environment on a fresh Debian machine.
# Usage: scripts/install.sh [python] [venv-dir]
set -euo pipefail
PYTHON="${1:-python3}"
VENV="${2:-.venv}"
cd "$(dirname "$0")/.."

apt_install() {
    # Installs Debian packages only when missing; needs root (or sudo).
    local sudo=""
    if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

# Spark 4 needs Java 17 or newer.
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then
    echo "deepspark: installing a Java 17+ runtime (Spark 4 needs it)"
    apt_install openjdk-17-jre-headless || apt_install default-jre-headless
fi

# Tools the tests use: espeak-ng (synthetic speech), chromium (HTML report rendering).
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
if [ -n "${DEEPSPARK_INSTALL_TEST_TOOLS:-}" ]; then
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "deepspark: installing ${missing[*]}"
    apt_install "${missing[@]}" || echo "deepspark: could not install ${missing[*]}; tests needing them will be skipped"
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch is pinned (==2.13.0) in the extras: any other spec pulls a multi-GB CUDA build.
"$VENV/bin/python" -m pip install -q -e ".[all,test]"

# Sample photos for `make demo`: real photos that ship with scikit-image.
"$VENV/bin/python" scripts/copy_samples.py samples

# The class archive local Spark sessions start from (about half their start-up time;
# `deepspark jvm-archive`, about a minute, once per Java and Spark installation).
"$VENV/bin/deepspark" jvm-archive -q || echo "deepspark: no JVM archive built; local Spark sessions start without it"
