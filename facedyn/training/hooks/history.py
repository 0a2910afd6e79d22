"""The run's record of each epoch: its history row (training_history.json, the curves, compare) and the
stage and epoch in run_status.json, so another process can tell how far the run is."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from facedyn.runs import write_status
from facedyn.training.hooks.base import EpochEnd, Hook, StageResult
from facedyn.training.resume import write_history

if TYPE_CHECKING:
    from facedyn.training.loop import StageLoop


class History(Hook):
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def epoch_end(self, loop: StageLoop, epoch: EpochEnd) -> None:
        loop.progress.history.append(epoch.row)
        write_history(self.run_dir, loop.progress)
        write_status(self.run_dir, stage=loop.stage, epoch=epoch.epoch)

    def stage_end(self, loop: StageLoop, result: StageResult) -> None:
        write_history(self.run_dir, loop.progress)  # with the stage's kept epoch
