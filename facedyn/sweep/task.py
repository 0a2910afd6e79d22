"""The sweep as a task function: check everything (config, storage), run the workers where sweep.launcher
says, write the report. The command line (facedyn.cli.sweep) and every submitted worker job call `run`;
failures are exceptions (SweepConfigError, SweepError, SweepInterrupted), never exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from facedyn.sweep import launch, runner
from facedyn.sweep.config import split_args
from facedyn.sweep.report import write_report
from facedyn.sweep.trial import SweepError


def run(argv: Sequence[str]) -> Path:
    """Run the sweep the arguments describe (sweep.* keys and training overrides); its folder."""
    argv = list(argv)
    args = split_args(argv)
    cfg = args.sweep
    launch.check_launcher(cfg)
    sweep = runner.prepare(cfg, args.train_overrides)
    if cfg.launcher == "local":
        workers = launch.start_local(cfg, argv)
        if not workers:
            return runner.run(sweep)
        failed = [code for code in launch.wait_local(workers) if code != 0]
        if failed:
            raise SweepError(f"{len(failed)} of the sweep's {len(workers)} worker processes failed (exit {failed}); "
                             "their messages are above")
    else:
        for job in launch.submit(cfg, argv, sweep.sweep_dir / "submitit", run_job):
            try:
                job.result()
            except Exception as exc:  # submitit's FailedJobError, with the job's traceback: point at its log
                raise SweepError(f"sweep worker job {job.job_id} failed ({type(exc).__name__}); its log: "
                                 f"{job.paths.stderr}") from None
    write_report(sweep)
    return sweep.sweep_dir


def run_job(argv: list[str]) -> str:
    """One submitted worker job: the sweep run here (a failure raises, and fails the job)."""
    return str(run(argv))
