"""Shared fixtures: real model files from ../shared (or the environment), temporary caches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEDYN_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "mediapipe"

# Tests and users find the bundle the same way: through FACEDYN_LANDMARKER.
if not os.environ.get("FACEDYN_LANDMARKER") and (SHARED / "models" / "face_landmarker.task").is_file():
    os.environ["FACEDYN_LANDMARKER"] = str(SHARED / "models" / "face_landmarker.task")


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


def made_once(tmp_path_factory, name: str, make: Callable[[Path], dict]) -> tuple[Path, dict]:
    """(folder, record) of something expensive made once per test session, also under pytest-xdist: the first
    worker that needs it calls make(folder) (under a lock in the workers' common temporary folder) and keeps
    the JSON record it returns; the others wait and read that record."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    base, made = root / name, root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if not made.is_file():
            shutil.rmtree(base, ignore_errors=True)  # an attempt that failed
            made.write_text(json.dumps(make(base)))
    return base, json.loads(made.read_text())


TRAINED_RUN_EPOCHS = {**TINY_STAGE_EPOCHS, "s1": 2}  # two stage-1 epochs, so a kill can land mid-stage


@dataclass(frozen=True)
class TrainedRun:
    run_dir: Path
    overrides: list[str]  # the train.py overrides it was made with
    output: str  # what train.py printed


def train_py(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="session")
def tiny_train_py_run(tmp_path_factory, tiny_data_overrides) -> TrainedRun:
    """A finished five-stage `python train.py` run on the tiny dataset, as a user would start it: what the
    trainer's resume tests compare with and what prediction, the report and the export are tested on. Made
    once per test session (made_once). Copy it before changing it. Its outputs live under
    <tmp>/trained/outputs, so that folder's newest finished run is this one."""
    def train(base: Path) -> dict:
        overrides = [f"paths.output_dir={base / 'outputs'}", "model.flow.weights=none", "trainer.progress=false",
                     "trainer.threads=2", *tiny_data_overrides, *tiny_epochs(TRAINED_RUN_EPOCHS)]
        process = train_py([*overrides, f"hydra.run.dir={base / 'outputs' / 'runs' / 'tiny'}"])
        output, _ = process.communicate(timeout=1200)  # a hang guard: minutes on a loaded 2-core machine
        assert process.returncode == 0, output
        return {"overrides": overrides, "output": output}

    base, record = made_once(tmp_path_factory, "trained", train)
    return TrainedRun(base / "outputs" / "runs" / "tiny", record["overrides"], record["output"])


@pytest.fixture(scope="session")
def tiny_trained_run(tiny_train_py_run) -> Path:
    """The run folder of tiny_train_py_run."""
    return tiny_train_py_run.run_dir


# The tests' one cross-validation: two folds of the default model, stages 1-3 (the fold models are stage 3's),
# one epoch each. What the ensemble, its intervals, flags, report and ONNX graphs are tested on.
CROSSVAL_FOLDS = 2
CROSSVAL_STAGE_EPOCHS = {"s1": 1, "s2a": 1, "s2b": 1, "s3": 1}


@dataclass(frozen=True)
class TinyCrossval:
    root: Path  # the cross-validation folder (one variant, named after its stage selection)
    args: list[str]  # the python -m facedyn.crossval arguments it was made with
    fresh_data: list[str]  # predict.py settings of a small synthetic set no fold model saw


@pytest.fixture(scope="session")
def tiny_crossval(tmp_path_factory, tiny_data_overrides) -> TinyCrossval:
    """A finished `python -m facedyn.crossval folds=2` on the tiny dataset, trained in-process once per test
    session (made_once). Copy it before changing it."""
    from facedyn.crossval import plan, runner

    def cross_validate(base: Path) -> dict:
        args = [f"folds={CROSSVAL_FOLDS}", f"out={base / 'cv'}", "stage=[1,2a,2b,3]", "model.flow.weights=none",
                "trainer.progress=false", "trainer.threads=2", "data.num_workers=0",
                f"paths.output_dir={base / 'outputs'}", *tiny_data_overrides, *tiny_epochs(CROSSVAL_STAGE_EPOCHS)]
        runner.run(plan.parse_args(args))
        return {"args": args,
                "fresh": [f"data.synthetic.root={base / 'fresh'}", "data.synthetic.seed=1", "data.synthetic.videos=4"]}

    base, record = made_once(tmp_path_factory, "crossval", cross_validate)
    return TinyCrossval(base / "cv", record["args"], record["fresh"])
