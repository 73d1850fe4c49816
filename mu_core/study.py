"""The study: a profile's designs run into a run folder, and a finished run opened again.

``run`` plans the jobs (``plan``), has an executor run them (``tasks``, here or on dask), then
assembles ``results.csv`` from the store and writes ``manifest.json``. ``open_run`` is how notebooks
read a run: its table, recorded profile, training costs, figures folder and a provenance line.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import domains, plan, profiles, provenance, store, tasks
from .jobs import resolve_device
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


def prepare(profile, run_dir: str, overrides=(), executor: str = "auto", scheduler: str | None = None):
    """Validate everything a run needs, then claim ``run_dir``: (the resolved profile, its plan:
    ``plan.schedule``'s rows, model specs and jobs, made once here for the checks and the run).

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
    resolve_device(prof["device"])
    engine = domains.engine(prof)
    engine.load(prof["data"])  # a missing CIFAR folder or MQ2007 fold stops here, before the folder is claimed
    schedule = _, tspecs, groups = plan.schedule(prof)
    engine.check(prof, len(tspecs), sum(len(g) for g in groups.values()))  # what the data and the plan's size allow
    if scheduler is not None:  # an unreachable scheduler stops the run before the folder is claimed
        from . import dask_executor
        dask_executor.check_scheduler(scheduler)
    store.claim(run_dir, prof["profile"])
    store.sweep(run_dir)
    return prof, schedule


@dataclass(frozen=True)
class Finished:
    """What a run produced: the results table, what was computed now, where it was written."""
    table: pd.DataFrame
    computed: dict   # {"trained": original models trained now, "jobs": unlearning jobs run now}
    path: str        # the results.csv written
    failed: int = 0  # rows of jobs that failed (non-finite outputs): status 'failed: ...' and no metrics
    collapsed: int = 0  # rows of models at chance: status 'collapsed: ...', metrics kept and marked


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
    prof, (rows, tspecs, groups) = prepare(profile, run_dir, overrides, executor, scheduler)
    t0 = time.time()
    stored = {j["key"]: store.stored_result(run_dir, j["key"], quiet=True) for jobs in groups.values() for j in jobs}
    todo = pending(groups, stored)
    n_jobs, n_todo = sum(len(g) for g in groups.values()), sum(len(g) for g in todo.values())
    bar = tqdm(total=n_jobs, initial=n_jobs - n_todo, desc="unlearning jobs", disable=not progress)
    counts = {"trained": 0, "jobs": 0}
    if todo:
        counts = _execute(prof, run_dir, executor, scheduler, tspecs, todo, bar if progress else None)
    bar.close()
    t1 = time.time()
    table = assemble(run_dir, rows, {k: v for k, v in stored.items() if v is not None}, plan.columns(prof))
    domains.engine(prof).after_run(prof, run_dir, rows)  # U-LiRA's tables, for an image run with that design
    write_manifest(prof, run_dir, {"experiments": t1 - t0, "assemble": time.time() - t1}, counts,
                   effective_executor(executor), len(tspecs), table)
    failed = failures(table)
    if len(failed):
        print(failed_summary(failed), file=sys.stderr)
    return Finished(table, counts, os.path.join(run_dir, "results.csv"), int(failed.status.str.startswith("failed").sum()),
                    int(failed.status.str.startswith("collapsed").sum()))


def failures(table: pd.DataFrame) -> pd.DataFrame:
    """The rows whose job failed (their metrics are empty) or whose model collapsed (metrics kept
    and marked): every row whose status is not ok."""
    return table[table["status"] != "ok"]


def failed_summary(failed: pd.DataFrame) -> str:
    """One line per kind naming what failed or collapsed, and why (rows counted by method)."""
    lines = []
    for kind, what in (("failed", "failed and have no metrics"), ("collapsed", "collapsed (their metrics are kept, "
                                                                                "marked, never read as forgetting)")):
        rows = failed[failed.status.str.startswith(kind)]
        if len(rows):
            parts = [f"{m} ({n})" for m, n in rows.groupby("method").size().items()]
            why = rows.status.iloc[0].split(": ", 1)[-1]
            lines.append(f"{len(rows)} row(s) {what}: " + ", ".join(parts) + f"; e.g. {why}")
    return "\n".join(lines)


def status_counts(table: pd.DataFrame) -> dict:
    """{'failed': {method: rows}, 'collapsed': {method: rows}} of a results table."""
    return {kind: {m: int(n) for m, n in table[table.status.str.startswith(kind)].groupby("method").size().items()}
            for kind in ("failed", "collapsed")}


def assemble(run_dir: str, rows: list[dict], known: dict | None, columns: list[str],
             write: bool = True) -> pd.DataFrame:
    """results.csv from the stored jobs, one row per evaluated model, sorted, written atomically
    (unless ``write`` is false). ``known``: results already read, by job key; every other job is
    read once here (a deterministic method's result serves all its rows)."""
    known, out = dict(known or {}), []
    for r in rows:
        if r["job"] not in known:
            known[r["job"]] = store.stored_result(run_dir, r["job"])
        res = known[r["job"]]
        if res is None:
            raise RuntimeError(f"job {r['job']} has no stored result; rerun to complete the grid")
        made = res.get("computed") or {}
        out.append({**{k: v for k, v in r.items() if k != "job"}, **{k: v for k, v in res.items() if k != "computed"},
                    "commit": made.get("commit"), "computed_at": made.get("date")})
    table = pd.DataFrame(out, columns=columns)
    table = table.sort_values(plan.row_keys(columns), kind="stable").reset_index(drop=True)
    if write:
        store.atomic_write(os.path.join(run_dir, "results.csv"), table.to_csv(index=False, float_format="%.6g").encode())
    return table


def _read_manifest(run_dir: str):
    """The run's manifest, or None when it is missing; a damaged one stops with one line."""
    mpath = os.path.join(run_dir, "manifest.json")
    if not os.path.exists(mpath):
        return None
    try:
        with open(mpath) as f:
            manifest = json.load(f)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("profile"), dict):
            raise ValueError("no recorded profile")
        return manifest
    except (ValueError, OSError) as err:
        raise ConfigError(f"run_dir {run_dir!r}: manifest.json is damaged ({type(err).__name__}); rerun "
                          f"python -m mu_core run with the same profile to rewrite it") from None


def write_manifest(prof, run_dir, seconds, counts, executor, n_models, table=None):
    """manifest.json: the resolved profile, this call's environment, the provenance of the results
    in ``results.csv``, and the history of every call that wrote it (each with its commit, date,
    executor, what it computed and its wall time per stage)."""
    device = resolve_device(prof["device"])
    try:
        calls = (_read_manifest(run_dir) or {}).get("calls", [])
    except ConfigError:
        calls = [{"note": "the earlier history was lost: manifest.json was damaged"}]
    call = {"commit": provenance.commit(), "date": provenance.now(), "executor": executor,
            "computed": counts, "wall_seconds": seconds}
    manifest = {
        "profile": prof,
        "versions": provenance.versions(),
        "device": provenance.device_name(device),
        "numerics": provenance.numerics() if device.type == "cpu" else None,
        "torch_threads_per_job": 1 if device.type == "cpu" else torch.get_num_threads(),
        "determinism": {
            "deterministic_option": bool(prof.get("deterministic")),
            "cpu": "bit-identical across runs, executors and interruptions (single-threaded jobs)",
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        },
        "original_models": n_models,
        "results": results_provenance(table, run_dir) if table is not None else None,
        "calls": calls + [call],
    }
    store.atomic_write(os.path.join(run_dir, "manifest.json"), json.dumps(manifest, indent=2, default=str).encode())


def results_provenance(table: pd.DataFrame, run_dir: str | None = None) -> dict:
    """Which commits computed the rows of ``table``, when, how many rows failed or collapsed, and
    the checksum of the results.csv in ``run_dir`` (``open_run`` verifies it)."""
    commits = table["commit"].fillna("unknown").value_counts().to_dict()
    dates = table["computed_at"].dropna()
    return {"commits": commits, "first_computed": dates.min() if len(dates) else None,
            "last_computed": dates.max() if len(dates) else None,
            "failed": int(table["status"].str.startswith("failed").sum()),
            "collapsed": int(table["status"].str.startswith("collapsed").sum()), **{f"{k}_by_method": v for k, v in
                                                                                    status_counts(table).items()},
            "summary": provenance.summary(table["commit"], dates),
            "sha256": _file_sha(os.path.join(run_dir, "results.csv")) if run_dir else None}


def _file_sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# --- reading a finished run ----------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """A finished run, as notebooks and analyses read it."""
    run_dir: str
    table: pd.DataFrame
    profile: dict          # the resolved profile the run recorded
    manifest: dict
    train_seconds: list    # training time of each original model of this profile, read through its checksum
    figures: str           # where figures are saved
    failed: pd.DataFrame = None  # rows of jobs that failed (non-finite outputs); ``table`` holds the rest

    @property
    def provenance(self) -> str:
        """One line: profile, mode, data, the commits and dates that computed the results, versions,
        device, run folder."""
        return self.provenance_of(self.table)

    def provenance_of(self, rows: pd.DataFrame) -> str:
        """The provenance line of the results in ``rows`` (a figure's own rows)."""
        v = self.manifest.get("versions", {})
        failed = ""
        if self.failed is not None and len(self.failed):
            n_failed = int(self.failed.status.str.startswith("failed").sum())
            n_coll = len(self.failed) - n_failed
            failed = "".join([f"; {n_failed} row(s) failed (no metrics)" if n_failed else "",
                              f"; {n_coll} row(s) of models collapsed to chance (kept in the statistics, marked "
                              f"in the status column)" if n_coll else ""])
        return (f"profile {self.profile['profile']}, mode {self.profile['mode']}, data {domains.describe_data(self.profile)}, "
                f"{provenance.summary(rows['commit'], rows['computed_at'])}{failed}; "
                f"torch {v.get('torch')}, numpy {v.get('numpy')}, device {self.manifest.get('device')}, folder {self.run_dir}")

    def metadata(self, rows: pd.DataFrame | None = None) -> dict:
        """What a saved figure file records about itself (PNG text chunks, PDF info)."""
        rows = self.table if rows is None else rows
        commits = sorted({provenance.short(c) for c in rows["commit"]})
        return {"Title": f"{self.profile['profile']} ({self.profile['mode']} mode)",
                "Subject": self.provenance_of(rows),
                "Keywords": f"profile={self.profile['profile']}; mode={self.profile['mode']}; commit={','.join(commits)}"}


_NOT_COMPARED = ("description", "profile")


def open_run(run_dir: str, profile: str | None = None, overrides=()) -> Run:
    """Open a finished run. ``profile`` and ``overrides``, when given, must be what the run
    recorded: a figure drawn from results that do not reflect them would mislabel itself."""
    path = os.path.join(run_dir, "results.csv")
    mpath = os.path.join(run_dir, "manifest.json")
    if not (os.path.exists(path) and os.path.exists(mpath)):
        raise ConfigError(f"run_dir {run_dir!r} has no finished run (results.csv and manifest.json); "
                          f"run stages 1 and 2 (or python -m mu_core run) into it first")
    manifest = _read_manifest(run_dir)
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
    table = _verified_table(run_dir, recorded, manifest)
    if "status" not in table:
        raise ConfigError(f"run_dir {run_dir!r} holds a results.csv of an older version (no status column); "
                          f"rerun python -m mu_core run into it to rebuild the table")
    _, tspecs, _ = plan.schedule(recorded)  # this profile's models only, not those of earlier overrides
    seconds = [info["train_seconds"] for k in tspecs if (info := store.model_info(run_dir, k, quiet=True))]
    if tspecs and not seconds:  # every sidecar missing or damaged: no page can say what training cost
        raise ConfigError(f"run_dir {run_dir!r}: the original models' sidecars (models/*.json, their training "
                          f"times) are missing or damaged, so what training cost is unknown; recompute the run into "
                          f"another run_dir (python -m mu_core run --profile {recorded['profile']} --run-dir NEW)")
    # a collapsed model's row stays in the statistics: its metrics are true measurements of a broken
    # model, and leaving it out would bias the variances and unbalance the grid; its status marks it,
    # the provenance line counts it, and the sentences that read forgetting (sentences.breaking,
    # complete_forgetting) name it as breaking, never as forgetting
    usable = (table["status"] == "ok") | table["status"].str.startswith("collapsed")
    return Run(run_dir, table[usable].reset_index(drop=True), recorded, manifest, seconds,
               os.path.join(run_dir, "figures"), table[table["status"] != "ok"].reset_index(drop=True))


def _rebuild_hint(run_dir: str, prof: dict) -> str:
    return f"rerun python -m mu_core run --profile {prof['profile']} --run-dir {run_dir} to rebuild it from the job files"


def _verified_table(run_dir: str, prof: dict, manifest: dict) -> pd.DataFrame:
    """results.csv, checked against the checksum its run recorded; a table that was edited or
    damaged since is compared with the job files it was assembled from, and refused in one line
    naming the rows that disagree (or saying that it cannot be read)."""
    path = os.path.join(run_dir, "results.csv")
    with open(path, "rb") as f:
        body = f.read()
    want = (manifest.get("results") or {}).get("sha256")
    try:
        table = pd.read_csv(io.BytesIO(body), dtype={"target": str, "status": str, "commit": str, "computed_at": str})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise ConfigError(f"run_dir {run_dir!r}: results.csv cannot be read ({type(err).__name__}); "
                          f"{_rebuild_hint(run_dir, prof)}") from None
    if want is None or hashlib.sha256(body).hexdigest() == want:
        return table
    rows, _, _ = plan.schedule(prof)
    try:
        stored = assemble(run_dir, rows, None, plan.columns(prof), write=False)
    except RuntimeError:
        stored = None
    keys = plan.row_keys(list(table.columns))
    if stored is None or list(stored.columns) != list(table.columns) or len(stored) != len(table):
        raise ConfigError(f"run_dir {run_dir!r}: results.csv is not the table its run wrote (its checksum differs); "
                          f"{_rebuild_hint(run_dir, prof)}")
    fresh = pd.read_csv(io.StringIO(stored.to_csv(index=False, float_format="%.6g")),
                        dtype={"target": str, "status": str, "commit": str, "computed_at": str})
    same = [c for c in table.columns if c not in plan.VOLATILE]
    a, b = table.sort_values(keys).reset_index(drop=True), fresh.sort_values(keys).reset_index(drop=True)
    diff = [i for i in range(len(a)) if not a.loc[i, same].equals(b.loc[i, same])]
    where = ", ".join(f"{a.loc[i, 'method']} s_t={a.loc[i, 'train_seed']} s_u={a.loc[i, 'unlearn_seed']}" for i in diff[:3])
    raise ConfigError(f"run_dir {run_dir!r}: results.csv differs from the job files it was assembled from in "
                      f"{len(diff)} row(s) ({where}{' ...' if len(diff) > 3 else ''}); {_rebuild_hint(run_dir, prof)}")
