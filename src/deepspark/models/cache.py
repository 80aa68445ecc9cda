"""Model files: content hashes, the local export cache, shipping to executors, and the
per-worker cache of loaded models.

A model reaches executors as a file registered once with ``SparkContext.addFile`` under
a name that holds its content hash; each executor fetches it once, and each Python
worker loads it once and keeps it (Spark reuses Python workers between tasks).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from deepspark._logging import get_logger
from deepspark.errors import ModelLoadError, ModelNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark import SparkContext

__all__ = [
    "ShippedFile",
    "bundle_files",
    "cache_dir",
    "file_sha256",
    "path_sha256",
    "read_record",
    "remember_sha256",
    "ship_file",
    "worker_cached",
    "write_record",
]

log = get_logger(__name__)
T = TypeVar("T")


def cache_dir(*parts: str) -> Path:
    """deepspark's local cache folder (``$DEEPSPARK_CACHE_DIR`` or ``~/.cache/deepspark``)."""
    root = os.environ.get("DEEPSPARK_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "deepspark"
    )
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_record(folder: str, key: str) -> dict[str, Any] | None:
    """The JSON record ``key`` in the cache folder ``folder``; None if absent or unreadable.

    Records keep what the driver learnt by loading a model file (its signature, which
    engine runs it), keyed by the file's content hash, so later jobs and processes need
    not load it again only to check it.
    """
    try:
        data = json.loads((cache_dir(folder) / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_record(folder: str, key: str, data: dict[str, Any]) -> None:
    """Write the record ``key`` atomically: a concurrent driver never reads half of one."""
    record = cache_dir(folder) / f"{key}.json"
    tmp = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, record)


_HASHES: dict[tuple[str, int, int], str] = {}


def _hash_key(path: Path, stat: os.stat_result) -> tuple[str, int, int]:
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def remember_sha256(path: str | Path, digest: str) -> None:
    """Record ``digest`` as the SHA-256 of ``path`` as it is now: for a copy whose
    source was just hashed, so that hashing the copy does not read it again."""
    path = Path(path)
    _HASHES[_hash_key(path, path.stat())] = digest


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's content, memoised by (path, size, mtime)."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ModelNotFoundError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror}") from None
    key = _hash_key(path, stat)
    if key not in _HASHES:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as exc:
            raise ModelLoadError(f"cannot read model file {path}: {exc.strerror}") from None
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def path_sha256(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's relative paths and file contents (sorted).

    A folder model (TensorFlow SavedModel, a Caffe pair bundle) is keyed by everything
    in it, so editing any file gives a new hash and a fresh copy on the executors.
    """
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(child.relative_to(path).as_posix().encode() + b"\0")
        digest.update(file_sha256(child).encode())
    return digest.hexdigest()


def bundle_files(files: dict[str, str | Path], kind: str) -> Path:
    """Stage several files that make one model (e.g. Caffe's prototxt + caffemodel) in one
    folder named by their content hash, so they are shipped and cached together.

    >>> folder = bundle_files({"deploy.prototxt": p, "weights.caffemodel": w}, "caffe")  # doctest: +SKIP
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + file_sha256(files[name]).encode())
    target = cache_dir("bundles") / f"{kind}-{digest.hexdigest()[:16]}"
    if not target.is_dir():
        tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, src in files.items():
            shutil.copyfile(src, tmp / name)
        try:
            os.replace(tmp, target)
        except OSError:  # another process staged the same bundle first
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass(frozen=True)
class ShippedFile:
    """A file made available to every executor; small and picklable.

    Attributes
    ----------
    sha256 : str
        Content hash; the key of the per-worker cache.
    name : str
        Name registered with ``SparkContext.addFile`` (``<hash>-<basename>``).
    driver_path : str
        Where the file is on the driver; used when executors share its filesystem
        (local mode) and ``SparkFiles`` has no copy.
    """

    sha256: str
    name: str
    driver_path: str

    def local_path(self) -> str:
        """The file's path in this process (executor or driver)."""
        try:
            from pyspark import SparkFiles

            candidate = SparkFiles.get(self.name)
            if os.path.exists(candidate):
                return candidate
        except Exception:  # noqa: BLE001, S110 - no SparkFiles outside a Spark process
            pass
        if os.path.exists(self.driver_path):
            return self.driver_path
        raise ModelNotFoundError(
            f"model file {self.name} is not available on this executor; it is shipped with "
            "SparkContext.addFile by the driver: was the transformer used with another "
            "SparkContext?"
        )


_SHIPPED: dict[tuple[int, str, str], ShippedFile] = {}


def _link_or_copy(src: str, dst: str) -> str:
    """Hard-link (no copy of big weights) when on the same filesystem, else copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    return dst


_SHIP_LOCK = threading.Lock()


def ship_file(sc: SparkContext, path: str | Path) -> ShippedFile:
    """Register ``path`` (a file or a folder) with ``sc.addFile`` once per content hash
    and SparkContext; folders are shipped recursively."""
    path = Path(path)
    sha = path_sha256(path)
    name = f"{sha[:16]}-{path.name}"
    # id() alone is not enough: a new SparkContext may reuse a stopped one's id, and its
    # executors would then never get the file.
    key = (id(sc), sc.applicationId, name)
    with _SHIP_LOCK:
        if key in _SHIPPED:
            return _SHIPPED[key]
        staged = path
        if path.name != name:
            # addFile keys files by base name: stage under a name that holds the hash.
            staged = cache_dir("shipped") / name
            if not staged.exists():
                tmp = staged.with_name(staged.name + f".{os.getpid()}.tmp")
                if path.is_dir():
                    shutil.rmtree(tmp, ignore_errors=True)
                    shutil.copytree(path, tmp, copy_function=_link_or_copy)
                else:
                    _link_or_copy(str(path), str(tmp))
                try:
                    os.replace(tmp, staged)
                except OSError:  # a concurrent driver staged the same content first
                    shutil.rmtree(tmp, ignore_errors=True)
        sc.addFile(str(staged), recursive=staged.is_dir())
        shipped = ShippedFile(sha256=sha, name=name, driver_path=str(staged))
        _SHIPPED[key] = shipped
        log.debug("shipped %s to executors as %s", path, name)
        return shipped


_WORKER_CACHE: dict[Any, Any] = {}
_WORKER_LOCK = threading.Lock()


def worker_cached(key: Any, factory: Callable[[], T]) -> T:
    """Return the object cached under ``key`` in this process, creating it once.

    Spark reuses Python workers between tasks (``spark.python.worker.reuse``), so a model
    cached here is loaded once per worker, not once per task or batch.
    """
    with _WORKER_LOCK:
        if key not in _WORKER_CACHE:
            _WORKER_CACHE[key] = factory()
        return _WORKER_CACHE[key]
