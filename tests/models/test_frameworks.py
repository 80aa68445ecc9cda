"""PyTorch (TorchScript, torch.export, nn.Module), ONNX and Caffe models on Spark.

Each test builds a small real model, runs it through deepspark on Spark over real
photos, and compares with the framework's own output on the same inputs, preprocessed
independently (``_model_helpers.reference_batch``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import deepspark  # noqa: E402
from deepspark.errors import (  # noqa: E402
    ModelLoadError,
    ModelNotFoundError,
    SignatureError,
    UnsafeModelError,
)

sys.path.insert(0, str(Path(__file__).parent))  # helpers next to this file (importlib mode)
from _model_helpers import assert_matches, outputs_by_file, reference_batch  # noqa: E402

SIZE = (32, 32)
TOL = 1e-4


class SmallNet(torch.nn.Module):
    """A few conv layers and a classifier head: 3x32x32 -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
        )
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class TwoHeads(torch.nn.Module):
    """Two inputs (a: [4], b: [2, 3]) and two outputs (a linear map, a product)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lin(a) + b.sum(1), (b * a[:, :3].unsqueeze(1)).flatten(1)


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return SmallNet().eval()


@pytest.fixture(scope="module")
def files(net: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same network saved as TorchScript, torch.export, ONNX and torch.save (pickle)."""
    import warnings

    out = tmp_path_factory.mktemp("torch_models")
    x = torch.rand(2, 3, *SIZE)
    paths = {
        "torchscript": out / "net.pt",
        "export": out / "net.pt2",
        "onnx": out / "net.onnx",
        "pickle": out / "pickled.pth",
    }
    torch.jit.save(torch.jit.trace(net, x), str(paths["torchscript"]))
    batch = torch.export.Dim("batch")
    torch.export.save(
        torch.export.export(net, (x,), dynamic_shapes={"x": {0: batch}}), str(paths["export"])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (x,), str(paths["onnx"]), input_names=["pixels"], output_names=["logits"],
            dynamic_axes={"pixels": {0: "n"}, "logits": {0: "n"}}, dynamo=False,
        )
    torch.save(net, str(paths["pickle"]))
    return paths


@pytest.fixture(scope="module")
def reference(photos_dir: Path) -> tuple[list[str], np.ndarray]:
    return reference_batch(photos_dir, SIZE, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


@pytest.fixture(scope="module")
def images(spark, photos_dir: Path):  # type: ignore[no-untyped-def]
    # One partition: one Python worker loads each model once.
    return deepspark.read_images(spark, str(photos_dir)).coalesce(1).cache()


def _transformer(model, **kw):  # type: ignore[no-untyped-def]
    return deepspark.ImageModelTransformer(
        model=model, inputSize=list(SIZE), mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3], **kw
    )


def _torch_ref(net: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(batch)).numpy()


@pytest.mark.parametrize("engine", ["native", "auto"])
def test_torchscript_on_spark(images, files, net, reference, engine) -> None:  # type: ignore[no-untyped-def]
    names, batch = reference
    out = _transformer(str(files["torchscript"]), engine=engine).transform(images)
    assert_matches(outputs_by_file(out, "output"), names, _torch_ref(net, batch), TOL)


def test_torchscript_engine_auto_picks_onnxruntime_when_it_matches(files, net) -> None:  # type: ignore[no-untyped-def]
    model = deepspark.load_model(files["torchscript"], input_shapes=[(-1, 3, *SIZE)])
    assert model.framework == "onnx"  # converted, and the probe matched
    native = deepspark.load_model(files["torchscript"], engine="native")
    assert native.framework == "torch"
    x = np.random.default_rng(0).random((3, 3, *SIZE), dtype=np.float32)
    want = _torch_ref(net, x)
    for m in (model, native):
        got = m.predict({m.signature.input_names[0]: x})["output"]
        assert np.max(np.abs(got - want)) <= TOL


def test_torch_export_on_spark(images, files, net, reference) -> None:  # type: ignore[no-untyped-def]
    names, batch = reference
    model = deepspark.load_model(files["export"], engine="native")
    assert model.signature.inputs[0].shape == (-1, 3, *SIZE)  # dynamic batch from the program
    out = _transformer(str(files["export"]), engine="native").transform(images)
    assert_matches(outputs_by_file(out, "output"), names, _torch_ref(net, batch), TOL)


@pytest.mark.parametrize("engine", ["auto", "native"])
def test_fixed_batch_export_runs_at_any_batch_size(images, net, reference, tmp_path, engine) -> None:  # type: ignore[no-untyped-def]
    """torch.export without dynamic_shapes fixes the batch at 1: engine auto still
    converts it (its check runs a batch of 1), and the transformer's batches of 3 and
    the 4-row last batch reach the model one row at a time."""
    names, batch = reference
    path = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(1, 3, *SIZE),)), str(path))
    model = deepspark.load_model(path, engine=engine)
    assert model.signature.inputs[0].shape == (1, 3, *SIZE)
    assert model.framework == ("onnx" if engine == "auto" else "torch")
    x = np.random.default_rng(2).random((5, 3, *SIZE), dtype=np.float32)
    got = model.predict_rows({model.signature.input_names[0]: x})["output"]
    assert np.max(np.abs(got - _torch_ref(net, x))) <= TOL
    with pytest.raises(SignatureError, match="expects"):
        model.predict({model.signature.input_names[0]: x})  # predict itself stays strict
    out = _transformer(str(path), engine=engine, batchSize=3).transform(images)
    assert_matches(outputs_by_file(out, "output"), names, _torch_ref(net, batch), TOL)


def test_nn_module_object_on_spark(images, net, reference) -> None:  # type: ignore[no-untyped-def]
    names, batch = reference
    t = _transformer(net, outputMode="vector")
    assert isinstance(t.getModel(), str)  # exported to a file on the driver; no live object
    out = t.transform(images)
    from pyspark.ml.linalg import VectorUDT

    assert isinstance(out.schema["output"].dataType, VectorUDT)
    assert_matches(outputs_by_file(out, "output"), names, _torch_ref(net, batch), TOL)


def test_onnx_on_spark_from_paths(spark, photos_dir, files, reference) -> None:  # type: ignore[no-untyped-def]
    names, batch = reference
    session = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    want = session.run(["logits"], {"pixels": batch})[0]
    paths = spark.createDataFrame([(str(photos_dir / n),) for n in names], "path string")
    out = _transformer(str(files["onnx"]), inputCol="path", outputMode="probabilities")
    got = outputs_by_file(out.transform(paths), "output", origin="path")
    z = np.exp(want - want.max(axis=1, keepdims=True))
    assert_matches(got, names, z / z.sum(axis=1, keepdims=True), TOL)


def test_deep_image_predictor_with_own_model_and_labels_file(images, files, net, reference, tmp_path) -> None:  # type: ignore[no-untyped-def]
    names, batch = reference
    labels = [f"class_{i}" for i in range(10)]
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(labels) + "\n")
    predictor = deepspark.DeepImagePredictor(
        model=str(files["torchscript"]), labels=str(labels_file), topK=2,
        inputSize=list(SIZE), mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3],
    )
    rows = predictor.transform(images).select("image.origin", "predictions").collect()
    want = _torch_ref(net, batch).argmax(axis=1)
    top = {Path(r.origin).name: r.predictions[0]["class"] for r in rows}
    assert top == {n: labels[w] for n, w in zip(names, want)}


def test_bad_files_become_error_rows(spark, mixed_dir, files) -> None:  # type: ignore[no-untyped-def]
    paths = spark.createDataFrame([(str(p),) for p in sorted(mixed_dir.iterdir())], "path string")
    rows = _transformer(str(files["onnx"]), inputCol="path").transform(paths).collect()
    by_name = {Path(r.path).name: r for r in rows}
    assert len(rows) == 6
    for good in ("chelsea.png", "coffee.png", "rocket.jpg"):
        assert by_name[good].error is None and len(by_name[good].output) == 10
    for bad in ("truncated.jpg", "empty.jpg", "notes.jpg"):
        assert by_name[bad].output is None and by_name[bad].error


# ----------------------------------------------------------------------------- Caffe

CAFFE_PROTOTXT = """name: "small"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 32 dim: 32 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 16 kernel_size: 3 pad: 1 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "fc" type: "InnerProduct" bottom: "conv2" top: "fc"
        inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


@pytest.fixture(scope="module")
def caffe_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    from caffe_proto import write_caffemodel

    out = tmp_path_factory.mktemp("caffe")
    rng = np.random.default_rng(7)
    w = {
        "conv1": [rng.normal(0, 0.3, (8, 3, 3, 3)), rng.normal(0, 0.1, 8)],
        "conv2": [rng.normal(0, 0.2, (16, 8, 3, 3)), rng.normal(0, 0.1, 16)],
        "fc": [rng.normal(0, 0.02, (10, 16 * 16 * 16)), rng.normal(0, 0.1, 10)],
    }
    w = {k: [np.asarray(a, np.float32) for a in v] for k, v in w.items()}
    proto = out / "small.prototxt"
    proto.write_text(CAFFE_PROTOTXT)
    weights = write_caffemodel(
        out / "small.caffemodel",
        {"conv1": ("Convolution", w["conv1"]), "conv2": ("Convolution", w["conv2"]),
         "fc": ("InnerProduct", w["fc"])},
    )
    return proto, weights, w


def _caffe_torch_reference(w: dict, x: np.ndarray) -> np.ndarray:
    """The same network in PyTorch, from the same weights: an independent reference."""
    F = torch.nn.functional
    t = torch.from_numpy(x)
    t = F.max_pool2d(F.relu(F.conv2d(t, *map(torch.from_numpy, w["conv1"]), padding=1)), 2)
    t = F.relu(F.conv2d(t, *map(torch.from_numpy, w["conv2"]), padding=1))
    return torch.softmax(F.linear(t.flatten(1), *map(torch.from_numpy, w["fc"])), 1).numpy()


def test_caffe_on_spark_from_binary_content(spark, photos_dir, caffe_model) -> None:  # type: ignore[no-untyped-def]
    cv2 = pytest.importorskip("cv2")
    proto, weights, w = caffe_model
    mean, scale = (104.0, 117.0, 123.0), 1.0  # the classic Caffe BGR mean, 0..255 pixels
    names, batch = reference_batch(photos_dir, SIZE, channel_order="BGR", scale=scale, mean=mean)
    net = cv2.dnn.readNetFromCaffe(str(proto), str(weights))
    net.setInput(batch)
    want = net.forward()
    assert np.max(np.abs(want - _caffe_torch_reference(w, batch))) <= 1e-3

    content = spark.read.format("binaryFile").load(str(photos_dir)).coalesce(1)
    t = deepspark.ImageModelTransformer(
        model=str(weights), inputCol="content", inputSize=list(SIZE), channelOrder="BGR",
        scale=scale, mean=list(mean), std=[1.0, 1.0, 1.0],
    )
    got = outputs_by_file(t.transform(content), "output", origin="path")
    assert_matches(got, names, want, 1e-3)


def test_caffe_pair_signature_and_missing_prototxt(caffe_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    proto, weights, _ = caffe_model
    model = deepspark.load_model((str(proto), str(weights)))
    assert model.framework == "caffe"
    assert model.signature.input_names == ["data"]
    assert model.signature.inputs[0].shape == (-1, 3, 32, 32)
    assert model.signature.output_names == ["prob"]
    lonely = tmp_path / "lonely.caffemodel"
    lonely.write_bytes(weights.read_bytes())
    with pytest.raises(ModelNotFoundError, match=r"prototxt.*lonely\.prototxt"):
        deepspark.load_model(lonely)


# ------------------------------------------------------------- several inputs / outputs


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    import warnings

    torch.manual_seed(1)
    module = TwoHeads().eval()
    path = tmp_path_factory.mktemp("two") / "two_heads.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.rand(2, 4), torch.rand(2, 2, 3)), str(path),
            input_names=["a", "b"], output_names=["mixed", "product"],
            dynamic_axes={n: {0: "n"} for n in ("a", "b", "mixed", "product")}, dynamo=False,
        )
    return module, path


@pytest.fixture(scope="module")
def ab_frame(spark):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    rows = [
        (i, rng.random(4).tolist(), rng.random((2, 3)).tolist()) for i in range(7)
    ] + [(7, None, [[0.0] * 3] * 2), (8, [1.0, 2.0], [[0.0] * 3] * 2)]
    return spark.createDataFrame(rows, "id int, a array<double>, b array<array<double>>")


def _two_heads_ref(module, a, b):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        m, p = module(torch.tensor([a], dtype=torch.float32), torch.tensor([b], dtype=torch.float32))
    return m.numpy().ravel(), p.numpy().ravel()


def test_model_transformer_two_inputs_two_outputs(two_heads, ab_frame) -> None:  # type: ignore[no-untyped-def]
    module, path = two_heads
    t = deepspark.ModelTransformer(
        inputCols=["a", "b"], outputCols=["m", "p"], model=str(path), batchSize=3
    )
    rows = {r.id: r for r in t.transform(ab_frame).collect()}
    for i in range(7):
        want_m, want_p = _two_heads_ref(module, rows[i].a, rows[i].b)
        assert rows[i].error is None
        assert np.max(np.abs(np.asarray(rows[i].m) - want_m)) <= TOL
        assert np.max(np.abs(np.asarray(rows[i].p) - want_p)) <= TOL
    # Bad rows fail alone, with a reason; the job and the other rows are fine.
    assert rows[7].m is None and "null" in rows[7].error
    assert rows[8].m is None and "2 values" in rows[8].error


def test_model_transformer_with_live_module_and_shapes(two_heads, ab_frame) -> None:  # type: ignore[no-untyped-def]
    module, _ = two_heads
    t = deepspark.ModelTransformer(
        inputCols=["a", "b"], outputCols=["m", "p"], model=module, inputShapes=[[4], [2, 3]]
    )
    rows = [r for r in t.transform(ab_frame.where("id < 3")).collect()]
    for r in rows:
        want_m, want_p = _two_heads_ref(module, r.a, r.b)
        assert np.max(np.abs(np.asarray(r.m) - want_m)) <= TOL
        assert np.max(np.abs(np.asarray(r.p) - want_p)) <= TOL


# ------------------------------------------------------------------------------ SQL


def test_sql_udf_for_image_transformer_and_model(spark, images, files, net, reference, two_heads, ab_frame) -> None:  # type: ignore[no-untyped-def]
    names, batch = reference
    deepspark.register_udf(spark, "small_net", _transformer(str(files["onnx"])))
    images.createOrReplaceTempView("images")
    rows = spark.sql("SELECT image.origin AS origin, small_net(image) AS out FROM images").collect()
    got = {Path(r.origin).name: np.asarray(r.out, np.float32) for r in rows}
    assert_matches(got, names, _torch_ref(net, batch), TOL)

    labels = [f"c{i}" for i in range(10)]
    predictor = deepspark.DeepImagePredictor(
        model=str(files["onnx"]), labels=labels, topK=1, inputSize=list(SIZE),
        mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3],
    )
    deepspark.register_udf(spark, "top1", predictor)
    rows = spark.sql("SELECT image.origin AS origin, top1(image)[0].class AS c FROM images").collect()
    want = _torch_ref(net, batch).argmax(axis=1)
    assert {Path(r.origin).name: r.c for r in rows} == {n: labels[w] for n, w in zip(names, want)}

    module, path = two_heads
    deepspark.register_udf(spark, "two_heads", deepspark.load_model(path))
    ab_frame.createOrReplaceTempView("ab")
    rows = spark.sql("SELECT a, b, two_heads(a, b) AS o FROM ab WHERE id < 4").collect()
    for r in rows:
        want_m, want_p = _two_heads_ref(module, r.a, r.b)
        assert np.max(np.abs(np.asarray(r.o.mixed) - want_m)) <= TOL
        assert np.max(np.abs(np.asarray(r.o.product) - want_p)) <= TOL


# --------------------------------------------------------------------------- errors


def _no_jobs_ran(spark, action) -> Exception:  # type: ignore[no-untyped-def]
    """Run ``action`` (which must raise) in a job group; assert Spark started no job."""
    sc = spark.sparkContext
    sc.setJobGroup("deepspark-driver-check", "driver-side model checks")
    try:
        with pytest.raises(Exception) as info:
            action()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert sc.statusTracker().getJobIdsForGroup("deepspark-driver-check") == []
    return info.value


def test_missing_model_file_fails_on_driver(spark, images, tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nowhere.onnx"
    err = _no_jobs_ran(spark, lambda: _transformer(str(missing)).transform(images))
    assert isinstance(err, ModelNotFoundError)
    assert str(missing) in str(err) and "not found" in str(err)


@pytest.mark.parametrize("kind", ["onnx", "torchscript", "export"])
def test_truncated_model_file_fails_on_driver(spark, images, files, tmp_path, kind) -> None:  # type: ignore[no-untyped-def]
    data = files[kind].read_bytes()
    cut = tmp_path / f"cut{files[kind].suffix}"
    cut.write_bytes(data[: len(data) // 2])
    err = _no_jobs_ran(spark, lambda: _transformer(str(cut)).transform(images))
    assert isinstance(err, ModelLoadError)
    assert str(cut) in str(err)


def test_empty_model_file_fails_on_driver(tmp_path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"empty\.onnx is empty \(0 bytes\)"):
        deepspark.load_model(empty)


def test_pickled_torch_model_needs_opt_in(spark, images, files, net, reference) -> None:  # type: ignore[no-untyped-def]
    err = _no_jobs_ran(spark, lambda: _transformer(str(files["pickle"])).transform(images))
    assert isinstance(err, UnsafeModelError)
    assert "trust_pickle=True" in str(err) and files["pickle"].name in str(err)
    # With the opt-in it is unpickled on the driver only, exported, and runs.
    names, batch = reference
    out = _transformer(str(files["pickle"]), trustPickle=True).transform(images)
    assert_matches(outputs_by_file(out, "output"), names, _torch_ref(net, batch), TOL)


def test_state_dict_is_not_a_model(net, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "weights.pth"
    torch.save(net.state_dict(), str(path))
    with pytest.raises(ModelLoadError, match="only weights"):
        deepspark.load_model(path)


def test_wrong_input_size_is_a_signature_error(spark, images, files) -> None:  # type: ignore[no-untyped-def]
    t = deepspark.ImageModelTransformer(model=str(files["export"]), inputSize=[32, 32], layout="NHWC")
    err = _no_jobs_ran(spark, lambda: t.transform(images))
    assert isinstance(err, SignatureError) and "layout" in str(err)


def test_transformers_persist_with_their_params(two_heads, ab_frame, files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    module, path = two_heads
    t = deepspark.ModelTransformer(
        inputCols=["a", "b"], outputCols=["m", "p"], model=str(path), inputShapes=[[4], [2, 3]]
    )
    t.write().overwrite().save(str(tmp_path / "mt"))
    loaded = deepspark.ModelTransformer.load(str(tmp_path / "mt"))
    assert loaded.getOrDefault(loaded.inputShapes) == [[4], [2, 3]]
    row = loaded.transform(ab_frame.where("id = 0")).first()
    want_m, _ = _two_heads_ref(module, row.a, row.b)
    assert np.max(np.abs(np.asarray(row.m) - want_m)) <= TOL

    image_t = _transformer(str(files["torchscript"]), outputMode="probabilities", engine="native")
    image_t.write().overwrite().save(str(tmp_path / "it"))
    again = deepspark.ImageModelTransformer.load(str(tmp_path / "it"))
    # The model file travels inside the saved folder (ModelFilePersistence); the loaded
    # transformer runs a cached copy of it.
    assert (tmp_path / "it" / "model" / "net.pt").read_bytes() == files["torchscript"].read_bytes()
    assert Path(again.getModel()).read_bytes() == files["torchscript"].read_bytes()
    assert again.getOutputMode() == "probabilities" and again.getEngine() == "native"
    assert again.getOrDefault(again.std) == pytest.approx([0.2, 0.25, 0.3])


def test_engine_auto_falls_back_to_native_when_onnx_cannot_express_the_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    class Spectrum(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.rfft(x, dim=-1).abs()  # no ONNX opset-17 export for rfft

    path = tmp_path / "spectrum.pt"
    torch.jit.save(torch.jit.script(Spectrum()), str(path))
    model = deepspark.load_model(path, input_shapes=[(-1, 8)])
    assert model.framework == "torch"
    x = np.random.default_rng(0).random((2, 8), dtype=np.float32)
    want = np.abs(np.fft.rfft(x, axis=-1))
    assert np.max(np.abs(model.predict({"x": x})["output"] - want)) <= 1e-5
    with pytest.raises(ModelLoadError, match="cannot convert.*rfft"):
        deepspark.load_model(path, input_shapes=[(-1, 8)], engine="onnxruntime")


def test_torchscript_with_misfit_shapes_is_a_signature_error(files) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SignatureError, match=r"fails on inputs of shape \[\[-1, 32, 32, 3\]\]"):
        deepspark.load_model(files["torchscript"], input_shapes=[(-1, *SIZE, 3)])


def test_trusted_pickle_without_shapes_is_scripted(files, net) -> None:  # type: ignore[no-untyped-def]
    model = deepspark.load_model(files["pickle"], trust_pickle=True)
    assert model.framework == "torch"  # TorchScript-compiled: no shapes to export with
    x = np.random.default_rng(2).random((2, 3, *SIZE), dtype=np.float32)
    got = model.predict({model.signature.input_names[0]: x})["output"]
    assert np.max(np.abs(got - _torch_ref(net, x))) <= TOL


_CHECK_AGAIN = """
import json, sys
from deepspark.models.api import checked_model
spec, sig = checked_model(sys.argv[1], input_shapes=[(-1, 3, 32, 32)])
print(json.dumps([spec.backend, str(spec.path), str(sig), "torch" in sys.modules]))
"""


def test_checked_model_remembers_a_file_it_checked(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver loads (and converts) a PyTorch file once; later checks, in this
    process or another, read the record and import no framework. A copy elsewhere has
    the same content, so the record serves it too, with its own path."""
    import json
    import os
    import shutil
    import subprocess

    from deepspark.models.api import checked_model

    monkeypatch.setenv("DEEPSPARK_CACHE_DIR", str(tmp_path / "cache"))
    spec, sig = checked_model(files["torchscript"], input_shapes=[(-1, 3, *SIZE)])
    assert spec.backend == "onnx" and spec.path != files["torchscript"]  # converted
    assert sig.inputs[0].shape[1:] == (3, *SIZE) and sig.outputs[0].shape[-1] == 10
    records = list((tmp_path / "cache" / "checked-models").glob("*.json"))
    assert len(records) == 1
    moved = tmp_path / "moved.pt"
    shutil.copyfile(files["torchscript"], moved)
    for source in (files["torchscript"], moved):
        res = subprocess.run(
            [sys.executable, "-c", _CHECK_AGAIN, str(source)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "DEEPSPARK_CACHE_DIR": str(tmp_path / "cache")},
            check=False,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        backend, path, text, torch_loaded = json.loads(res.stdout.strip().splitlines()[-1])
        assert (backend, path, text) == (spec.backend, str(spec.path), str(sig))
        assert not torch_loaded
    # A damaged record is checked again and written anew.
    records[0].write_text("{not json")
    assert checked_model(files["torchscript"], input_shapes=[(-1, 3, *SIZE)]) == (spec, sig)
    assert json.loads(records[0].read_text())["signature"] == sig.to_json()


def test_checked_model_checks_a_changed_or_untrusted_file_again(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record never vouches for other content, nor for a pickle without trust_pickle."""
    import shutil

    from deepspark.models.api import checked_model

    monkeypatch.setenv("DEEPSPARK_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "net.pt"
    shutil.copyfile(files["torchscript"], path)
    checked_model(path, input_shapes=[(-1, 3, *SIZE)])
    path.write_bytes(b"PK\x03\x04 not a TorchScript archive any more")
    with pytest.raises(ModelLoadError):
        checked_model(path, input_shapes=[(-1, 3, *SIZE)])
    checked_model(files["pickle"], trust_pickle=True, input_shapes=[(-1, 3, *SIZE)])
    with pytest.raises(UnsafeModelError):
        checked_model(files["pickle"], input_shapes=[(-1, 3, *SIZE)])


def test_torchscript_inputs_skip_the_module_whatever_its_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``def forward(s, x)``: the module argument is not an input (it was taken for one
    unless it was literally called ``self``)."""

    class Doubler(torch.nn.Module):
        def forward(s, x: torch.Tensor) -> torch.Tensor:  # noqa: N805 - the point of the test
            return x * 2

    path = tmp_path / "doubler.pt"
    torch.jit.save(torch.jit.script(Doubler()), str(path))
    model = deepspark.load_model(path, input_shapes=[(-1, 3)], engine="native")
    assert model.signature.input_names == ["x"]
    out = model.predict({"x": np.ones((2, 3), np.float32)})
    assert np.allclose(next(iter(out.values())), 2.0)
