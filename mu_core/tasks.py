"""Tasks: the units of work an executor runs, each in whatever process it lands in.

``train_one`` trains (or finds) one trained model; ``run_jobs`` runs a group of unlearning jobs
of one trained model. Both ask the profile's engine (``domains.engine``) for a ``worker``, which
applies the per-process settings (``jobs.setup``), and share finished work only through the run
folder's store, under per-item locks, so any executor (this process, a dask cluster) and any
interruption give the same stored results.
"""
from __future__ import annotations

import os

from . import domains, store


def train_one(prof: dict, run_dir: str, tspec: dict) -> int:
    """Task: train (or find) one trained model. Returns 1 if it was trained now."""
    return int(domains.engine(prof).worker(prof, run_dir, tspec)[0])


def run_jobs(prof: dict, run_dir: str, tspec: dict, jobs: list[dict], *, after=None, bar=None) -> dict:
    """Task: run unlearning jobs of one trained model (training it first if needed).

    Each job is computed under its own lock and stored atomically; a job whose result is
    already stored is skipped. ``after`` only orders tasks (an unlearning task waits for its
    model's training task); ``bar``: a progress bar advanced per job. Returns the counts of
    what was computed here.
    """
    trained, compute = domains.engine(prof).worker(prof, run_dir, tspec, show_epochs=bar is not None)
    done = 0
    for job in jobs:
        if store.stored_result(run_dir, job["key"]) is None:
            with store.Lock(os.path.join(run_dir, "locks", job["key"])):
                if store.stored_result(run_dir, job["key"], quiet=True) is None:
                    store.save_json(store.job_path(run_dir, job["key"]), compute(job), job["key"])
                    done += 1
        if bar is not None:
            bar.update(1)
    return {"trained": int(trained), "jobs": done}
