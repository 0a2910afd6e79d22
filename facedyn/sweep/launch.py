"""Where a sweep's worker processes run: here (`sweep.launcher=local`) or as jobs of Hydra's submitit launcher
(`slurm` on a cluster, `submitit_local` for its local executor). Every worker runs the sweep's own loop
(facedyn.sweep.runner.run) on the shared study; the storage decides who trains what.

- local: `sweep.workers` processes (default: `sweep.workers_per_device` per GPU, or that many on the CPU);
  worker i sees GPU i // workers_per_device only, and its torch threads (OMP_NUM_THREADS) are this machine's
  cores divided among the workers, so K workers do not oversubscribe the CPU. A single worker runs in this
  process.
- slurm / submitit_local: `sweep.workers` jobs, each with the settings of facedyn/conf/hydra/launcher/
  <launcher>.yaml (the file `python train.py -m hydra/launcher=<launcher>` uses) updated by
  `sweep.launcher_params`; inside its job, each runs the local launcher (workers_per_device per GPU it got).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from facedyn.conf import CONF_DIR
from facedyn.sweep.config import SweepConfigError

log = logging.getLogger(__name__)

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# Keys of the submitit launcher's config that belong to Hydra, not to the executor.
HYDRA_ONLY_KEYS = ("defaults", "_target_", "submitit_folder", "name")
# Executor keys without the executor's prefix (the launcher plugin's BaseQueueConf).
BASE_KEYS = ("timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes",
             "stderr_to_stdout")


def devices() -> int:
    """GPUs this process may use; 0 on a CPU-only machine."""
    import torch

    return torch.cuda.device_count()


def local_workers(cfg: DictConfig) -> int:
    """How many worker processes the local launcher starts."""
    if cfg.workers is not None:
        return int(cfg.workers)
    return int(cfg.workers_per_device) * max(devices(), 1)


def threads_per_worker(workers: int) -> int:
    """Torch threads for each of `workers` processes on this machine: its cores shared out, at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)


def worker_argv(argv: Sequence[str], **sweep_keys: Any) -> list[str]:
    """The command line of one worker: the user's, with the launch keys replaced."""
    kept = [a for a in argv if a.partition("=")[0] not in {f"sweep.{k}" for k in sweep_keys}]
    return kept + [f"sweep.{key}={value}" for key, value in sweep_keys.items()]


def start_local(cfg: DictConfig, argv: Sequence[str]) -> list[subprocess.Popen]:
    """Start the local workers as processes of their own, each with its share of the cores (and its GPU),
    all alike; returns them. With one worker, nothing is started: the caller runs the loop itself."""
    workers = local_workers(cfg)
    if workers == 1:
        return []
    threads = threads_per_worker(workers)
    gpus = devices()
    processes = []
    for index in range(workers):
        env = {**os.environ, **{name: str(threads) for name in THREAD_VARIABLES}}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(index // int(cfg.workers_per_device) % gpus)
        command = [sys.executable, "-m", "facedyn.cli.sweep", *worker_argv(argv, workers=1)]
        processes.append(subprocess.Popen(command, env=env))
    log.info("%d sweep workers on this machine, %d torch threads each", workers, threads)
    return processes


def wait_local(processes: list[subprocess.Popen]) -> list[int]:
    """Exit codes of the other local workers; an interrupt of this one is passed on to them."""
    try:
        return [p.wait() for p in processes]
    except BaseException:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in processes:
            p.wait()
        raise


def executor_params(cfg: DictConfig) -> tuple[str, dict[str, Any]]:
    """The submitit executor's name and parameters for `sweep.launcher`: facedyn/conf/hydra/launcher/<name>.yaml
    (when there is one) updated by sweep.launcher_params, named as the launcher plugin names them."""
    cluster = "slurm" if cfg.launcher == "slurm" else "local"
    path = CONF_DIR / "hydra" / "launcher" / f"{cfg.launcher}.yaml"
    settings = OmegaConf.load(path) if path.is_file() else OmegaConf.create()
    settings = OmegaConf.to_container(OmegaConf.merge(settings, cfg.launcher_params))
    params = {}
    for key, value in settings.items():
        if key in HYDRA_ONLY_KEYS or value is None:
            continue
        if key == "array_parallelism" or key not in BASE_KEYS:
            if cluster != "slurm":
                raise SweepConfigError(f"sweep.launcher_params.{key}: a setting of the slurm launcher only")
            key = f"slurm_{key}"
        params[key] = value
    return cluster, params


SUBMITIT_LAUNCHERS = ("slurm", "submitit_slurm", "submitit_local")


def hydra_launcher_problem(argv: Sequence[str]) -> str | None:
    """For train.py: a `hydra/launcher=` of the submitit plugin when the plugin is not installed, in words."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") == "hydra/launcher" and value in SUBMITIT_LAUNCHERS:
            try:
                import hydra_plugins.hydra_submitit_launcher  # noqa: F401
            except ImportError:
                return f"{arg} needs Hydra's submitit launcher: pip install hydra-submitit-launcher"
    return None


def check_launcher(cfg: DictConfig) -> None:
    """A launcher whose plugin is not installed, or settings it does not take: one line, before anything runs."""
    if cfg.launcher == "local":
        return
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise SweepConfigError(f"sweep.launcher={cfg.launcher} needs Hydra's submitit launcher: "
                               "pip install hydra-submitit-launcher") from None
    executor_params(cfg)


def submit(cfg: DictConfig, argv: Sequence[str], folder: Path, job: Callable[[list[str]], Any]) -> list[Any]:
    """Submit `sweep.workers` jobs through submitit, each calling job(<its command line>); returns the jobs."""
    import submitit

    cluster, params = executor_params(cfg)
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
    executor.update_parameters(name=f"sweep-{cfg.study_name}", **params)
    command = worker_argv(argv, launcher="local", workers="null")
    jobs = executor.map_array(job, [command] * int(cfg.workers or 1))
    log.info("submitted %d sweep workers (%s): %s; logs in %s", len(jobs), cluster,
             ", ".join(str(j.job_id) for j in jobs), folder)
    return jobs

