"""What a cross-validation runs: its own settings, the variants (sweeps in the overrides) and each fold run's overrides.

    folds=5 share=1 model=seed,paired stages.s2b.lr=3e-4

`folds`, `share` and `out` are the command's own keys; everything else is a train.py override. A
comma-separated value (Hydra's sweep syntax) makes variants: their cartesian product, each cross-validated
on the same folds. `share=<stage>` trains the stages up to and including that one once per fold, with
the overrides common to every variant, and starts every variant's later stages from them (stage 1, the
flow branch, does not depend on the landmark-branch variant and costs most of a run).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from facedyn.config import compose, normalize_overrides, override_stage, stages_to_run
from facedyn.training.stages import STAGE_ORDER, stage_key


@dataclass
class CrossvalOptions:
    """The command's own settings; every other argument is a train.py override."""

    folds: int = 5  # folds by video: every video is validated exactly once, by the fold that leaves it out
    share: Optional[str] = None  # train the stages up to this one once per fold and start every variant from them
    out: Optional[str] = None  # the cross-validation folder (a rerun continues it); null: <paths.output_dir>/crossval/<time>


OWN_KEYS = tuple(f.name for f in fields(CrossvalOptions))
# What the shared stages' result depends on besides their own stage settings: a variant that changes any of
# these cannot start from them.
SHARED_INPUTS = ("data", "seed", "model.flow", "optimizer", "scheduler", "trainer.precision", "trainer.deterministic",
                 "trainer.ema", "trainer.grad_clip")


class CrossvalError(ValueError):
    """A cross-validation setting that makes no sense; the message names it."""


@dataclass(frozen=True)
class Variant:
    label: str               # folder name under the cross-validation folder ("default" when there is one)
    overrides: tuple[str, ...]  # the variant's own overrides (one value of each sweep)


@dataclass(frozen=True)
class CrossvalPlan:
    folds: int
    shared_stages: tuple[str, ...]  # trained once per fold, start of every variant ('' when none)
    common: tuple[str, ...]         # train.py overrides every run gets (the user's, minus the sweeps)
    variants: tuple[Variant, ...]
    out: Path | None = None          # None: <paths.output_dir>/crossval/<time>

    def fold_overrides(self, fold: int) -> list[str]:
        return [f"data.folds={self.folds}", f"data.fold={fold}"]

    def shared_overrides(self, fold: int) -> list[str]:
        """The shared stages of one fold: common overrides that concern them, then the stages and the fold."""
        keys = {stage_key(s) for s in self.shared_stages}
        common = [o for o in self.common if override_stage(o) in (None, *keys)]
        return [*common, _stage_selection(self.shared_stages), *self.fold_overrides(fold)]

    def variant_overrides(self, variant: Variant, fold: int, stages: list[str], init_from: str | None) -> list[str]:
        """A variant's run of one fold: `stages` (those after the shared ones), from `init_from`."""
        keys = {stage_key(s) for s in stages}
        chosen = [o for o in (*self.common, *variant.overrides)
                  if override_stage(o) in (None, *keys) and not _is_stage_selection(o)]
        extra = [f"init_from={init_from}"] if init_from else []
        return [*chosen, _stage_selection(stages), *self.fold_overrides(fold), *extra]

    def variant_stages(self, variant: Variant) -> list[str]:
        """The stages the user's selection runs for `variant` (all five by default)."""
        return stages_to_run(compose([*self.common, *variant.overrides]))

    def as_dict(self) -> dict:
        return {"folds": self.folds, "shared_stages": list(self.shared_stages), "common": list(self.common),
                "variants": {v.label: list(v.overrides) for v in self.variants}}


def _is_stage_selection(override: str) -> bool:
    return override.partition("=")[0].lstrip("+~") == "stage"


def _stage_selection(stages: list[str] | tuple[str, ...]) -> str:
    return f"stage=[{','.join(stages)}]"


def _label(overrides: tuple[str, ...]) -> str:
    """A folder name that says what the variant sets: `model-paired__stages.s2b.lr-3e-4__stage-1-2a-2b-3`."""
    if not overrides:
        return "default"
    return "__".join(re.sub(r"[^\w.+]+", "-", o).strip("-") for o in overrides)


def parse_args(argv: list[str]) -> CrossvalPlan:
    own: dict[str, str] = {}
    train: list[str] = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in OWN_KEYS:
            own[key] = value
        else:
            train.append(arg)
    try:
        folds = int(own.get("folds", CrossvalOptions.folds))
    except ValueError:
        raise CrossvalError(f"folds={own['folds']}: the number of folds must be an integer") from None
    if folds < 2:
        raise CrossvalError(f"folds={folds}: cross-validation needs at least 2 folds")
    try:
        parsed = OverridesParser.create().parse_overrides(normalize_overrides(train))
    except HydraException as exc:
        raise CrossvalError(f"cannot read the overrides: {exc}") from None
    common, sweeps, stage_selection = [], [], []
    for override in parsed:
        key = override.get_key_element().lstrip("+~")
        if key in ("data.folds", "data.fold"):
            raise CrossvalError(f"{override.input_line}: the folds are the command's own (folds=N); drop {key}")
        if key in ("init_from", "resume"):
            raise CrossvalError(f"{override.input_line}: every fold trains from the start; use share=<stage> to "
                                "train the first stages once per fold")
        if key == "stage":
            if override.is_sweep_override():
                raise CrossvalError(f"{override.input_line}: stages are not variants; choose one selection")
            stage_selection = [override.input_line]  # part of every variant: a folder may hold several selections
        elif override.is_sweep_override():
            sweeps.append([f"{override.get_key_element()}={value}" for value in override.sweep_string_iterator()])
        else:
            common.append(override.input_line)
    variants = tuple(Variant(_label(combo), combo) for combo in
                     (tuple(c) + tuple(stage_selection) for c in itertools.product(*sweeps)))
    shared: tuple[str, ...] = ()
    if own.get("share"):
        if own["share"] not in STAGE_ORDER:
            raise CrossvalError(f"share={own['share']}: not a stage; stages are {', '.join(STAGE_ORDER)}")
        shared = STAGE_ORDER[:STAGE_ORDER.index(own["share"]) + 1]
    out = Path(own["out"]).expanduser() if own.get("out") else None
    return CrossvalPlan(folds, shared, tuple(common), variants, out)


def check_shareable(shared_cfg: DictConfig, variant_cfg: DictConfig, plan: CrossvalPlan, variant: Variant) -> None:
    """A variant may start from the shared stages only if it would have trained them identically."""
    for key in SHARED_INPUTS + tuple(f"stages.{stage_key(s)}" for s in plan.shared_stages):
        mine, theirs = OmegaConf.select(variant_cfg, key), OmegaConf.select(shared_cfg, key)
        plain = [OmegaConf.to_container(c) if isinstance(c, DictConfig) else c for c in (mine, theirs)]
        if plain[0] != plain[1]:
            raise CrossvalError(f"variant {variant.label}: it changes {key}, which the shared stages "
                                f"{', '.join(plan.shared_stages)} depend on; cross-validate it without share=")
