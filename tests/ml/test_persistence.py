"""Saving and loading deepspark transformers and pipelines that hold them.

The pipeline test loads the saved PipelineModel in a NEW Python process with its own
SparkSession, after the original model file was deleted: the saved folder must be
self-contained and give identical predictions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import deepspark
from deepspark.errors import InvalidParameterError, ModelLoadError

sys.path.insert(0, str(Path(__file__).parent))  # helpers next to this file (importlib mode)
from tiny_onnx import TINY_PARAMS, solid_png, write_tiny_onnx


#: every public transformer, by name
ALL_TRANSFORMERS = [
    "DeepImagePredictor",
    "DeepImageFeaturizer",
    "ImageModelTransformer",
    "TextEmbedder",
    "TextClassifier",
    "SpeechDetector",
    "AudioModelTransformer",
    "ModelTransformer",
]


def test_predictor_with_named_model_round_trips(spark, tmp_path: Path) -> None:
    p = deepspark.DeepImagePredictor(inputCol="content", outputCol="top", topK=3, batchSize=7)
    p.save(str(tmp_path / "pred"))
    q = deepspark.DeepImagePredictor.load(str(tmp_path / "pred"))
    assert isinstance(q, deepspark.DeepImagePredictor)
    assert q.uid == p.uid
    assert (q.getInputCol(), q.getOutputCol(), q.getTopK(), q.getBatchSize()) == (
        "content",
        "top",
        3,
        7,
    )
    assert q.getModelName() == "efficientnet_lite0" and q.getModel() is None
    assert not (tmp_path / "pred" / "model").exists()  # named models are stored by name


@pytest.mark.parametrize("cls", ALL_TRANSFORMERS)
def test_column_setters_as_in_pyspark(spark, tmp_path: Path, cls: str) -> None:
    """Every transformer has pyspark's setInputCol(s)/setOutputCol(s), chainable, and
    what they set survives save/load."""
    t = getattr(deepspark, cls)()
    many = hasattr(t, "inputCols")
    if many:
        assert t.setInputCols(["a", "b"]).setOutputCols(["y"]) is t
        got = lambda m: (m.getInputCols(), m.getOutputCols())
        want = (["a", "b"], ["y"])
    elif cls == "TextClassifier":  # two outputs: the label and its score
        assert t.setInputCol("t").setLabelCol("l").setScoreCol("s") is t
        got = lambda m: (m.getInputCol(), m.getLabelCol(), m.getScoreCol())
        want = ("t", "l", "s")
    else:
        assert t.setInputCol("path").setOutputCol("out") is t
        got = lambda m: (m.getInputCol(), m.getOutputCol())
        want = ("path", "out")
    assert got(t) == want
    if cls in ("DeepImagePredictor", "DeepImageFeaturizer", "TextEmbedder", "SpeechDetector"):
        t.save(str(tmp_path / cls))  # named models: nothing else to give
        assert got(type(t).load(str(tmp_path / cls))) == want


@pytest.mark.parametrize("cls", ALL_TRANSFORMERS)
def test_every_param_has_a_getter_and_a_setter(cls: str) -> None:
    """As pyspark's own stages: get<Name>() and a chainable set<Name>(value) for every
    Param (setInputSize, getThreshold, setModel... were missing), the value converted by
    the Param's typeConverter."""
    t = getattr(deepspark, cls)()
    for param in t.params:
        cap = param.name[0].upper() + param.name[1:]
        getter, setter = getattr(t, f"get{cap}"), getattr(t, f"set{cap}")
        if t.isDefined(param):
            value = t.getOrDefault(param)
            assert getter() == value, param.name
            if value is not None:
                assert setter(value) is t and t.isSet(param), param.name
    with pytest.raises(AttributeError, match="setNoSuchParam"):
        t.setNoSuchParam(1)


#: transformers that ship a named model; the others run only a user's ``model``
NAMED_MODEL_TRANSFORMERS = {"DeepImagePredictor", "DeepImageFeaturizer", "TextEmbedder"}


@pytest.mark.parametrize("cls", ALL_TRANSFORMERS)
def test_model_name_only_where_a_named_model_runs(cls: str) -> None:
    """``modelName`` was listed (explainParams, setModelName) on transformers that
    ignore it; only those that run a named model have it now."""
    t = getattr(deepspark, cls)()
    if cls == "SpeechDetector":  # silero_vad, chosen by the transformer itself
        assert not t.hasParam("model") and not t.hasParam("modelName")
        return
    assert t.hasParam("model")
    assert t.hasParam("modelName") == (cls in NAMED_MODEL_TRANSFORMERS)
    if cls not in NAMED_MODEL_TRANSFORMERS:
        with pytest.raises(AttributeError, match="setModelName"):
            t.setModelName("efficientnet_lite0")


def test_generic_accessors_set_values(spark) -> None:
    s = deepspark.SpeechDetector().setThreshold(0.7).setMinSpeechMs(100)
    assert (s.getThreshold(), s.getMinSpeechMs()) == (0.7, 100.0)
    p = deepspark.DeepImagePredictor().setInputSize([299, 299]).setMean([0.5, 0.5, 0.5])
    assert (p.getInputSize(), p.getMean()) == ([299, 299], [0.5, 0.5, 0.5])
    with pytest.raises(TypeError, match="threshold"):
        s.setThreshold("high")


def test_users_model_file_is_stored_inside(spark, tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path / "src" / "tiny.onnx")
    f = deepspark.DeepImageFeaturizer(
        inputCol="content", model=str(model), layer="mean", **TINY_PARAMS
    )
    f.write().overwrite().save(str(tmp_path / "saved"))
    copy = tmp_path / "saved" / "model" / "tiny.onnx"
    assert copy.read_bytes() == model.read_bytes()
    model.unlink()  # the saved folder must not need the original

    g = deepspark.DeepImageFeaturizer.load(str(tmp_path / "saved"))
    # The loaded transformer runs a copy in deepspark's cache: the saved folder may be
    # overwritten or deleted while it is in use, as with pyspark's own models.
    assert Path(g.getModel()).read_bytes() == copy.read_bytes()
    assert tmp_path / "saved" not in Path(g.getModel()).parents
    assert (g.getLayer(), g.getOrDefault(g.inputSize)) == ("mean", [8, 8])
    solid_png(tmp_path / "red.png", (255, 0, 0))
    files = spark.read.format("binaryFile").load(str(tmp_path / "red.png"))
    row = g.transform(files).select("features", "error").first()
    assert row.error is None
    np.testing.assert_allclose(row.features.toArray(), [1.0, 0.0, 0.0], atol=1e-6)

    # a tampered copy is refused on load, with a reason
    copy.write_bytes(copy.read_bytes()[:-10])
    with pytest.raises(ModelLoadError, match="does not match"):
        deepspark.DeepImageFeaturizer.load(str(tmp_path / "saved"))


def test_loading_with_the_wrong_class_says_which(spark, tmp_path: Path) -> None:
    deepspark.DeepImageFeaturizer().save(str(tmp_path / "feat"))
    with pytest.raises(InvalidParameterError, match="DeepImageFeaturizer.load"):
        deepspark.DeepImagePredictor.load(str(tmp_path / "feat"))


_LOAD_IN_NEW_PROCESS = textwrap.dedent(
    """
    import json, sys
    from pyspark.ml import PipelineModel
    import deepspark

    saved, data, out = sys.argv[1:4]
    spark = deepspark.session("local[2]")
    result = {}
    for name in ("named", "users"):
        model = PipelineModel.load(f"{saved}/{name}")
        df = spark.read.parquet(f"{data}/{name}")
        rows = model.transform(df).orderBy("path").select("path", "prediction", "probability")
        result[name] = [[r.path, r.prediction, r.probability.toArray().tolist()]
                        for r in rows.collect()]
        result[name + "_stages"] = [type(s).__name__ for s in model.stages]
    json.dump(result, open(out, "w"))
    spark.stop()
    """
)


def test_pipeline_model_loads_in_a_new_process(spark, tmp_path: Path, photos_dir: Path) -> None:
    """StringIndexer -> DeepImageFeaturizer -> LogisticRegression, saved, then loaded in
    a fresh Python process and SparkSession: identical predictions, for a named model and
    for a user's model file whose original was deleted."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StringIndexer
    from pyspark.sql import functions as F

    photos = (
        spark.read.format("binaryFile")
        .load(str(photos_dir))
        .withColumn(
            "kind",
            F.when(F.col("path").rlike("chelsea|astronaut"), "living").otherwise("object"),
        )
    )
    colours = tmp_path / "colours"
    colours.mkdir()
    for i, rgb in enumerate([(250, 10, 10), (200, 40, 0), (10, 10, 240), (0, 60, 200)]):
        solid_png(colours / f"c{i}.png", rgb)
    swatches = (
        spark.read.format("binaryFile")
        .load(str(colours))
        .withColumn("kind", F.when(F.col("path").rlike("c[01]"), "red").otherwise("blue"))
    )
    model_file = write_tiny_onnx(tmp_path / "tmp_model" / "tiny.onnx")

    def pipeline(featurizer: deepspark.DeepImageFeaturizer) -> Pipeline:
        return Pipeline(
            stages=[
                StringIndexer(inputCol="kind", outputCol="label"),
                featurizer,
                LogisticRegression(maxIter=20, regParam=0.01),
            ]
        )

    named = pipeline(deepspark.DeepImageFeaturizer(inputCol="content")).fit(photos)
    users = pipeline(
        deepspark.DeepImageFeaturizer(inputCol="content", model=str(model_file), **TINY_PARAMS)
    ).fit(swatches)
    saved = tmp_path / "saved"
    named.write().overwrite().save(str(saved / "named"))
    users.write().overwrite().save(str(saved / "users"))

    data = tmp_path / "data"
    here = {}
    for name, fitted, df in (("named", named, photos), ("users", users, swatches)):
        df.write.parquet(str(data / name))
        rows = fitted.transform(spark.read.parquet(str(data / name))).orderBy("path").collect()
        here[name] = [[r.path, r.prediction, r.probability.toArray().tolist()] for r in rows]
        # the fitted model learnt something: its training rows are classified right
        assert [fitted.stages[0].labels[int(r.prediction)] for r in rows] == [r.kind for r in rows]

    model_file.unlink()  # the saved pipeline must not need the original file
    out = tmp_path / "out.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(  # noqa: PLW1510 - the return code is asserted with stderr
        [sys.executable, "-c", _LOAD_IN_NEW_PROCESS, str(saved), str(data), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    there = json.loads(out.read_text())
    assert there["named_stages"] == [
        "StringIndexerModel",
        "DeepImageFeaturizer",
        "LogisticRegressionModel",
    ]
    for name in ("named", "users"):
        assert [r[:2] for r in there[name]] == [r[:2] for r in here[name]]
        np.testing.assert_allclose(
            [r[2] for r in there[name]], [r[2] for r in here[name]], rtol=1e-6, atol=1e-7
        )


def _linear_onnx(path: Path, external: bool = False) -> Path:
    """x float[N, 3] -> y = x @ W, W = [[1, 2], [3, 4], [5, 6]]; W in ``<name>.data``
    beside the file with ``external`` (as torch.onnx.export does for large models)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(1, 7, dtype=np.float32).reshape(3, 2), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=f"{path.name}.data",
            size_threshold=0,
        )
    else:
        onnx.save_model(model, str(path))
    return path


def test_every_transformer_with_a_model_file_stores_it(spark, tmp_path: Path) -> None:
    """ModelTransformer, TextEmbedder, TextClassifier and AudioModelTransformer keep
    their model file (or folder) inside the saved folder, as the image transformers do:
    loaded after the original is gone, they still find it."""
    onnx_file = _linear_onnx(tmp_path / "src" / "linear.onnx")
    (tmp_path / "src" / "linear.notes.txt").write_text("not part of the model")
    (tmp_path / "src" / "linear.checkpoint.pt").write_bytes(b"not part of it either")
    external = _linear_onnx(tmp_path / "src" / "ext.onnx", external=True)
    text_dir = tmp_path / "src" / "tiny-text"
    text_dir.mkdir()
    (text_dir / "config.json").write_text('{"model_type": "bert"}')
    (text_dir / "model.onnx").write_bytes(b"weights")
    stages = {
        "tensor": deepspark.ModelTransformer(
            model=str(onnx_file), inputCols=["x"], outputCols=["y"]
        ),
        "audio": deepspark.AudioModelTransformer(model=str(onnx_file), inputCol="audio"),
        "embedder": deepspark.TextEmbedder(model=str(text_dir), inputCol="text"),
        "classifier": deepspark.TextClassifier(model=str(text_dir), inputCol="text"),
        "external": deepspark.ModelTransformer(
            model=str(external), inputCols=["x"], outputCols=["y"]
        ),
    }
    for name, stage in stages.items():
        stage.write().overwrite().save(str(tmp_path / "saved" / name))
    # The model and the external weights it names, not every file of the same stem.
    stored = sorted(p.name for p in (tmp_path / "saved" / "tensor" / "model").iterdir())
    assert stored == ["linear.onnx"]
    stored = sorted(p.name for p in (tmp_path / "saved" / "external" / "model").iterdir())
    assert stored == ["ext.onnx", "ext.onnx.data"]
    for f in tmp_path.joinpath("src").rglob("*"):
        if f.is_file():
            f.unlink()  # the saved folders must not need the originals

    for name, stage in stages.items():
        loaded = type(stage).load(str(tmp_path / "saved" / name))
        model = Path(loaded.getModel())
        assert model.exists() and "src" not in model.parts, (name, model)
        if name in ("embedder", "classifier"):
            assert (model / "model.onnx").read_bytes() == b"weights"
    df = spark.createDataFrame([([1.0, 0.0, 1.0],)], "x array<float>")
    for name in ("tensor", "external"):
        # The external weights reach the executors too (shipped with the .onnx).
        tensor = deepspark.ModelTransformer.load(str(tmp_path / "saved" / name))
        row = tensor.transform(df).select("y", "error").first()
        assert row.error is None and row.y == [6.0, 8.0], name


def test_loaded_transformer_saved_over_its_own_folder(spark, tmp_path: Path) -> None:
    """load(p) then write().overwrite().save(p) (a pipeline refreshed in place): the
    overwrite deleted the very model copy the writer was to store, and the loaded
    transformer stopped working. As with pyspark's models, both keep working."""
    from pyspark.ml import PipelineModel

    model = write_tiny_onnx(tmp_path / "src" / "tiny.onnx")
    f = deepspark.DeepImageFeaturizer(
        inputCol="content", model=str(model), layer="mean", **TINY_PARAMS
    )
    PipelineModel(stages=[f]).write().overwrite().save(str(tmp_path / "pipe"))
    f.write().overwrite().save(str(tmp_path / "alone"))
    model.unlink()
    solid_png(tmp_path / "red.png", (255, 0, 0))
    files = spark.read.format("binaryFile").load(str(tmp_path / "red.png"))

    alone = deepspark.DeepImageFeaturizer.load(str(tmp_path / "alone"))
    alone.write().overwrite().save(str(tmp_path / "alone"))
    pipe = PipelineModel.load(str(tmp_path / "pipe"))
    pipe.write().overwrite().save(str(tmp_path / "pipe"))
    for stage in (
        alone,
        pipe,
        deepspark.DeepImageFeaturizer.load(str(tmp_path / "alone")),
        PipelineModel.load(str(tmp_path / "pipe")),
    ):
        row = stage.transform(files).select("features", "error").first()
        assert row.error is None
        np.testing.assert_allclose(row.features.toArray(), [1.0, 0.0, 0.0], atol=1e-6)


def test_live_model_through_set_model_and_copy(spark) -> None:
    """``setModel(module)`` and ``copy({t.model: module})`` take a live PyTorch module
    as the constructor does (written to a file on the driver); both used to fail the
    Param's string converter."""
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
        net.bias.zero_()
    df = spark.createDataFrame([([1.0, 0.0, 1.0],)], "x array<float>")
    base = deepspark.ModelTransformer(inputCols=["x"], outputCols=["y"], inputShapes=[[3]])
    via_setter = base.copy().setModel(net)
    via_copy = base.copy({base.model: net})
    assert base.getModel() is None  # copy() leaves the original alone
    for t in (via_setter, via_copy):
        assert Path(t.getModel()).is_file()
        row = t.transform(df).select("y", "error").first()
        assert row.error is None and row.y == pytest.approx([4.0, 10.0])
