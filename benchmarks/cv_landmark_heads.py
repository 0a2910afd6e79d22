"""Stage 2a of landmark-head variants by k-fold cross-validation, the frozen blendshape outputs computed once.

    .venv/bin/python benchmarks/cv_landmark_heads.py [--folds 5] [--variants seed,paired,...] [--out FILE.json] [overrides ...]

Stage 2a trains the landmark head on the frozen blendshape models' outputs, which the trainer precomputes
once per stage on un-augmented data in eval mode (facedyn.training.epochs.precompute_branch_outputs). Those outputs
are the same for every variant and fold (MediaPipe's pretrained model, frozen), so this computes them once
for the whole dataset and then trains each variant's head on each fold exactly as the trainer's stage 2a
does — its optimizer, schedule, batch order, train_epoch, predict_all and metrics, from the same seeded
initialisation (checked: the seed variant's fold-0 history equals `train.py stage=2a` bitwise). It prints
the mean ± std table (ddof = 1) in a few minutes on 2 cores, where `python -m facedyn.crossval` of every
variant would recompute the blendshapes per run; the full pipeline per variant is facedyn.crossval's job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facedyn.conf import CONF_DIR  # noqa: E402
from facedyn.config import compose
from facedyn.training.stages import STAGE_ORDER, stage_key
from facedyn.data import make_loader, load_training_data  # noqa: E402
from facedyn.data.split import kfold_split  # noqa: E402
from facedyn.training.epochs import Runtime, precompute_branch_outputs, predict_all, tensor_batches, train_epoch  # noqa: E402
from facedyn.training.freezing import apply_trainable  # noqa: E402
from facedyn.training.objective import masked_mse  # noqa: E402
from facedyn.metrics import SCALE, evaluate, scalar_items  # noqa: E402
from facedyn.model import FaceDynModel  # noqa: E402
from facedyn.training.optim import make_optimizer, make_scheduler  # noqa: E402

COLUMNS = ("val_loss", "best_val_loss", "video_mae_dynamics", "video_mae_synkinesis", "video_icc_dynamics",
           "video_icc_synkinesis")


def train_head(model: FaceDynModel, cfg, train: dict, val: dict, runtime: Runtime) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The trainer's stage 2a on precomputed outputs: returns the last epoch's predictions, rows and val losses."""
    spec = cfg.stages[stage_key("2a")]
    optimizer = make_optimizer(cfg.optimizer, apply_trainable(model, list(spec.trainable)), spec.lr)
    batch_size = spec.batch_size or cfg.data.batch_size
    batches = -(-len(train["index"]) // batch_size)
    scheduler = make_scheduler(cfg.scheduler, optimizer, spec.epochs * batches, spec.warmup_fraction)
    weights = torch.tensor([spec.loss_weights.dynamics, spec.loss_weights.synkinesis])
    losses = []
    for epoch in range(1, spec.epochs + 1):
        model.train()
        order = torch.randperm(len(train["index"]), generator=torch.Generator().manual_seed(
            int(np.random.default_rng([cfg.seed, STAGE_ORDER.index("2a"), epoch]).integers(2**62))))
        train_epoch(model, tensor_batches(train, batch_size, order), batches, "landmarks", optimizer, scheduler,
                    weights, runtime, "", heads_only=True)
        pred, rows = predict_all(model, tensor_batches(val, 256), 1, "landmarks", runtime, heads_only=True)
        losses.append(float(masked_mse(torch.from_numpy(pred), val["target"], val["target_valid"], weights)))
    return pred, rows, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--variants", default=",".join(sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))))
    parser.add_argument("--out", type=Path)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    runtime = Runtime(torch.device("cpu"), None, False, False)
    cfg = compose(["model=seed", *args.overrides])
    data = load_training_data(cfg.data, expressions=cfg.model.expressions)
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    everything = data.make_dataset(np.arange(len(data.samples)), augment=False)
    cache = precompute_branch_outputs(FaceDynModel(cfg.model), make_loader(everything, 128, shuffle=False),
                                      -(-len(everything) // 128), "landmarks", runtime)
    cache["expression_index"] = torch.stack([everything[i]["expression_index"] for i in range(len(everything))])
    print(f"frozen blendshape outputs of {len(everything)} frames: {time.perf_counter() - started:.0f} s", flush=True)
    samples = data.samples
    true = np.stack([samples.dynamics, samples.synkinesis], axis=1)
    valid = np.stack([samples.dynamics_valid, samples.synkinesis_valid], axis=1)
    results: dict[str, list[dict]] = {"training mean": []}
    for fold in range(args.folds):  # the baseline: every validation frame graded as the training split's mean
        split = kfold_split(samples.video, args.folds, fold, cfg.data.split_seed)
        mean = true[split.train_indices].mean(axis=0) / SCALE
        rows = split.val_indices
        pred = np.tile(mean, (len(rows), 1))
        metrics = scalar_items(evaluate(pred, true[rows], valid[rows], samples.video[rows], samples.expression[rows]))
        loss = float(masked_mse(torch.from_numpy(pred).float(), torch.from_numpy(true[rows]).float(),
                                torch.from_numpy(valid[rows]).float(), torch.ones(2)))
        results["training mean"].append({"fold": fold, "val_loss": loss, "best_val_loss": loss,
                                         **{k: metrics[k] for k in COLUMNS[2:]}})
    for variant in args.variants.split(","):
        vcfg = compose([f"model={variant}", *args.overrides])
        torch.manual_seed(vcfg.seed)
        model = FaceDynModel(vcfg.model)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        results[variant] = []
        for fold in range(args.folds):
            model.load_state_dict(initial)
            split = kfold_split(samples.video, args.folds, fold, vcfg.data.split_seed)
            part = {name: torch.as_tensor(rows) for name, rows in (("train", split.train_indices), ("val", split.val_indices))}
            pred, rows, losses = train_head(model, vcfg, {k: v[part["train"]] for k, v in cache.items()},
                                            {k: v[part["val"]] for k, v in cache.items()}, runtime)
            metrics = scalar_items(evaluate(pred, true[rows], valid[rows], samples.video[rows], samples.expression[rows]))
            results[variant].append({"fold": fold, "val_loss": losses[-1], "best_val_loss": min(losses),
                                     **{k: metrics[k] for k in COLUMNS[2:]}})
            print(variant, results[variant][-1], flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    print("\n| variant | " + " | ".join(COLUMNS) + " |\n|---|" + "---|" * len(COLUMNS))
    for variant, folds in results.items():
        cells = []
        for column in COLUMNS:
            values = np.array([f[column] for f in folds])
            cells.append(f"{values.mean():.3f} ± {values.std(ddof=1):.3f}")
        print(f"| {variant} | " + " | ".join(cells) + " |")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
