"""Listing input files: Spark's ``binaryFile`` source (any filesystem, executor-side
reads), and local folders walked in Python by Spark's listing rules."""

from __future__ import annotations

import fnmatch
import os
import random
import stat
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlsplit

from deepspark.errors import InputNotFoundError, InvalidParameterError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "FileReadError",
    "FilesToRead",
    "files_to_read",
    "list_files",
    "list_paths",
    "listed_paths",
    "local_path",
    "no_content_reason",
    "on_local_fs",
    "paths_frame",
    "read_file_bytes",
    "read_local_file",
    "uri_form",
]


def list_files(
    spark: SparkSession,
    path: str | Sequence[str],
    *,
    recursive: bool = True,
    glob: str | None = None,
    sample_ratio: float = 1.0,
    seed: int = 0,
    num_partitions: int | None = None,
    include_empty: bool = True,
) -> DataFrame:
    """Files under ``path`` as a ``binaryFile`` DataFrame (path, modificationTime, length, content).

    ``path`` may be a file, a folder or a glob, on any filesystem Spark reads, or a list
    of those. Content is read lazily on the executors.
    """
    paths = _checked(path, sample_ratio, num_partitions)

    # A file deleted between listing and reading would fail the whole job; skipped by
    # the scan (ignoreMissingFiles), it is added back below with the zero-byte files.
    df = _binary_files(spark, paths, recursive=recursive, glob=glob, ignore_missing=include_empty)
    if include_empty:
        df = _with_empty_files(spark, df)
        df = _with_broken_links(spark, df, paths, recursive=recursive, glob=glob)
    if sample_ratio < 1.0:
        df = df.sample(withReplacement=False, fraction=sample_ratio, seed=seed)
    if num_partitions is not None:
        df = df.repartition(num_partitions)
    return df


def _checked(
    path: str | Sequence[str], sample_ratio: float, num_partitions: int | None
) -> list[str]:
    """``path`` as a non-empty list, after checking the sampling and partition options."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths:
        raise InvalidParameterError("no input path given: pass a file, folder or glob")
    if not 0.0 < sample_ratio <= 1.0:
        raise InvalidParameterError(f"sample_ratio must be in (0, 1], got {sample_ratio}")
    if num_partitions is not None and num_partitions < 1:
        raise InvalidParameterError(f"num_partitions must be >= 1, got {num_partitions}")
    return paths


def _binary_files(
    spark: SparkSession,
    paths: list[str],
    *,
    recursive: bool,
    glob: str | None,
    ignore_missing: bool = False,
) -> DataFrame:
    """Spark's ``binaryFile`` source over ``paths``; a missing path is InputNotFoundError."""
    from pyspark.errors import AnalysisException

    reader = spark.read.format("binaryFile")
    if glob:
        reader = reader.option("pathGlobFilter", glob)
    if recursive:
        reader = reader.option("recursiveFileLookup", "true")
    if ignore_missing:
        reader = reader.option("ignoreMissingFiles", "true")
    try:
        return reader.load(paths if len(paths) > 1 else paths[0])
    except AnalysisException as exc:
        msg = str(exc).splitlines()[0]
        if "PATH_NOT_FOUND" in msg or "does not exist" in msg:
            raise _not_found(paths) from None
        raise


def listed_paths(
    spark: SparkSession,
    path: str | Sequence[str],
    *,
    recursive: bool = True,
    glob: str | None = None,
) -> list[str]:
    """Every file under ``path`` (Hadoop Path form, sorted), listed on the driver.

    The same files as :func:`list_files`, by Spark's listing rules (hidden ``_``/``.``
    names skipped, ``glob``, ``recursive``), zero-byte files and broken symbolic links
    included. Nothing is read. Local folders and files are listed in Python (a
    directory walk: milliseconds, where Spark's listing through the JVM costs a second
    or more per job); globs in the path, other filesystems and ``recursive=False``
    (where Spark also infers partitions) are listed by Spark.
    """
    paths = [path] if isinstance(path, str) else list(path)
    if not paths:
        raise InvalidParameterError("no input path given: pass a file, folder or glob")
    if on_local_fs(spark, paths):
        local = _local_listing(paths, recursive=recursive, glob=glob)
        if local is not None:
            return local
    return spark_listed_paths(spark, paths, recursive=recursive, glob=glob)


def on_local_fs(spark: SparkSession, paths: Sequence[str]) -> bool:
    """Whether every path names local (or mounted) files: ``file:`` paths and URIs, and
    paths without a scheme while Hadoop's default filesystem is the local one.

    On a cluster whose ``fs.defaultFS`` is HDFS (YARN, usually), ``/data/photos`` is an
    HDFS folder, as Spark's own sources read it.
    """
    if any(local_path(p) is None for p in paths):
        return False
    if all(p.startswith("file:") for p in paths):
        return True
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    return str(conf.get("fs.defaultFS") or "file:///").startswith("file:")


def spark_listed_paths(
    spark: SparkSession, paths: Sequence[str], *, recursive: bool, glob: str | None
) -> list[str]:
    """:func:`listed_paths` through Spark's own listing (any filesystem, any glob)."""
    uris = _binary_files(spark, list(paths), recursive=recursive, glob=glob).inputFiles()
    found = {_hadoop_path(uri) for uri in uris}
    found.update(_broken_links(paths, recursive=recursive, glob=glob))
    return sorted(found)


def spark_hidden(name: str) -> bool:
    """Whether Spark's file listing skips a file or folder of this name.

    Spark's rule (``HadoopFSUtils.shouldFilterOutPathName``): names starting with ``.``,
    or with ``_`` unless they hold ``=`` (partition folders), and names ending in
    ``._COPYING_``, except ``_metadata``/``_common_metadata``.

    >>> [spark_hidden(n) for n in (".DS_Store", "_SUCCESS", "_year=2024", "a._COPYING_")]
    [True, True, False, True]
    >>> spark_hidden("_metadata"), spark_hidden("photo.jpg")
    (False, False)
    """
    exclude = (
        (name.startswith("_") and "=" not in name)
        or name.startswith(".")
        or name.endswith("._COPYING_")
    )
    return exclude and not name.startswith(("_common_metadata", "_metadata"))


#: characters that make a path or name filter a pattern (Hadoop glob syntax)
_GLOB_CHARS = frozenset("*?[]{}\\")


def _local_listing(paths: Sequence[str], *, recursive: bool, glob: str | None) -> list[str] | None:
    """Spark's listing of local folders and files, done in Python; None when the input
    needs Spark's own listing (a remote filesystem, an escape in a glob, a name filter
    beyond ``*``/``?``, or ``recursive=False``).

    Globs in the path (``*``, ``?``, ``[ab]``, ``[^a]``, ``{a,b}``, as Hadoop's) are
    matched here too: Hadoop's own glob fails the whole listing on a file name with a
    colon anywhere in a folder it scans (``2024-01-01T10:00.jpg``: "Relative path in
    absolute URI").
    """
    if not recursive or (glob and any(c in _GLOB_CHARS - {"*", "?"} for c in glob)):
        return None
    roots: list[str] = []
    for path in paths:
        local = local_path(path)
        if local is None or "\\" in local:
            return None
        if not any(c in _GLOB_CHARS for c in local):
            roots.append(local)
            continue
        matches = _glob_local(local)
        if not matches:
            raise _not_found(paths)
        # Spark keeps the matches whose own name is not hidden, then lists them.
        roots += [m for m in matches if not spark_hidden(os.path.basename(m))]
    found: set[str] = set()
    hidden: list[str] = []
    for root in roots:
        root = os.path.abspath(root)
        if os.path.isfile(root):
            # Spark skips a hidden file even when it is named (a hidden folder named as a
            # root is listed).
            if _visible(os.path.basename(root), glob):
                found.add(root)
            elif spark_hidden(os.path.basename(root)):
                hidden.append(root)
        elif os.path.isdir(root):
            found.update(_visible_entries(root, recursive=True, glob=glob))
        elif os.path.islink(root):
            return None  # a broken link given by name: Spark's listing decides
        else:
            raise _not_found(paths)
    if hidden and not found:
        # Spark's own reader fails here too ("All paths were ignored"); say why.
        raise InputNotFoundError(
            f"every file given is skipped as hidden ({', '.join(hidden)}): Spark's listing "
            "skips names that start with '_' or '.'; rename the file, or give its path in "
            "a DataFrame column to a predictor (inputCol='path')"
        )
    return sorted("file:" + f for f in found)


def _glob_local(pattern: str) -> list[str]:
    """Local paths matching a Hadoop glob (``{a,b}`` alternatives, ``[^a]`` negation)."""
    import glob as globbing

    found: set[str] = set()
    for alternative in _expand_braces(pattern):
        python = alternative.replace("[^", "[!")
        found.update(globbing.glob(python, include_hidden=True))
    return sorted(found)


def _expand_braces(pattern: str) -> list[str]:
    """``"a{b,c{d,e}}f"`` -> ``["abf", "acdf", "acef"]`` (Hadoop glob alternatives).

    >>> _expand_braces("/p/{x,y}/*.{jpg,png}")
    ['/p/x/*.jpg', '/p/x/*.png', '/p/y/*.jpg', '/p/y/*.png']
    """
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth, options, begin = 0, [], start + 1
    for i in range(start, len(pattern)):
        c = pattern[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                options.append(pattern[begin:i])
                head, tail = pattern[:start], pattern[i + 1 :]
                return [x for option in options for x in _expand_braces(head + option + tail)]
        elif c == "," and depth == 1:
            options.append(pattern[begin:i])
            begin = i + 1
    return [pattern]  # an unclosed brace is a literal character


def _is_ancestor(link: str, here: str) -> bool:
    """Whether the folder ``link`` resolves to ``here`` or one of its parents."""
    target = os.path.realpath(link)
    return here == target or here.startswith(target.rstrip(os.sep) + os.sep)


def _visible(name: str, glob: str | None) -> bool:
    """A file name Spark's listing keeps: not hidden, and matching ``glob`` if given."""
    return not spark_hidden(name) and (not glob or fnmatch.fnmatchcase(name, glob))


def _visible_entries(root: str, *, recursive: bool, glob: str | None) -> Iterator[str]:
    """The non-folder entries under the local folder ``root`` that Spark's listing sees
    by name (files, and broken links, which it then drops): hidden folders skipped,
    links to folders followed, as Spark does, except a link back to a folder the walk is
    in (a loop: it would repeat every file until the path is too long)."""
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not spark_hidden(d)] if recursive else []
        if any(os.path.islink(os.path.join(folder, d)) for d in dirs):
            here = os.path.realpath(folder)
            dirs[:] = [d for d in dirs if not _is_ancestor(os.path.join(folder, d), here)]
        for name in names:
            if _visible(name, glob):
                yield os.path.join(folder, name)


def _not_found(paths: Sequence[str]) -> InputNotFoundError:
    return InputNotFoundError(
        f"no such file or folder: {', '.join(paths)} (check the path; "
        "globs like 'photos/*.jpg' and URIs like 's3a://bucket/dir' are accepted)"
    )


def _jvm_frame(spark: SparkSession, columns: dict[str, Iterable[Any]], schema: Any) -> DataFrame:
    """A DataFrame of driver-side values, built in the JVM (a local relation via Arrow).

    ``spark.createDataFrame`` of a Python list or RDD makes a Python RDD: every job
    reading it runs a second set of Python workers (their own daemon and imports) just
    to unpickle rows into the JVM, beside the workers that run the model.
    """
    import pyarrow as pa

    return spark.createDataFrame(
        pa.table({name: pa.array(list(values)) for name, values in columns.items()}), schema
    )


#: Files per task that the default split of a path list aims at once the list outgrows
#: one task per core: ~40 s of a small CNN per task on a CPU core, so that the ~0.4 s
#: a Python worker spends between two tasks stays near 1% while progress (counted in
#: finished tasks) still moves and a slow core holds up at most one such task.
FILES_PER_TASK = 2048


def default_path_partitions(files: int, parallelism: int) -> int:
    """Partitions for ``files`` paths on ``parallelism`` cores: whole waves of tasks.

    One task per core while that gives tasks of at most ~:data:`FILES_PER_TASK` files
    (every worker starts once and none waits at a task boundary: at 2,000 photos on 2
    cores this measured ~10% faster than two tasks per core); beyond that, as many
    waves of one task per core as make tasks of about that size, so that the last
    wave keeps every core busy and progress (counted in finished tasks) advances.

    Examples
    --------
    >>> default_path_partitions(2000, 2), default_path_partitions(100_000, 8)
    (2, 48)
    """
    cores = max(1, parallelism)
    return cores * max(1, round(files / (cores * FILES_PER_TASK)))


def paths_frame(
    spark: SparkSession, paths: Sequence[str], num_partitions: int | None = None
) -> DataFrame:
    """A DataFrame with one ``path`` row per entry of ``paths``, split evenly by count.

    For inputs that executors read themselves (local files read by the predictor):
    unlike :func:`list_files` there is no ``binaryFile`` scan and no join to find the
    files that scan would skip, so no extra Spark job. Each path gets exactly one row;
    a file that is empty, unreadable or deleted since listing fails its own row when
    read. ``num_partitions`` defaults to :func:`default_path_partitions`, never more
    than one per file.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    parallelism = spark.sparkContext.defaultParallelism
    slices = num_partitions or default_path_partitions(len(paths), parallelism)
    slices = max(1, min(slices, len(paths)))
    # The paths go to the JVM once as a local relation (see _jvm_frame). Spark splits
    # one into min(rows, spark.sql.leafNodeDefaultParallelism) contiguous parts by count
    # (the default parallelism unless set); for another count, a range of row numbers
    # split into exactly `slices` parts picks the paths up through a broadcast join (no
    # shuffle, file order kept; ~0.4 s more planning and a job).
    leaf = spark.conf.get("spark.sql.leafNodeDefaultParallelism", None) or parallelism
    if slices == min(int(leaf), len(paths)) or not paths:
        schema = StructType([StructField("path", StringType(), False)])
        return _jvm_frame(spark, {"path": paths}, schema)
    schema = StructType(
        [StructField("i", LongType(), False), StructField("path", StringType(), False)]
    )
    names = _jvm_frame(spark, {"i": range(len(paths)), "path": paths}, schema)
    rows = spark.range(0, len(paths), 1, slices).withColumnRenamed("id", "i")
    return rows.join(F.broadcast(names), "i").select("path")


def list_paths(
    spark: SparkSession,
    path: str | Sequence[str],
    *,
    recursive: bool = True,
    glob: str | None = None,
    num_partitions: int | None = None,
) -> DataFrame:
    """Files under ``path`` as a DataFrame of paths, for transformers that read files.

    The fastest input for :class:`~deepspark.DeepImagePredictor` and the other image
    transformers on local or mounted (NFS, FUSE) folders: files are listed once on the
    driver by Spark's listing rules (local folders in Python, without a Spark job) and
    split evenly by count; each executor reads and
    decodes its files in the same Python pass as the model (``inputCol="path"``), so no
    file bytes go through the JVM and no Spark job is spent on listing. Every listed
    file gets one row: an empty, unreadable or since-deleted file fails its own row.

    Parameters
    ----------
    spark : SparkSession
    path : str or list of str
        A folder, file or glob. Remote URIs (``s3a://``, ``gs://``, ``hdfs://``) are
        listed by Spark but read on executors with pyarrow's filesystems and their own
        credentials; for those, ``spark.read.format("binaryFile")`` with
        ``inputCol="content"`` reads through Spark's.
    recursive : bool
        Descend into sub-folders.
    glob : str, optional
        Keep only file names matching this pattern, e.g. ``"*.jpg"``.
    num_partitions : int, optional
        Default: one task per core up to ~2,048 files per task, more (whole waves of
        one task per core) for longer lists; see
        :func:`deepspark.io._files.default_path_partitions`. Pass more when the files'
        sizes vary a lot, so that no core waits on one task of big files.

    Returns
    -------
    DataFrame
        One column, ``path`` (string, Hadoop path form such as ``file:/data/a.jpg``).

    Examples
    --------
    >>> import deepspark
    >>> spark = deepspark.session("local[2]")                       # doctest: +SKIP
    >>> files = deepspark.list_paths(spark, "photos/")              # doctest: +SKIP
    >>> deepspark.DeepImagePredictor(inputCol="path").transform(files)  # doctest: +SKIP
    """
    paths = [path] if isinstance(path, str) else list(path)
    listed = listed_paths(spark, paths, recursive=recursive, glob=glob)
    return paths_frame(spark, listed, num_partitions)


class FilesToRead(NamedTuple):
    """What :func:`files_to_read` gives: the files, the column to read them from, how many."""

    frame: DataFrame
    #: "path": executors read each file themselves (:func:`read_local_file`);
    #: "content": Spark's ``binaryFile`` source read the bytes (any filesystem).
    column: str
    #: Rows in ``frame`` when known on the driver without a job (None otherwise).
    count: int | None


def files_to_read(
    spark: SparkSession,
    path: str | Sequence[str],
    *,
    recursive: bool = True,
    glob: str | None = None,
    sample_ratio: float = 1.0,
    seed: int = 0,
    num_partitions: int | None = None,
    limit: int | None = None,
    count: bool = False,
) -> FilesToRead:
    """The files under ``path`` for a reader or a transformer that reads them.

    Local paths (plain, ``file:``, mounted folders) are listed on the driver
    (:func:`listed_paths`) into a DataFrame of paths split by count
    (:func:`paths_frame`): the executors read each file in the same Python pass that
    decodes it, a file that cannot be read (deleted since listing, permission denied,
    a broken link) fails its own row, and no Spark job is spent listing files or
    finding the ones ``binaryFile`` skips. Other filesystems go through
    :func:`list_files` (Spark reads the bytes; column ``content``).

    ``sample_ratio`` keeps each file with that probability (reproducible with
    ``seed``); ``limit`` keeps the first ``limit`` files by path (local) or any
    ``limit`` rows dealt back to one partition per core (a LIMIT alone would leave the
    rest of the job in one task); ``count=True`` counts the remote files listed (a
    driver-side call, None after sampling).

    Examples
    --------
    >>> import deepspark
    >>> spark = deepspark.session("local[2]")                       # doctest: +SKIP
    >>> files_to_read(spark, "photos/", limit=100).column           # doctest: +SKIP
    'path'
    """
    paths = _checked(path, sample_ratio, num_partitions)
    if on_local_fs(spark, paths):
        listed = listed_paths(spark, paths, recursive=recursive, glob=glob)
        if sample_ratio < 1.0:
            rng = random.Random(seed)
            listed = [p for p in listed if rng.random() < sample_ratio]
        listed = listed[:limit] if limit else listed
        return FilesToRead(paths_frame(spark, listed, num_partitions), "path", len(listed))
    files = list_files(
        spark,
        paths,
        recursive=recursive,
        glob=glob,
        sample_ratio=sample_ratio,
        seed=seed,
        num_partitions=num_partitions,
    )
    total = len(files.inputFiles()) if count and sample_ratio == 1.0 else None
    if limit:
        cores = spark.sparkContext.defaultParallelism
        files = files.limit(limit).repartition(min(limit, cores))
        total = min(total, limit) if total is not None else None
    return FilesToRead(files, "content", total)


#: Larger files are refused unread (Spark's binaryFile source has the same limit).
MAX_FILE_BYTES = 2**31 - 1


class FileReadError(OSError):
    """A local file that cannot be read; its message is the row's ``error`` value."""


def read_file_bytes(path: str) -> bytes:
    """The content of the local file ``path``, or :class:`FileReadError` saying why not.

    What the predictors' path inputs read with: a FIFO named by a path would block the
    task forever, and a file past :data:`MAX_FILE_BYTES` cannot become one Spark row.
    """
    content, reason = read_local_file(path)
    if content is None:
        raise FileReadError(reason or "no file content")
    return content


def read_local_file(path: str) -> tuple[bytes | None, str | None]:
    """``(content, None)`` of a listed local file, or ``(None, why it cannot be read)``.

    Never raises: a file that is unreadable, gone since it was listed, a broken link or
    not a regular file (a FIFO would block) becomes a one-line reason.
    """
    local = local_path(path) or path
    try:
        info = os.stat(local)
        if not stat.S_ISREG(info.st_mode):
            return None, "cannot read file: not a regular file (a folder, FIFO or device)"
        if info.st_size > MAX_FILE_BYTES:
            return None, f"file too large ({info.st_size} bytes, limit {MAX_FILE_BYTES})"
        with open(local, "rb") as fh:
            return fh.read(), None
    except OSError as exc:
        if os.path.islink(local) and not os.path.exists(local):
            return None, no_content_reason(path)
        if isinstance(exc, PermissionError):
            return None, "cannot read file: permission denied"
        if isinstance(exc, FileNotFoundError):
            return None, "cannot read file: it no longer exists (deleted after listing?)"
        return None, f"cannot read file: {exc.strerror or type(exc).__name__}"


def no_content_reason(origin: str | None) -> str:
    """Why a listed file has no content: a broken symbolic link, or unknown."""
    local = local_path(origin) if origin else None
    if local and os.path.islink(local) and not os.path.exists(local):
        return (
            "cannot read file: broken symbolic link "
            f"(its target {os.readlink(local)} does not exist)"
        )
    return "no file content"


def local_path(path: str) -> str | None:
    """The local filesystem path of ``path``, or None when it is on another filesystem.

    Accepts a plain path, a Hadoop Path string (``file:/a b/x#1.jpg``, as in
    ``binaryFile``'s ``path`` column: characters are literal) and a URI
    (``file:///a%20b/x%231.jpg``, as in origins: percent-encoded).

    Examples
    --------
    >>> local_path("file:/data/a b#1.jpg"), local_path("file:///data/a%20b%231.jpg")
    ('/data/a b#1.jpg', '/data/a b#1.jpg')
    >>> local_path("/data/x.jpg"), local_path("s3a://bucket/x.jpg")
    ('/data/x.jpg', None)
    """
    if path.startswith("file://"):
        # A URI: '#' and '?' in a name are percent-encoded, so no fragment or query.
        return unquote(urlsplit(path, allow_fragments=False).path)
    if path.startswith("file:"):
        return path[len("file:") :]
    if urlsplit(path).scheme and not path.startswith("/"):
        return None if len(urlsplit(path).scheme) > 1 else path  # "C:..." is a path
    return path


def _hadoop_path(uri: str) -> str:
    """``file:///a%20b`` (URI form, as ``inputFiles()`` gives) -> ``file:/a b`` (Path form)."""
    parts = urlsplit(uri)
    path = unquote(parts.path)
    if parts.scheme == "file" or not parts.scheme:
        return f"file:{path}"
    return f"{parts.scheme}://{parts.netloc}{path}"


_URI_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()/;:@&=+$,"
)


def uri_form(path: str) -> str:
    """``file:/a b/ü.png`` (Hadoop Path form) -> ``file:///a%20b/ü.png`` (java.net.URI form).

    Spark's ``image`` source writes origins in the URI form; deepspark does the same so
    that both are interchangeable. As java.net.URI does, non-ASCII characters are kept
    and other characters outside RFC 2396 are percent-encoded.
    """
    if path.startswith("file:/") and not path.startswith("file:///"):
        path = "file:///" + path[len("file:/") :].lstrip("/")
    head, sep, rest = path.partition("://")
    if not sep:
        return path
    host, slash, tail = rest.partition("/")
    encoded = "".join(
        c if c in _URI_SAFE or ord(c) > 127 else "".join(f"%{b:02X}" for b in c.encode())
        for c in tail
    )
    return f"{head}://{host}{slash}{encoded}"


def _with_empty_files(spark: SparkSession, files: DataFrame) -> DataFrame:
    """Add back the files the scan drops: zero-byte ones (Spark skips them silently) and
    ones deleted since listing (``ignoreMissingFiles``); their content is empty."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    uris = files.inputFiles()
    listed = [_hadoop_path(uri) for uri in uris]
    if not listed:
        return files
    schema = StructType([StructField("path", StringType(), False)])
    # A left anti join against the scanned paths (content is pruned there, not read)
    # finds exactly the files the scan skipped, when the job runs: zero-byte files, and
    # files deleted between listing and reading (a driver-side stat at listing time
    # would miss those and lose their rows).
    missing = _jvm_frame(spark, {"path": listed}, schema).join(
        files.select("path"), on="path", how="left_anti"
    )
    empty = missing.select(
        "path",
        F.lit(None).cast("timestamp").alias("modificationTime"),
        F.lit(0).cast("long").alias("length"),
        F.lit(b"").cast("binary").alias("content"),
    )
    return files.unionByName(empty)


def _broken_links(paths: Sequence[str], *, recursive: bool, glob: str | None) -> list[str]:
    """Symbolic links without a target under local folders ``paths`` (Hadoop Path form).

    Spark's file listing skips them silently; deepspark gives each its own row (with no
    content) so that every directory entry shows up in the output.
    """
    found: list[str] = []
    for path in paths:
        root = local_path(path)
        if root is None or any(c in path for c in "*?[{") or not os.path.isdir(root):
            continue  # remote filesystems and globs: Spark's listing is all we have
        found += [
            "file:" + os.path.abspath(entry)
            for entry in _visible_entries(root, recursive=recursive, glob=glob)
            if os.path.islink(entry) and not os.path.exists(entry)
        ]
    return found


def _with_broken_links(
    spark: SparkSession,
    files: DataFrame,
    paths: Sequence[str],
    *,
    recursive: bool,
    glob: str | None,
) -> DataFrame:
    """Add a row with null content for each broken symbolic link Spark did not list."""
    from pyspark.sql.types import (
        BinaryType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    links = _broken_links(paths, recursive=recursive, glob=glob)
    if not links:
        return files
    schema = StructType(
        [
            StructField("path", StringType(), False),
            StructField("modificationTime", TimestampType(), True),
            StructField("length", LongType(), True),
            StructField("content", BinaryType(), True),
        ]
    )
    nulls = [None] * len(links)
    columns = {"path": links, "modificationTime": nulls, "length": nulls, "content": nulls}
    return files.unionByName(_jvm_frame(spark, columns, schema))
