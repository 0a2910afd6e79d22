"""prepare(cfg): find the clips and grades, run the clips in worker processes, write the report and sheets.

The output folder holds the dataset (`<expression>/<patient>_<frame>/`), prepare_report.csv, the contact
sheets and a hidden `.prepare/` folder: the lock that refuses a second writer and one record per clip
(its fingerprint and outcome). A clip is redone when its fingerprint (video content, settings, grade)
changed or a sample it wrote is gone; samples of clips no longer among the videos are removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from filelock import FileLock, Timeout
from tqdm import tqdm

from facedyn.assets import landmarker_bundle, sha256_of
from facedyn.utils.io import atomic_write_json
from facedyn.videos.clip import RECORDS_DIR, TIMED_STEPS, ClipJob, ClipOutcome, process_clip, record_path
from facedyn.videos.workers import init_worker
from facedyn.videos.config import PrepareConfig, as_config
from facedyn.videos.discovery import Clip, ExpressionNames, clip_key, find_clips
from facedyn.videos.errors import PrepareError
from facedyn.videos.grades import Grade, read_grades
from facedyn.videos.report import apex_measurements, write_contact_sheets, write_report

log = logging.getLogger("facedyn")
PIPELINE_VERSION = 2  # bump when the samples written for the same clip and settings change
MARKER = "prepare.json"
WORKER_LOG = "workers.log"  # what MediaPipe and FFmpeg print in the workers


@dataclass
class PrepareSummary:
    out: Path
    report: Path
    layout: str  # the videos folder layout used
    outcomes: list[ClipOutcome]  # every clip, prepared now or reused, ok or skipped
    contact_sheets: list[Path]
    grades_without_video: list[tuple[str, str]]  # (patient, expression)
    prepared: int = 0  # clips processed in this run (ok or skipped)
    reused: int = 0  # clips whose earlier result still held
    frames: int = 0  # frames decoded in this run
    seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)  # summed over clips and workers

    @property
    def ok(self) -> list[ClipOutcome]:
        return [o for o in self.outcomes if o.status == "ok"]

    @property
    def skipped(self) -> list[ClipOutcome]:
        return [o for o in self.outcomes if o.status != "ok"]

    @property
    def samples(self) -> int:
        return sum(len(o.samples) for o in self.outcomes)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise PrepareError(f"out={out} is a file; give a folder for the dataset")
    if out.is_dir() and any(out.iterdir()) and not (out / RECORDS_DIR / MARKER).is_file():
        raise PrepareError(f"out={out} is not empty and holds no earlier prepare.py output; "
                           f"choose a new or empty folder")


def _settings(cfg: PrepareConfig, bundle: Path) -> dict[str, Any]:
    """Every setting that shapes a clip's samples, with the landmarker bundle's content hash."""
    landmarker = asdict(cfg.landmarker)
    landmarker.pop("path")
    return {"version": PIPELINE_VERSION, "selection": asdict(cfg.selection), "flow": asdict(cfg.flow),
            "landmarker": landmarker, "quality": asdict(cfg.quality), "bundle": sha256_of(bundle)}


def _fingerprint(clip: Clip, labels: Optional[dict], settings: dict[str, Any]) -> str:
    text = json.dumps({"video": sha256_of(clip.path), "relative": clip.relative, "patient": clip.patient,
                       "expression": clip.expression, "labels": labels, "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _clip_samples(out: Path, expression: str, patient: str) -> list[Path]:
    folder = out / expression
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir()
            if p.name.rpartition("_")[0] == patient and p.name.rpartition("_")[2].isdigit() and p.is_dir()]


def _forget(out: Path, expression: str, patient: str) -> None:
    """Remove a clip's samples, record and contact-sheet tile (before redoing it, or when it is gone)."""
    for sample in _clip_samples(out, expression, patient):
        shutil.rmtree(sample)
    for suffix in (".json", ".png"):
        record_path(out, expression, patient, suffix).unlink(missing_ok=True)


def _reusable(out: Path, clip: Clip, fingerprint: str) -> Optional[ClipOutcome]:
    path = record_path(out, clip.expression, clip.patient)
    try:
        record = json.loads(path.read_text())
        outcome = ClipOutcome(**record)
    except (OSError, ValueError, TypeError):
        return None
    if outcome.fingerprint != fingerprint:
        return None
    if outcome.status == "ok" and not (all((out / s).is_dir() for s in outcome.samples)
                                       and record_path(out, clip.expression, clip.patient, ".png").is_file()):
        return None
    return outcome


def _remove_leftovers(out: Path, clips: list[Clip]) -> None:
    """Half-written samples of a killed run, and the results of clips no longer among the videos."""
    for tmp in out.glob("*/.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    current = {(c.expression, c.patient) for c in clips}
    gone = [(p.parent.name, p.stem) for p in (out / RECORDS_DIR / "clips").glob("*/*.json")
            if (p.parent.name, p.stem) not in current]
    for expression, patient in gone:
        _forget(out, expression, patient)
    if gone:
        log.info("removed the samples of %d clip(s) no longer among the videos", len(gone))


def _skipped(clip: Clip, reason: str) -> ClipOutcome:
    return ClipOutcome(clip.relative, clip.patient, clip.expression or clip.given_expression, "skipped", reason)


def _plan(cfg: PrepareConfig, out: Path, clips: list[Clip], grades: dict[tuple[str, str], Grade],
          bundle: Path) -> tuple[list[ClipJob], list[ClipOutcome], int]:
    """The clips to process, the outcomes already known (unmapped, duplicates, reused), and how many reused."""
    settings = _settings(cfg, bundle)
    jobs, known, reused = [], [], 0
    graded = {clip_key(*key): grade for key, grade in grades.items()}
    first_of: dict[tuple[str, Optional[str]], Clip] = {}
    for clip in clips:
        if clip.expression is None:
            known.append(_skipped(clip, f"expression name {clip.given_expression!r} is not in the expressions "
                                        f"mapping (add it: expressions.<expression>=[...])"))
            continue
        key = clip_key(clip.patient, clip.expression)
        if key in first_of:
            known.append(_skipped(clip, f"another clip of {clip.patient} {clip.expression}: {first_of[key].relative}"))
            continue
        first_of[key] = clip
        labels = graded[key].labels() if key in graded else None
        fingerprint = _fingerprint(clip, labels, settings)
        outcome = _reusable(out, clip, fingerprint)
        if outcome is not None:
            known.append(outcome)
            reused += 1
            continue
        _forget(out, clip.expression, clip.patient)
        jobs.append(ClipJob(str(clip.path), clip.relative, clip.patient, clip.expression, labels, str(out),
                            str(bundle), fingerprint, cfg))
    return jobs, known, reused


def _outcome(future: Future, job: ClipJob) -> ClipOutcome:
    try:
        return future.result()
    except BrokenProcessPool:
        raise PrepareError(f"a worker process died while preparing {job.relative} (or another clip); "
                           f"finished clips are kept: rerun to go on") from None
    except OSError as exc:
        raise PrepareError(f"{job.relative}: writing its samples failed ({exc}); finished clips are kept") from None
    except Exception as exc:  # a codec or library failing on one file must not stop the others
        log.error("%s failed: %s: %s", job.relative, type(exc).__name__, exc)
        _forget(Path(job.out), job.expression, job.patient)
        message = (str(exc).splitlines() or ["no message"])[0][:200]
        return ClipOutcome(job.relative, job.patient, job.expression, "skipped",
                           f"failed: {type(exc).__name__}: {message}")


def _run(jobs: list[ClipJob], cfg: PrepareConfig, log_file: Path) -> list[ClipOutcome]:
    if not jobs:
        return []
    workers = min(cfg.workers or os.cpu_count() or 1, len(jobs))
    # Biggest clips first, so that no worker is left with a long one at the end.
    jobs = sorted(jobs, key=lambda job: -os.path.getsize(job.video))
    outcomes = []
    # spawn: MediaPipe must never share a process with torch (see landmarker.py), and the caller may hold it.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                             initargs=(1 if workers > 1 else -1, str(log_file))) as pool, \
            tqdm(total=len(jobs), desc="clips", unit="clip", disable=not (cfg.progress and sys.stderr.isatty())) as bar:
        futures = {pool.submit(process_clip, job): job for job in jobs}
        try:
            for future in as_completed(futures):
                outcomes.append(_outcome(future, futures[future]))
                bar.update()
        except BaseException:  # Ctrl-C or a dead worker: queued clips are dropped, not run to the end
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return outcomes


def prepare(cfg: Any) -> PrepareSummary:
    """Prepare every clip of cfg.videos into cfg.out (see the package docstring)."""
    started = time.perf_counter()
    cfg = as_config(cfg)
    out = Path(cfg.out).expanduser().resolve()
    clips, layout = find_clips(cfg.videos, cfg.layout, cfg.expressions, cfg.extensions)
    grades = read_grades(cfg.grades, cfg.grade_columns, ExpressionNames(cfg.expressions)) if cfg.grades else {}
    _check_out(out)
    bundle = landmarker_bundle(cfg.landmarker.path)
    try:
        (out / RECORDS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrepareError(f"out={out}: cannot create the dataset folder there ({exc.strerror or exc}); "
                           f"choose a folder you can write to") from None
    lock = FileLock(str(out / RECORDS_DIR / "lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise PrepareError(f"out={out}: another prepare.py is writing there; "
                           f"wait for it or choose another folder") from None
    try:
        atomic_write_json(out / RECORDS_DIR / MARKER, {"pipeline_version": PIPELINE_VERSION})
        _remove_leftovers(out, clips)
        jobs, outcomes, reused = _plan(cfg, out, clips, grades, bundle)
        log.info("%d clip(s) under %s (%s); %d to prepare, %d unchanged", len(clips), cfg.videos, layout,
                 len(jobs), reused)
        done = _run(jobs, cfg, out / RECORDS_DIR / WORKER_LOG)
        outcomes += done
        present = {clip_key(o.patient, o.expression) for o in outcomes}
        without_video = {key: grade for key, grade in grades.items() if clip_key(*key) not in present}
        measured = apex_measurements(out, outcomes)
        report = write_report(out, outcomes, without_video, measured)
        sheets = write_contact_sheets(out, outcomes, grades, cfg.flow.max_magnitude, measured)
    finally:
        lock.release()
    steps = {step: round(sum(o.seconds.get(step, 0.0) for o in done), 3) for step in TIMED_STEPS}
    return PrepareSummary(out, report, layout, sorted(outcomes, key=lambda o: (o.expression, o.patient, o.relative)),
                          sheets, sorted(without_video), len(done), reused, sum(o.frames_read for o in done),
                          round(time.perf_counter() - started, 3), steps)
