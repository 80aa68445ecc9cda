"""Spark's Python worker daemon, importing pyspark from its installed package.

Spark starts Python workers with ``$SPARK_HOME/python/lib/pyspark.zip`` and the py4j zip
first on ``PYTHONPATH``. Python cannot cache bytecode for modules imported from a zip,
so every forked worker compiles ``pyspark.worker`` and the pyspark modules it imports
from source, and the first task of each worker re-reads the zips' directories when
pyspark calls ``importlib.invalidate_caches()`` after adding the SparkFiles folder to
``sys.path``. Profiled with py-spy on a 2-core machine, that was about a tenth of all
CPU time of a 1,000-photo job.

When pyspark is pip-installed, the zips are copies of that same installed package
(``<site-packages>/pyspark/python/lib/pyspark.zip``), so this module drops them from
``sys.path`` (pyspark and py4j then load from site-packages with cached bytecode) and
runs pyspark's own daemon unchanged. Anything else (a ``SPARK_HOME`` of another Spark,
a py4j that is not installed) is left as Spark set it.

Spark also puts its core jar on the path (``PythonUtils.sparkPythonPath`` adds
``jarOfObject``, a leftover of assembly-jar days). It holds no Python module (checked on
Spark 4.3: 5,973 entries, none ``.py``), but Python opens it as a zip archive: every
task's ``importlib.invalidate_caches()`` made each worker re-read its directory, 0.4-0.5
CPU seconds per task (pyinstrument in a worker, 2-core machine). It is dropped too.

:func:`deepspark.session` selects it (``spark.python.daemon.module``) for local masters
only, where executors run the driver's interpreter and deepspark is certainly
importable before any task has shipped files.
"""

from __future__ import annotations

import importlib.util
import os
import sys

__all__ = ["use_installed_pyspark"]


def use_installed_pyspark() -> list[str]:
    """Remove pyspark's own zips from ``sys.path`` when they copy the installed package.

    Returns the removed entries.
    """
    removed: list[str] = []
    for entry in list(sys.path):
        if _is_spark_core_jar(entry):
            sys.path.remove(entry)
            removed.append(entry)
            continue
        if not entry.endswith(".zip"):
            continue
        lib = os.path.dirname(os.path.abspath(entry))
        package = os.path.dirname(os.path.dirname(lib))  # <pkg>/python/lib/x.zip
        name = os.path.basename(entry)
        if (
            os.path.basename(package) == "pyspark"
            and os.path.isfile(os.path.join(package, "__init__.py"))
            and (name == "pyspark.zip" or name.startswith("py4j-"))
        ):
            sys.path.remove(entry)
            removed.append(entry)
    if removed and (
        importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("py4j") is None
    ):
        sys.path[:0] = removed  # not importable without them after all: put them back
        return []
    for entry in removed:
        # Importing this module already made zip importers for them; cached, those would
        # still re-read their archives at every importlib.invalidate_caches().
        sys.path_importer_cache.pop(entry, None)
    return removed


def _is_spark_core_jar(entry: str) -> bool:
    """Spark's core jar (``spark-core_2.13-4.3.0.jar``): on the path, but no Python inside."""
    name = os.path.basename(entry)
    return name.startswith("spark-core_") and name.endswith(".jar")


if __name__ == "__main__":
    use_installed_pyspark()
    from pyspark.daemon import manager

    manager()
