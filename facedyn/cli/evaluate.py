"""Measure a cross-validation's ensemble on data no fold model saw:
python -m facedyn.crossval.evaluate <cross-validation folder> [preset=hard] [<predict.py data setting> ...]

  python -m facedyn.crossval.evaluate outputs/crossval/<time> data.synthetic.seed=1            # fresh synthetic set
  python -m facedyn.crossval.evaluate outputs/crossval/<time> preset=hard data.synthetic.seed=2
  python -m facedyn.crossval.evaluate outputs/crossval/<time> data.root=/data/clinic_b         # a labelled dataset

Per score at video level (frames averaged per video and expression): MAE and ICC(2,1) of the ensemble, of
each fold model, and of the best and the median fold model (each metric on its own: the best is picked with
hindsight on this data) and how often the fold models lie more than flag.spread (1 grade) apart; then the
prediction intervals' empirical coverage and mean width (grades) at each level in `levels` (default
[0.8,0.9]) by each interval_method (cv_plus, centred), for the items and for Sunnybrook's subtotals, and
how many intervals hold 0, 1, 2 or more whole grades (what flag.grades acts on). Writes holdout.json (for
the docs' tables) and holdout.md to out= (default: <variant folder>/holdout/<dataset folder name>).

Own keys: out, preset (a synthetic preset of facedyn.data.synthetic.PRESETS, applied as data.synthetic.*
settings), levels, stage, folds, batch_size; every other key=value is a predict.py setting (data.*, videos=).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from facedyn.cli import arguments
from facedyn.crossval.evaluate import HOLDOUT_FILES, EvaluationError, evaluate, markdown, own_settings, parse_levels


def main(argv: Optional[list[str]] = None) -> int:
    argv = arguments(argv, __doc__)
    if argv is None:
        return 0
    from facedyn.cli.errors import user_errors
    from facedyn.inference import RunError
    from facedyn.utils.io import atomic_write_json, atomic_write_text

    try:
        folder, own, settings = own_settings(argv)
        result, root = evaluate(folder, settings, parse_levels(own.get("levels")), own.get("stage"),
                                own.get("folds", "finished"), int(own.get("batch_size", 128)))
    except (EvaluationError, RunError, *user_errors()) as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # an interval level outside (0, 1), a batch size that is no number
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1
    result["command"] = "python -m facedyn.crossval.evaluate " + " ".join(argv)
    out = Path(own["out"]) if "out" in own else Path(result["crossval"]) / "holdout" / root.name
    atomic_write_json(out / HOLDOUT_FILES[0], result)
    atomic_write_text(out / HOLDOUT_FILES[1], markdown(result))
    print((out / HOLDOUT_FILES[1]).read_text())
    print(f"written: {out / HOLDOUT_FILES[0]}, {out / HOLDOUT_FILES[1]}")
    return 0
