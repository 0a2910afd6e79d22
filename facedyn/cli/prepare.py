"""Turn a clinic's recordings and grading sheet into the training layout: `facedyn-prepare` (or `python
prepare.py`) `videos=/data/clips grades=/data/grades.csv out=/data/dataset`.

A thin Hydra entry point; the work is facedyn.videos.prepare(). See docs/preparing-videos.md for the layout and the report.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from facedyn.assets import AssetError
from facedyn.conf import CONF_PACKAGE
from facedyn.config import command_line_overrides
from facedyn.videos import PrepareError
from facedyn.videos.config import register_configs
from facedyn.videos.pipeline import PrepareSummary

log = logging.getLogger("facedyn")
register_configs()


def _summary_lines(summary: PrepareSummary) -> list[str]:
    ok, skipped = summary.ok, summary.skipped
    lines = [f"{len(summary.outcomes)} clip(s): {len(ok)} prepared, {len(skipped)} skipped "
             f"({summary.reused} unchanged since the last run); {summary.samples} sample(s) in {summary.out}"]
    lines += [f"  skipped {o.relative}: {o.reason}" for o in skipped]
    lines += [f"  {o.relative}: note: {o.note} (rest-phase noise {o.rest_noise:g} inter-ocular distances)"
              for o in ok if o.note]
    lines += [f"  graded but no video: {patient} {expression}" for patient, expression in summary.grades_without_video]
    lines.append(f"report: {summary.report}")
    lines += [f"contact sheet: {path}" for path in summary.contact_sheets]
    if summary.frames:
        steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in summary.step_seconds.items())
        lines.append(f"{summary.frames} frames in {summary.seconds:.1f} s "
                     f"({summary.frames / summary.seconds:.1f} frames/s); "
                     f"per step, summed over workers: {steps}")
    return lines


@hydra.main(config_path=CONF_PACKAGE, config_name="prepare", version_base="1.3")
def _prepare(cfg: DictConfig) -> None:
    from facedyn.videos import prepare

    try:
        summary = prepare(cfg)
    except (PrepareError, AssetError) as exc:  # one line, printed once (not also logged)
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt:  # finished clips are complete on disk; a rerun skips them
        log.warning("interrupted; finished clips are kept: run the same command again to go on")
        raise SystemExit(130) from None
    for line in _summary_lines(summary):
        log.info("%s", line)
    if summary.samples == 0:
        raise SystemExit(f"error: nothing usable was produced from videos={cfg.videos}; see {summary.report}")


def main() -> None:
    """Console-script entry: Hydra's command line, a path with letters beyond ASCII quoted as Hydra needs it."""
    sys.argv = [sys.argv[0], *command_line_overrides(sys.argv[1:])]
    _prepare()
