"""The dask executor: the run's tasks on a ``dask.distributed`` cluster.

Without a scheduler address a ``LocalCluster`` is started (one single-threaded worker process
per core); with one, any running scheduler is used: a SLURM or PBS cluster through
``dask-jobqueue``, or ``dask scheduler`` / ``dask worker`` started by hand. Every worker must
see the run folder: tasks share finished work only through its store, under per-item locks.

One training task per original model; its unlearning jobs are split into tasks that depend
on it, so no unlearning task starts before its model exists. On a GPU every task asks for the
worker resource ``GPU=1`` (start GPU workers with ``--resources GPU=1``).
"""
from __future__ import annotations

import os

from . import plan, tasks
from .jobs import resolve_device
from .errors import ConfigError


CONNECT_TIMEOUT = "20s"  # how long a scheduler address is tried before the run is refused


def _connect(scheduler):
    from distributed import Client
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as err:
        raise ConfigError(f"scheduler {scheduler!r} cannot be reached ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else 'no answer'})") from None


def check_scheduler(scheduler) -> None:
    """Contact ``scheduler`` once (before a run claims its folder); one line when it cannot be reached."""
    _connect(scheduler).close()


def execute(prof, run_dir, tspecs, groups, scheduler=None, bar=None, n_workers=None) -> dict:
    """Run every group (one original model and its jobs) on the cluster; the counts computed."""
    from distributed import Client, LocalCluster, as_completed
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        client = _connect(scheduler)
    gpu = resolve_device(prof["device"]).type == "cuda"
    kw = {"resources": {"GPU": 1}} if gpu else {}
    counts = {"trained": 0, "jobs": 0}
    try:
        sizes, futures = {}, []
        for tkey, jobs in groups.items():
            t = client.submit(tasks.train_one, prof, run_dir, tspecs[tkey], pure=False, **kw)
            futures.append(t)
            for part in plan.chunks(jobs):
                f = client.submit(tasks.run_jobs, prof, run_dir, tspecs[tkey], part, after=t, pure=False, **kw)
                sizes[f.key] = len(part)
                futures.append(f)
        for fut in as_completed(futures):
            res = fut.result()
            if isinstance(res, dict):
                counts["jobs"] += res["jobs"]
                if bar is not None:
                    bar.update(sizes[fut.key])
            else:
                counts["trained"] += res
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return counts
