"""A minimal subset of Caffe's ``caffe.proto`` built at run time, to write ``.caffemodel`` files.

Only what a weights file needs: ``NetParameter.layer`` (field 100) of ``LayerParameter``
(name 1, type 2, blobs 7) holding ``BlobProto`` (data 5, shape 7 -> ``BlobShape.dim`` 1).
Field numbers are those of BVLC Caffe's ``src/caffe/proto/caffe.proto``, so OpenCV's
Caffe importer reads the result as a real Caffe model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np


@lru_cache(maxsize=1)
def _classes() -> tuple[Any, Any, Any]:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="deepspark_test_caffe.proto", package="caffe", syntax="proto2"
    )

    def message(name: str, fields: Sequence[tuple[str, int, int, int, str | None, bool]]) -> None:
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name, packed in fields:
            field = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = type_name
            if packed:
                field.options.packed = True

    rep, opt = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    message("BlobShape", [("dim", 1, F.TYPE_INT64, rep, None, True)])
    message(
        "BlobProto",
        [
            ("shape", 7, F.TYPE_MESSAGE, opt, ".caffe.BlobShape", False),
            ("data", 5, F.TYPE_FLOAT, rep, None, True),
        ],
    )
    message(
        "LayerParameter",
        [
            ("name", 1, F.TYPE_STRING, opt, None, False),
            ("type", 2, F.TYPE_STRING, opt, None, False),
            ("blobs", 7, F.TYPE_MESSAGE, rep, ".caffe.BlobProto", False),
        ],
    )
    message(
        "NetParameter",
        [
            ("name", 1, F.TYPE_STRING, opt, None, False),
            ("layer", 100, F.TYPE_MESSAGE, rep, ".caffe.LayerParameter", False),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("caffe.NetParameter")),
        get(pool.FindMessageTypeByName("caffe.LayerParameter")),
        get(pool.FindMessageTypeByName("caffe.BlobProto")),
    )


def write_caffemodel(
    path: str | Path,
    layers: Mapping[str, tuple[str, Sequence[np.ndarray]]],
    name: str = "net",
) -> Path:
    """Write ``{layer name: (type, [blobs])}`` as a binary ``.caffemodel``."""
    net_cls, _, _ = _classes()
    net = net_cls(name=name)
    for layer_name, (layer_type, blobs) in layers.items():
        layer = net.layer.add(name=layer_name, type=layer_type)
        for blob in blobs:
            arr = np.asarray(blob, dtype=np.float32)
            pb = layer.blobs.add()
            pb.shape.dim.extend(int(d) for d in arr.shape)
            pb.data.extend(arr.ravel().tolist())
    path = Path(path)
    path.write_bytes(net.SerializeToString())
    return path
