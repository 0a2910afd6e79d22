"""Landmark-branch variants (conf/model/*.yaml) built by the one model builder: the seed exactly as it was,
side-independent paired features, expression conditioning through the batch, blendshapes trainable in
every variant."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facedyn.conf import CONF_DIR
from facedyn.config import compose, validate
from facedyn.utils.config import ConfigError
from facedyn.data import load_training_data
from facedyn.data.expressions import SUNNYBROOK_EXPRESSIONS, expression_indices
from facedyn.training.freezing import apply_trainable
from facedyn.landmarks import BLENDSHAPE_NAMES, NUM_BLENDSHAPES
from facedyn.model import FaceDynModel, PairedFeatures

VARIANTS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def _model(*overrides: str) -> FaceDynModel:
    torch.manual_seed(0)
    return FaceDynModel(compose(["model.flow.weights=none", *overrides]).model)


@pytest.fixture(scope="module")
def tiny_batch(tiny_data_overrides, landmarker_task) -> dict[str, torch.Tensor]:
    """Eight real samples of the tiny synthetic dataset, every expression among them."""
    data = load_training_data(compose(tiny_data_overrides).data)
    dataset = data.make_dataset(np.arange(len(data.samples)), augment=False)
    rows = [int(np.flatnonzero(data.samples.expression == name)[i]) for i in range(2) for name in ("smile", "snarl")]
    rows += [int(np.flatnonzero(data.samples.expression == name)[0]) for name in SUNNYBROOK_EXPRESSIONS[:4]]
    items = [dataset[r] for r in rows]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def test_seed_is_the_seeds_fc_104_to_2_with_its_parameter_names(landmarker_task):
    model = _model("model=seed")
    assert isinstance(model.landmark_head, torch.nn.Linear)
    assert model.landmark_head.weight.shape == (2, 104)
    head_keys = {k for k in model.state_dict() if not k.startswith(("flow.", "blendshapes."))}
    assert head_keys == {"landmark_head.weight", "landmark_head.bias", "fusion.weight", "fusion.bias"}
    assert model.required_inputs("fused") == ("flow_image", "expression_landmarks", "baseline_landmarks")


def test_paired_features_do_not_depend_on_the_affected_side():
    features = PairedFeatures()
    scores = torch.rand(6, 2 * NUM_BLENDSHAPES)
    swap = list(range(NUM_BLENDSHAPES))
    for i, name in enumerate(BLENDSHAPE_NAMES):
        for a, b in (("Left", "Right"), ("Right", "Left")):
            if name.endswith(a) and name[:-len(a)] + b in BLENDSHAPE_NAMES:
                swap[i] = BLENDSHAPE_NAMES.index(name[:-len(a)] + b)
    mirrored = scores[:, swap + [NUM_BLENDSHAPES + j for j in swap]]
    assert not torch.equal(mirrored, scores)
    assert torch.equal(features(mirrored), features(scores))
    out = features(scores)
    assert out.shape == (6, features.size) == (6, 3 * (3 * 20 + 12))
    smile_left, smile_right = BLENDSHAPE_NAMES.index("mouthSmileLeft"), BLENDSHAPE_NAMES.index("mouthSmileRight")
    delta = scores[:, smile_left] - scores[:, NUM_BLENDSHAPES + smile_left]
    delta_right = scores[:, smile_right] - scores[:, NUM_BLENDSHAPES + smile_right]
    assert torch.isfinite(out).all()
    weaker_movement = torch.minimum(delta, delta_right)
    assert any(torch.allclose(out[:, c], weaker_movement) for c in range(out.shape[1]))


def test_dataset_items_carry_the_expression_index_of_their_folder(tiny_data_overrides, landmarker_task):
    data = load_training_data(compose(tiny_data_overrides).data, expressions=["smile", "eye_close"])
    dataset = data.make_dataset(np.arange(len(data.samples)), augment=False)
    for row in range(0, len(data.samples), 7):
        expected = {"smile": 0, "eye_close": 1}.get(str(data.samples.expression[row]), 2)  # 2: any other
        assert int(dataset[row]["expression_index"]) == expected
    assert expression_indices(["snarl", "smile"], SUNNYBROOK_EXPRESSIONS).tolist() == [3, 1]


def test_per_expression_heads_use_only_the_samples_own_expression(tiny_batch):
    model = _model("model=expression").eval()
    assert "expression_index" in model.required_inputs("landmarks")
    with torch.no_grad():
        before = model(tiny_batch, "landmarks")
        smile = SUNNYBROOK_EXPRESSIONS.index("smile")
        model.landmark_head.weight[2 * smile:2 * smile + 2] += 1.0  # change the smile head only
        after = model(tiny_batch, "landmarks")
    is_smile = tiny_batch["expression_index"] == smile
    assert is_smile.any() and (~is_smile).any()
    assert torch.equal(before[~is_smile], after[~is_smile])
    assert not torch.allclose(before[is_smile], after[is_smile])
    without = {k: v for k, v in tiny_batch.items() if k != "expression_index"}
    with pytest.raises(KeyError, match="expression_index"):
        model(without, "landmarks")
    assert model(without, "flow").shape == (len(tiny_batch["flow_image"]), 2)  # the flow branch never needs it


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_builds_predicts_and_trains_its_blendshapes(variant, tiny_batch):
    model = _model(f"model={variant}")
    for predict in ("flow", "landmarks", "fused"):
        assert model(tiny_batch, predict).shape == (len(tiny_batch["flow_image"]), 2)
    apply_trainable(model, ["blendshapes", "landmark_head"])  # stage 2b
    model.train()
    model(tiny_batch, "landmarks").square().sum().backward()
    for name in ("expression", "baseline"):
        grads = [p.grad for p in model.blendshapes[name].parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), (variant, name)


def test_fusion_with_the_expression_still_starts_as_the_average(tiny_batch):
    model = _model("model=paired_expression").eval()
    with torch.no_grad():
        fused = model(tiny_batch, "fused")
        average = (model(tiny_batch, "flow") + model(tiny_batch, "landmarks")) / 2
    assert torch.allclose(fused, average, atol=1e-6)


def test_a_vocabulary_that_names_an_expression_twice_is_refused_before_anything_loads():
    with pytest.raises(ConfigError, match="model.expressions lists a name twice"):
        validate(compose(["model.expressions=[smile,smile]"]))
