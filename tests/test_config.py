"""The Hydra config composes for every stage and rejects what it should, with messages that say why."""

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ConfigKeyError, ValidationError

from facedyn.config import (PARAMETER_GROUPS, STAGE_ORDER, ConfigError, compose, normalize_overrides, stage_key,
                            stages_to_run)


def test_default_config_runs_all_five_stages_in_order():
    cfg = compose([])
    assert stages_to_run(cfg) == list(STAGE_ORDER)
    assert cfg.data.kind == "synthetic"
    assert cfg.optimizer.name == "adam"


@pytest.mark.parametrize("stage", STAGE_ORDER)
def test_each_stage_composes_alone(stage):
    cfg = compose([f"stage={stage}"])
    assert stages_to_run(cfg) == [stage]
    spec = cfg.stages[stage_key(stage)]
    assert set(spec.trainable) <= set(PARAMETER_GROUPS)
    assert spec.epochs >= 1 and spec.lr > 0


def test_design_learning_rates_and_freezing():
    cfg = compose([])
    stages = {s: cfg.stages[stage_key(s)] for s in STAGE_ORDER}
    assert list(stages["1"].trainable) == ["flow"]
    assert list(stages["2a"].trainable) == ["landmark_head"] and stages["2a"].lr == pytest.approx(0.01)
    assert set(stages["2b"].trainable) == {"blendshapes", "landmark_head"} and stages["2b"].lr == pytest.approx(1e-3)
    assert list(stages["3"].trainable) == ["fusion"]
    assert set(stages["4"].trainable) == set(PARAMETER_GROUPS)
    assert stages["4"].lr < stages["2b"].lr


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers_compose(name):
    assert compose([f"optimizer={name}", "optimizer.lr=0.5"]).optimizer.lr == 0.5


def test_numeric_stage_names_are_accepted_on_the_command_line():
    assert normalize_overrides(["stage=1", "stage=1,2a", "optimizer.lr=1"]) == ["stage='1'", "stage='1','2a'", "optimizer.lr=1"]
    assert stages_to_run(compose(["stage=3"])) == ["3"]
    assert normalize_overrides(["stage=[2a,3]"]) == ["stage=['2a','3']"]
    assert stages_to_run(compose(["stage=[2a,2b,3,4]"])) == ["2a", "2b", "3", "4"]


def test_unknown_stage_is_a_clear_error():
    with pytest.raises((MissingConfigException, ConfigCompositionException)) as info:
        compose(["stage=5"])
    assert "stage" in str(info.value) and "5" in str(info.value)


@pytest.mark.parametrize("override", ["optimizer.lrr=0.1", "stages.s2b.epoch=3", "model.flow.wieghts=none"])
def test_misspelt_keys_are_rejected(override):
    with pytest.raises(ConfigCompositionException) as info:
        compose([override])
    assert isinstance(info.value.__cause__, (ConfigKeyError, ValidationError)) or "not in" in str(info.value.__cause__)


def test_wrong_types_are_rejected():
    with pytest.raises(ConfigCompositionException):
        compose(["stages.s1.epochs=many"])


def test_stage_checks_name_the_key():
    cfg = compose(["stage=2b", "stages.s2b.trainable=[flow,everything]"])
    with pytest.raises(ConfigError, match=r"stages.s2b.trainable"):
        stages_to_run(cfg)
