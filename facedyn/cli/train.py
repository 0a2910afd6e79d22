"""Train facedyn: `facedyn-train` (or `python train.py`) runs all five stages; `facedyn-train stage=2b optimizer.lr=1e-3` one.

A thin Hydra entry point; the work is facedyn.training.run(). The configs come from the installed package
(pkg://facedyn.conf), so the command works from any folder. See README.md for the commands.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from facedyn.cli.errors import user_errors
from facedyn.config import CONF_PACKAGE, normalize_overrides
from facedyn.runs import CONFIG_FILE

log = logging.getLogger("facedyn")


@hydra.main(config_path=CONF_PACKAGE, config_name="train", version_base="1.3")
def _train(cfg: DictConfig) -> None:
    from facedyn import training  # after Hydra has set up logging

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    if cfg.resume:
        saved = Path(cfg.resume) / CONFIG_FILE
        if not saved.is_file():
            raise SystemExit(f"error: resume={cfg.resume}: no {CONFIG_FILE} there; is it a facedyn run folder?")
        cfg = OmegaConf.load(saved)
        cfg.resume = str(run_dir)
    try:
        training.run(cfg, run_dir, overrides)
    except user_errors() as exc:
        log.error("%s", exc)
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt:  # Ctrl-C: every finished epoch is saved; say how to go on, no traceback
        log.warning("interrupted; continue with: python train.py resume=%s", run_dir)
        raise SystemExit(130) from None


def main() -> None:
    """Console-script entry: Hydra's command line, with `stage=1` quoted as Hydra needs it."""
    sys.argv = [sys.argv[0], *normalize_overrides(sys.argv[1:])]
    _train()
