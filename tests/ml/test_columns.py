"""Column names as users have them: dots, collisions, an existing error column of
another type, ML vectors. Each case either works or fails on the driver with a message
naming the Param to change, never with a raw Spark analysis error mid-plan."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import deepspark
from deepspark.errors import InvalidParameterError, SignatureError

sys.path.insert(0, str(Path(__file__).parent))  # helpers next to this file (importlib mode)
from tiny_onnx import TINY_PARAMS, solid_png, write_tiny_onnx


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_onnx(tmp_path_factory.mktemp("cols") / "tiny.onnx")


@pytest.fixture(scope="module")
def red(spark, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("red")
    solid_png(folder / "red.png", (255, 0, 0))
    return spark.read.format("binaryFile").load(str(folder))


def _predictor(tiny: Path, **kw):  # type: ignore[no-untyped-def]
    return deepspark.DeepImagePredictor(
        model=str(tiny), outputName="mean", labels=["r", "g", "b"], topK=1, **TINY_PARAMS, **kw
    )


def test_dotted_column_names_are_columns_not_fields(spark, tiny: Path, red) -> None:
    """``inputCol="my.image"`` names the column called that (Spark would read it as
    field ``image`` of a struct ``my`` and fail to resolve it)."""
    df = red.withColumnRenamed("content", "my.content")
    p = _predictor(tiny, inputCol="my.content", outputCol="top.class", errorCol="err.text")
    row = p.transform(df).select("`top.class`", "`err.text`").first()
    assert row[1] is None and row[0][0]["class"] == "r"


def test_struct_field_input_says_how_to_select_it(spark, tiny: Path, red) -> None:
    """``inputCol="item.content"`` for a field of a struct column fails on the driver
    (inputs are top-level columns, as in Spark ML), naming the fix; the fix works."""
    from pyspark.sql import functions as F

    nested = red.select(F.struct("path", "content").alias("item"))
    with pytest.raises(InvalidParameterError) as err:
        _predictor(tiny, inputCol="item.content").transform(nested)
    text = str(err.value)
    assert "'item.content' is a field of the struct column 'item'" in text
    assert "df.withColumn('content', F.col('item.content'))" in text
    fixed = nested.withColumn("content", F.col("item.content"))
    row = _predictor(tiny, inputCol="content").transform(fixed).first()
    assert row["error"] is None and row["predictions"][0]["class"] == "r"
    # Text models and ModelTransformer give the same hint.
    texts = spark.sql("SELECT named_struct('body', 'a sentence') AS doc")
    with pytest.raises(InvalidParameterError, match="field of the struct column 'doc'"):
        deepspark.TextEmbedder(inputCol="doc.body").transform(texts)
    with pytest.raises(InvalidParameterError, match="field of the struct column 'item'"):
        deepspark.ModelTransformer(
            model=str(tiny), inputCols=["item.content"], outputCols=["out"]
        ).transform(nested)


def test_colliding_output_columns_fail_on_the_driver(spark, tiny: Path, red) -> None:
    with pytest.raises(InvalidParameterError, match="outputCol and errorCol"):
        _predictor(tiny, inputCol="content", outputCol="error").transform(red)
    two = deepspark.ModelTransformer(model=str(tiny), inputCols=["x"], outputCols=["y", "y"])
    df = spark.createDataFrame([([0.0] * 192,)], "x array<float>")
    with pytest.raises(InvalidParameterError, match="both 'y'"):
        two.transform(df)
    clf = deepspark.TextClassifier(model=str(tiny.parent), labelCol="x", scoreCol="x")
    with pytest.raises(InvalidParameterError, match="labelCol and scoreCol"):
        clf.transform(spark.createDataFrame([("hi",)], "text string"))
    speech = deepspark.SpeechDetector(inputCol="audio", outputCol="s", speechRatioCol="s")
    with pytest.raises(InvalidParameterError, match="outputCol and speechRatioCol"):
        speech.transform(spark.createDataFrame([("a.wav",)], "audio string"))


def test_existing_error_column_of_another_type(spark, tiny: Path, red) -> None:
    """deepspark keeps earlier errors (a string column); one of another type is refused
    with what to do instead of failing the job on a cast."""
    from pyspark.sql import functions as F

    with pytest.raises(InvalidParameterError, match="type int;"):
        _predictor(tiny, inputCol="content").transform(red.withColumn("error", F.lit(1)))
    earlier = red.withColumn("error", F.lit("from an earlier stage"))
    row = _predictor(tiny, inputCol="content").transform(earlier).select("error").first()
    assert row.error == "from an earlier stage"


def test_model_transformer_reads_ml_vectors(spark, tiny: Path) -> None:
    """A VectorAssembler's output (an ML vector column) feeds a model like an array."""
    from pyspark.ml.feature import VectorAssembler

    df = spark.createDataFrame([(float(i),) for i in range(192)], "v double")
    row = [r.v for r in df.collect()]
    wide = spark.createDataFrame([tuple(row)], [f"c{i}" for i in range(192)])
    vec = VectorAssembler(inputCols=wide.columns, outputCol="features").transform(wide)
    m = deepspark.ModelTransformer(
        model=str(tiny),
        inputCols=["features"],
        outputCols=["mean"],
        inputNames=["pixels"],
        outputNames=["mean"],
        inputShapes=[[3, 8, 8]],
    )
    out = m.transform(vec).select("mean", "error").first()
    assert out.error is None
    # the model averages each 64-value channel plane
    assert out.mean == pytest.approx([31.5, 95.5, 159.5])


def test_labels_must_match_the_number_of_classes(spark, tiny: Path, red) -> None:
    p = _predictor(tiny, inputCol="content").setParams(labels=["r", "g"])
    with pytest.raises(SignatureError, match="2 labels .* 3 classes"):
        p.transform(red)


def test_existing_output_column_is_refused(spark, tiny: Path, red) -> None:
    """An output column the DataFrame already has (a second predictor with the default
    outputCol, outputCol equal to inputCol) is refused, as pyspark.ml's own stages do:
    replacing it silently lost the first stage's results."""
    once = _predictor(tiny, inputCol="content").transform(red)
    with pytest.raises(InvalidParameterError, match="already has a column 'predictions'"):
        _predictor(tiny, inputCol="content").transform(once)
    with pytest.raises(InvalidParameterError, match="set outputCol to another name"):
        _predictor(tiny, inputCol="content", outputCol="content").transform(red)
    # A new name works, and both results are kept (the error column is shared).
    twice = _predictor(tiny, inputCol="content", outputCol="again").transform(once)
    row = twice.select("predictions", "again", "error").first()
    assert row.error is None and row.predictions == row.again
    m = deepspark.ModelTransformer(
        model=str(tiny), inputCols=["x"], outputCols=["x"], inputNames=["pixels"],
        outputNames=["mean"], inputShapes=[[3, 8, 8]],
    )  # fmt: skip
    with pytest.raises(InvalidParameterError, match="'x', which outputCols"):
        m.transform(spark.createDataFrame([([0.0] * 192,)], "x array<float>"))


def test_bad_thread_count_and_input_size_are_refused(spark, tiny: Path, red) -> None:
    with pytest.raises(InvalidParameterError, match="numThreads must be >= 0"):
        _predictor(tiny, inputCol="content", numThreads=-1).transform(red)
    # [height, width, channels] used to be cut to [height, width] without a word.
    bad_size = _predictor(tiny, inputCol="content").setParams(inputSize=[8, 8, 3])
    with pytest.raises(InvalidParameterError, match="inputSize must be"):
        bad_size.transform(red)


def test_null_elements_in_an_input_array_are_row_errors(spark, tiny: Path) -> None:
    """A null inside an array would reach the model as NaN; the row gets an error
    instead. NaN values in the data itself still reach the model."""
    m = deepspark.ModelTransformer(
        model=str(tiny), inputCols=["x"], outputCols=["mean"], inputNames=["pixels"],
        outputNames=["mean"], inputShapes=[[3, 8, 8]],
    )  # fmt: skip
    holes = [1.0] * 192
    holes[5] = None  # type: ignore[call-overload]
    nan = [1.0] * 192
    nan[5] = float("nan")
    df = spark.createDataFrame([(0, holes), (1, nan), (2, [1.0] * 192)], "id int, x array<float>")
    rows = {r.id: r for r in m.transform(df).collect()}
    assert rows[0].mean is None and "holds null elements" in rows[0].error
    assert rows[1].error is None and np.isnan(rows[1].mean[0]) and rows[1].mean[1] == 1.0
    assert rows[2].error is None and rows[2].mean == pytest.approx([1.0, 1.0, 1.0])


def test_sql_function_with_the_wrong_number_of_arguments(spark, tiny: Path, red) -> None:
    """Spark does not check a Python function's arity: the job fails with a message
    naming the function, the count and the model's inputs, not an Arrow error."""
    deepspark.register_udf(spark, "tiny_mean", deepspark.load_model(str(tiny)))
    spark.createDataFrame([([0.0] * 192, [0.0] * 192)], "x array<float>, y array<float>")\
        .createOrReplaceTempView("xy")  # fmt: skip
    with pytest.raises(
        Exception, match=r"tiny_mean\(\) takes 1 argument \(one per model input: pixels\), got 2"
    ):
        spark.sql("SELECT tiny_mean(x, y) FROM xy").collect()
    deepspark.register_udf(spark, "tiny_top", _predictor(tiny))
    red.createOrReplaceTempView("red_files")
    with pytest.raises(Exception, match=r"tiny_top\(\) takes 1 argument, got 2"):
        spark.sql("SELECT tiny_top(content, path) FROM red_files").collect()
    row = spark.sql("SELECT tiny_top(content) AS p FROM red_files").first()
    assert row.p[0]["class"] == "r"


def test_sql_function_from_the_featurizer(spark, red) -> None:
    """register_udf takes DeepImageFeaturizer too: the SQL function returns the same
    features as the transformer, as an array (SQL has no ML vector type)."""
    import numpy as np

    featurizer = deepspark.DeepImageFeaturizer(inputCol="content", outputCol="features")
    deepspark.register_udf(spark, "features_of", featurizer)
    red.createOrReplaceTempView("red_for_features")
    got = spark.sql("SELECT features_of(content) AS f FROM red_for_features").first().f
    want = featurizer.transform(red).first().features.toArray()
    assert len(got) == len(want) == 1280
    assert np.allclose(got, want, atol=1e-5)


def test_column_names_compare_as_spark_compares_them(spark, tiny: Path, red) -> None:
    """Spark matches column names ignoring case (unless spark.sql.caseSensitive):
    ``withColumn("predictions", ...)`` silently replaces a column ``Predictions``, and
    an ``Error`` column is the ``error`` column. The checks follow the same rule."""
    from pyspark.sql import functions as F

    with pytest.raises(InvalidParameterError, match="already has a column 'Predictions'"):
        _predictor(tiny, inputCol="content").transform(red.withColumn("Predictions", F.lit(1)))
    with pytest.raises(InvalidParameterError, match="'Error' and 'error'|'error' and 'Error'"):
        _predictor(tiny, inputCol="content", outputCol="Error").transform(red)
    earlier = red.withColumn("Error", F.lit("from an earlier stage"))
    out = _predictor(tiny, inputCol="content").transform(earlier)
    assert [c.lower() for c in out.columns].count("error") == 1
    assert out.select("error").first()[0] == "from an earlier stage"
    spark.conf.set("spark.sql.caseSensitive", "true")
    try:
        # Case-sensitive sessions keep both columns: nothing is replaced, nothing refused.
        both = _predictor(tiny, inputCol="content").transform(
            red.withColumn("Predictions", F.lit(1))
        )
        assert {"Predictions", "predictions"} <= set(both.columns)
    finally:
        spark.conf.unset("spark.sql.caseSensitive")
