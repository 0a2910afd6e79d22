"""The sanity and localisation checks of facedyn.explain.checks run on a trained run, as a report
(explain_check.json and .md); the command: facedyn.cli.explain_check.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from facedyn.data import DataError
from facedyn.data.layout import LABELS_FILE
from facedyn.data.synthetic import MARKER
from facedyn.explain import checks, gradcam, maps
from facedyn.explain.frames import CHUNK, model_batch
from facedyn.inference.config import compose_predict
from facedyn.inference.predictor import RunError
from facedyn.inference.run_loader import find_newest_finished_run, load_run
from facedyn.inference.data import prediction_data
from facedyn.training.stages import FINAL_STAGE
from facedyn.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("facedyn.explain.check")
JSON_FILE, MARKDOWN_FILE = "explain_check.json", "explain_check.md"


@dataclass
class CheckConfig:
    run: Optional[str] = None  # run folder or checkpoint; null: the newest finished run under output_dir
    stage: Optional[str] = None  # null: stage 4 of a run folder, or the checkpoint's own stage
    output_dir: str = "outputs"  # where run=null looks for runs
    out: str = "outputs/explain_check"
    root: Optional[str] = None  # another synthetic dataset; null: the run's own validation videos
    samples: int = 0  # localisation on at most this many samples, spread evenly (0: all)
    sanity_samples: int = 48  # the randomisation check's samples (each needs 7 maps)
    threshold: float = 0.5  # sanity passes when the median Spearman ρ after full randomisation is below it
    goal: float = 0.7  # localisation: the share of the map on the moved half or region aimed at
    seed: int = 0


def _evenly(n: int, most: int) -> np.ndarray:
    return np.arange(n) if most <= 0 or n <= most else np.unique(np.linspace(0, n - 1, most).round().astype(int))


def _synthetic_truth(root: Path, folders: np.ndarray) -> tuple[np.ndarray, float]:
    """(N,) paralysed side per sample and the render size its landmarks are in."""
    try:
        render_size = float(json.loads((root / MARKER).read_text())["config"]["render_size"])
    except (OSError, ValueError, KeyError):
        raise DataError(f"{root}: not a synthetic dataset ({MARKER} missing or damaged); the localisation check "
                        f"needs data whose paralysed side is known") from None
    sides = []
    for folder in folders:
        labels = json.loads((root / folder / LABELS_FILE).read_text())
        if "paralysed_side" not in labels:
            raise DataError(f"{root / folder / LABELS_FILE}: no paralysed_side; the localisation check needs it")
        sides.append(labels["paralysed_side"])
    return np.array(sides), render_size


def _dynamics_maps(flow_map: checks.FlowMap, model, predict: str, samples, rows: np.ndarray) -> np.ndarray:
    parts = [flow_map(model.flow, model_batch(model, predict, samples, rows[i:i + CHUNK])["flow_image"])
             for i in range(0, len(rows), CHUNK)]
    return np.concatenate(parts)


def run_check(cfg: CheckConfig, command: str = "") -> dict:
    """The checks on cfg.run; `command` (the command line that asked for them) is recorded with the figures."""
    started = time.perf_counter()
    out = Path(cfg.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    run = cfg.run or find_newest_finished_run(Path(cfg.output_dir), cfg.stage or FINAL_STAGE)
    predictor = load_run(run, stage=cfg.stage)
    model, info = predictor.model, predictor.info
    if info.predict == "landmarks":
        raise RunError(f"run={run} stage {info.stage} has no flow branch to check; pass a later stage (stage=3 or 4)")
    overrides = [f"run={run}"] + ([f"data.root={cfg.root}"] if cfg.root else [])
    data = prediction_data(compose_predict(overrides), predictor, out)
    samples = data.samples
    paralysed, render_size = _synthetic_truth(data.root, samples.folder)
    size = samples.flow.shape[1]
    rows = _evenly(len(samples), cfg.samples)
    face_parts = checks.regions(samples.baseline_landmarks[rows].astype(np.float64) * size / render_size, size)
    expressions = samples.expression[rows]
    one_sided = np.isin(paralysed[rows], ("left", "right")) & (samples.dynamics[rows] <= checks.MOVED_HALF_MAX_DYNAMICS)
    healthy_right = paralysed[rows] == "left"
    torch.manual_seed(cfg.seed)
    localisation = {}
    flow_maps = checks.flow_maps()
    for name, flow_map in flow_maps.items():
        signed = _dynamics_maps(flow_map, model, info.predict, samples, rows)
        for part in maps.PARTS:
            localisation[f"{name}/{part}"] = checks.localisation(maps.part(signed, part), face_parts, expressions,
                                                                  healthy_right, one_sided)
    # Where the input's own flow lies (HSV brightness = max of RGB): how lateralised the data are at all.
    brightness = samples.flow[rows].max(axis=-1).astype(np.float64)
    input_flow = checks.localisation(maps.part(brightness, "positive"), face_parts, expressions, healthy_right, one_sided)
    sanity_rows = rows[_evenly(len(rows), cfg.sanity_samples)]
    batch = model_batch(model, info.predict, samples, sanity_rows)
    default = f"{gradcam.DEFAULT_LAYER}/{maps.DEFAULT_PART}"
    flow_steps = {}  # the report's map and the one it is compared with
    for method in (gradcam.DEFAULT_LAYER, checks.INTEGRATED_GRADIENTS):
        flow_steps[f"{method}/{maps.DEFAULT_PART}"] = checks.flow_sanity(model.flow, batch["flow_image"],
                                                                         flow_maps[method], maps.DEFAULT_PART, cfg.seed)
    landmark = checks.landmark_sanity(model, batch, info.predict, cfg.seed) if info.predict == "fused" else {}
    full = flow_steps[default][-1].get("median", float("nan"))
    chosen = localisation[default]
    report = {
        "command": command, "run": str(info.run_dir), "checkpoint": str(info.checkpoint), "stage": info.stage, "data": data.source,
        "samples": int(len(rows)), "one_sided_samples": int(one_sided.sum()), "default_map": default,
        "goal": cfg.goal, "threshold": cfg.threshold,
        "goal_met": {name: bool((chosen[name]["share"] or 0) >= cfg.goal)
                     for name in ("moved_half", "eye_close_upper_face", "smile_lower_face")},
        "localisation": localisation, "input_flow": input_flow,
        "sanity": {"samples": int(len(sanity_rows)), "flow_cascade": flow_steps, "landmark_head": landmark,
                   "passed": bool(full < cfg.threshold and all(v.get("median", 1.0) < cfg.threshold
                                                               for v in landmark.values()))},
        "seconds": round(time.perf_counter() - started, 1), "config": asdict(cfg),
    }
    atomic_write_json(out / JSON_FILE, report)
    atomic_write_text(out / MARKDOWN_FILE, markdown(report))
    return report


def _map_name(key: str) -> str:
    """'layer4/absolute' -> 'Grad-CAM layer4, absolute'; 'integrated_gradients/positive' -> 'integrated
    gradients, positive'."""
    method, part = key.split("/")
    return f"{'integrated gradients' if method == checks.INTEGRATED_GRADIENTS else 'Grad-CAM ' + method}, {part}"


def _share(entry: dict) -> str:
    if entry["share"] is None:
        return "–"
    return f"{entry['share']:.0%} [{entry['chance']:.0%}] (n = {entry['n']})"


def _rho(entry: dict) -> str:
    if not entry.get("n"):
        return "– (constant maps)"
    return f"{entry['median']:.2f} [{entry['q1']:.2f}, {entry['q3']:.2f}]"


def markdown(report: dict) -> str:
    """The check's figures as markdown tables (what the docs quote)."""
    default = report["default_map"]
    lines = [f"Run `{report['run']}` (stage {report['stage']}), {report['data']}: {report['samples']} samples, "
             f"{report['one_sided_samples']} of them one-sided with dynamics ≤ {checks.MOVED_HALF_MAX_DYNAMICS}.", "",
             "Localisation of the flow branch's dynamics map: mean share of its mass on the region that moved "
             "[a uniform map's share]. Goal ≥ " f"{report['goal']:.0%} for the map the report draws (**bold**).", "",
             "| map, part | moved half: one-sided, dynamics ≤ 3 | eye closure: upper face | smile: lower face |",
             "|---|---|---|---|"]
    for name, entry in report["localisation"].items():
        label = f"**{_map_name(name)}**" if name == default else _map_name(name)
        lines.append(f"| {label} | {_share(entry['moved_half'])} | {_share(entry['eye_close_upper_face'])} | "
                     f"{_share(entry['smile_lower_face'])} |")
    if "input_flow" in report:  # the flow images' own brightness: what a map that follows the input would show
        entry = report["input_flow"]
        lines.append(f"| *the flow image's brightness* | {_share(entry['moved_half'])} | "
                     f"{_share(entry['eye_close_upper_face'])} | {_share(entry['smile_lower_face'])} |")
    lines += ["", f"Moved half by expression ({_map_name(default)}):", "", "| expression | share on the moved half |",
              "|---|---|"]
    for expression, entry in report["localisation"][default]["moved_half_by_expression"].items():
        lines.append(f"| {expression} | {_share(entry)} |")
    sanity = report["sanity"]
    lines += ["", f"Sanity (model randomisation, {sanity['samples']} samples): Spearman ρ between the trained and the "
              f"randomised model's explanations, median [quartiles]; the map the report draws and the landmark "
              f"branch's attributions pass below {report['threshold']} after full randomisation: "
              f"**{'passed' if sanity['passed'] else 'failed'}**.", "",
              "| randomised | " + " | ".join(f"flow branch: {_map_name(name)}" for name in sanity["flow_cascade"])
              + " |", "|---" * (1 + len(sanity["flow_cascade"])) + "|"]
    for depth, step in enumerate(next(iter(sanity["flow_cascade"].values()))):
        rhos = " | ".join(_rho(steps[depth]) for steps in sanity["flow_cascade"].values())
        lines.append(f"| {' + '.join(step['randomised'])} | {rhos} |")
    if sanity["landmark_head"]:  # a stage without the landmark branch has none
        lines += ["", "| randomised | landmark branch: dynamics attributions | synkinesis attributions |", "|---|---|---|",
                  f"| landmark head + fusion | {_rho(sanity['landmark_head']['dynamics'])} | "
                  f"{_rho(sanity['landmark_head']['synkinesis'])} |"]
    return "\n".join(lines) + "\n"
