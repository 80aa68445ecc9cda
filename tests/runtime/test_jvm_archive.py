"""The JVM class archive (deepspark.runtime.jvm_archive): built, checked, used, never
passed to a JVM when it is incomplete or was built for something else.

Everything runs in fresh interpreters with their own JVMs (JVM options only apply when
a JVM is launched), against a private cache folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepspark.runtime import jvm_archive

# A fresh local session: which files its JVM has mapped (from /proc), and its arguments.
_PROBE = """
import json
import deepspark
from pyspark import SparkContext
spark = deepspark.session("local[1]")
assert spark.range(4).count() == 4
pid = SparkContext._gateway.proc.pid
maps = open(f"/proc/{pid}/maps").read()
jvm = spark.sparkContext._jvm
args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
print("PROBE " + json.dumps({"args": args, "maps": maps}))
"""


def _fresh_session(cache: Path) -> tuple[list[str], str, str]:
    env = {**os.environ, "DEEPSPARK_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("PROBE "))
    got = json.loads(line[len("PROBE ") :])
    other = "\n".join(ln for ln in done.stdout.splitlines() if not ln.startswith("PROBE "))
    return got["args"], got["maps"], other


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc (Linux)")
def test_archive_is_built_then_mapped_by_fresh_sessions_and_dropped_when_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPSPARK_CACHE_DIR", str(tmp_path))
    assert jvm_archive.session_options() == []
    assert "no archive" in jvm_archive.status()

    # Archives left by earlier installations: this pyspark before it changed, one whose
    # virtual environment is gone, and another environment's that still exists.
    folder = tmp_path / "jvm"
    folder.mkdir(exist_ok=True)
    other = tmp_path / "other-venv-jars"
    other.mkdir()
    owners = {
        "stale": str(jvm_archive._pyspark_jars()),
        "gone": str(tmp_path / "x"),
        "kept": str(other),
    }
    for name, owner in owners.items():
        (folder / f"spark-{name}.jsa").write_bytes(b"old")
        (folder / f"spark-{name}.json").write_text(
            json.dumps({"key": name, "size": 3, "jars": owner})
        )

    info = jvm_archive.build()
    assert info.usable and info.path.parent.parent == tmp_path
    assert sorted(p.name for p in folder.glob("spark-*.jsa")) == sorted(
        [info.path.name, "spark-kept.jsa"]
    )
    (folder / "spark-kept.jsa").unlink()
    (folder / "spark-kept.json").unlink()
    assert info.size == info.path.stat().st_size > 10 * 2**20
    assert jvm_archive.session_options() == [
        f"-XX:SharedArchiveFile={info.path}",
        jvm_archive.QUIET,
    ]
    assert list(tmp_path.rglob(".record-*")) == []  # the temporary recording is gone

    # A fresh local session maps the archive into its JVM, and prints nothing about it.
    args, maps, other_output = _fresh_session(tmp_path)
    assert f"-XX:SharedArchiveFile={info.path}" in args
    assert str(info.path) in maps
    assert "cds" not in other_output.lower() and "archive" not in other_output.lower()

    # A truncated archive (a JVM mapping one crashes) is never passed to a JVM.
    data = info.path.read_bytes()
    info.path.chmod(0o644)
    info.path.write_bytes(data[: len(data) // 2])
    assert jvm_archive.session_options() == []
    args, maps, _ = _fresh_session(tmp_path)
    assert not any("SharedArchiveFile" in a for a in args)
    assert str(info.path) not in maps

    # Nor one whose record says it was built for another Java, Spark or option set.
    info.path.write_bytes(data)
    record = info.path.with_suffix(".json")
    assert jvm_archive.session_options() != []
    record.write_text(json.dumps({**json.loads(record.read_text()), "key": "another"}))
    assert jvm_archive.session_options() == []

    assert jvm_archive.remove() == 1
    assert not info.path.exists() and not record.exists()


def test_cli_reports_and_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepspark.cli.main import main

    monkeypatch.setenv("DEEPSPARK_CACHE_DIR", str(tmp_path))
    assert main(["jvm-archive", "--status"]) == 0
    assert "deepspark jvm-archive" in capsys.readouterr().out  # says how to build one
    (tmp_path / "jvm").mkdir(exist_ok=True)
    (tmp_path / "jvm" / "spark-0123.jsa").write_bytes(b"x")
    assert main(["jvm-archive", "--remove"]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert not (tmp_path / "jvm" / "spark-0123.jsa").exists()
