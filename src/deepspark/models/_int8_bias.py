"""Bias correction of a static int8 (QDQ) model: each quantized convolution's mean
output per channel made equal to the float model's, on the calibration images.

Quantizing weights and activations shifts the mean of each convolution's output a
little; through ~50 layers the shifts add up and change answers. For each quantized
``Conv`` in topological order, with every earlier one already corrected, this
measures ``mean(int8 output) - mean(float output)`` per output channel and subtracts
it from the ``int32`` bias (the empirical bias correction of Nagel et al., "Data-Free
Quantization Through Weight Equalization and Bias Correction", 2019, done layer by
layer on real calibration images). Only the bias initializers change: the corrected
file has the same operators, so ONNX Runtime fuses it into the same int8 kernels and
it runs at the same speed.

The layers must be corrected one after the other (correcting them all from one pass
overshoots: each layer would also cancel the upstream shifts its predecessors are
cancelling, and the corrections diverge). Rather than one whole-model pass per layer,
the graph is cut after each quantized convolution and run segment by segment, keeping
only the tensors later segments read: about one pass in all.

The same pass can first choose each convolution's integer weights by GPTQ
(:mod:`deepspark.models._int8_gptq`) from its input as the quantized model computes
it, then recompute its output, then correct its bias: :func:`refine_layers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepspark._deps import require

__all__ = ["add_zero_biases", "refine_layers"]


def add_zero_biases(model: Any) -> int:
    """Give each ``Conv`` without a bias a zero one (in place), so that the quantizer
    makes an ``int32`` bias that :func:`correct_biases` can shift; the float model
    computes the same. Convolutions whose weights are not initializers are left as
    they are. Returns the number of biases added."""
    onnx = require("onnx", "int8 bias correction")
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    taken = {out for node in model.graph.node for out in node.output} | set(inits)
    added = 0
    for node in model.graph.node:
        if node.op_type != "Conv" or (len(node.input) > 2 and node.input[2]):
            continue
        weights = inits.get(node.input[1])
        if weights is None or not weights.dims:
            continue
        name = f"{node.name or node.output[0]}_zero_bias"
        while name in taken:
            name += "_"
        taken.add(name)
        zeros = np.zeros(
            weights.dims[0], dtype=onnx.helper.tensor_dtype_to_np_dtype(weights.data_type)
        )
        model.graph.initializer.append(numpy_helper.from_array(zeros, name))
        del node.input[2:]
        node.input.append(name)
        added += 1
    return added


def _session(model: Any) -> Any:
    """A session that computes every node as written: float arithmetic on the
    quantized values (no fusion into int8 kernels, which would hide the outputs)."""
    ort = require("onnxruntime", "int8 bias correction")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _channel_sum(out: np.ndarray) -> tuple[np.ndarray, int]:
    """Sum per channel (axis 1) over every other axis, in float64, and its count."""
    axes = tuple(i for i in range(out.ndim) if i != 1)
    return out.sum(axis=axes, dtype=np.float64), out.size // out.shape[1]


def _channel_mean(outs: Sequence[np.ndarray]) -> np.ndarray:
    """Mean per channel over every batch in ``outs`` and every position."""
    sums = [_channel_sum(o) for o in outs]
    return np.asarray(sum(t for t, _ in sums)) / sum(n for _, n in sums)


def _quantized_convs(model: Any) -> list[tuple[int, str, str]]:
    """``(node index, int32 bias initializer, bias scale initializer)`` of each ``Conv``
    whose bias is an ``int32`` initializer read through a ``DequantizeLinear``."""
    onnx = require("onnx", "int8 bias correction")
    inits = {i.name: i for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    found = []
    for index, node in enumerate(model.graph.node):
        if node.op_type != "Conv" or len(node.input) < 3 or not node.name:
            continue
        dq = producer.get(node.input[2])
        if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 2:
            continue
        bias = inits.get(dq.input[0])
        if bias is not None and bias.data_type == onnx.TensorProto.INT32 and dq.input[1] in inits:
            found.append((index, dq.input[0], dq.input[1]))
    return found


def _float_means(
    float_model: Any, names: Sequence[str], batches: Sequence[np.ndarray], input_name: str
) -> dict[str, np.ndarray]:
    """Per-channel mean output of the named float ``Conv`` nodes over ``batches``."""
    onnx = require("onnx", "int8 bias correction")
    model = onnx.ModelProto.FromString(float_model.SerializeToString())
    outputs = {n.name: n.output[0] for n in model.graph.node if n.op_type == "Conv"}
    wanted = [outputs[name] for name in names]
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(
        onnx.helper.make_empty_tensor_value_info(t) for t in dict.fromkeys(wanted) if t not in known
    )
    session = _session(model)
    # Summed batch by batch: the early layers' outputs are tens of MB per batch.
    totals: list[tuple[np.ndarray, int]] = []
    for batch in batches:
        parts = [_channel_sum(out) for out in session.run(wanted, {input_name: batch})]
        totals = [(a + b, n + m) for (a, n), (b, m) in zip(totals, parts)] if totals else parts
    return {name: total / n for name, (total, n) in zip(names, totals)}


def _weight_grid(
    model: Any, node: Any, inits: dict[str, Any]
) -> tuple[str, str, str | None] | None:
    """``(integer weights, scale, zero point or None)`` initializer names of a ``Conv``
    whose weights are an integer initializer read through a ``DequantizeLinear`` with
    one scale per output channel (or one in all), and read by this convolution only;
    None otherwise (weights shared by several convolutions, as detection heads share
    theirs across scales, cannot be rounded for each of them)."""
    dq = next((n for n in model.graph.node if node.input[1] in n.output), None)
    if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 2:
        return None
    if dq.input[0] not in inits or dq.input[1] not in inits:
        return None
    readers = [n for n in model.graph.node if dq.input[0] in n.input or dq.output[0] in n.input]
    if len(readers) != 2:  # the DequantizeLinear and this convolution
        return None
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    per_channel = sum(inits[dq.input[1]].dims) > 1
    if per_channel and axis != 0:
        return None  # scales along another axis than the output channels
    zero = dq.input[2] if len(dq.input) > 2 and dq.input[2] in inits else None
    return dq.input[0], dq.input[1], zero


def _grid_range(ints: np.ndarray, zero: np.ndarray) -> tuple[int, int]:
    """The integer range the quantizer used, from the integers it wrote: a signed
    grid with zero points 0 is symmetric (each channel's largest weight on +-127, or
    +-64 for 7-bit weights); otherwise each channel's smallest and largest weights sit
    on the ends, and the zero point lies between them (ONNX Runtime's range always
    includes 0). Within the type's own range in any case."""
    info = np.iinfo(ints.dtype)
    wide = ints.astype(np.int64)
    if info.min < 0 and not zero.any():
        top = min(int(np.abs(wide).max()), info.max)
        return -top, top
    low = min(int(wide.min()), int(zero.min()))
    high = max(int(wide.max()), int(zero.max()))
    return max(low, int(info.min)), min(high, int(info.max))


def _gptq_weights(
    model: Any, node: Any, inputs: Sequence[np.ndarray], float_weights: np.ndarray, damp: float
) -> np.ndarray | None:
    """Round ``node``'s weights by GPTQ on their grid (in place) and return the new
    dequantized float weights; None (nothing changed) where the weights are not such
    a grid or the calibration inputs are too few for them."""
    from onnx import helper, numpy_helper

    from deepspark.models._int8_gptq import conv_hessian, enough_rows, gptq_round

    inits = {i.name: i for i in model.graph.initializer}
    grid = _weight_grid(model, node, inits)
    if grid is None or float_weights.ndim != 4:
        return None
    q_name, scale_name, zero_name = grid
    old = numpy_helper.to_array(inits[q_name])
    out = old.shape[0]
    scale = np.broadcast_to(numpy_helper.to_array(inits[scale_name]).reshape(-1), (out,))
    zero = (
        np.broadcast_to(
            numpy_helper.to_array(inits[zero_name]).astype(np.int64).reshape(-1), (out,)
        )
        if zero_name
        else np.zeros(out, np.int64)
    )
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    parts = [conv_hessian(x, attrs, old.shape) for x in inputs]
    hessian = sum(h for h, _ in parts)
    if not enough_rows(sum(rows for _, rows in parts), hessian):
        return None
    if not np.isfinite(hessian).all():
        return None  # inf or NaN activations in calibration: keep rounding to nearest
    qmin, qmax = _grid_range(old, zero)
    try:
        q = gptq_round(float_weights, hessian, scale, zero, qmin, qmax, damp)
    except np.linalg.LinAlgError:
        return None
    q = q.astype(old.dtype)
    inits[q_name].CopyFrom(numpy_helper.from_array(q, q_name))
    shape = (-1,) + (1,) * (q.ndim - 1)
    return ((q.astype(np.float32) - zero.reshape(shape)) * scale.reshape(shape)).astype(np.float32)


def _run_conv(
    model: Any,
    node: Any,
    x: Sequence[np.ndarray],
    weights: np.ndarray,
    bias: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """``node`` alone (its attributes) on each batch of ``x``, with ``weights`` and
    ``bias`` (one per batch, as the segments hold it)."""
    onnx = require("onnx", "int8 quantization")
    from onnx import numpy_helper

    conv = onnx.helper.make_node("Conv", ["x", "w", "b"], ["y"])
    conv.attribute.extend(node.attribute)
    graph = onnx.helper.make_graph(
        [conv],
        "conv",
        [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in "xb"],
        [onnx.helper.make_empty_tensor_value_info("y")],
        [numpy_helper.from_array(weights, "w")],
    )
    session = _session(
        onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    )
    return [session.run(["y"], {"x": xb, "b": bb})[0] for xb, bb in zip(x, bias)]


def refine_layers(
    qdq_model: Any,
    float_model: Any,
    batches: Sequence[np.ndarray],
    input_name: str,
    *,
    biases: bool = True,
    gptq_damp: float | None = None,
) -> int:
    """Refine ``qdq_model``'s quantized convolutions in place, layer after layer: choose
    each one's integer weights by GPTQ (``gptq_damp``), then correct its ``int32`` bias
    (``biases``).

    Parameters
    ----------
    qdq_model : onnx.ModelProto
        The QDQ model made by ONNX Runtime's ``quantize_static`` from ``float_model``
        (node names are kept, which is how the two are matched).
    float_model : onnx.ModelProto
        The float model it was made from.
    batches : sequence of numpy.ndarray
        Calibration inputs for ``input_name`` (as the quantizer's calibration saw them).
    input_name : str
        The models' input.
    biases : bool
        Correct the biases.
    gptq_damp : float, optional
        Round each convolution's weights by GPTQ (:mod:`deepspark.models._int8_gptq`)
        on their quantization grid, with this damping, from its input in the quantized
        model (every earlier layer already refined). None: keep the quantizer's
        rounding to nearest.

    Returns
    -------
    int
        The number of convolutions refined (0 when the model has none in QDQ form).

    Examples
    --------
    >>> import onnx
    >>> refined = refine_layers(onnx.load("model-int8.onnx"), onnx.load("model.onnx"),
    ...                         batches, "input", gptq_damp=0.1)  # doctest: +SKIP
    """
    onnx = require("onnx", "int8 bias correction")
    from onnx import numpy_helper

    graph = qdq_model.graph
    float_convs = {n.name for n in float_model.graph.node if n.op_type == "Conv"}
    convs = [c for c in _quantized_convs(qdq_model) if graph.node[c[0]].name in float_convs]
    if not convs or not batches or not (biases or gptq_damp is not None):
        return 0
    nodes = list(graph.node)
    target = (
        _float_means(float_model, [nodes[i].name for i, _, _ in convs], batches, input_name)
        if biases
        else {}
    )
    float_inits = {i.name: i for i in float_model.graph.initializer}
    float_nodes = {n.name: n for n in float_model.graph.node}
    inits = {i.name: i for i in graph.initializer}
    # The last node index reading each tensor: a materialized tensor is dropped after it.
    last_use: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            last_use[name] = index
    # Tensor name -> its value for each batch, for the tensors a later segment reads.
    values: dict[str, list[np.ndarray]] = {input_name: list(batches)}
    start = corrected = 0
    for index, bias_name, scale_name in convs:
        segment = nodes[start : index + 1]
        produced = {out for node in segment for out in node.output}
        feeds = list(
            dict.fromkeys(
                name
                for node in segment
                for name in node.input
                if name and name not in produced and name not in inits
            )
        )
        if any(name not in values for name in feeds):
            return corrected  # another graph input: leave the remaining layers as made
        node = nodes[index]
        conv_out = node.output[0]
        float_node = float_nodes.get(node.name)
        float_weights = float_inits.get(float_node.input[1]) if float_node is not None else None
        rounding = gptq_damp is not None and float_weights is not None
        # GPTQ reads the convolution's input, and recomputes it with its bias.
        extra = [node.input[0], node.input[2]] if rounding else []
        fetch = list(
            dict.fromkeys(
                [conv_out]
                + [name for name in extra if name in produced]
                + [out for out in produced if out and last_use.get(out, -1) > index]
            )
        )
        used = {name for node in segment for name in node.input if name in inits}
        sub = onnx.helper.make_model(
            onnx.helper.make_graph(
                segment,
                "segment",
                [
                    onnx.helper.make_tensor_value_info(
                        name,
                        onnx.helper.np_dtype_to_tensor_dtype(values[name][0].dtype),
                        None,
                    )
                    for name in feeds
                ],
                [onnx.helper.make_empty_tensor_value_info(name) for name in fetch],
                [inits[name] for name in used],
            ),
            opset_imports=qdq_model.opset_import,
            ir_version=qdq_model.ir_version,
        )
        session = _session(sub)
        results = [
            session.run(fetch, {name: values[name][b] for name in feeds})
            for b in range(len(batches))
        ]
        for k, name in enumerate(fetch):
            values[name] = [r[k] for r in results]
        if rounding:
            weights = _gptq_weights(
                qdq_model,
                node,
                values[node.input[0]],
                numpy_helper.to_array(float_weights),
                gptq_damp,  # type: ignore[arg-type]
            )
            if weights is not None:
                values[conv_out] = _run_conv(
                    qdq_model, node, values[node.input[0]], weights, values[node.input[2]]
                )
        if biases:
            outs = values[conv_out]
            mean = _channel_mean(outs)
            scale = numpy_helper.to_array(inits[scale_name]).astype(np.float64)
            old = numpy_helper.to_array(inits[bias_name])
            # A channel of zero weights has a zero scale: nothing to shift there.
            steps = np.divide(
                mean - target[node.name], scale, out=np.zeros_like(mean), where=scale > 0
            )
            limits = np.iinfo(np.int32)
            new = np.clip(old - np.round(steps), limits.min, limits.max).astype(np.int32)
            inits[bias_name].CopyFrom(numpy_helper.from_array(new, bias_name))
            # What the corrected bias changes in this output, for the segments after it.
            shift = ((new - old) * scale).astype(np.float32)
            values[conv_out] = [o + shift.reshape((1, -1) + (1,) * (o.ndim - 2)) for o in outs]
        for name in list(values):
            if last_use.get(name, -1) <= index:
                del values[name]
        start = index + 1
        corrected += 1
    return corrected
