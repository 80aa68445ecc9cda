"""The executor-side loop of the text transformers: tokenize -> ONNX -> pool or classify.

Rows are sorted by length before they are cut into model batches, so each batch is
padded only to its own longest text (much less padding than arrival order); results go
back to their rows' places. One output row per input row. The sort spans several
Arrow batches (up to :data:`SORT_ROWS` rows or :data:`SORT_BYTES` of text): Spark
sends 256 rows per batch under ``deepspark.session()``, and sorting only those left
~12% padding on the benchmark's sentences where 2,048 rows leave ~2%.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepspark.models.cache import worker_cached
from deepspark.models.text import ResolvedTextModel
from deepspark.runtime import _arrow as arrow
from deepspark.runtime._pipeline import model_failure
from deepspark.runtime.engine import softmax
from deepspark.runtime.threads import task_gpu, task_threads

__all__ = ["TextModelTask", "load_tokenizer", "pool", "sort_windows", "tokenize"]


def pool(tokens: np.ndarray, mask: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Sentence vectors from token vectors, as sentence-transformers' ``Pooling`` does.

    Parameters
    ----------
    tokens : ndarray, (batch, tokens, hidden)
    mask : ndarray, (batch, tokens)
        1 for real tokens, 0 for padding.
    modes : sequence of str
        Any of ``cls``, ``max``, ``mean``, ``mean_sqrt_len_tokens``, ``weightedmean``,
        ``lasttoken``; several are concatenated in the given order.

    Examples
    --------
    >>> t = np.array([[[1.0], [3.0], [100.0]]]); m = np.array([[1, 1, 0]])
    >>> pool(t, m, ["mean", "max", "cls"]).tolist()
    [[2.0, 3.0, 1.0]]
    """
    tokens = tokens.astype(np.float32, copy=False)
    m = mask.astype(np.float32)[:, :, None]
    counts = np.clip(m.sum(axis=1), 1e-9, None)
    out: list[np.ndarray] = []
    for mode in modes:
        if mode == "cls":
            first = mask.argmax(axis=1)  # the first real token (also with left padding)
            out.append(tokens[np.arange(len(tokens)), first])
        elif mode == "max":
            out.append(np.where(m > 0, tokens, -np.inf).max(axis=1))
        elif mode == "mean":
            out.append((tokens * m).sum(axis=1) / counts)
        elif mode == "mean_sqrt_len_tokens":
            out.append((tokens * m).sum(axis=1) / np.sqrt(counts))
        elif mode == "weightedmean":
            # Position weights 1, 2, ... counted from the first real token.
            start = mask.argmax(axis=1)[:, None]
            weights = (np.arange(1, tokens.shape[1] + 1)[None, :] - start)[:, :, None] * m
            out.append((tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None))
        elif mode == "lasttoken":
            last = tokens.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)
            out.append(tokens[np.arange(len(tokens)), last])
        else:  # pragma: no cover - validated on the driver
            raise ValueError(f"unknown pooling mode {mode!r}")
    return np.concatenate(out, axis=1)


def load_tokenizer(path: str, max_length: int, pad_id: int, pad_token: str) -> Any:
    """A ``tokenizers.Tokenizer`` that truncates to ``max_length`` and pads per batch."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    tok.enable_truncation(max_length=max_length)
    # No fixed length: each batch is padded to its own longest text.
    direction = (tok.padding or {}).get("direction", "right")
    tok.enable_padding(pad_id=pad_id, pad_token=pad_token, direction=direction)
    return tok


#: Rows sorted by length together (several Arrow batches), and the most text they may
#: hold: long documents close a window early, so memory stays bounded.
SORT_ROWS = 2048
SORT_BYTES = 8 * 2**20


def sort_windows(arrays: Iterator[Any], rows: int, max_bytes: int) -> Iterator[list[Any]]:
    """Consecutive Arrow arrays grouped until they hold ``rows`` rows or ``max_bytes``.

    Examples
    --------
    >>> import pyarrow as pa
    >>> [[len(a) for a in w] for w in sort_windows(iter([pa.array(["a"] * 3)] * 3), 5, 10**6)]
    [[3, 3], [3]]
    """
    window: list[Any] = []
    count = size = 0
    for arr in arrays:
        window.append(arr)
        count += len(arr)
        size += arr.nbytes
        if count >= rows or size >= max_bytes:
            yield window
            window, count, size = [], 0, 0
    if window:
        yield window


#: Texts longer than maxLength x this many characters are first tokenized from a prefix
#: that ends at white space: a whole book is not tokenized only to keep 256 tokens.
_CHARS_PER_TOKEN = 32


def _prefix(text: str, limit: int) -> str | None:
    """``text`` cut at the last white space before ``limit`` characters (None: keep it)."""
    if len(text) <= limit:
        return None
    cut = max(text.rfind(c, 0, limit) for c in " \n\t\r")
    return text[:cut] if cut > 0 else None


def tokenize(tokenizer: Any, texts: list[str], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Model inputs (int64, batch x tokens) for ``texts``.

    Surrounding white space is removed first, as sentence-transformers does. A very
    long text is tokenized from a prefix ending at white space; the tokens of words
    before a space do not depend on what follows, so when the prefix alone fills
    ``maxLength`` the result is the same as for the whole text, and otherwise the
    whole text is tokenized.
    """
    texts = [t.strip() for t in texts]
    inputs = list(texts)
    max_length = (tokenizer.truncation or {}).get("max_length")
    cut: list[int] = []
    if max_length and (tokenizer.truncation or {}).get("direction", "right") == "right":
        for i, text in enumerate(texts):
            prefix = _prefix(text, max_length * _CHARS_PER_TOKEN)
            if prefix is not None:
                inputs[i] = prefix
                cut.append(i)
    encodings = tokenizer.encode_batch(inputs)
    short = [i for i in cut if sum(encodings[i].attention_mask) < max_length]
    if short:  # the prefix did not fill maxLength: tokenize those texts whole
        for i in short:
            inputs[i] = texts[i]
        encodings = tokenizer.encode_batch(inputs)
    fields = {
        "input_ids": lambda e: e.ids,
        "attention_mask": lambda e: e.attention_mask,
        "token_type_ids": lambda e: e.type_ids,
    }
    return {n: np.array([fields[n](e) for e in encodings], dtype=np.int64) for n in names}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


@dataclass(frozen=True)
class TextModelTask:
    """Everything an executor needs to run a text model over a string column. Picklable.

    Attributes
    ----------
    model : ResolvedTextModel
        The shipped ONNX network and tokenizer and how to use them.
    mode : {"embedding", "classification"}
    normalize : bool
        L2-normalise embeddings.
    batch_size : int
        Texts per model call.
    threads : int
        0 = the task's CPU share.
    sort_rows : int
        Rows (from consecutive Arrow batches) sorted by length together.
    """

    model: ResolvedTextModel
    mode: str = "embedding"
    normalize: bool = True
    batch_size: int = 32
    threads: int = 0
    sort_rows: int = SORT_ROWS

    # ---------------------------------------------------------------- types
    def result_arrow_type(self) -> Any:
        import pyarrow as pa

        if self.mode == "embedding":
            return pa.list_(pa.float32())
        return pa.struct([pa.field("label", pa.string()), pa.field("score", pa.float32())])

    def result_spark_type(self) -> Any:
        from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

        if self.mode == "embedding":
            return ArrayType(FloatType(), True)
        return StructType(
            [StructField("label", StringType(), True), StructField("score", FloatType(), True)]
        )

    # ---------------------------------------------------------------- execution
    def _tokenizer(self) -> Any:
        m = self.model
        key = ("tokenizer", m.tokenizer.sha256, m.max_length, m.pad_id, m.pad_token)
        return worker_cached(
            key,
            lambda: load_tokenizer(m.tokenizer.local_path(), m.max_length, m.pad_id, m.pad_token),
        )

    def infer(self, session: Any, tokenizer: Any, texts: list[str]) -> list[Any]:
        """Results for a batch of texts (one per text)."""
        inputs = tokenize(tokenizer, texts, self.model.input_names)
        out = np.asarray(session.predict(inputs)[self.model.output_name])
        if self.mode == "embedding":
            vectors = pool(out, inputs["attention_mask"], self.model.pooling)
            if self.normalize:
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                vectors = vectors / np.clip(norms, 1e-12, None)
            return list(vectors.astype(np.float32))
        logits = out.reshape(out.shape[0], -1)
        probs = _sigmoid(logits) if self.model.activation == "sigmoid" else softmax(logits)
        best = probs.argmax(axis=1)
        labels = self.model.labels
        return [
            {"label": labels[b] if b < len(labels) else str(b), "score": float(p[b])}
            for b, p in zip(best, probs)
        ]

    def run(self, arrays: Iterator[Any]) -> Iterator[Any]:
        """Iterator of string Arrow arrays -> iterator of struct<result, error> arrays."""
        import pyarrow as pa

        session = self.model.ref.load(threads=task_threads(self.threads), gpu=task_gpu())
        tokenizer = self._tokenizer()
        result_type = self.result_arrow_type()
        for window in sort_windows(arrays, self.sort_rows, SORT_BYTES):
            values = [v for arr in window for v in arr.to_pylist()]
            results: list[Any] = [None] * len(values)
            errors: list[str | None] = [None] * len(values)
            # Null text gives a null result (and no error): missing values are not failures.
            rows = sorted(
                (i for i, v in enumerate(values) if v is not None), key=lambda i: len(values[i])
            )
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                try:
                    out = self.infer(session, tokenizer, [values[i] for i in chunk])
                except Exception as exc:  # noqa: BLE001 - a model failure fails these rows
                    msg = model_failure(exc)
                    for i in chunk:
                        errors[i] = msg
                    continue
                for i, row in zip(chunk, out):
                    results[i] = row
            # One output array per input array: output batches stay the size Spark sent.
            start = 0
            for arr in window:
                end = start + len(arr)
                yield pa.StructArray.from_arrays(
                    [
                        arrow.from_python(results[start:end], result_type),
                        arrow.strings(errors[start:end]),
                    ],
                    names=["result", "error"],
                )
                start = end
