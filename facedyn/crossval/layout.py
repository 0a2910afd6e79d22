"""The cross-validation folder: where a plan's fold runs and tables lie. Below runner, summary, residuals and
the ensemble, which all read or write it; light (no torch).

  plan.json                   folds, shared stages, common overrides, variants
  shared/fold_<k>/            the shared stages of fold k (with share=<stage>)
  <variant>/fold_<k>/         the variant's run of fold k (its stages after the shared ones)
  <variant>/init/fold_<k>.pt  its starting weights: the shared stages' groups over its own fresh model
  <variant>/residuals.csv     out-of-fold video predictions of every fold (facedyn.crossval.residuals)
  crossval.md / .json / .csv  the table (facedyn.crossval.summary)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from facedyn.runs import read_json

PLAN_FILE = "plan.json"
SHARED_DIR = "shared"
RESIDUALS_FILE = "residuals.csv"
FOLD_PREFIX = "fold_"


class CrossvalFolderError(ValueError):
    """A folder that is not (a variant of) a cross-validation, or not the one asked for; the message names it."""


def fold_dir(root: Path, group: str, fold: int) -> Path:
    return Path(root) / group / f"{FOLD_PREFIX}{fold}"


def is_crossval(path: Path) -> bool:
    return (Path(path) / PLAN_FILE).is_file()


def read_plan(root: Path) -> dict:
    plan = read_json(Path(root) / PLAN_FILE)
    if not isinstance(plan, dict) or "folds" not in plan:
        raise CrossvalFolderError(f"{root}: no readable {PLAN_FILE}; is it a cross-validation folder?")
    return plan


def fold_run_dirs(root: Path, plan: dict, variant: str, fold: int) -> list[Path]:
    """The run folders that trained `variant`'s fold: the shared stages' (with share=) first, then its own."""
    dirs = [fold_dir(root, SHARED_DIR, fold)] if plan.get("shared_stages") else []
    own = fold_dir(root, variant, fold)
    return [*dirs, own] if own.is_dir() else dirs


@dataclass(frozen=True)
class VariantFolder:
    """One variant of a cross-validation: its folder and the plan it belongs to."""

    root: Path
    variant: str
    plan: dict

    @property
    def path(self) -> Path:
        return self.root / self.variant

    @property
    def folds(self) -> int:
        return int(self.plan["folds"])

    def run_dirs(self, fold: int) -> list[Path]:
        return fold_run_dirs(self.root, self.plan, self.variant, fold)


def variant_folder(path: Path) -> Optional[VariantFolder]:
    """The variant `path` names: a cross-validation folder with one variant, or one of its variant folders.
    None when `path` is neither; CrossvalFolderError when it is a cross-validation with several variants."""
    path = Path(path).expanduser().resolve()
    if is_crossval(path):
        plan = read_plan(path)
        variants = list(plan.get("variants", {}))
        if len(variants) != 1:
            raise CrossvalFolderError(f"{path} holds {len(variants)} variants ({', '.join(variants)}); "
                                      f"name one: {path / (variants[0] if variants else '<variant>')}")
        return VariantFolder(path, variants[0], plan)
    if is_crossval(path.parent) and path.name != SHARED_DIR:
        plan = read_plan(path.parent)
        if path.name in plan.get("variants", {}):
            return VariantFolder(path.parent, path.name, plan)
    return None


def fold_of(run_dir: Path) -> Optional[tuple[VariantFolder, int]]:
    """(variant, fold) when `run_dir` is a variant's fold run of a cross-validation, else None."""
    run_dir = Path(run_dir).resolve()
    if not run_dir.name.startswith(FOLD_PREFIX) or not run_dir.name[len(FOLD_PREFIX):].isdigit():
        return None
    try:
        variant = variant_folder(run_dir.parent)
    except CrossvalFolderError:
        return None
    return (variant, int(run_dir.name[len(FOLD_PREFIX):])) if variant is not None else None
