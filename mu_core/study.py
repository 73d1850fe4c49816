"""The study: a profile's designs run into a run folder, and a finished run opened again.

``run`` plans the jobs (``plan``), has an executor run them (``tasks``, in this process or on a
dask cluster), then assembles ``results.csv`` from the store and writes ``manifest.json``.
``open_run`` is how notebooks read a run: its table, the profile it recorded, its training
costs, its figures folder and a provenance line.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import data as D
from . import metrics, plan, profiles, store, tasks
from .errors import ConfigError

EXECUTORS = ("auto", "local", "dask")


def check_executor(executor, scheduler) -> None:
    if executor not in EXECUTORS:
        raise ConfigError(f"executor {executor!r} is unknown; allowed: {', '.join(EXECUTORS)}")
    if scheduler is not None and effective_executor(executor) != "dask":
        raise ConfigError(f"scheduler {scheduler!r} needs the dask executor (executor=dask); "
                          f"executor {executor!r} runs in this process")


def effective_executor(executor: str) -> str:
    """'auto': dask (a LocalCluster, one single-threaded worker per core) on more than one core,
    else local."""
    if executor == "auto":
        return "dask" if (os.cpu_count() or 1) > 1 else "local"
    return executor


def prepare(profile, run_dir: str, overrides=(), executor: str = "auto", scheduler: str | None = None) -> dict:
    """Validate everything a run needs, then claim ``run_dir``: the resolved profile.

    A profile name and overrides, or a resolved profile (then ``overrides`` must be empty: they
    would be silently dropped). The data are loaded once here, so a missing CIFAR folder stops
    the run before the folder is claimed; stale temporary files of killed runs are swept.
    """
    if isinstance(profile, dict):
        if profiles.parse_overrides(overrides):
            raise ConfigError("overrides were given with an already resolved profile; apply them "
                              "with profiles.load(name, overrides) or pass the profile's name")
        prof = profile
        profiles.validate(prof)
    else:
        prof = profiles.load(profile, overrides)
    check_executor(executor, scheduler)
    tasks.resolve_device(prof["device"])
    D.load(prof["data"])
    store.claim(run_dir, prof["profile"])
    store.sweep(run_dir)
    return prof


@dataclass(frozen=True)
class Finished:
    """What a run produced: the results table, what was computed now, where it was written."""
    table: pd.DataFrame
    computed: dict   # {"trained": original models trained now, "jobs": unlearning jobs run now}
    path: str        # the results.csv written


def _execute(prof, run_dir, executor, scheduler, tspecs, groups, bar=None) -> dict:
    if effective_executor(executor) == "dask":
        from . import dask_executor
        return dask_executor.execute(prof, run_dir, tspecs, groups, scheduler, bar)
    counts = {"trained": 0, "jobs": 0}
    for tkey, jobs in groups.items():
        c = tasks.run_jobs(prof, run_dir, tspecs[tkey], jobs, bar=bar)
        counts = {k: counts[k] + c[k] for k in counts}
    return counts


def pending(groups: dict, stored: dict) -> dict:
    """The jobs of ``groups`` without a result in ``stored`` (job key -> result or None), by
    original model; a group with none left is dropped (its model is not even loaded), so a
    finished run starts no worker at all."""
    left = {tkey: [j for j in jobs if stored[j["key"]] is None] for tkey, jobs in groups.items()}
    return {tkey: jobs for tkey, jobs in left.items() if jobs}


def run(profile: str | dict, run_dir: str, overrides=(), executor: str = "auto",
        scheduler: str | None = None, progress: bool = True) -> Finished:
    """Run a profile's designs into ``run_dir``: write ``results.csv`` and the manifest."""
    prof = prepare(profile, run_dir, overrides, executor, scheduler)
    t0 = time.time()
    rows, tspecs, groups = plan.schedule(prof)
    stored = {j["key"]: tasks.stored_result(run_dir, j["key"], quiet=True) for jobs in groups.values() for j in jobs}
    todo = pending(groups, stored)
    n_jobs, n_todo = sum(len(g) for g in groups.values()), sum(len(g) for g in todo.values())
    bar = tqdm(total=n_jobs, initial=n_jobs - n_todo, desc="unlearning jobs", disable=not progress)
    counts = {"trained": 0, "jobs": 0}
    if todo:
        counts = _execute(prof, run_dir, executor, scheduler, tspecs, todo, bar if progress else None)
    bar.close()
    t1 = time.time()
    table = assemble(run_dir, rows, {k: v for k, v in stored.items() if v is not None})
    write_manifest(prof, run_dir, {"experiments": t1 - t0, "assemble": time.time() - t1}, counts,
                   effective_executor(executor), len(tspecs))
    return Finished(table, counts, os.path.join(run_dir, "results.csv"))


def train_all(profile: str | dict, run_dir: str, overrides=(), progress: bool = True,
              executor: str = "auto", scheduler: str | None = None) -> pd.DataFrame:
    """Stage 1: train (or load) every original model the designs need; their test accuracy."""
    prof = prepare(profile, run_dir, overrides, executor, scheduler)
    _, tspecs, _ = plan.schedule(prof)
    untrained = {k: [] for k in tspecs if not os.path.exists(tasks.model_path(run_dir, k))}
    if untrained and effective_executor(executor) == "dask":  # train in parallel; the loop below then loads
        _execute(prof, run_dir, executor, scheduler, tspecs, untrained)
    device, data = tasks.context(prof)
    out = []
    for ts in tqdm(tspecs.values(), desc="original models", disable=not progress):
        model, trained = tasks.original_model(ts, run_dir, data, device, show_epochs=progress)
        _, y_test = D.labels(data, ts["dataset"])
        acc = metrics.accuracy(metrics.logits(model, data.test_x, data), y_test, prof["mode"])
        info = store.load_json(tasks.model_path(run_dir, ts["key"])[:-3] + ".json", ts["key"]) or {}
        out.append(dict(dataset=ts["dataset"], train_seed=ts["train_seed"], test_acc=acc,
                        train_seconds=info.get("train_seconds"), trained_now=trained))
    return pd.DataFrame(out).sort_values(["dataset", "train_seed"]).reset_index(drop=True)


def assemble(run_dir: str, rows: list[dict], known: dict | None = None) -> pd.DataFrame:
    """results.csv from the stored jobs, one row per evaluated model, sorted, written atomically.
    ``known``: results already read, by job key; every other job is read once here (a
    deterministic method's result serves all its rows)."""
    known, out = dict(known or {}), []
    for r in rows:
        if r["job"] not in known:
            known[r["job"]] = tasks.stored_result(run_dir, r["job"])
        res = known[r["job"]]
        if res is None:
            raise RuntimeError(f"job {r['job']} has no stored result; rerun to complete the grid")
        out.append({**{k: v for k, v in r.items() if k != "job"}, **res})
    table = pd.DataFrame(out, columns=plan.COLUMNS)
    table = table.sort_values(plan.COLUMNS[:9], kind="stable").reset_index(drop=True)
    store.atomic_write(os.path.join(run_dir, "results.csv"), table.to_csv(index=False, float_format="%.6g").encode())
    return table


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(__file__), timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_manifest(prof, run_dir, seconds, counts, executor, n_models):
    from importlib.metadata import version  # installed versions without importing torchvision
                                            # and scikit-learn (1.5 s each; a classroom run imports neither)
    import numpy
    device = tasks.resolve_device(prof["device"])
    manifest = {
        "profile": prof,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "torchvision": version("torchvision"), "numpy": numpy.__version__,
                     "scikit-learn": version("scikit-learn"), "pandas": pd.__version__},
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads_per_job": 1 if device.type == "cpu" else torch.get_num_threads(),
        "determinism": {
            "deterministic_option": bool(prof.get("deterministic")),
            "cpu": "bit-identical across runs, executors and interruptions (single-threaded jobs)",
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        },
        "git_commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "executor": executor,
        "original_models": n_models,
        "computed_this_run": counts,
        "wall_seconds": seconds,
    }
    store.atomic_write(os.path.join(run_dir, "manifest.json"), json.dumps(manifest, indent=2, default=str).encode())


# --- reading a finished run ----------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """A finished run, as notebooks and analyses read it."""
    run_dir: str
    table: pd.DataFrame
    profile: dict          # the resolved profile the run recorded
    manifest: dict
    train_seconds: list    # training time of each original model, read through its checksum
    figures: str           # where figures are saved

    @property
    def provenance(self) -> str:
        """One line: profile, mode, commit, versions, device, date, run folder."""
        m, v = self.manifest, self.manifest.get("versions", {})
        commit = (m.get("git_commit") or "unknown")[:10]
        return (f"profile {self.profile['profile']}, mode {self.profile['mode']}, commit {commit}, "
                f"torch {v.get('torch')}, numpy {v.get('numpy')}, scikit-learn {v.get('scikit-learn')}, "
                f"device {m.get('device')}, run {m.get('date', 'undated')}, folder {self.run_dir}")


_NOT_COMPARED = ("description", "profile")


def open_run(run_dir: str, profile: str | None = None, overrides=()) -> Run:
    """Open a finished run. ``profile`` and ``overrides``, when given, must be what the run
    recorded: a figure drawn from results that do not reflect them would mislabel itself."""
    path = os.path.join(run_dir, "results.csv")
    mpath = os.path.join(run_dir, "manifest.json")
    if not (os.path.exists(path) and os.path.exists(mpath)):
        raise ConfigError(f"run_dir {run_dir!r} has no finished run (results.csv and manifest.json); "
                          f"run stages 1 and 2 (or python -m mu_core run) into it first")
    with open(mpath) as f:
        manifest = json.load(f)
    recorded = manifest["profile"]
    if profile is not None and profile != recorded["profile"]:
        raise ConfigError(f"run_dir {run_dir!r} holds a run of profile {recorded['profile']!r}, not {profile!r}")
    if profiles.parse_overrides(overrides):
        wanted = profiles.load(profile or recorded["profile"], overrides)
        differ = sorted(k for k in set(wanted) | set(recorded) if k not in _NOT_COMPARED
                        and wanted.get(k) != recorded.get(k))
        if differ:
            raise ConfigError(f"overrides {overrides!r} are not reflected in the results of {run_dir!r} "
                              f"(they change {', '.join(differ)}); run stage 2 with them into another "
                              f"run_dir and draw from that one")
    table = pd.read_csv(path, dtype={"target": str})
    models_dir = os.path.join(run_dir, "models")
    seconds = []
    for name in sorted(os.listdir(models_dir)) if os.path.isdir(models_dir) else []:
        if name.endswith(".json") and not name.startswith(store.TMP):
            info = store.load_json(os.path.join(models_dir, name), name[:-5])
            if info is not None:
                seconds.append(info["train_seconds"])
    return Run(run_dir, table, recorded, manifest, seconds, os.path.join(run_dir, "figures"))


GPU_IMAGES_PER_SECOND = 6000  # the rate cost projections use, and where it was measured:
GPU_RATE_SOURCE = ("train.fit on one NVIDIA H100 (ResNet-18, CIFAR-100-shaped data, batch 64, fp32, torch 2.11), "
                   "measured on 2026-11-23 for issue 12, before each epoch's draws moved to its start; "
                   "benchmarks/gpu.py (make bench-gpu) measures it again on any GPU")


def corrected_counterpart(reference: Run, run_dir: str, n_targets: int = 1, executor: str = "auto",
                          scheduler: str | None = None):
    """(table, note) of the corrected-mode paper design beside a reference run.

    An existing finished corrected run in ``run_dir`` (the documented ``paper-corrected`` run,
    say) is used as it is. Otherwise a CPU-sized profile is run now, for the first ``n_targets``
    targets of each setting; a GPU-sized one (ResNet-18) is not started inside a book build:
    the table is None and the note says which command makes it and what it would cost.
    """
    if os.path.exists(os.path.join(run_dir, "results.csv")) and os.path.exists(os.path.join(run_dir, "manifest.json")):
        other = open_run(run_dir)
        if other.profile["mode"] != "corrected":
            raise ConfigError(f"corrected_run_dir {run_dir!r} holds a {other.profile['mode']}-mode run; "
                              f"choose the folder of a corrected-mode run")
        return other.table, f"the corrected run in {run_dir} ({other.provenance})"
    prof = {**reference.profile, "mode": "corrected", "designs": ["paper"],
            "targets": {k: v[:n_targets] for k, v in reference.profile["targets"].items()}}
    if prof["model"]["arch"] == "resnet18":
        hours = plan.training_images(prof, D.CIFAR_SIZES) / GPU_IMAGES_PER_SECOND / 3600
        name = "paper-corrected" if prof["profile"] == "paper" else prof["profile"]
        return None, (f"no corrected run in {run_dir}; not started here (about {hours:.0f} GPU-hours projected at "
                      f"{GPU_IMAGES_PER_SECOND:,} training images/s): make it with python -m mu_core run "
                      f"--profile {name} --run-dir {run_dir}")
    return run(prof, run_dir, executor=executor, scheduler=scheduler).table, f"a corrected-mode rerun in {run_dir}"
