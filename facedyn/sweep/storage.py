"""Where a sweep's studies live, and how trials of processes that died are failed and retried.

A sweep keeps its studies in one database: by default a SQLite file in the sweep's folder, or any URL
(postgresql://...) that several machines reach. A killed trial stays RUNNING in the database; it is failed
and enqueued again (same parameters) by whichever process notices first:
- on this host, at once: a RUNNING trial whose recorded pid is gone;
- on any host, after `grace_period`: a RUNNING trial whose heartbeat stopped (optuna's heartbeat).
"""

from __future__ import annotations

import copy
import logging
import os
import random
import socket
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from omegaconf import DictConfig

from facedyn.runs import owner_alive, write_status
from facedyn.sweep.config import SweepConfigError

log = logging.getLogger(__name__)

DB_FILE = "study.db"
HOST_ATTR = "host"
PID_ATTR = "pid"
RUN_DIR_ATTR = "run_dir"
SQLITE_LOCK_TIMEOUT_S = 60
STORAGE_ATTEMPTS = 5


def storage_url(cfg: DictConfig, sweep_dir: Path) -> str:
    """The configured database URL, or a SQLite file in the sweep's folder."""
    if cfg.storage:
        return str(cfg.storage)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(sweep_dir / DB_FILE).resolve()}"


def open_storage(cfg: DictConfig, url: str) -> RDBStorage:
    """The RDB storage with heartbeats on; a stale trial is retried up to `max_retry` times. A database that
    cannot work (no driver, no server, a damaged file) is a SweepConfigError naming it, before any training."""
    check_database(url)
    for _ in range(STORAGE_ATTEMPTS - 1):
        try:
            return _rdb_storage(cfg, url)
        except sqlalchemy.exc.SQLAlchemyError:
            # Processes that start together race to create the tables of a new database; the loser
            # finds them made on its next try.
            time.sleep(1.0 + random.random())
    return _rdb_storage(cfg, url)


def shown_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def check_database(url: str) -> None:
    """Connect once and list the tables: a missing driver, an unreachable server or a damaged SQLite file
    becomes one line naming sweep.storage."""
    where = f"sweep.storage={shown_url(url)}"
    try:
        engine = sqlalchemy.create_engine(url)
    except ModuleNotFoundError as exc:  # the dialect's driver package
        raise SweepConfigError(f"{where}: its database driver is not installed ({exc}); for PostgreSQL: "
                               "pip install 'psycopg[binary]' and write postgresql+psycopg://...") from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise SweepConfigError(f"{where}: not a database URL SQLAlchemy knows ({exc})") from None
    try:
        with engine.connect() as connection:
            sqlalchemy.inspect(connection).get_table_names()
    except sqlalchemy.exc.OperationalError as exc:
        raise SweepConfigError(f"{where}: cannot reach the database: {_first_line(exc.orig or exc)}") from None
    except sqlalchemy.exc.DatabaseError as exc:
        raise SweepConfigError(f"{where}: the database is damaged ({_first_line(exc.orig or exc)}); move it "
                               "away and rebuild the study from its trial folders with sweep.recover=true") from None
    finally:
        engine.dispose()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _rdb_storage(cfg: DictConfig, url: str) -> RDBStorage:
    engine_kwargs = {"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT_S}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=int(cfg.heartbeat_interval),
            grace_period=int(cfg.grace_period),
            heartbeat_stale_trial_callback=_retry(int(cfg.max_retry)),
        )


def _retry(max_retry: int):
    """Enqueue a failed trial again with its params; the copy drops the dead owner's host and pid, so no
    process mistakes the retry, once running, for the dead trial."""
    enqueue = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        for key in (HOST_ATTR, PID_ATTR, RUN_DIR_ATTR):
            trial.user_attrs.pop(key, None)
        enqueue(study, trial)

    return retry


def this_process() -> dict[str, object]:
    """User attributes that tell which process runs a trial."""
    return {HOST_ATTR: socket.gethostname(), PID_ATTR: os.getpid()}


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail (and enqueue again) RUNNING trials of processes on this host that are gone; heartbeat-stale
    trials of any host too. Returns the numbers of the trials this call failed."""
    failed = _fail_trials_of_dead_processes(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
        optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    for number in sorted(after - before):
        _mark_interrupted(study.trials[number])
    return failed + sorted(after - before)


def _fail_trials_of_dead_processes(study: optuna.Study) -> list[int]:
    host = socket.gethostname()
    storage = study._storage
    retry = storage.get_heartbeat_stale_trial_callback()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get(PID_ATTR)
        if trial.user_attrs.get(HOST_ATTR) != host:
            continue  # another machine's trial (or one without a host): only its heartbeat can tell
        if pid != os.getpid() and owner_alive(pid, host):
            continue  # alive, or no pid (our own pid: a leftover of a reused pid, as this process runs no trial)
        try:
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # another process got there first (or the trial just ended)
        log.warning("trial %d of %s: its process %s is gone; failed and queued again",
                    trial.number, study.study_name, trial.user_attrs.get(PID_ATTR))
        failed.append(trial.number)
        frozen = copy.deepcopy(storage.get_trial(trial._trial_id))
        _mark_interrupted(frozen)
        if retry is not None:
            retry(study, frozen)
    return failed


def _mark_interrupted(trial: optuna.trial.FrozenTrial) -> None:
    run_dir = trial.user_attrs.get(RUN_DIR_ATTR)
    if run_dir and Path(run_dir).is_dir():
        write_status(Path(run_dir), status="interrupted", error="the sweep process running this trial died")
