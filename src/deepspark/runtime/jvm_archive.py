"""A class-data sharing (CDS) archive for the JVM of local Spark sessions.

A local session's JVM loads, verifies and links some 15,000 classes of Spark, Hadoop,
Arrow and Parquet from jars every time it starts, and more during its first jobs.
HotSpot can record the classes one run loaded into an archive file
(``-XX:ArchiveClassesAtExit``) that later JVMs map read-only
(``-XX:SharedArchiveFile``), already parsed and verified. Measured on the 2-core
benchmark machine (alternating runs): :func:`deepspark.session` plus a first job took
5.3 s instead of 10.8-11.6 s, and the first inference job over 2,000 photos started its
tasks 0.5-0.8 s sooner.

The archive is built once, by ``deepspark jvm-archive`` (``make install`` runs it),
not at run time: recording slows that JVM down (~2x start-up) and writing the ~190 MB
file takes it ~15 s after its job. :func:`session_options` gives the JVM options that
use it, and nothing when there is no archive for this Java and this Spark.

Safety: a JVM mapping a truncated archive crashes (SIGBUS, checked on JDK 17). So the
archive is recorded into a temporary file, checked by a JVM that must use it
(``-Xshare:on``), then renamed into place with a small JSON record of its size and of
what it was built for (the ``java`` binary and its runtime image, pyspark's version and
jars, the JVM options); it is used only while all of those still match. An archive the
JVM itself rejects (a class path changed in a way the record does not see) is ignored
by the JVM, silently (its CDS logging is off).

Examples
--------
>>> from deepspark.runtime import jvm_archive
>>> isinstance(jvm_archive.session_options(), list)
True
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepspark.session import LOCAL_JVM_OPTIONS

__all__ = ["ArchiveInfo", "archive_path", "build", "remove", "session_options", "status"]

#: JVM logging of class-data sharing off: warnings about skipped or mismatched archives
#: would otherwise go to the driver's stdout.
QUIET = "-Xlog:cds*=off"


@dataclass(frozen=True)
class ArchiveInfo:
    """Where the archive for this Java and Spark lives and whether it can be used."""

    path: Path
    key: str
    usable: bool
    size: int


def _java() -> Path | None:
    """The ``java`` that spark-submit starts: ``$JAVA_HOME/bin/java``, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not found or not os.path.exists(found):
        return None
    return Path(os.path.realpath(found))


def _stat_line(path: Path) -> str:
    st = path.stat()
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"


def _pyspark_jars() -> Path | None:
    """The jars folder of the installed pyspark (the local JVM's class path)."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.origin:
        return None
    jars = Path(spec.origin).parent / "jars"
    return jars if jars.is_dir() else None


def _key(jvm_options: list[str]) -> str | None:
    """What the archive depends on, hashed; None when there is no java or pyspark."""
    java, jars = _java(), _pyspark_jars()
    if java is None or jars is None:
        return None
    h = hashlib.sha256()
    h.update(str(java).encode())
    runtime_image = java.parent.parent / "lib" / "modules"  # the JDK build behind it
    if runtime_image.exists():
        h.update(_stat_line(runtime_image).encode())
    for jar in sorted(jars.iterdir()):
        h.update(_stat_line(jar).encode())
    h.update(" ".join(jvm_options).encode())
    return h.hexdigest()[:16]


def _folder() -> Path:
    from deepspark.models.cache import cache_dir

    return cache_dir("jvm")


def archive_path() -> ArchiveInfo | None:
    """The archive for this Java, pyspark and local JVM options; None without java or pyspark."""
    key = _key(LOCAL_JVM_OPTIONS)
    if key is None:
        return None
    path = _folder() / f"spark-{key}.jsa"
    record = path.with_suffix(".json")
    try:
        info = json.loads(record.read_text())
        size = path.stat().st_size
        usable = info.get("key") == key and info.get("size") == size
    except (OSError, ValueError):
        size, usable = 0, False
    return ArchiveInfo(path, key, usable, size)


def session_options() -> list[str]:
    """JVM options that map the archive, or ``[]`` when there is none usable.

    Cheap (a few ``stat`` calls): :func:`deepspark.session` calls it for every local
    JVM it starts.
    """
    try:
        info = archive_path()
    except OSError:  # e.g. a read-only home: start without it rather than fail
        return []
    if info is None or not info.usable:
        return []
    return [f"-XX:SharedArchiveFile={info.path}", QUIET]


def status() -> str:
    """One line on the archive: where it is, or why there is none."""
    info = archive_path()
    if info is None:
        return "no archive: java or pyspark not found"
    if info.usable:
        return f"{info.path} ({info.size / 2**20:.0f} MB), used by local sessions"
    return f"no archive for this Java and Spark yet; 'deepspark jvm-archive' builds {info.path}"


def remove() -> int:
    """Delete every archive (and its record) in deepspark's cache; returns how many."""
    removed = 0
    folder = _folder()
    for path in folder.glob("spark-*.jsa"):
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
        removed += 1
    return removed


def build(timeout: float = 600.0, force: bool = False) -> ArchiveInfo:
    """Record, check and install the archive; returns its info (``usable`` when done).

    Runs two fresh Python processes, each with its own local Spark JVM: one records the
    classes of a small job that uses what deepspark's jobs use (Arrow from and to
    Python workers, a broadcast join, Parquet, binary files) and writes the archive when
    its JVM exits; the other starts a JVM that must map it.

    Raises
    ------
    deepspark.errors.DeepSparkError
        When java or pyspark is missing, or the JVM could not write or use the archive.
    """
    from deepspark.errors import DeepSparkError

    info = archive_path()
    if info is None:
        raise DeepSparkError(
            "cannot build a JVM archive: java or pyspark was not found "
            "(install Java 17+ and pyspark, then rerun 'deepspark jvm-archive')"
        )
    if info.usable and not force:
        return info
    info.path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".record-", suffix=".jsa", dir=info.path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the JVM creates it at exit
    try:
        for step in ("record", "check"):
            done = subprocess.run(
                [sys.executable, "-m", "deepspark.runtime.jvm_archive", step, str(tmp)],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if done.returncode != 0 or not tmp.exists():
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise DeepSparkError(
                    f"the JVM archive could not be {'written' if step == 'record' else 'used'}"
                    f" ({' / '.join(tail) or 'no output'}); local sessions start without it"
                )
        size = tmp.stat().st_size
        os.replace(tmp, info.path)
        record = info.path.with_suffix(".json")
        record_tmp = record.with_suffix(".json.tmp")
        jars = str(_pyspark_jars())
        built = {"key": info.key, "size": size, "built": time.time(), "jars": jars}
        record_tmp.write_text(json.dumps(built))
        os.replace(record_tmp, record)
    finally:
        tmp.unlink(missing_ok=True)
    _prune(info.path, jars)
    return ArchiveInfo(info.path, info.key, True, size)


def _prune(current: Path, jars: str) -> None:
    """Delete archives that can no longer be used (~180 MB each): built for this same
    pyspark installation before it changed, or for one that is gone. Archives of other
    installations that still exist (another virtual environment) are kept."""
    for record in current.parent.glob("spark-*.json"):
        archive = record.with_suffix(".jsa")
        if archive == current:
            continue
        try:
            owner = json.loads(record.read_text()).get("jars", "")
        except (OSError, ValueError):
            owner = ""
        if owner == jars or not owner or not os.path.isdir(owner):
            archive.unlink(missing_ok=True)
            record.unlink(missing_ok=True)


# ----------------------------------------------------------------------- child steps
def _child_session(extra: list[str]) -> object:
    import deepspark
    from deepspark.session import _log4j_options

    options = " ".join([_log4j_options(), *LOCAL_JVM_OPTIONS, *extra])
    return deepspark.session("local[2]", conf={"spark.driver.extraJavaOptions": options})


def _record(target: str) -> None:
    """A fresh JVM runs a small job like deepspark's, then writes its classes at exit."""
    from deepspark.io._files import paths_frame

    spark = _child_session([f"-XX:ArchiveClassesAtExit={target}", QUIET])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "files"
        folder.mkdir()
        for i in range(8):
            (folder / f"{i}.bin").write_bytes(bytes([i]) * (i + 1))
        import deepspark

        listed = [r.path for r in deepspark.list_paths(spark, str(folder)).collect()]
        # One partition more than the cores: paths_frame's range + broadcast-join route.
        paths = paths_frame(spark, listed, spark.sparkContext.defaultParallelism + 1)
        _arrow_lengths(paths).write.parquet(str(Path(tmp) / "out.parquet"))
        spark.read.parquet(str(Path(tmp) / "out.parquet")).collect()  # type: ignore[attr-defined]
        spark.read.format("binaryFile").load(str(folder)).count()  # type: ignore[attr-defined]
    _exit_jvm()


def _arrow_lengths(frame: object) -> object:
    """The path column through a Python worker as Arrow (deepspark's executor route)."""
    import warnings

    from pyspark.sql.functions import ArrowUDFType, arrow_udf

    def lengths(batches: Any) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        for paths in batches:
            yield pc.utf8_length(paths).cast(pa.int64())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "prefer type hints"
        udf = arrow_udf(lengths, "long", ArrowUDFType.SCALAR_ITER)
    return frame.select("path", udf("path").alias("n"))  # type: ignore[attr-defined]


def _check(target: str) -> None:
    """A fresh JVM that must map the archive (``-Xshare:on`` fails otherwise)."""
    spark = _child_session([f"-XX:SharedArchiveFile={target}", "-Xshare:on", QUIET])
    assert spark.range(3).count() == 3  # type: ignore[attr-defined]
    _exit_jvm()


def _exit_jvm() -> None:
    """Stop Spark and wait for its JVM to exit (a recording JVM writes the archive then)."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    if proc is None:
        return
    gateway.shutdown()
    proc.stdin.close()  # the JVM exits when its stdin closes (PythonGatewayServer)
    proc.wait(timeout=600)


if __name__ == "__main__":
    step, path = sys.argv[1], sys.argv[2]
    {"record": _record, "check": _check}[step](path)
