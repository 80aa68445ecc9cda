"""GPTQ rounding of int8 convolution weights: the integers that best reproduce each
layer's output on the calibration images, on the quantizer's own grid.

Rounding every weight to its nearest grid point makes each weight as close as it can
be, not the layer's output: the errors of the weights feeding one output channel add
up. GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers", ICLR 2023, after the Optimal Brain Quantizer of Frantar &
Alistarh, 2022) rounds an output channel's weights one input at a time and moves the
weights not yet rounded so that the output on the calibration inputs ``X`` changes as
little as possible: it minimizes ``||W X - Q X||^2`` greedily, with the inverse of
``H = X X^T`` telling how to compensate. The result lies on the same grid (same
scale, same zero point, same range), so the quantized model has the same operators
and runs at the same speed.

Here ``X`` is the convolution's input as the quantized model computes it (the layers
before it already rounded and bias-corrected: :func:`deepspark.models._int8_bias.refine_layers`
calls these functions layer after layer), unfolded into the rows a convolution
multiplies (``im2col``); a grouped or depthwise convolution has one ``H`` per group.
A layer whose calibration rows are fewer than its weights per output channel (few
calibration images reaching a wide late layer), whose weights other convolutions
share, or whose calibration inputs are not finite keeps rounding to nearest.
``H`` is damped (a fraction of its mean diagonal added), which keeps the rounding
close to nearest where the calibration images say little; on EfficientNet-Lite0
more damping than 0.01 carried better to photos unlike the calibration ones
(``benchmarks/int8_sweep.py``).

Why written here: the GPTQ of ONNX Runtime's ``matmul_nbits_quantizer`` and of Intel
Neural Compressor's ONNX adaptor quantizes ``MatMul`` weights only (weight-only,
``MatMulNBits``), not convolutions on a static QDQ grid; this module rounds on the
grid ONNX Runtime's own quantizer chose and leaves everything else to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["conv_columns", "conv_hessian", "enough_rows", "gptq_round"]


def _same_pads(size: int, kernel: int, stride: int, dilation: int, upper: bool) -> tuple[int, int]:
    """ONNX ``auto_pad=SAME_*`` padding (begin, end) of one spatial axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    small, big = total // 2, total - total // 2
    return (small, big) if upper else (big, small)


def conv_columns(
    x: np.ndarray, attrs: Mapping[str, Any], weight_shape: tuple[int, ...]
) -> np.ndarray:
    """A 2-D convolution's input unfolded per group (``im2col``): the rows its weights
    multiply, so that output channel ``o`` of group ``g`` at each position is
    ``columns[g] @ weights[o].ravel()`` (plus the bias).

    Parameters
    ----------
    x : numpy.ndarray
        A batch of the convolution's input, ``(n, c, h, w)``.
    attrs : mapping
        The ONNX ``Conv`` attributes (``kernel_shape``, ``strides``, ``pads``,
        ``dilations``, ``group``, ``auto_pad``).
    weight_shape : tuple of int
        ``(out_channels, c / group, kh, kw)``.

    Returns
    -------
    numpy.ndarray
        ``(group, n * out_h * out_w, d)`` with ``d = c / group * kh * kw``, rows in
        the order of the output ``(n, out_h, out_w)``.

    Examples
    --------
    >>> x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    >>> conv_columns(x, {"strides": (2, 2)}, (1, 1, 2, 2))[0].tolist()
    [[0.0, 1.0, 3.0, 4.0]]
    """
    windows = _windows(x, attrs, weight_shape)
    return _rows(windows)


def _windows(x: np.ndarray, attrs: Mapping[str, Any], weight_shape: tuple[int, ...]) -> np.ndarray:
    """The convolution's input windows as a view (no copy), ``(n, group, c / group,
    out_h, out_w, kh, kw)``."""
    n, c, h, w = x.shape
    kh, kw = weight_shape[2:]
    sh, sw = attrs.get("strides", (1, 1))
    dh, dw = attrs.get("dilations", (1, 1))
    group = int(attrs.get("group", 1))
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        top, bottom = _same_pads(h, kh, sh, dh, auto == "SAME_UPPER")
        left, right = _same_pads(w, kw, sw, dw, auto == "SAME_UPPER")
    elif auto == "VALID":
        top = left = bottom = right = 0
    else:
        top, left, bottom, right = attrs.get("pads", (0, 0, 0, 0))
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    span = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, span, axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # (n, c, out_h, out_w, kh, kw)
    out_h, out_w = windows.shape[2:4]
    return windows.reshape(n, group, c // group, out_h, out_w, kh, kw)


def _rows(windows: np.ndarray) -> np.ndarray:
    """:func:`_windows` (or a slice of its output rows) as ``(group, rows, d)`` (a copy)."""
    n, group, per, out_h, out_w, kh, kw = windows.shape
    return windows.transpose(1, 0, 3, 4, 2, 5, 6).reshape(group, n * out_h * out_w, per * kh * kw)


def conv_hessian(
    x: np.ndarray,
    attrs: Mapping[str, Any],
    weight_shape: tuple[int, ...],
    max_elements: int = 1 << 24,
) -> tuple[np.ndarray, int]:
    """``columns^T columns`` per group (:func:`conv_columns`), in float64, and the
    number of rows (output positions) it sums. The columns are made a slice of output
    rows at a time, at most ``max_elements`` values (64 MB of float32) each: a large
    image's unfolded input would not fit in memory at once.

    Returns
    -------
    (numpy.ndarray, int)
        ``(group, d, d)`` and the row count: add the batches' results (GPTQ needs
        only their sum; :func:`enough_rows` says whether it can be trusted).

    Examples
    --------
    >>> x = np.ones((1, 2, 3, 3), np.float32)
    >>> h, rows = conv_hessian(x, {"group": 1}, (4, 2, 1, 1))  # 9 positions of [1, 1]
    >>> h.tolist(), rows
    ([[[9.0, 9.0], [9.0, 9.0]]], 9)
    """
    windows = _windows(x, attrs, weight_shape)
    n, group, per, out_h, out_w, kh, kw = windows.shape
    d = per * kh * kw
    hessian = np.zeros((group, d, d))
    rows = 0
    for image in range(n):
        step = max(1, max_elements // max(1, group * out_w * d))
        for top in range(0, out_h, step):
            cols = _rows(windows[image : image + 1, :, :, top : top + step])
            # float32 products (fast), summed into float64.
            hessian += np.matmul(cols.transpose(0, 2, 1), cols)
            rows += cols.shape[1]
    return hessian, rows


def enough_rows(rows: int, hessian: np.ndarray) -> bool:
    """Whether ``rows`` calibration rows pin down ``d`` weights per output channel:
    at least ``d`` of them. With fewer, ``H`` is singular and GPTQ would fit the few
    calibration images rather than the layer (the caller keeps rounding to nearest).

    >>> enough_rows(100, np.zeros((1, 144, 144))), enough_rows(1000, np.zeros((1, 144, 144)))
    (False, True)
    """
    return rows >= hessian.shape[-1]


def _upper_inverse_cholesky(hessian: np.ndarray, damp: float) -> np.ndarray:
    """Per group, the upper Cholesky factor ``U`` of ``(H + damp * mean(diag) I)^-1``
    (``U^T U`` is the inverse), as GPTQ uses it. Inputs never seen in calibration
    (zero diagonal) get a unit diagonal: their weights round to nearest and move no
    other weight. Where ``H`` is singular at this damping (inputs that always move
    together, and ``damp`` 0), more damping is added until it is not."""
    at = np.arange(hessian.shape[-1])
    diag = hessian[:, at, at].copy()
    diag[diag <= 0] = 1.0
    mean = diag.mean(axis=1, keepdims=True)

    def factor(h: np.ndarray, diagonal: np.ndarray) -> np.ndarray:
        h = h.copy()
        h[:, at, at] = diagonal
        inverse = np.linalg.inv(h)
        # Symmetrize: inv() of a symmetric matrix is symmetric only to rounding.
        inverse = (inverse + inverse.transpose(0, 2, 1)) / 2
        return np.linalg.cholesky(inverse).transpose(0, 2, 1)

    try:
        return factor(hessian, diag + damp * mean)
    except np.linalg.LinAlgError:
        pass
    # Group by group, so that one singular group does not damp the others more.
    out = np.empty_like(hessian)
    for g in range(len(hessian)):
        for extra in (0.0, 1e-6, 1e-4, 1e-2, 1.0):
            try:
                out[g] = factor(hessian[g : g + 1], diag[g] + (damp + extra) * mean[g])[0]
                break
            except np.linalg.LinAlgError:
                continue
        else:
            raise np.linalg.LinAlgError("GPTQ: a layer's input covariance is not usable")
    return out


def gptq_round(
    weights: np.ndarray,
    hessian: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray,
    qmin: int,
    qmax: int,
    damp: float = 0.1,
) -> np.ndarray:
    """The integer weights GPTQ chooses on a per-output-channel grid.

    Parameters
    ----------
    weights : numpy.ndarray
        Float weights ``(out_channels, ...)``; each output channel's values flattened
        in the order of :func:`conv_hessian`'s columns.
    hessian : numpy.ndarray
        ``(group, d, d)`` from :func:`conv_hessian` (summed or averaged: only its
        shape matters to the damping, not its scale).
    scale, zero_point : numpy.ndarray
        The grid, one value per output channel: ``w ~ (q - zero_point) * scale``.
    qmin, qmax : int
        The grid's range.
    damp : float
        Fraction of the mean diagonal added to ``H`` (GPTQ's dampening).

    Returns
    -------
    numpy.ndarray
        Integers in ``[qmin, qmax]``, the shape of ``weights`` (``int64``; the caller
        casts to the quantized type).

    Examples
    --------
    Two inputs that are always equal: the second weight makes up for the first's
    rounding, so their sum (all the output sees) is kept better than by rounding
    each to nearest:

    >>> w = np.array([[0.3, 0.3]])
    >>> h = np.ones((1, 2, 2))
    >>> q = gptq_round(w, h, np.array([1.0]), np.array([0]), -127, 127, damp=0.01)
    >>> int(q.sum()), int(np.round(w).sum())
    (1, 0)
    """
    out = weights.shape[0]
    group, d = hessian.shape[0], hessian.shape[-1]
    w = weights.reshape(group, out // group, d).astype(np.float64)
    s = np.asarray(scale, np.float64).reshape(group, out // group)
    z = np.asarray(zero_point, np.float64).reshape(group, out // group)
    u = _upper_inverse_cholesky(hessian, damp)
    q = np.empty_like(w)
    safe = np.where(s > 0, s, 1.0)
    for i in range(d):
        col = np.clip(np.round(w[:, :, i] / safe) + z, qmin, qmax)
        q[:, :, i] = col
        # A channel of zero scale is all zeros: nothing to round, nothing to move.
        err = np.where(s > 0, (w[:, :, i] - (col - z) * s) / u[:, i, i][:, None], 0.0)
        w[:, :, i + 1 :] -= err[:, :, None] * u[:, None, i, i + 1 :]
    return q.reshape(weights.shape).astype(np.int64)
