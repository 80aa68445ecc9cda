"""Model files from strangers: broken files and misfit models fail on the driver, with
the file name and the model's signature in the message; pickle-based models (a
``torch.save`` of a whole module, a Keras Lambda layer) are refused unless trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _reliability import predictor_kwargs, tiny_onnx_classifier

import deepspark


@pytest.fixture(scope="module")
def images(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from _reliability import write_jpegs

    folder = tmp_path_factory.mktemp("safety_images")
    write_jpegs(folder, 3)
    return deepspark.read_images(spark, str(folder))


def _transform(images: Any, **params: Any) -> Any:
    kwargs = {**predictor_kwargs(Path(params.pop("model"))), **params}
    return deepspark.DeepImagePredictor(**kwargs).transform(images)


def _no_job_ran(spark: Any, before: int) -> None:
    """Driver-side failure: no Spark job was started for the prediction."""
    assert len(spark.sparkContext.statusTracker().getJobIdsForGroup()) == before


def test_truncated_onnx_fails_on_driver_with_file_name(
    spark: Any, images: Any, tiny_model: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "half_model.onnx"
    data = tiny_model.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    jobs = len(spark.sparkContext.statusTracker().getJobIdsForGroup())
    with pytest.raises(deepspark.ModelLoadError, match="half_model.onnx"):
        _transform(images, model=str(broken))
    _no_job_ran(spark, jobs)


@pytest.mark.parametrize(
    ("name", "content", "error", "match"),
    [
        (
            "notes.onnx",
            b"these are my notes, not a model\n",
            deepspark.ModelLoadError,
            "notes.onnx",
        ),
        ("weights.xyz", b"\x00\x01\x02" * 100, deepspark.InvalidParameterError, "weights.xyz"),
        ("empty.onnx", b"", deepspark.ModelLoadError, "empty.onnx"),
    ],
)
def test_non_model_file_fails_on_driver_with_file_name(
    images: Any, tmp_path: Path, name: str, content: bytes, error: type, match: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=match):
        _transform(images, model=str(path))


def test_missing_model_file(images: Any, tmp_path: Path) -> None:
    with pytest.raises(deepspark.ModelNotFoundError, match="nothing_here.onnx"):
        _transform(images, model=str(tmp_path / "nothing_here.onnx"))


def _signature_of(path: Path) -> str:
    """The model's signature as deepspark prints it, read with ONNX Runtime here."""
    from deepspark.models.onnx import OnnxModel

    return str(OnnxModel(path, threads=1).signature)


@pytest.mark.parametrize(
    ("params", "hint"),
    [
        ({"inputSize": [64, 64]}, "inputSize=[64, 64]"),  # size
        ({"channelOrder": "L", "mean": [0.0], "std": [1.0]}, "channelOrder=L"),  # channels
        ({"layout": "NHWC"}, "layout=NHWC"),  # layout
    ],
    ids=["size", "channels", "layout"],
)
def test_misfit_input_fails_on_driver_with_signature(
    spark: Any, images: Any, tiny_model: Path, params: dict[str, Any], hint: str
) -> None:
    jobs = len(spark.sparkContext.statusTracker().getJobIdsForGroup())
    with pytest.raises(deepspark.SignatureError) as info:
        _transform(images, model=str(tiny_model), **params)
    message = str(info.value)
    assert _signature_of(tiny_model) in message
    assert "float32[?, 3, 32, 32]" in message  # the expected input, spelled out
    assert hint in message and tiny_model.name in message
    _no_job_ran(spark, jobs)


def _onnx_with_input(path: Path, dtype: int, shape: list[Any]) -> Path:
    """A one-node ONNX model (Identity) with the given input element type and shape."""
    import onnx
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["logits"])],
        "misfit",
        [helper.make_tensor_value_info("input", dtype, shape)],
        [helper.make_tensor_value_info("logits", dtype, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_misfit_dtype_fails_on_driver_with_signature(images: Any, tmp_path: Path) -> None:
    from onnx import TensorProto

    model = _onnx_with_input(tmp_path / "uint8_input.onnx", TensorProto.UINT8, ["N", 3, 32, 32])
    with pytest.raises(deepspark.SignatureError, match=r"uint8 input") as info:
        _transform(images, model=str(model))
    assert "uint8[?, 3, 32, 32]" in str(info.value) and "uint8_input.onnx" in str(info.value)


def test_non_image_model_fails_on_driver_with_signature(images: Any, tmp_path: Path) -> None:
    from onnx import TensorProto

    model = _onnx_with_input(tmp_path / "vector_input.onnx", TensorProto.FLOAT, ["N", 10])
    with pytest.raises(deepspark.SignatureError, match="not an image model") as info:
        _transform(images, model=str(model))
    assert "float32[?, 10]" in str(info.value)


def test_fitting_model_still_runs(images: Any, tiny_model: Path, tmp_path: Path) -> None:
    """The checks above do not refuse a model that fits (float16 input included)."""
    rows = _transform(images, model=str(tiny_model)).select("predictions", "error").collect()
    assert len(rows) == 3 and all(r["error"] is None and len(r["predictions"]) == 3 for r in rows)
    other = tiny_onnx_classifier(tmp_path / "other_seed.onnx", seed=3)
    rows = _transform(images, model=str(other)).select("predictions").collect()
    assert all(len(r["predictions"]) == 3 for r in rows)


# ------------------------------------------------------------------ pickle-based models
# deepspark.load_model and trust_pickle come with issue 3 (the model interface); these
# tests run once it is merged.
needs_load_model = pytest.mark.skipif(
    not hasattr(deepspark, "load_model"),
    reason="deepspark.load_model is not on this branch yet (issue 3: model interface)",
)


class _Payload:
    """Unpickling this runs code: it creates ``marker`` (what an attacker's file does)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def torch_pickles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch = pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("pickles")
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 10),
    )
    torch.save(module, folder / "whole_module.pt")  # pickles the classes, not just weights
    marker = folder / "code_ran.txt"
    torch.save(
        {"model": module.state_dict(), "extra": _Payload(str(marker))}, folder / "payload.pt"
    )
    return {"whole": folder / "whole_module.pt", "payload": folder / "payload.pt", "marker": marker}


@needs_load_model
def test_torch_whole_module_refused_unless_trusted(torch_pickles: dict[str, Path]) -> None:
    with pytest.raises(deepspark.UnsafeModelError, match="whole_module.pt"):
        deepspark.load_model(str(torch_pickles["whole"]))
    model = deepspark.load_model(
        str(torch_pickles["whole"]), trust_pickle=True, input_shapes=[(-1, 3, 32, 32)]
    )
    assert model.signature.inputs[0].shape[1:] == (3, 32, 32)


@needs_load_model
def test_torch_pickle_payload_never_runs(torch_pickles: dict[str, Path]) -> None:
    with pytest.raises(deepspark.UnsafeModelError, match="payload.pt"):
        deepspark.load_model(str(torch_pickles["payload"]))
    assert not torch_pickles["marker"].exists(), "refusing the model ran its pickled code"


@needs_load_model
def test_torch_pickle_refused_by_predictor_on_driver(
    images: Any, torch_pickles: dict[str, Path]
) -> None:
    with pytest.raises(deepspark.UnsafeModelError, match="whole_module.pt"):
        deepspark.DeepImagePredictor(
            model=str(torch_pickles["whole"]), inputSize=[32, 32]
        ).transform(images)
    assert not torch_pickles["marker"].exists()


@pytest.fixture(scope="module")
def keras_lambda(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not hasattr(deepspark, "load_model"):
        pytest.skip("deepspark.load_model is not on this branch yet (issue 3: model interface)")
    keras = pytest.importorskip("keras")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)  # serialised as Python bytecode
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    path = tmp_path_factory.mktemp("keras") / "lambda_model.keras"
    model.save(path)
    return path


@needs_load_model
def test_keras_lambda_refused_unless_trusted(keras_lambda: Path) -> None:
    with pytest.raises(deepspark.UnsafeModelError, match="lambda_model.keras"):
        deepspark.load_model(str(keras_lambda))
    model = deepspark.load_model(str(keras_lambda), trust_pickle=True)
    assert model.signature is not None


@needs_load_model
def test_keras_lambda_refused_by_predictor_on_driver(images: Any, keras_lambda: Path) -> None:
    with pytest.raises(deepspark.UnsafeModelError, match="lambda_model.keras"):
        deepspark.DeepImagePredictor(
            model=str(keras_lambda), inputSize=[32, 32], layout="NHWC"
        ).transform(images)
