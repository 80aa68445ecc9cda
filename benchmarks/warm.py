"""Steady-state check: the limit vs deepspark with warm Python workers, side by side.

The main benchmark counts each variant's whole job in a fresh process, so at small N
the per-worker fixed costs (importing deepspark and ONNX Runtime, loading the model in
every Python worker, the first Spark tasks) weigh a lot. This script separates them:
limit, then a deepspark job twice in one session (the second one with warm workers),
then limit again; it prints both rates and their ratio.

    python benchmarks/warm.py bench-data/n300-s0-9
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("data")
    p.add_argument("--runs", type=int, default=2, help="deepspark jobs after the first one")
    a = p.parse_args()

    import variants as V
    from run import prepare_models

    import deepspark

    models = prepare_models(False)
    n = len(V.list_jpegs(a.data))
    out = tempfile.mkdtemp(prefix="bench-warm-")

    def limit() -> float:
        args = argparse.Namespace(
            data=a.data, out=out + "/limit", model=models["fused"], threads=0, lanes=0
        )
        return n / V.run_limit(args)["seconds"]

    rates = {"limit": [limit()]}
    spark = deepspark.session("local[*]")
    for i in range(1 + a.runs):
        t0 = time.perf_counter()
        files = deepspark.list_paths(spark, a.data)
        deepspark.DeepImagePredictor(inputCol="path").transform(files).select(
            "path", "predictions", "error"
        ).write.mode("overwrite").parquet(out + "/ds")
        rates.setdefault("deepspark first job" if i == 0 else "deepspark warm", []).append(
            n / (time.perf_counter() - t0)
        )
    rates["limit"].append(limit())
    for k, v in rates.items():
        print(f"{k}: " + ", ".join(f"{x:.1f}" for x in v) + " images/s")
    warm = sum(rates["deepspark warm"]) / len(rates["deepspark warm"])
    lim = sum(rates["limit"]) / len(rates["limit"])
    print(f"warm deepspark / limit = {warm / lim:.2f}")


if __name__ == "__main__":
    main()
