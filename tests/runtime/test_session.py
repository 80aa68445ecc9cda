"""deepspark.session(): the JVM options of a local session, and the user's own winning;
under spark-submit, spark-submit's master and settings.

Each case starts its own JVM in a fresh interpreter (JVM options only apply when the
JVM is launched, and the test process already has one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from deepspark.session import LOCAL_JVM_OPTIONS
from tests.runtime._fresh import results

_PROBE = """
import json, sys
import deepspark
conf = json.loads(sys.argv[1])
spark = deepspark.session("local[1]", conf=conf or None)
jvm = spark.sparkContext._jvm
args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
print("ARGS " + json.dumps(args))
spark.stop()
"""


def _jvm_args(*confs: dict[str, str]) -> list[list[str]]:
    """The JVM input arguments of a local session started with each conf (in parallel)."""
    return [args for args, _ in results(_PROBE, *map(json.dumps, confs), tag="ARGS ", timeout=240)]


def test_local_jvm_gets_quick_start_options_unless_the_user_sets_their_own() -> None:
    default, own = _jvm_args({}, {"spark.driver.extraJavaOptions": "-Ddeepspark.test=1"})
    for option in LOCAL_JVM_OPTIONS:
        assert option in default, default
    assert any(a.startswith("-Dlog4j2.configurationFile=") for a in default)
    # The user's own options replace deepspark's entirely.
    assert "-Ddeepspark.test=1" in own
    assert not any(option in own for option in LOCAL_JVM_OPTIONS), own


_SUBMITTED = """
import deepspark
spark = deepspark.session()
conf = spark.sparkContext.getConf()
print("GOT", spark.sparkContext.master, conf.get("spark.deepspark.test"),
      spark.conf.get("spark.sql.shuffle.partitions"), conf.get("spark.python.worker.reuse"))
spark.stop()
"""


def test_session_under_spark_submit_keeps_its_master_and_settings(tmp_path: Path) -> None:
    """A job script run by spark-submit gets spark-submit's --master and --conf from
    deepspark.session(), as docs/cluster.md says; deepspark's defaults only fill gaps."""
    script = tmp_path / "job.py"
    script.write_text(_SUBMITTED)
    submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "DEEPSPARK_MASTER": "local[2]"}
    res = subprocess.run(
        [str(submit), "--master", "local[1]", "--conf", "spark.sql.shuffle.partitions=3"]
        + ["--conf", "spark.deepspark.test=yes", str(script)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("GOT "))
    assert line.split() == ["GOT", "local[1]", "yes", "3", "true"]
