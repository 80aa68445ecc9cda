"""Run a script in fresh interpreters (each with its own JVM), in parallel."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def results(script: str, *argvs: str, tag: str, timeout: float = 300) -> list[tuple[Any, str]]:
    """Run ``python -c script argv`` once per argv, at once; for each, the JSON its stdout
    printed after ``tag`` and its stderr. A run that exits non-zero fails the test."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, stderr[-3000:]
        line = next(ln for ln in stdout.splitlines() if ln.startswith(tag))
        out.append((json.loads(line[len(tag) :]), stderr))
    return out
