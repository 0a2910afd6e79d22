"""The background prefetcher hands over exactly the batches the loaders make, in order, and stops cleanly."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from facedyn.data import load_training_data
from facedyn.data.dataset import loader_workers, make_loader
from facedyn.data.prefetch import Prefetcher
from tests.test_data_fixtures import dataset_root, folder_config  # noqa: F401


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "facedyn-prefetch"]


def _epoch_passes(data, epochs: range, workers: int = 0):
    train = data.make_dataset(data.train_indices, augment=True)
    val = data.make_dataset(data.val_indices, augment=False)
    return [
        pass_ for epoch in epochs for pass_ in (
            (("train", epoch), lambda epoch=epoch: make_loader(train, 5, shuffle=True, epoch=epoch, seed=3, num_workers=workers)),
            (("validate", epoch), lambda: make_loader(val, 8, shuffle=False, num_workers=workers)),
        )
    ]


@pytest.mark.parametrize("depth, workers", [(1, 0), (4, 0), (4, 2)])
def test_prefetched_batches_equal_loading_in_the_loop(dataset_root: Path, tmp_path: Path, depth: int, workers: int) -> None:
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache"), None)

    def consume(prefetch_depth: int) -> list[dict[str, torch.Tensor]]:
        batches = []
        with Prefetcher(_epoch_passes(data, range(1, 4), workers if prefetch_depth else 0), prefetch_depth) as ahead:
            for epoch in range(1, 4):
                batches += list(ahead.next_pass(("train", epoch)))
                batches += list(ahead.next_pass(("validate", epoch)))
        return batches

    in_loop, ahead = consume(0), consume(depth)
    assert len(in_loop) == len(ahead) > 6
    for expected, got in zip(in_loop, ahead):
        assert expected.keys() == got.keys()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    assert not _prefetch_threads()


def test_the_thread_stays_at_most_depth_batches_ahead() -> None:
    made: list[int] = []

    def loader():
        for i in range(50):
            made.append(i)
            yield i

    with Prefetcher([("only", loader)], depth=3) as ahead:
        seen = []
        for item in ahead.next_pass("only"):
            seen.append(item)
            threading.Event().wait(0.002)  # a training step
            # made: the queued ones (<= 3), the one being put, and what the consumer holds
            assert len(made) - len(seen) <= 3 + 1
    assert seen == list(range(50))


def test_a_loader_error_reaches_the_training_loop_with_its_type() -> None:
    def broken():
        yield 1
        raise ValueError("flow image of sample smile/v01_0003 is truncated")

    with Prefetcher([("train", broken)], depth=2) as ahead:
        batches = ahead.next_pass("train")
        assert next(batches) == 1
        with pytest.raises(ValueError, match="v01_0003 is truncated"):
            next(batches)
    assert not _prefetch_threads()


def test_leaving_early_stops_a_thread_blocked_on_a_full_queue() -> None:
    endless = ("train", lambda: iter(int, 1))  # never ends
    with pytest.raises(KeyboardInterrupt):
        with Prefetcher([endless], depth=2) as ahead:
            next(ahead.next_pass("train"))
            raise KeyboardInterrupt  # a pruned trial or Ctrl-C in the middle of an epoch
    assert not _prefetch_threads()


def test_passes_must_be_asked_for_in_order() -> None:
    passes = [(("train", 1), lambda: [1]), (("validate", 1), lambda: [2])]
    with Prefetcher(passes, depth=1) as ahead:
        with pytest.raises(RuntimeError, match=r"asked for pass \('validate', 1\).*next pass is \('train', 1\)"):
            ahead.next_pass(("validate", 1))
        assert list(ahead.next_pass(("train", 1))) == [1]
        assert list(ahead.next_pass(("validate", 1))) == [2]
        with pytest.raises(RuntimeError, match="all passes consumed"):
            ahead.next_pass(("train", 2))
    with pytest.raises(ValueError, match="depth"):
        Prefetcher(passes, depth=-1)


def test_worker_count_defaults_to_one_on_cpu_and_several_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert loader_workers(None, on_cuda=False) == 1
    assert loader_workers(None, on_cuda=True) == 8
    assert loader_workers(3, on_cuda=True) == 3 and loader_workers(0, on_cuda=True) == 0
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert loader_workers(None, on_cuda=True) == 0 and loader_workers(None, on_cuda=False) == 1
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert loader_workers(None, on_cuda=False) == 0
    with pytest.raises(ValueError, match="data.num_workers=-1"):
        loader_workers(-1, on_cuda=False)
