"""What the executor loops share: preparing chunks ahead of the model, and row errors.

The image, audio, text and tensor tasks all turn a stream of Arrow arrays into
``struct<result, error>`` arrays. Decoding (images, audio) runs in threads ahead of the
model, since Pillow, libjpeg-turbo, soundfile and the frameworks release the GIL;
:func:`prefetch` is that look-ahead window, bounded so that memory stays flat.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["model_failure", "prefetch"]

Meta = TypeVar("Meta")
Payload = TypeVar("Payload")
Prepared = TypeVar("Prepared")


def model_failure(exc: BaseException) -> str:
    """The error text of rows whose model call raised ``exc`` (first line, <= 500 chars).

    >>> model_failure(ValueError("bad shape\\nmore detail"))
    'model failed: ValueError: bad shape'
    """
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"model failed: {type(exc).__name__}: {first}"[:500]


@contextmanager
def prefetch(
    items: Iterator[tuple[Meta, Payload]],
    prepare: Callable[[Payload], Prepared],
    *,
    workers: int,
    ahead: int,
    name: str,
) -> Iterator[Iterator[tuple[Meta, Prepared]]]:
    """``prepare`` each payload of ``items`` in ``workers`` threads, ``ahead`` items ahead.

    On entry the first ``ahead`` payloads start preparing, so the caller can do slow
    set-up (load a model) meanwhile; the iterator it gets yields ``(meta, prepared)`` in
    the order of ``items``, and each item taken starts the next one. Only ``meta`` and
    the pending futures are held, never a payload already handed to a thread.

    >>> with prefetch(iter([("a", 1), ("b", 2)]), lambda x: x * 10, workers=1, ahead=1,
    ...               name="doc") as out:
    ...     list(out)
    [('a', 10), ('b', 20)]
    """
    window: deque[tuple[Meta, Future[Prepared]]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:

        def fill() -> None:
            while len(window) < ahead:
                item = next(items, None)
                if item is None:
                    return
                meta, payload = item
                window.append((meta, pool.submit(prepare, payload)))

        def drain() -> Iterator[tuple[Meta, Any]]:
            while window:
                meta, future = window.popleft()
                fill()
                yield meta, future.result()

        fill()
        yield drain()
