"""Load the batches of the coming passes in a background thread, so that training does not wait for them.

A stage's data is a fixed sequence of passes (epoch 1 training, epoch 1 validation, epoch 2 training, ...),
each drawn from a loader that depends only on (seed, epoch), so the whole sequence can be loaded ahead:
while the model trains on one batch the thread takes the next ones from the loader, and while it validates
the thread already takes the next epoch's first training batches. The loading itself is best done by
DataLoader worker processes (data.num_workers; the default has some): then the thread only hands over
finished batches. Without workers the thread decodes and augments too, which hides the waiting but
competes with the training step for the GIL (5 % slower stage-1 epochs on 2 CPU cores).

The thread never holds more than `depth` batches; what it loads and in what order does not depend on its
timing, so prefetching leaves results bit-identical. Depth 0 loads in the consumer's thread (no thread at
all: for debugging a loader).
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Hashable, Iterable, Iterator, Optional, Sequence

Pass = tuple[Hashable, Callable[[], Iterable[Any]]]  # (a name for the pass, a function making its loader)

_END = object()
_POLL_SECONDS = 0.1


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """Iterate `passes` in order, `depth` batches ahead, from a daemon thread.

        with Prefetcher([(("train", 1), make_train_loader), (("val", 1), make_val_loader)], depth=4) as ahead:
            for batch in ahead.next_pass(("train", 1)): ...
            for batch in ahead.next_pass(("val", 1)): ...

    Passes must be consumed whole and in the order given; an error in a loader is raised in the consumer.
    Leaving the `with` block early (an exception, a pruned trial) stops the thread.
    """

    def __init__(self, passes: Sequence[Pass], depth: int):
        if depth < 0:
            raise ValueError(f"prefetch depth must not be negative, got {depth}")
        self._passes = list(passes)
        self._next = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if depth:
            self._thread = threading.Thread(target=self._load, name="facedyn-prefetch", daemon=True)
            self._thread.start()

    def _put(self, item: Any) -> bool:
        """Queue `item`, waiting for room; False when asked to stop meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _load(self) -> None:
        try:
            for _, make_loader in self._passes:
                for batch in make_loader():
                    if not self._put(batch):
                        return
                if not self._put(_END):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(_Failure(error))

    def next_pass(self, name: Hashable) -> Iterator[Any]:
        """The batches of the next pass, which must be `name`."""
        names = [pass_name for pass_name, _ in self._passes]
        if self._next >= len(names) or names[self._next] != name:
            expected = repr(names[self._next]) if self._next < len(names) else "none (all passes consumed)"
            raise RuntimeError(f"prefetcher asked for pass {name!r}, but the next pass is {expected}")
        self._next += 1
        if self._thread is None:
            return iter(self._passes[self._next - 1][1]())
        return self._drain()

    def _drain(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc_info: Optional[BaseException]) -> None:
        self.close()
