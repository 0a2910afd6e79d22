"""Shared fixtures: real model files from ../shared (or the environment), temporary caches."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEDYN_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "mediapipe"

# Tests and users find the bundle the same way: through FACEDYN_LANDMARKER.
if not os.environ.get("FACEDYN_LANDMARKER") and (SHARED / "models" / "face_landmarker.task").is_file():
    os.environ["FACEDYN_LANDMARKER"] = str(SHARED / "models" / "face_landmarker.task")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs two workers), keep what shares an expensive fixture on one worker:
    the tests of one module (module-scoped runs and sweeps), and every test of the session's trained run.
    Groups take effect with --dist loadgroup; without xdist the marks do nothing."""
    for item in items:
        shared = "tiny_trained_run" in getattr(item, "fixturenames", ())
        item.add_marker(pytest.mark.xdist_group("tiny_trained_run" if shared else item.module.__name__))


def _require(path: Path) -> Path:
    """A real file a test needs: skipped on a laptop without it, a failure in CI (which must have it)."""
    if path.is_file():
        return path
    if os.environ.get("CI"):
        pytest.fail(f"CI must have {path} (../shared beside the checkout)")
    pytest.skip(f"{path} not present")


@pytest.fixture(scope="session")
def landmarker_task() -> Path:
    env = os.environ.get("FACEDYN_LANDMARKER")
    return _require(Path(env) if env else SHARED / "models" / "face_landmarker.task")


@pytest.fixture(scope="session")
def blendshapes_tflite_file() -> Path:
    return _require(SHARED / "models" / "face_blendshapes.tflite")


@pytest.fixture(scope="session")
def mediapipe_fixtures() -> Path:
    _require(FIXTURES / "face_blendshapes_in_landmarks.prototxt")
    return FIXTURES


# A tiny, fast pipeline for end-to-end tests: a small generated dataset shared by the session,
# one epoch per stage, no ImageNet download attempt.
TINY_STAGE_EPOCHS = {"s1": 1, "s2a": 2, "s2b": 1, "s3": 2, "s4": 1}


@pytest.fixture(scope="session")
def tiny_data_overrides(tmp_path_factory, landmarker_task) -> list[str]:
    root = tmp_path_factory.mktemp("tiny-synthetic")
    return [
        f"data.synthetic.root={root / 'dataset'}",
        f"data.cache_dir={root / 'cache'}",
        "data.synthetic.videos=10",
        "data.synthetic.frames_per_video=2",
        "data.batch_size=16",
    ]


@pytest.fixture
def tiny_overrides(tmp_path, tiny_data_overrides) -> list[str]:
    """Overrides for a fast run whose outputs go to this test's tmp_path/outputs."""
    return [
        f"paths.output_dir={tmp_path / 'outputs'}",
        "model.flow.weights=none",
        "trainer.progress=false",
        "trainer.threads=2",
        *tiny_data_overrides,
    ]


@contextmanager
def folder_held_by_another_process(folder: Path) -> Iterator[subprocess.Popen]:
    """A live process holding `folder` through facedyn.runs.owned, as a second writer would meet it."""
    code = ("import sys, time\nfrom facedyn.runs import owned\n"
            "with owned(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def tiny_epochs(stages=TINY_STAGE_EPOCHS) -> list[str]:
    return [f"stages.{key}.epochs={epochs}" for key, epochs in stages.items()]


@pytest.fixture(scope="session")
def tiny_trained_run(tmp_path_factory, tiny_data_overrides):
    """A finished five-stage run on the tiny dataset (run folder Path), trained once per session: what
    prediction, the report and the export are tested on. Outputs live under its parent's parent
    (<tmp>/outputs), so `paths.output_dir` of that folder finds it as the newest finished run."""
    from facedyn import training
    from facedyn.config import compose

    base = tmp_path_factory.mktemp("trained")
    overrides = [f"paths.output_dir={base / 'outputs'}", "model.flow.weights=none", "trainer.progress=false",
                 "trainer.threads=2", *tiny_data_overrides, *tiny_epochs()]
    run_dir = base / "outputs" / "runs" / "tiny"
    training.run(compose(overrides), run_dir, overrides)
    return run_dir
