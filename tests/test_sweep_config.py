"""The sweep's config: schema, command-line split, and clear errors for configs that cannot work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from facedyn.conf import CONF_DIR
from facedyn.sweep.config import SweepConfigError, load, split_args
from facedyn.sweep.runner import _split_overrides

REPO = Path(__file__).resolve().parents[1]


def test_sweep_keys_go_to_the_sweep_and_the_rest_to_training() -> None:
    args = split_args(["sweep.trials_per_stage=20", "data=folder", "data.root=/x", "sweep.stages=[1,2a]",
                       "sweep.lr_range.2a=[1e-4,1e-1]", "seed=3"])
    assert args.train_overrides == ["data=folder", "data.root=/x", "seed=3"]
    assert args.sweep.trials_per_stage == 20
    assert list(args.sweep.stages) == ["1", "2a"]
    assert list(args.sweep.lr_range["2a"]) == [1e-4, 1e-1]


@pytest.mark.parametrize("override, message", [
    ("sweep.stages=[1,5]", "unknown stage '5'"),
    ("sweep.stages=[]", "sweep.stages is empty"),
    ("sweep.stages=[2a,1]", "stages run in the order"),
    ("sweep.trials_per_stage=0", "trials_per_stage=0"),
    ("sweep.trials_per_stage=-2", "must be > 0"),
    ("sweep.lr_range.2a=[1e-2,1e-4]", "inverted range"),
    ("sweep.lr_range.2a=[1e-3,1e-3]", "empty or inverted range"),
    ("sweep.lr_range.1=[0,1e-2]", "log-uniform range needs low > 0"),
    ("sweep.lr_range.1=[1e-3]", "give [low, high]"),
    ("sweep.lr_range.7=[1e-3,1e-2]", "sweep.lr_range: unknown stage '7'"),
    ("sweep.pruner.name=magic", "sweep.pruner.name='magic'"),
    ("sweep.mode=parallel", "sweep.mode='parallel'"),
    ("sweep.pruner.patience=0", "sweep.pruner.patience must be >= 1"),
    ("sweep.directon=maximize", "Key 'directon' not in 'SweepConfig'"),
    ("sweep.trials_per_stage=many", "trials_per_stage"),
])
def test_bad_sweep_configs_are_clear_errors(override: str, message: str) -> None:
    with pytest.raises(SweepConfigError) as error:
        split_args([override])
    assert message in str(error.value)


def test_joint_mode_checks_its_own_budget() -> None:
    assert split_args(["sweep.mode=joint", "sweep.trials_per_stage=0", "sweep.trials=4"]).sweep.trials == 4
    with pytest.raises(SweepConfigError, match="sweep.trials=0"):
        split_args(["sweep.mode=joint", "sweep.trials=0"])


def test_extra_params_need_a_stage_placeholder_in_staged_mode(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "wd.yaml").write_text(
        (CONF_DIR / "sweep" / "default.yaml").read_text()
        .replace("params: {}", "params:\n  optimizer.weight_decay: {low: 1.0e-6, high: 1.0e-2, log: true}"))
    with pytest.raises(SweepConfigError, match=r"needs the placeholder \{stage\}"):
        load("wd", conf_dir=tmp_path)
    assert load("wd", ["mode=joint"], conf_dir=tmp_path).params["optimizer.weight_decay"].log


def test_overrides_the_sweep_sets_itself_are_refused() -> None:
    cfg = split_args([]).sweep
    for override in ("stage=2b", "optimizer.lr=1e-3", "stages.s2a.lr=0.1"):
        with pytest.raises(SweepConfigError, match="the sweep sets"):
            _split_overrides(cfg, [override])
    base, init_from = _split_overrides(cfg, ["data=folder", "init_from=/runs/x"])
    assert base == ["data=folder"] and init_from == "/runs/x"


def test_sweep_py_exits_with_the_message_before_training(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "sweep.py"), "sweep.stages=[1,2c]", f"sweep.root={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 2
    assert "unknown stage '2c'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())  # no database, no trial folder
