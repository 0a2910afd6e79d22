"""Train facedyn: `facedyn-train` (or `python train.py`) runs all five stages; `facedyn-train stage=2b optimizer.lr=1e-3` one.

A thin Hydra entry point; the work is facedyn.training.run(). The configs come from the installed package
(pkg://facedyn.conf), so the command works from any folder. See docs/training.md for the commands.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from facedyn.cli.errors import record_in_log_files, user_errors
from facedyn.conf import CONF_PACKAGE
from facedyn.config import command_line_overrides

log = logging.getLogger("facedyn")


class Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, schedulers, SLURM): stopped like Ctrl-C, everything finished saved."""


def _terminate(signum: int, frame) -> None:
    raise Terminated()


@hydra.main(config_path=CONF_PACKAGE, config_name="train", version_base="1.3")
def _train(cfg: DictConfig) -> None:
    from facedyn import training  # after Hydra has set up logging
    from facedyn.training.resume import resume_config
    from facedyn.runs import RunFolderInUse

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if cfg.resume:
            cfg = resume_config(Path(cfg.resume).resolve(), overrides)
        training.run(cfg, run_dir, overrides)
    except RunFolderInUse as exc:  # the folder's train.log belongs to the run that holds it: say it here only
        _detach_file_logs(run_dir)
        raise SystemExit(f"error: {exc}") from None
    except user_errors() as exc:  # in train.log too, on the console once
        record_in_log_files(run_dir, str(exc))
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt as exc:  # every finished epoch is saved; say how to go on, no traceback
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        log.warning("%s; continue with: python train.py resume=%s", what, run_dir)
        raise SystemExit(143 if isinstance(exc, Terminated) else 130) from None


def _detach_file_logs(run_dir: Path) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if Path(getattr(handler, "baseFilename", "/")).parent == run_dir.resolve():
            root.removeHandler(handler)
            handler.close()


def main() -> None:
    """Console-script entry: Hydra's command line, with `stage=1` quoted as Hydra needs it."""
    from facedyn.sweep.launch import hydra_launcher_problem

    problem = hydra_launcher_problem(sys.argv[1:])
    if problem:
        raise SystemExit(f"train.py: {problem}")
    sys.argv = [sys.argv[0], *command_line_overrides(sys.argv[1:])]
    _train()
