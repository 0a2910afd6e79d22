"""Explanations: Grad-CAM of the flow branch and integrated gradients of the landmark branch on the
session's tiny trained run, the checks' pieces on known inputs, and `python -m facedyn.explain.check`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from facedyn.explain import blendshapes, checks, explain_frames, flow_gradients, gradcam, maps
from facedyn.explain.frames import model_batch
from facedyn.export.graph import validation_samples
from facedyn.inference import load_run
from facedyn.landmarks import BLENDSHAPE_NAMES, NUM_BLENDSHAPES
from facedyn.metrics import SCALE
from tests.conftest import REPO
from tests.test_measurements import face_mm, to_image


@pytest.fixture(scope="module")
def trained(tiny_trained_run):
    predictor = load_run(tiny_trained_run)
    samples = validation_samples(predictor, 1)
    return predictor.model, predictor.info.predict, samples


def test_gradcam_is_the_gradient_weighted_sum_of_the_layers_channels(trained):
    """captum's map equals Grad-CAM written out by hand: layer4's channels weighted by their mean gradient."""
    model, predict, samples = trained
    images = model_batch(model, predict, samples, np.arange(3))["flow_image"]
    activations = {}
    hook = model.flow.net.layer4.register_forward_hook(lambda module, args, out: activations.update(a=out))
    try:
        for score in range(2):
            ours = gradcam.cam(model.flow, images, score, "layer4")
            with torch.enable_grad():
                output = model.flow(images.clone().requires_grad_(True))
                grads = torch.autograd.grad(output[:, score].sum(), activations["a"])[0]
            coarse = (grads.mean(dim=(2, 3), keepdim=True) * activations["a"]).sum(dim=1, keepdim=True)
            expected = torch.nn.functional.interpolate(coarse, size=images.shape[-2:], mode="bilinear",
                                                       align_corners=False)[:, 0].detach().numpy()
            assert ours.shape == (3, *images.shape[-2:])
            np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    finally:
        hook.remove()


def test_flow_attributions_add_up_to_the_grade_minus_the_grade_of_a_face_that_did_not_move(trained):
    model, predict, samples = trained
    assert not model.training, "integrated gradients need a model whose output does not depend on its batch"
    images = model_batch(model, predict, samples, np.arange(2))["flow_image"]
    with torch.no_grad():
        difference = (model.flow(images) - model.flow(torch.zeros_like(images))).numpy()
    still = (images == 0).all(dim=1).numpy()  # no flow: outside the face mask
    assert still.any()
    for score in range(2):
        found = flow_gradients.integrated_gradients(model.flow, images, score, steps=64)
        assert found.shape == (2, *images.shape[-2:])
        assert (found[still] == 0).all()  # a pixel that did not move is no reason for the grade
        # A barely trained ResNet is sharp along the path from black: the sums approach the difference slowly.
        np.testing.assert_allclose(found.sum(axis=(1, 2)), difference[:, score], atol=0.15 * np.abs(difference).max())


def test_blendshape_attributions_add_up_to_the_grade_minus_the_grade_without_blendshapes(trained):
    model, predict, samples = trained
    batch = model_batch(model, predict, samples, np.arange(4))
    attributions, values = blendshapes.attributions(model, batch, predict)
    assert attributions.shape == (4, 2, 2 * NUM_BLENDSHAPES) and values.shape == (4, 2 * NUM_BLENDSHAPES)
    with torch.no_grad():
        outputs = model.branch_outputs(batch, predict)
        grades = model.heads(outputs, predict).numpy() * SCALE
        none = model.heads({**outputs, "blendshape_features": torch.zeros_like(outputs["blendshape_features"])},
                           predict).numpy() * SCALE
    np.testing.assert_allclose(attributions.sum(axis=-1), grades - none, atol=1e-3)


def test_top_contributions_pair_left_and_right_and_add_rest_and_expression():
    attribution = np.zeros(2 * NUM_BLENDSHAPES)
    values = np.linspace(0, 1, 2 * NUM_BLENDSHAPES)
    left, right, jaw = (BLENDSHAPE_NAMES.index(n) for n in ("mouthSmileLeft", "mouthSmileRight", "jawOpen"))
    attribution[[left, right, NUM_BLENDSHAPES + left]] = [0.5, 0.25, -0.125]
    attribution[jaw] = -2.0
    top = blendshapes.top_contributions(attribution, values, top=2)
    assert [c.names for c in top] == [("jawOpen",), ("mouthSmileLeft", "mouthSmileRight")]
    assert top[0].grades == -2.0 and top[1].grades == pytest.approx(0.625)
    assert top[1].expression == (values[left], values[right])
    assert top[1].rest == (values[NUM_BLENDSHAPES + left], values[NUM_BLENDSHAPES + right])


def test_explain_frames_gives_both_maps_and_both_scores_top_blendshapes(trained):
    model, predict, samples = trained
    found, seconds = explain_frames(model, predict, samples, [0, 2])
    assert sorted(found) == [0, 2] and seconds > 0
    for explanation in found.values():
        assert explanation.cam.shape == (2, *samples.flow.shape[1:3]) and np.isfinite(explanation.cam).all()
        assert [len(c) for c in explanation.contributions] == [blendshapes.TOP, blendshapes.TOP]


def test_map_parts_are_scaled_to_one_and_keep_their_sign():
    signed = np.array([[[1.0, -3.0], [0.5, 0.0]]])
    np.testing.assert_allclose(maps.part(signed, "positive"), [[[1.0, 0.0], [0.5, 0.0]]])
    np.testing.assert_allclose(maps.part(signed, "negative"), [[[0.0, 1.0], [0.0, 0.0]]])
    np.testing.assert_allclose(maps.part(signed, "absolute"), [[[1 / 3, 1.0], [1 / 6, 0.0]]])
    assert not maps.part(-np.ones((1, 2, 2)), "positive").any()  # nothing raised the grade: an empty map


def test_regions_follow_the_face_not_the_image():
    """A face rolled by 20° in a 112-pixel image: its right half is the image's left of its own midline."""
    landmarks = to_image(face_mm(), 0.7, 20.0, (56.0, 30.0))[None]
    parts = checks.regions(landmarks, 112)
    roll = np.radians(20.0)
    down = np.array([-np.sin(roll), np.cos(roll)])  # the face's y axis in the image
    across = np.array([np.cos(roll), np.sin(roll)])
    for distance, right in ((-10.0, True), (10.0, False)):
        x, y = (np.array([56.0, 30.0]) + distance * across + 20.0 * down).astype(int)
        assert parts.right[0, y, x] == right
    eye_x, eye_y = (np.array([56.0, 30.0]) + 5.0 * down).astype(int)
    chin_x, chin_y = (np.array([56.0, 30.0]) + 0.7 * 60.0 * down).astype(int)  # below halfway to the mouth (70 mm)
    assert parts.upper[0, eye_y, eye_x] and not parts.upper[0, chin_y, chin_x]


def test_localisation_counts_the_mass_on_the_half_that_moved():
    size = 8
    heat = np.zeros((2, size, size))
    heat[0, :, :2] = 1.0  # on the image's left: the patient's right
    heat[1, :, 6:] = 1.0
    landmarks = np.stack([to_image(face_mm(), 0.05, 0.0, (4.0, 1.0))] * 2)
    parts = checks.regions(landmarks, size)
    result = checks.localisation(heat, parts, np.array(["smile", "smile"]), healthy_right=np.array([True, True]),
                                 one_sided=np.array([True, True]))
    assert result["moved_half"]["share"] == pytest.approx(0.5)  # one map on the moved half, one off it
    assert result["moved_half"]["chance"] == pytest.approx(0.5)
    assert result["moved_half_by_expression"]["smile"]["n"] == 2


def test_randomisation_redraws_only_the_blocks_named(trained):
    model, _, _ = trained
    random = checks.randomised_flow(model.flow, ("fc", "layer4"), seed=0)
    assert not torch.equal(random.net.fc.weight, model.flow.net.fc.weight)
    assert not torch.equal(random.net.layer4[0].conv1.weight, model.flow.net.layer4[0].conv1.weight)
    assert torch.equal(random.net.layer3[0].conv1.weight, model.flow.net.layer3[0].conv1.weight)
    assert torch.equal(random.net.conv1.weight, model.flow.net.conv1.weight)
    assert np.isnan(checks.spearman(np.ones((1, 4)), np.arange(4.0)[None]))[0]  # a constant map ranks nothing
    assert checks.spearman(np.arange(4.0)[None], -np.arange(4.0)[None])[0] == pytest.approx(-1.0)


def _check_py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facedyn.explain.check", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_check_command_writes_json_and_markdown(tiny_trained_run, tmp_path):
    out = tmp_path / "check"
    result = _check_py(f"run={tiny_trained_run}", f"out={out}", "samples=16", "sanity_samples=6")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "explain_check.json").read_text())
    assert report["samples"] > 0 and report["default_map"] == f"{gradcam.DEFAULT_LAYER}/{maps.DEFAULT_PART}"
    assert set(report["localisation"]) == {f"{m}/{p}" for m in checks.flow_maps() for p in maps.PARTS}
    assert {m.split("/")[0] for m in report["localisation"]} == {*gradcam.LAYERS, checks.INTEGRATED_GRADIENTS}
    for entry in report["localisation"].values():
        for name in ("eye_close_upper_face", "smile_lower_face"):
            assert 0.2 < entry[name]["chance"] < 0.8
            # a barely trained model's map part may be empty everywhere (e.g. no negative evidence): no share then
            assert (0.0 <= entry[name]["share"] <= 1.0) if entry[name]["n"] else entry[name]["share"] is None
        assert entry["moved_half"]["n"] <= report["samples"]
    assert report["localisation"][report["default_map"]]["moved_half"]["n"] > 0
    assert 0.0 < report["input_flow"]["moved_half"]["share"] < 1.0 and "*the flow image's brightness*" in result.stdout
    cascades = report["sanity"]["flow_cascade"]
    assert set(cascades) == {report["default_map"], f"{checks.INTEGRATED_GRADIENTS}/{maps.DEFAULT_PART}"}
    for cascade in cascades.values():
        assert [step["randomised"][-1] for step in cascade] == list(checks.CASCADE)
        assert all(-1.0 <= step["median"] <= 1.0 for step in cascade if step["n"])
    assert set(report["sanity"]["landmark_head"]) == {"dynamics", "synkinesis"}
    table = (out / "explain_check.md").read_text()
    assert "| **Grad-CAM layer4, absolute** |" in table and "landmark head + fusion" in table
    assert table.strip() in result.stdout


def test_check_refuses_data_without_a_known_side_and_bad_settings_in_one_line(tiny_trained_run, tmp_path):
    split = json.loads((tiny_trained_run / "split.json").read_text())
    plain = tmp_path / "plain"
    shutil.copytree(split["root"], plain, ignore=shutil.ignore_patterns("synthetic_dataset.json"))
    result = _check_py(f"run={tiny_trained_run}", f"out={tmp_path / 'out'}", f"root={plain}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {plain}: not a synthetic dataset")
    result = _check_py("samplez=3")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "samplez" in result.stderr
