"""When a stage writes checkpoints (`checkpoint: epoch | stage`): last.pt after each epoch, or only the
stage checkpoint at its end, for stages whose epochs cost less than a checkpoint write (a resumed run redoes
such a stage). What the files hold: facedyn.training.resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from facedyn.training.config import CheckpointEvery
from facedyn.training.hooks.base import EpochEnd, Hook, StageResult
from facedyn.training.resume import save_last, save_stage

if TYPE_CHECKING:
    from facedyn.training.loop import StageLoop


class Checkpointing(Hook):
    def __init__(self, run_dir: Path, every: str) -> None:
        self.run_dir, self.every_epoch = run_dir, str(every) == CheckpointEvery.epoch

    def epoch_end(self, loop: StageLoop, epoch: EpochEnd) -> None:
        if self.every_epoch:
            save_last(self.run_dir, loop.model, loop.progress, loop.stage, loop.state_dict())

    def stage_end(self, loop: StageLoop, result: StageResult) -> None:
        save_stage(self.run_dir, loop.model, loop.stage, loop.progress)
