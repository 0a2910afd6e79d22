"""`python -m facedyn.export [run=<run folder or checkpoint>] [stage=4] [out=facedyn.onnx]`: see graph.py.

`run=<cross-validation folder> out=<folder>` exports each finished fold to <folder>/fold_<k>.onnx, each
carrying its out-of-fold residuals: `predict.py model=onnx onnx=[<folder>/fold_0.onnx,...]` is their
calibrated ensemble.

Settings are ExportConfig's fields as key=value (OmegaConf dot-list); a wrong one is a one-line error.
"""

from __future__ import annotations

import sys

from facedyn.cli.errors import dotlist_settings, user_errors
from facedyn.export.graph import ExportConfig, export_all
from facedyn.inference.predictor import RunError


def main(argv: list[str]) -> int:
    cfg = dotlist_settings(ExportConfig, argv)
    if cfg is None:
        return 2
    try:
        reports = export_all(cfg)
    except (*user_errors(), RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for report in reports:
        differences = ", ".join(f"batch {size}: {diff:.1e}" for size, diff in report.max_abs_difference.items())
        print(f"{report.out}: {report.megabytes:.1f} MB, checked with ONNX Runtime on {report.samples} validation "
              f"samples (max |ONNX - torch| in grades: {differences}) in {report.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
