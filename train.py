"""Train facedyn: `python train.py` runs all five stages; `python train.py stage=2b optimizer.lr=1e-3` one.

A thin Hydra entry point; the work is facedyn.training.run(). See README.md for the commands.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from facedyn.assets import AssetError
from facedyn.checkpoints import CheckpointError
from facedyn.config import ConfigError, normalize_overrides
from facedyn.data import DataError
from facedyn.model import WeightsUnavailable
from facedyn.runs import CONFIG_FILE

log = logging.getLogger("facedyn")
USER_ERRORS = (AssetError, CheckpointError, ConfigError, DataError, WeightsUnavailable)


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
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
    except USER_ERRORS as exc:
        log.error("%s", exc)
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt:  # Ctrl-C: every finished epoch is saved; say how to go on, no traceback
        log.warning("interrupted; continue with: python train.py resume=%s", run_dir)
        raise SystemExit(130) from None


if __name__ == "__main__":
    sys.argv = [sys.argv[0], *normalize_overrides(sys.argv[1:])]
    main()
