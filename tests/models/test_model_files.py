"""Driver-side model file handling without Spark or frameworks: detection, hashing, bundles."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from deepspark.errors import InvalidParameterError, ModelLoadError, ModelNotFoundError
from deepspark.models.api import prepare_model
from deepspark.models.cache import bundle_files, path_sha256
from deepspark.models.caffe import _prototxt_inputs
from deepspark.models.resolve import canonical_framework, detect_framework


def test_detect_framework_by_suffix_folder_and_content(tmp_path: Path) -> None:
    for name, fw in [("m.onnx", "onnx"), ("m.keras", "keras"), ("m.h5", "keras"),
                     ("m.pt", "torch"), ("m.pt2", "torch"), ("m.caffemodel", "caffe")]:
        (tmp_path / name).write_bytes(b"x")
        assert detect_framework(tmp_path / name) == fw
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"x")
    assert detect_framework(saved) == "tensorflow"
    caffe = tmp_path / "caffe"
    caffe.mkdir()
    (caffe / "a.prototxt").write_text("")
    (caffe / "a.caffemodel").write_bytes(b"")
    assert detect_framework(caffe) == "caffe"
    hdf5 = tmp_path / "model.weights"
    hdf5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 8)
    assert detect_framework(hdf5) == "keras"
    with zipfile.ZipFile(tmp_path / "archive.bin2", "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", "")
    assert detect_framework(tmp_path / "archive.bin2") == "keras"
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidParameterError, match="pass framework="):
        detect_framework(tmp_path / "notes.txt")
    assert canonical_framework("PyTorch") == "torch"
    with pytest.raises(InvalidParameterError, match="unknown framework"):
        canonical_framework("mxnet")


def test_folder_hash_follows_content(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "v").write_bytes(b"1")
    before = path_sha256(folder)
    (folder / "variables" / "v").write_bytes(b"2")
    assert path_sha256(folder) != before


def test_bundle_is_keyed_by_both_files(tmp_path: Path) -> None:
    proto, weights = tmp_path / "a.prototxt", tmp_path / "a.caffemodel"
    proto.write_text("p")
    weights.write_bytes(b"w1")
    one = bundle_files({"deploy.prototxt": proto, "weights.caffemodel": weights}, "caffe")
    assert sorted(p.name for p in one.iterdir()) == ["deploy.prototxt", "weights.caffemodel"]
    weights.write_bytes(b"w2")
    two = bundle_files({"deploy.prototxt": proto, "weights.caffemodel": weights}, "caffe")
    assert one != two and (two / "weights.caffemodel").read_bytes() == b"w2"


def test_prototxt_inputs_both_syntaxes() -> None:
    layer = 'layer { name: "in" type: "Input" top: "img" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 9 } } }'
    assert [(s.name, s.shape) for s in _prototxt_inputs(layer)] == [("img", (-1, 3, 8, 9))]
    legacy = 'input: "data"\ninput_dim: 10\ninput_dim: 3\ninput_dim: 227\ninput_dim: 227\n'
    assert [(s.name, s.shape) for s in _prototxt_inputs(legacy)] == [("data", (-1, 3, 227, 227))]


def test_missing_unreadable_and_unsupported_sources(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="nothing.onnx"):
        prepare_model(str(tmp_path / "nothing.onnx"))
    empty = tmp_path / "e.keras"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        prepare_model(str(empty))
    with pytest.raises(InvalidParameterError, match="cannot load a model from a int"):
        prepare_model(42)
    with pytest.raises(InvalidParameterError, match="engine must be"):
        prepare_model(str(empty), engine="fast")
