"""Grade patients with a trained run: `facedyn-predict` (or `python predict.py`) `[run=<run>] data.root=<dataset>`
(or `videos=<clips>`).

A thin Hydra entry point; the work is facedyn.inference.task.run(). Outputs in outputs/predictions/<time>/
(predictions.csv, predictions_video.csv, patients.csv, report.html, and with labels metrics.json and
Bland–Altman plots). See docs/prediction.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from facedyn.cli.errors import discard_refused_folder, user_errors
from facedyn.config import command_line_overrides
from facedyn.inference.config import PREDICT_CONF_PACKAGE, register_configs

register_configs()


@hydra.main(config_path=PREDICT_CONF_PACKAGE, config_name="predict", version_base="1.3")
def _predict(cfg: DictConfig) -> None:
    from facedyn.inference import RunError, task  # after Hydra has set up logging
    from facedyn.videos import PrepareError

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        summary = task.run(cfg, out_dir)
    except (*user_errors(), RunError, PrepareError) as exc:
        discard_refused_folder(out_dir, Path(cfg.paths.output_dir))
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt:  # nothing to resume: every file is written whole or not at all
        raise SystemExit(130) from None
    print(task.summary_text(summary))


def main() -> None:
    """Console-script entry: Hydra's command line, with `stage=3` quoted as Hydra needs it."""
    sys.argv = [sys.argv[0], *command_line_overrides(sys.argv[1:])]
    _predict()
