"""quantize="int8" ships the int8 copy each CPU runs best: full 8-bit weights where int8
dot products do not saturate (VNNI, AMX, ARM, GPUs), 7-bit weights elsewhere.

The choice is made where the model runs (each executor); a local session, whose
executors share the driver's CPU, makes and ships only the copy this CPU runs. The
cluster half is in tests/reliability/test_cluster.py.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest

import deepspark
from deepspark.models.cache import ShippedFile, file_sha256
from deepspark.models.loader import ModelRef
from deepspark.models.optimize import EXACT_INT8_SETTINGS, Int8Settings, quantize_int8
from deepspark.runtime import _cpu
from tests.reliability._reliability import predictor_kwargs, tiny_onnx_classifier


@pytest.mark.parametrize(
    ("machine", "flags", "exact"),
    [
        ("x86_64", {"avx2", "avx512f", "avx512bw"}, False),  # vpmaddubsw saturates
        ("x86_64", {"avx2"}, False),
        ("x86_64", {"avx2", "avx512_vnni"}, True),
        ("x86_64", {"avx2", "avx_vnni"}, True),  # VEX-encoded VNNI (no AVX-512)
        ("AMD64", {"avx2", "amx_int8"}, True),  # Windows spells the machine this way
        ("x86_64", set(), False),  # unknown flags: the copy that is safe everywhere
        ("aarch64", set(), True),
        ("arm64", {"asimd"}, True),
    ],
)
def test_exact_int8_dot_follows_the_cpu(machine: str, flags: set[str], exact: bool) -> None:
    assert _cpu.exact_int8_dot(machine, frozenset(flags)) is exact


def test_cpu_flags_are_read_on_this_machine() -> None:
    flags = _cpu.cpu_flags()
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert {"sse2", "ssse3"} <= flags  # every x86-64 CPU that runs ONNX Runtime
    elif platform.system() == "Linux":
        assert flags


def _shipped(path: Path) -> ShippedFile:
    return ShippedFile(file_sha256(path), path.name, str(path))


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("int8_copies")
    return (
        # Two convolutions: the first stays float in every int8 setting.
        tiny_onnx_classifier(folder / "seven_bit.onnx", seed=1, conv_channels=8, conv_layers=2),
        tiny_onnx_classifier(folder / "eight_bit.onnx", seed=2, conv_channels=8, conv_layers=2),
    )


@pytest.mark.parametrize(("exact", "want"), [(False, 0), (True, 1)])
def test_each_process_loads_the_copy_its_cpu_runs(
    two_models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, exact: bool, want: int
) -> None:
    """ModelRef.load runs ``exact_int8_file`` only where int8 sums are exact: the two
    files here give different logits, so the output says which one was loaded."""
    monkeypatch.setattr(_cpu, "exact_int8_dot", lambda: exact)
    seven, eight = two_models
    ref = ModelRef("onnx", _shipped(seven), exact_int8_file=_shipped(eight))
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    direct = [
        ModelRef("onnx", _shipped(p)).load(threads=1).predict({"input": x}) for p in two_models
    ]
    assert not np.allclose(direct[0]["logits"], direct[1]["logits"])
    got = ref.load(threads=1).predict({"input": x})["logits"]
    np.testing.assert_array_equal(got, direct[want]["logits"])
    assert ref.file_here() == (ref.exact_int8_file if want else ref.file)
    # A GPU sums in 32 bits: it gets the 8-bit copy whatever the host CPU.
    assert ref.file_here(0) == ref.exact_int8_file
    # A float model has no second copy.
    assert ModelRef("onnx", _shipped(seven)).file_here(0) == _shipped(seven)


def test_local_session_ships_only_the_copy_this_cpu_runs(
    spark: object, two_models: tuple[Path, Path]
) -> None:
    from deepspark.ml._apply import image_input_kind

    model = two_models[0]
    predictor = deepspark.DeepImagePredictor(**predictor_kwargs(model), quantize="int8")
    files = deepspark.list_paths(spark, str(model.parent))
    ref = predictor._build_task(spark, image_input_kind(files, "path")).model
    assert ref.exact_int8_file is None
    pre = predictor._user_preprocess()
    settings = EXACT_INT8_SETTINGS if _cpu.exact_int8_dot() else Int8Settings()
    want = quantize_int8(model, pre, "input", settings=settings)
    other_settings = Int8Settings() if settings is EXACT_INT8_SETTINGS else EXACT_INT8_SETTINGS
    other = quantize_int8(model, pre, "input", settings=other_settings)
    assert file_sha256(want) != file_sha256(other)  # the two settings really differ
    assert ref.file.sha256 == file_sha256(want)


def test_unnamed_nodes_are_quantized(two_models: tuple[Path, Path], tmp_path: Path) -> None:
    """onnx.helper leaves node names empty; ONNX Runtime's quantizer excludes nodes by
    name, so keeping the (unnamed) first convolution in float once kept every node."""
    import onnx

    model = two_models[1]
    assert not any(n.name for n in onnx.load(str(model)).graph.node)
    pre = deepspark.DeepImagePredictor(**predictor_kwargs(model))._user_preprocess()
    quantized = onnx.load(str(quantize_int8(model, pre, "input")))
    ops = [n.op_type for n in quantized.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    # What the settings keep in float stays float: the first convolution reads floats.
    first_conv = next(n for n in quantized.graph.node if n.op_type == "Conv")
    assert first_conv.input[0] == "input"
