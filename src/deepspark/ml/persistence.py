"""Saving and loading deepspark transformers, model files included.

pyspark's :class:`~pyspark.ml.util.DefaultParamsWriter` stores Params as JSON only: a
transformer whose ``model`` Param points at ``/home/me/net.onnx`` would, once loaded
on another machine or after the file moved, point at nothing. deepspark's writer
copies the model file (or folder) INSIDE the saved folder, so a saved transformer, or
a ``PipelineModel`` that holds one, is self-contained. Its reader points the loaded
transformer at a copy of that folder in deepspark's local cache (keyed by content), so
the saved folder may be deleted or overwritten while the loaded one runs, as with
pyspark's own models. Named models (``modelName``) are stored by name: their weights
ship in a package and are found again on load. Every transformer with a ``model``
Param (image, tensor, text and audio) saves this way.

Saved layout (``path`` as given to ``save``)::

    path/metadata/part-00000   Params as JSON (pyspark's format) + "deepspark" entry
    path/model/<file name>     a copy of the ``model`` file or folder, when one is set,
                               and of files it needs next to it (the external data an
                               ONNX file names, a Caffe model's other half)

>>> import deepspark
>>> f = deepspark.DeepImageFeaturizer(model="/models/net.onnx")    # doctest: +SKIP
>>> f.write().overwrite().save("/tmp/featurizer")                   # doctest: +SKIP
>>> deepspark.DeepImageFeaturizer.load("/tmp/featurizer").getModel()  # doctest: +SKIP
'/home/me/.cache/deepspark/loaded/local-3f2c.../net.onnx'
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit

from pyspark.ml.util import (
    DefaultParamsReadable,
    DefaultParamsReader,
    DefaultParamsWritable,
    DefaultParamsWriter,
)

from deepspark._logging import get_logger
from deepspark.errors import InvalidParameterError, ModelLoadError, ModelNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

__all__ = ["ModelFilePersistence", "ModelFileReader", "ModelFileWriter"]

log = get_logger(__name__)

RL = TypeVar("RL")

#: folder, inside a saved transformer, that holds the copy of its model file
MODEL_DIR = "model"
#: key of deepspark's entry in the saved metadata JSON
METADATA_KEY = "deepspark"


def _local(spark: SparkSession, path: str) -> str | None:
    """The local filesystem path of ``path`` (plain or ``file:``), else None.

    A plain path is on Spark's default filesystem, local unless ``fs.defaultFS`` says
    otherwise (as on a Hadoop cluster), exactly where pyspark writes the metadata.
    """
    parts = urlsplit(path)
    if parts.scheme == "file":
        return unquote(parts.path)
    if parts.scheme and len(parts.scheme) > 1:
        return None
    sc = getattr(spark, "sparkContext", None)
    jsc = getattr(sc, "_jsc", None) if sc is not None else None
    default_fs = str(jsc.hadoopConfiguration().get("fs.defaultFS") or "") if jsc else ""
    return path if default_fs in ("", "file:///", "file:/") else None


def _hadoop(spark: SparkSession) -> tuple[Any, Any]:
    """(JVM view, Hadoop configuration) for copying to/from non-local filesystems."""
    sc = getattr(spark, "sparkContext", None)
    jvm = getattr(sc, "_jvm", None) if sc is not None else None
    if jvm is None:
        raise InvalidParameterError(
            "saving or loading a transformer with a model file on a non-local filesystem "
            "needs a classic (non-Connect) SparkSession; save to a local path instead"
        )
    return jvm, sc._jsc.hadoopConfiguration()


def _copy_in(spark: SparkSession, source: Path, target_dir: str) -> None:
    """Copy the local file or folder ``source`` into ``target_dir`` (any Spark URI)."""
    local = _local(spark, target_dir)
    if local is not None:
        dest = Path(local, source.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, dest)
        return
    jvm, conf = _hadoop(spark)
    hpath = jvm.org.apache.hadoop.fs.Path
    dest = hpath(f"{target_dir.rstrip('/')}/{source.name}")
    dest.getFileSystem(conf).copyFromLocalFile(False, True, hpath(source.as_uri()), dest)


def _copy_out(spark: SparkSession, saved_dir: str, relative: str) -> Path:
    """A local path for the model copy ``relative`` inside ``saved_dir``.

    Not the saved folder itself: a loaded transformer must keep working when that
    folder is deleted or overwritten, as pyspark's own models do (``load(p)`` then
    ``write().overwrite().save(p)`` deleted the very file the writer was to copy). The
    model folder is copied into the local cache, keyed by its content (copied, not
    hard-linked: an edit of the saved file in place must not change the cache).
    """
    from deepspark.models.cache import cache_dir, file_sha256, path_sha256, remember_sha256

    local = _local(spark, saved_dir)
    if local is not None:
        inside = Path(local, relative)
        if not inside.exists():
            return inside  # the reader says what is missing
        folder = inside.parent
        target = cache_dir("loaded") / f"local-{path_sha256(folder)[:16]}"
        if not target.exists():
            tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(folder, tmp)
            try:
                os.replace(tmp, target)
            except OSError:  # another process made it first
                shutil.rmtree(tmp, ignore_errors=True)
        # The copy holds the saved files' content (the cache is keyed by it), whose
        # hashes path_sha256 has just taken: checking and shipping the copy need not
        # read the model again.
        for source in folder.rglob("*"):
            if source.is_file():
                remember_sha256(target / source.relative_to(folder), file_sha256(source))
        return target / inside.name

    # Models are read by the driver (and shipped to executors from there), so the model
    # folder of a transformer saved on HDFS/S3 is fetched to the local cache once.
    jvm, conf = _hadoop(spark)
    hpath = jvm.org.apache.hadoop.fs.Path
    folder, name = relative.split("/", 1)
    source = hpath(f"{saved_dir.rstrip('/')}/{folder}")
    fs = source.getFileSystem(conf)
    stamp = fs.getFileStatus(hpath(f"{saved_dir.rstrip('/')}/{relative}")).getModificationTime()
    key = hashlib.sha256(f"{saved_dir}\0{relative}\0{stamp}".encode()).hexdigest()[:16]
    target = cache_dir("loaded") / key
    if not target.exists():
        tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        fs.copyToLocalFile(False, source, hpath(tmp.as_uri()), True)
        os.replace(tmp, target)
    return target / name


def _companions(source: Path) -> list[Path]:
    """Files a model file needs next to it, and only those: an ONNX model's external
    data files (the locations its tensors name), a Caffe model's other half (same
    stem, or ``deploy.prototxt``). Other frameworks keep everything in the one file
    (or folder)."""
    if not source.is_file():
        return []
    suffix = source.suffix.lower()
    found: list[Path] = []
    if suffix == ".onnx":
        from deepspark.models.onnx import external_data_files

        found = [source.parent / name for name in external_data_files(source)]
    elif suffix in (".caffemodel", ".prototxt"):
        other = ".prototxt" if suffix == ".caffemodel" else ".caffemodel"
        found = [source.with_suffix(other), source.with_name("deploy.prototxt")]
    return sorted({p for p in found if p != source and p.is_file()})


class ModelFileWriter(DefaultParamsWriter):
    """pyspark's Params writer that also stores the ``model`` file inside the saved folder."""

    def saveImpl(self, path: str) -> None:
        instance: Any = self.instance
        model = instance.getModel() if hasattr(instance, "getModel") else None
        extra: dict[str, Any] = {}
        if model:
            from deepspark.models.cache import file_sha256
            from deepspark.models.resolve import local_model_path

            source = local_model_path(model)
            if not source.exists():
                raise ModelNotFoundError(
                    f"cannot save {type(instance).__name__}: its model {model} does not exist "
                    "(set model= to an existing file, or use a named model)"
                )
            extra[METADATA_KEY] = {
                "modelFile": f"{MODEL_DIR}/{source.name}",
                "modelSha256": file_sha256(source) if source.is_file() else None,
            }
        # Metadata first: it fails on an existing folder (without overwrite()) before
        # anything is copied into that folder.
        DefaultParamsWriter.saveMetadata(
            instance, path, self.sparkSession, extraMetadata=extra or None
        )
        if model:
            for file in [source, *_companions(source)]:
                _copy_in(self.sparkSession, file, f"{path.rstrip('/')}/{MODEL_DIR}")


class ModelFileReader(DefaultParamsReader[RL], Generic[RL]):
    """pyspark's Params reader that points ``model`` at the copy stored by the writer."""

    def load(self, path: str) -> RL:
        metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
        instance: Any = self.cls()
        if metadata["class"] != f"{type(instance).__module__}.{type(instance).__name__}":
            raise InvalidParameterError(
                f"{path} holds a saved {metadata['class']}, not a {type(instance).__name__}; "
                f"load it with {metadata['class'].rsplit('.', 1)[-1]}.load"
            )
        instance._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(instance, metadata)
        stored = (metadata.get(METADATA_KEY) or {}).get("modelFile")
        if stored:
            local = _copy_out(self.sparkSession, path, stored)
            if not local.exists():
                raise ModelNotFoundError(
                    f"the saved transformer at {path} lacks its model copy {stored}; "
                    "was the folder copied only in part?"
                )
            expected = metadata[METADATA_KEY].get("modelSha256")
            if expected and local.is_file():
                from deepspark.models.cache import file_sha256

                if file_sha256(local) != expected:
                    raise ModelLoadError(
                        f"the model copy {local} does not match the file that was saved "
                        "(different content); save the transformer again"
                    )
            instance._set(model=str(local))
        return instance


class ModelFilePersistence(DefaultParamsReadable, DefaultParamsWritable):  # type: ignore[type-arg]
    """Mixin: ``save``/``load``/``write``/``read`` with the model file kept inside.

    Use it instead of pyspark's ``DefaultParamsReadable, DefaultParamsWritable`` on a
    transformer with a ``model`` Param (:class:`deepspark.ml.params.HasModelFile`).
    """

    def write(self) -> ModelFileWriter:
        """A writer that stores Params and a copy of the model file."""
        return ModelFileWriter(self)  # type: ignore[arg-type]

    @classmethod
    def read(cls) -> ModelFileReader[Any]:
        """A reader that restores Params and points ``model`` at the stored copy."""
        return ModelFileReader(cls)
