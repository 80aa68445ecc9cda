"""A session's first job with and without ``prestart``, side by side.

Each run is a fresh process: ``deepspark.session("local[*]", prestart=...)`` and a
first ``spark.range(1).count()`` (start-up, as ``run.py`` times it), then ``--idle``
seconds of nothing (0: a script that runs its job at once; a few seconds: a notebook
or a service waiting for its first job), then ``list_paths`` -> ``DeepImagePredictor``
-> Parquet. Reported per run: start-up, seconds until the first rows were done (the
tasks' own row counts, :mod:`deepspark.runtime._progress`) and the job's seconds.
Modes alternate within each repetition; medians are printed.

    python benchmarks/first_job.py bench-data/n300-s0-9 --reps 3 --idle 0,3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import json, sys, tempfile, threading, time
t0 = time.perf_counter()
import deepspark
from deepspark.runtime import _progress
data, out, prestart, idle = sys.argv[1], sys.argv[2], sys.argv[3] == "on", float(sys.argv[4])
spark = deepspark.session("local[*]", prestart=prestart)
spark.range(1).count()
startup = time.perf_counter() - t0
time.sleep(idle)
folder = tempfile.mkdtemp()
spark.sparkContext.setLocalProperty(_progress.PROPERTY, folder)
first, done = [None], threading.Event()
t1 = time.perf_counter()

def watch():
    while not done.wait(0.05):
        if _progress.rows_done(folder) > 0:
            first[0] = time.perf_counter() - t1
            return

threading.Thread(target=watch, daemon=True).start()
files = deepspark.list_paths(spark, data)
predictor = deepspark.DeepImagePredictor(inputCol="path", topK=5)
predictor.transform(files).select("path", "predictions", "error").write.parquet(out)
job = time.perf_counter() - t1
done.set()
print("RESULT " + json.dumps({"startup_s": startup, "first_rows_s": first[0], "job_s": job}))
"""


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("data", help="a folder of JPEGs (benchmarks/data.py makes them)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--idle", default="0,3", help="comma-separated seconds before the job")
    p.add_argument("--json", type=Path, help="also write every run here")
    a = p.parse_args()

    runs = []
    for idle in [float(x) for x in a.idle.split(",")]:
        for rep in range(a.reps):
            for mode in ("on", "off"):
                out = tempfile.mkdtemp(prefix="first-job-") + "/out.parquet"
                proc = subprocess.run(
                    [sys.executable, "-c", _CHILD, a.data, out, mode, str(idle)],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    check=True,
                )
                line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
                run = {"idle_s": idle, "rep": rep, "prestart": mode, **json.loads(line[7:])}
                runs.append(run)
                print(json.dumps(run), flush=True)
    print("\n| idle s | prestart | start-up s | first rows done s | job s |")
    print("|---:|---|---:|---:|---:|")
    for idle in sorted({r["idle_s"] for r in runs}):
        for mode in ("on", "off"):
            mine = [r for r in runs if r["idle_s"] == idle and r["prestart"] == mode]
            med = {
                k: statistics.median(r[k] for r in mine if r[k] is not None)
                for k in ("startup_s", "first_rows_s", "job_s")
            }
            print(
                f"| {idle:g} | {mode} | {med['startup_s']:.2f} | {med['first_rows_s']:.2f} "
                f"| {med['job_s']:.2f} |"
            )
    if a.json:
        a.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
