"""deepspark.session(): the JVM options of a local session, and the user's own winning.

Each case starts its own JVM in a fresh interpreter (JVM options only apply when the
JVM is launched, and the test process already has one).
"""

from __future__ import annotations

import json
import subprocess
import sys

from deepspark.session import LOCAL_JVM_OPTIONS

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
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PROBE, json.dumps(conf)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for conf in confs
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
        line = next(ln for ln in out.splitlines() if ln.startswith("ARGS "))
        results.append(json.loads(line[len("ARGS ") :]))
    return results


def test_local_jvm_gets_quick_start_options_unless_the_user_sets_their_own() -> None:
    default, own = _jvm_args({}, {"spark.driver.extraJavaOptions": "-Ddeepspark.test=1"})
    for option in LOCAL_JVM_OPTIONS:
        assert option in default, default
    assert any(a.startswith("-Dlog4j2.configurationFile=") for a in default)
    # The user's own options replace deepspark's entirely.
    assert "-Ddeepspark.test=1" in own
    assert not any(option in own for option in LOCAL_JVM_OPTIONS), own
