"""The Hydra config composes for every stage and rejects what it should, with messages that say why."""

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ConfigKeyError, ValidationError

from facedyn.conf import CONF_DIR
from facedyn.config import compose, normalize_overrides, stages_to_run, validate
from facedyn.model.config import PARAMETER_GROUPS
from facedyn.training.stages import STAGE_ORDER, pipeline_order, stage_key
from facedyn.utils.config import ConfigError


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
    assert set(stages["2b"].trainable) == {"blendshapes", "landmark_head"} and stages["2b"].lr == pytest.approx(1e-5)
    assert list(stages["3"].trainable) == ["fusion"]
    assert set(stages["4"].trainable) == set(PARAMETER_GROUPS)
    # Every stage that trains the pretrained blendshape graph fine-tunes at the smallest lr (Adam moves every
    # weight by ~lr per step: 1e-3 wrecked it in 2b, 1e-4 in stage 4 made the fused model worse than stage 3's,
    # docs/design.md, "The learning rates").
    assert stages["4"].lr <= stages["2b"].lr < stages["1"].lr


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


@pytest.mark.parametrize("overrides, message", [
    (["stage=2b", "stages.s2b.trainable=[flow,everything]"], r"stages.s2b.trainable"),
    (["optimizer.lr=-1"], r"optimizer.lr=-1 must be positive"),
    (["stages.s2a.lr=0"], r"stages.s2a.lr=0 must be positive"),
    (["stages.s3.augment=true"], r"stages.s3: precompute_frozen .* set stages.s3.augment=false"),
    (["stages.s2b.precompute_frozen=true", "stages.s2b.augment=false"], r"stages.s2b.precompute_frozen needs only head"),
    (["stages.s1.select_metric=val_accuracy"], r"stages.s1.select_metric='val_accuracy' is not a validation metric"),
    (["stages.s4.patience=0"], r"stages.s4.patience=0 must be at least 1"),
    (["stages.s2b.warmup_fraction=1.5"], r"stages.s2b.warmup_fraction=1.5"),
    (["stage=2a", "stages.s2a.init=previous", "stages.s2a.after=null"], r"stage 2a has no stage before it"),
    (["init_from=/nowhere/run"], r"init_from=/nowhere/run: no such run folder"),
    (["optimizer.betas=[0.9,1.5]"], r"optimizer.betas"),
])
def test_validate_names_the_key_before_anything_loads(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose(overrides))


def test_the_default_config_validates_and_every_stage_is_in_its_yaml():
    assert validate(compose([])) == list(STAGE_ORDER)
    for stage in STAGE_ORDER:  # what a stage does is written in its file, not left to defaults in code
        text = (CONF_DIR / "stage" / f"{stage}.yaml").read_text()
        for key in ("after", "init", "trainable", "predict", "lr", "epochs", "augment", "precompute_frozen",
                    "checkpoint", "select"):
            assert f"\n{key}:" in text, (stage, key)


@pytest.mark.parametrize("override", ["trainer.precision=fp16", "optimizer.name=adagrad", "stages.s1.predict=both",
                                      "data.kind=csv", "model.flow.arch=vgg", "model.landmark_features=sided",
                                      "model.expression_conditioning=film"])
def test_enum_fields_refuse_unknown_values_and_list_the_choices(override):
    """At composition, before any data or weights load."""
    with pytest.raises(ConfigCompositionException) as info:
        compose([override])
    assert "expected one of" in str(info.value.__cause__)


def test_the_pipeline_order_comes_from_the_stage_files_after_keys(tmp_path):
    for name, after in (("b", "a"), ("a", None), ("c", "b")):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\nafter: {after or 'null'}\n")
    assert pipeline_order(tmp_path) == ("a", "b", "c")
    (tmp_path / "d.yaml").write_text("name: d\nafter: a\n")  # a fork: two stages after a
    with pytest.raises(ConfigError, match="must chain every stage once"):
        pipeline_order(tmp_path)


def test_data_yaml_files_hold_only_what_differs_from_the_schema():
    for name in ("folder", "synthetic"):
        keys = [line.split(":")[0] for line in (CONF_DIR / "data" / f"{name}.yaml").read_text().splitlines()
                if line and not line.startswith("#")]
        assert set(keys) <= {"kind", "root"}, keys
    assert compose(["data=folder", "data.root=/d"]).data.val_fraction == compose([]).data.val_fraction
