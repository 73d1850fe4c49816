"""The grid engine: Algorithm 1 of the paper for a profile, cached, resumable, atomic.

``plan`` lists the rows of the results table (one per evaluated model) for the profile's designs:

* ``paper``: protocol A = one original model (``a_train_seed``) unlearned with J seeds
  (``a_first_unlearn_seed`` ...); protocol B = I original models (``b_first_train_seed`` ...),
  each unlearned once with s_u = s_t ("matched").
* ``grid``: the full I x J grid, s_t = i (i = 1..I), s_u = (i-1)·J + j (j = 1..J).

A profile may cap J per method (``j_per_method``). A deterministic method (Original, SSD,
LFSSD) runs once per original model and target; its row is repeated for every s_u.

Each original model and each unlearning job has a key: a hash of everything that determines it
(data, network, recipe, mode, seeds, the method's parameters and code version). Finished work is
stored under the run folder by key (``models/<key>.pt``, ``jobs/<key>.json``), written
atomically with a checksum, so a rerun computes only what is missing or changed.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import data as D
from . import methods as M
from . import metrics, models, profiles, store, train
from .errors import ConfigError

TRAIN_VERSION = 1    # bump when training code changes what it computes
METRICS_VERSION = 2  # bump when evaluation changes what it computes (2: the MIA's exact objective)
EXECUTORS = ("auto", "local", "dask")
COLUMNS = ["design", "protocol", "dataset", "setting", "target", "method", "mode", "train_seed",
           "unlearn_seed", "retain_acc", "forget_acc", "test_acc", "mia", "method_seconds"]


# --- planning ------------------------------------------------------------------------------

def plan(prof: dict) -> list[dict]:
    """Rows of the results table, without their metrics."""
    rows = []
    jcap = prof.get("j_per_method") or {}

    def add(design, protocol, key, target, method, s_t, s_u):
        ds, setting = key.split("/")
        rows.append(dict(design=design, protocol=protocol, dataset=ds, setting=setting,
                         target=str(target), method=method, mode=prof["mode"],
                         train_seed=s_t, unlearn_seed=s_u))

    for design in prof["designs"]:
        cfg = prof[design]
        I, J = cfg["I"], cfg["J"]
        targets = prof["targets"] if design == "paper" else prof["grid_targets"]
        for key, ts in (targets or {}).items():
            for t in ts:
                for m in prof["methods"]:
                    Jm = min(J, jcap.get(m, J))
                    if design == "paper":
                        for j in range(Jm):
                            add(design, "A", key, t, m, cfg["a_train_seed"], cfg["a_first_unlearn_seed"] + j)
                        for i in range(I):
                            s = cfg["b_first_train_seed"] + i
                            add(design, "B", key, t, m, s, s)
                    else:
                        for i in range(1, I + 1):
                            for j in range(1, Jm + 1):
                                add(design, "grid", key, t, m, i, (i - 1) * J + j)
    return rows


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def recipe(prof: dict, dataset: str) -> dict:
    """The training recipe of ``dataset``: per-dataset epochs and milestones resolved."""
    r = {k: v for k, v in prof["train"].items() if k not in ("epochs", "milestones")}
    return {**r, "epochs": prof["train"]["epochs"][dataset], "milestones": prof["train"]["milestones"][dataset]}


def train_spec(prof: dict, dataset: str, seed: int) -> dict:
    spec = dict(data=prof["data"], model=prof["model"], dataset=dataset, recipe=recipe(prof, dataset),
                normalisation=D.NORMALISATION[prof["data"]["source"]],
                select_on_test=prof["mode"] == "reference", train_seed=seed, version=TRAIN_VERSION)
    # where CIFAR lives does not change what is trained
    key_spec = copy.deepcopy(spec)
    key_spec["data"] = {k: v for k, v in spec["data"].items() if k not in ("root", "download")}
    return {**spec, "key": "train-" + _hash(key_spec)}


def job_spec(prof: dict, row: dict, tkey: str) -> dict:
    m = row["method"]
    det = M.METHODS[m].deterministic
    spec = dict(train_key=tkey, setting=row["setting"], target=row["target"], method=m,
                mode=prof["mode"], params=prof["method_params"].get(m, {}), eval=prof["eval"],
                unlearn_seed=None if det else row["unlearn_seed"], version=M.METHODS[m].version,
                metrics_version=METRICS_VERSION)
    return {**spec, "key": f"{m}-" + _hash(spec)}


# --- execution -----------------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no GPU; use device=auto or cpu")
    return torch.device(name)


def _setup(prof: dict, device) -> None:
    """Per-process settings every task applies first.

    CPU jobs run single-threaded: results then do not depend on the executor or on how many
    jobs share the machine (parallelism comes from processes), and two torch processes never
    oversubscribe the cores (which slowed a 2-core run about 30-fold). ``deterministic``
    (the reference seeded cuDNN deterministic with benchmarking off) enforces deterministic
    GPU kernels.
    """
    if device.type == "cpu" and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    if prof.get("deterministic"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=False)


def original_model(spec: dict, run_dir: str, data: D.Data, device, progress=True):
    """The trained original model M_o of ``spec``, from the store or trained now (and stored)."""
    ds = spec["dataset"]
    in_shape = tuple(data.train_x.shape[1:])
    model = models.build(spec["model"], D.NUM_CLASSES[ds], in_shape, spec["train_seed"]).to(device)
    path = os.path.join(run_dir, "models", spec["key"] + ".pt")
    state = store.load_model_state(path, spec["key"])
    if state is None:
        with store.Lock(path + ".lock"):
            state = store.load_model_state(path, spec["key"])  # another process may have trained it meanwhile
            if state is None:
                _train(model, spec, path, data, device, progress)
                return model, True
    model.load_state_dict(state)
    return model, False


def _train(model, spec, path, data, device, progress):
    ds = spec["dataset"]
    y_train, y_test = D.labels(data, ds)
    select = None
    if spec["select_on_test"]:
        # quirk (reference): the epoch with the best test accuracy is kept (test-set selection)
        select = lambda m: metrics.accuracy(metrics.logits(m, data.test_x, data), y_test, "reference")
    gen = torch.Generator().manual_seed(spec["train_seed"])  # data order and augmentation
    t0 = time.perf_counter()
    train.fit(model, data.train_x, y_train, spec["recipe"], gen, data, select=select,
              progress=f"train {ds} s_t={spec['train_seed']}" if progress else None)
    store.save_json(path[:-3] + ".json", {"train_seconds": time.perf_counter() - t0, "device": str(device)}, spec["key"])
    store.save_model(path, model, spec["key"])


def _context(prof):
    """(device, data) for work in this process, after the per-process ``_setup``."""
    device = resolve_device(prof["device"])
    _setup(prof, device)
    data = D.load(prof["data"])
    return device, (data.to(device) if device.type != "cpu" else data)


def ensure_trained(prof: dict, run_dir: str, tspec: dict) -> int:
    """Task: train (or find) one original model. Returns 1 if it was trained now."""
    device, data = _context(prof)
    return int(original_model(tspec, run_dir, data, device, False)[1])


def run_group(prof: dict, run_dir: str, tspec: dict, jobs: list[dict], progress=None, *deps) -> dict:
    """Task: run unlearning jobs of one original model (training it first if needed).

    Each job is computed under its own lock and stored atomically; a job whose result is
    already stored is skipped. ``deps`` only orders tasks (an unlearning task waits for its
    training task). Returns counts of what was computed here.
    """
    device, data = _context(prof)
    model, trained = original_model(tspec, run_dir, data, device, progress is not None)
    splits = {}
    ctx = M.Context(prof["mode"], tspec["recipe"], prof["model"])
    done = 0
    for job in jobs:
        path = os.path.join(run_dir, "jobs", job["key"] + ".json")
        if store.load_json(path, job["key"]) is None:
            with store.Lock(os.path.join(run_dir, "locks", job["key"])):
                if store.load_json(path, job["key"], quiet=True) is None:
                    st = (job["setting"], job["target"])
                    if st not in splits:
                        splits[st] = D.make_split(data, tspec["dataset"], *st)
                    store.save_json(path, run_job(model, splits[st], job, ctx, device), job["key"])
                    done += 1
        if progress is not None:
            progress.update(1)
    return {"trained": int(trained), "jobs": done}


def run_job(model, split, job, ctx: M.Context, device) -> dict:
    """One unlearning run on a copy of M_o, timed alone, then evaluated.

    Its only randomness is a generator seeded by s_u (deterministic methods: seed 0, unused), so
    the result depends on M_o, the split, the method's parameters and s_u alone.
    """
    method = M.METHODS[job["method"]]
    p = copy.deepcopy(job["params"])
    gen = torch.Generator().manual_seed(job["unlearn_seed"] or 0)
    m = copy.deepcopy(model)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    m = method.fn(m, split, p, ctx, gen)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    batch = job["eval"]["batch"]
    retain_batch = p[method.reference_retain_batch] if method.reference_retain_batch and ctx.mode == "reference" else None
    return {**metrics.evaluate(m, split, ctx.mode, batch, retain_batch), "method_seconds": seconds}


def chunks(jobs: list[dict], size: int = 48) -> list[list[dict]]:
    """Split one model's jobs into tasks; deterministic methods stay together, so that
    corrected-mode SSD/LFSSD reuse one whole-training-set importance per original model."""
    det = [j for j in jobs if M.METHODS[j["method"]].deterministic]
    rest = [j for j in jobs if not M.METHODS[j["method"]].deterministic]
    out = [det] if det else []
    out += [rest[i:i + size] for i in range(0, len(rest), size)]
    return out


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
    resolve_device(prof["device"])
    D.load(prof["data"])
    store.claim(run_dir, prof["profile"])
    store.sweep(run_dir)
    return prof


def schedule(prof: dict):
    """(rows, train specs by key, unlearning jobs grouped by original model)."""
    rows = plan(prof)
    tspecs, groups, seen = {}, defaultdict(list), set()
    for r in rows:
        ts = train_spec(prof, r["dataset"], r["train_seed"])
        tspecs[ts["key"]] = ts
        js = job_spec(prof, r, ts["key"])
        r["job"] = js["key"]
        if js["key"] not in seen:
            seen.add(js["key"])
            groups[ts["key"]].append(js)
    return rows, tspecs, groups


@dataclass(frozen=True)
class Finished:
    """What a run produced: the results table, what was computed now, where it was written."""
    table: pd.DataFrame
    computed: dict   # {"trained": original models trained now, "jobs": unlearning jobs run now}
    path: str        # the results.csv written


def run(profile: str | dict, run_dir: str, overrides=(), executor: str = "auto",
        scheduler: str | None = None, progress: bool = True) -> Finished:
    """Run a profile's designs into ``run_dir``: write ``results.csv`` and the manifest."""
    prof = prepare(profile, run_dir, overrides, executor, scheduler)
    executor = effective_executor(executor)
    t0 = time.time()
    rows, tspecs, groups = schedule(prof)
    n_jobs = sum(len(g) for g in groups.values())
    counts = {"trained": 0, "jobs": 0}
    bar = tqdm(total=n_jobs, desc="unlearning jobs", disable=not progress)
    if executor == "dask":
        from .dask_executor import run_groups
        counts = run_groups(prof, run_dir, tspecs, groups, scheduler, bar)
    else:
        for tkey, jobs in groups.items():
            c = run_group(prof, run_dir, tspecs[tkey], jobs, bar if progress else None)
            counts = {k: counts[k] + c[k] for k in counts}
    bar.close()
    t1 = time.time()
    table = assemble(prof, run_dir, rows)
    write_manifest(prof, run_dir, {"experiments": t1 - t0, "assemble": time.time() - t1}, counts,
                   executor, len(tspecs))
    return Finished(table, counts, os.path.join(run_dir, "results.csv"))


def train_all(profile: str | dict, run_dir: str, overrides=(), progress: bool = True,
              executor: str = "auto", scheduler: str | None = None) -> pd.DataFrame:
    """Stage 1: train (or load) every original model the grid needs; their test accuracy."""
    prof = prepare(profile, run_dir, overrides, executor, scheduler)
    executor = effective_executor(executor)
    _, tspecs, _ = schedule(prof)
    if executor == "dask":  # train in parallel; the loop below then only loads
        from .dask_executor import run_groups
        run_groups(prof, run_dir, tspecs, {k: [] for k in tspecs}, scheduler)
    device, data = _context(prof)
    out = []
    for ts in tqdm(tspecs.values(), desc="original models", disable=not progress):
        model, trained = original_model(ts, run_dir, data, device, progress)
        _, y_test = D.labels(data, ts["dataset"])
        acc = metrics.accuracy(metrics.logits(model, data.test_x, data), y_test, prof["mode"])
        info = store.load_json(os.path.join(run_dir, "models", ts["key"] + ".json"), ts["key"]) or {}
        out.append(dict(dataset=ts["dataset"], train_seed=ts["train_seed"], test_acc=acc,
                        train_seconds=info.get("train_seconds"), trained_now=trained))
    return pd.DataFrame(out).sort_values(["dataset", "train_seed"]).reset_index(drop=True)


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


def assemble(prof: dict, run_dir: str, rows: list[dict]) -> pd.DataFrame:
    """results.csv from the stored jobs, one row per evaluated model, sorted, written atomically."""
    out = []
    for r in rows:
        res = store.load_json(os.path.join(run_dir, "jobs", r["job"] + ".json"), r["job"])
        if res is None:
            raise RuntimeError(f"job {r['job']} has no stored result; rerun to complete the grid")
        out.append({**{k: v for k, v in r.items() if k != "job"}, **res})
    table = pd.DataFrame(out, columns=COLUMNS)
    table = table.sort_values(COLUMNS[:9], kind="stable").reset_index(drop=True)
    body = table.to_csv(index=False, float_format="%.6g").encode()
    store.atomic_write(os.path.join(run_dir, "results.csv"), body)
    return table


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(__file__), timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_manifest(prof, run_dir, seconds, counts, executor, n_models):
    import numpy, sklearn, torchvision
    device = resolve_device(prof["device"])
    manifest = {
        "profile": prof,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "numpy": numpy.__version__,
                     "scikit-learn": sklearn.__version__, "pandas": pd.__version__},
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads_per_job": 1 if device.type == "cpu" else torch.get_num_threads(),
        "determinism": {
            "deterministic_option": bool(prof.get("deterministic")),
            "cpu": "bit-identical across runs and executors (single-threaded jobs)",
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        },
        "git_commit": _git_commit(),
        "executor": executor,
        "original_models": n_models,
        "computed_this_run": counts,
        "wall_seconds": seconds,
    }
    body = json.dumps(manifest, indent=2, default=str).encode()
    store.atomic_write(os.path.join(run_dir, "manifest.json"), body)
