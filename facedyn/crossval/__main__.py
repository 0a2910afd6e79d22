"""Cross-validate: python -m facedyn.crossval (or facedyn-crossval) [folds=5] [share=<stage>] [out=DIR] [<train.py override> ...]

Runs each of the `folds` folds by video (data.folds / data.fold) through the same training as train.py and
writes crossval.md / .json / .csv: mean ± std over folds of val loss, video-level MAE and ICC(2,1) per
score, for the flow branch, the landmark branch and the fused model (each at the last stage that predicts
with it), next to the training-mean baseline; and <variant>/residuals.csv, the folds' out-of-fold video
predictions (`predict.py run=<folder>` is the fold models' ensemble, its intervals calibrated on them).

  python -m facedyn.crossval folds=5                                # the default config
  python -m facedyn.crossval folds=5 model=seed,paired share=1      # two variants, stage 1 trained once per fold
  python -m facedyn.crossval folds=5 out=outputs/crossval/mine      # rerun: finished folds are kept

A comma-separated value makes variants (all combinations), cross-validated on the same folds. share=<stage>
trains the stages up to that one once per fold with the overrides common to all variants, and starts
each variant from them (refused for a variant that changes what those stages depend on).
Default folder: <paths.output_dir>/crossval/<time>/.
"""

from __future__ import annotations

import sys

from facedyn.cli import arguments


def main(argv: list[str] | None = None) -> int:
    argv = arguments(argv, __doc__)
    if argv is None:
        return 0
    from facedyn.crossval import plan, runner
    from facedyn.crossval.summary import IncompleteCrossval
    from facedyn.cli.errors import user_errors

    try:
        root = runner.run(plan.parse_args(argv))
    except (plan.CrossvalError, IncompleteCrossval, *user_errors()) as exc:
        print(f"crossval: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("crossval: interrupted; rerun the same command with out=<its folder> to continue", file=sys.stderr)
        return 130
    print((root / "crossval.md").read_text())
    print(f"cross-validation folder: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
