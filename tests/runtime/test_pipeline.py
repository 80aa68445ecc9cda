"""The look-ahead window the image and audio executor loops share (real threads)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from deepspark.runtime._pipeline import model_failure, prefetch


def test_prefetch_keeps_order_and_starts_on_entry() -> None:
    started = threading.Event()

    def prepare(x: int) -> int:
        started.set()
        # Later items finish first: the output order must still be the input order.
        threading.Event().wait(0.02 * (5 - x) if x < 5 else 0)
        return x * x

    items = (((i, f"m{i}"), i) for i in range(8))
    with prefetch(items, prepare, workers=3, ahead=4, name="t") as out:
        # Before the first item is taken, preparing has begun (a model loads meanwhile).
        assert started.wait(5)
        got = list(out)
    assert got == [((i, f"m{i}"), i * i) for i in range(8)]


def test_prefetch_holds_at_most_ahead_items() -> None:
    taken = 0

    def items() -> Iterator[tuple[int, int]]:
        nonlocal taken
        for i in range(20):
            taken += 1
            yield i, i

    with prefetch(items(), lambda x: x, workers=2, ahead=3, name="t") as out:
        assert taken == 3  # the window, no more
        for consumed, (meta, value) in enumerate(out, start=1):
            assert meta == value
            # One new item enters the window per item handed out.
            assert taken == min(20, consumed + 3)


def test_prefetch_raises_preparation_errors_at_their_item() -> None:
    def prepare(x: int) -> int:
        if x == 2:
            raise ValueError("broken chunk")
        return x

    seen = []
    items = ((i, i) for i in range(5))
    with (
        pytest.raises(ValueError, match="broken chunk"),
        prefetch(items, prepare, workers=1, ahead=2, name="t") as out,
    ):
        for meta, _ in out:
            seen.append(meta)
    assert seen == [0, 1]


def test_model_failure_message() -> None:
    assert model_failure(RuntimeError("out of memory\ntrace...")) == (
        "model failed: RuntimeError: out of memory"
    )
    # An exception without a message still gives a row error, not a second exception.
    assert model_failure(KeyError()) == "model failed: KeyError: "
    assert len(model_failure(ValueError("x" * 2000))) == 500
