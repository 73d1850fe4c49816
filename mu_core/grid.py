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
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import data as D
from . import methods as M
from . import metrics, models, profiles, train
from .errors import ConfigError

TRAIN_VERSION = 1  # bump when training code changes what it computes
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
                select_on_test=prof["mode"] == "reference", train_seed=seed, version=TRAIN_VERSION)
    # where CIFAR lives does not change what is trained
    key_spec = copy.deepcopy(spec)
    key_spec["data"] = {k: v for k, v in spec["data"].items() if k not in ("root", "download")}
    return {**spec, "key": "train-" + _hash(key_spec)}


def job_spec(prof: dict, row: dict, tkey: str) -> dict:
    m = row["method"]
    det = m in M.DETERMINISTIC
    spec = dict(train_key=tkey, setting=row["setting"], target=row["target"], method=m,
                mode=prof["mode"], params=prof["method_params"].get(m, {}), eval=prof["eval"],
                unlearn_seed=None if det else row["unlearn_seed"], version=M.VERSION[m])
    return {**spec, "key": f"{m}-" + _hash(spec)}


# --- the store -----------------------------------------------------------------------------

def _atomic_write(path: str, write) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def save_json(path: str, payload: dict) -> None:
    body = json.dumps(payload, sort_keys=True)
    blob = json.dumps({"sha256": _sha(body.encode()), "payload": payload}, sort_keys=True)
    _atomic_write(path, lambda f: f.write(blob.encode()))


def load_json(path: str, quiet: bool = False):
    """The payload, or None when missing; a damaged file is reported and treated as missing."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            blob = json.load(f)
        if _sha(json.dumps(blob["payload"], sort_keys=True).encode()) != blob["sha256"]:
            raise ValueError("checksum mismatch")
        return blob["payload"]
    except (ValueError, KeyError, TypeError) as err:
        if not quiet:
            warnings.warn(f"damaged cache file {path} ({err}): recomputing it")
        return None


def save_model(path: str, model) -> None:
    buf = io.BytesIO()
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, buf)
    body = buf.getvalue()
    _atomic_write(path, lambda f: f.write(body))
    _atomic_write(path + ".sha256", lambda f: f.write(_sha(body).encode()))


def load_model_state(path: str):
    """The state dict (loaded with weights_only=True), or None when missing or damaged."""
    if not (os.path.exists(path) and os.path.exists(path + ".sha256")):
        return None
    with open(path, "rb") as f:
        body = f.read()
    with open(path + ".sha256") as f:
        if f.read().strip() != _sha(body):
            warnings.warn(f"damaged checkpoint {path} (checksum mismatch): retraining it")
            return None
    try:  # weights only: nothing in a run folder is ever unpickled as code
        return torch.load(io.BytesIO(body), weights_only=True)
    except Exception as err:  # noqa: BLE001 - any refusal means: do not use this file
        warnings.warn(f"checkpoint {path} cannot be loaded as plain weights ({type(err).__name__}): retraining it")
        return None


# --- execution -----------------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no GPU; use device=auto or cpu")
    return torch.device(name)


class _Lock:
    """An exclusive lock on ``path`` (fcntl.flock): held while one process computes one item.

    The kernel releases it when the holder dies, even by kill -9, so a crashed run never
    leaves a stale lock; a second run that wants the same item waits, then finds it done.
    """
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        import fcntl
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


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
    state = load_model_state(path)
    if state is None:
        with _Lock(path + ".lock"):
            state = load_model_state(path)  # another process may have trained it meanwhile
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
    save_json(path[:-3] + ".json", {"train_seconds": time.perf_counter() - t0, "device": str(device)})
    save_model(path, model)


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
    memo, splits = {}, {}
    base = {"mode": prof["mode"], "train": tspec["recipe"], "model_cfg": prof["model"], "memo": memo}
    done = 0
    for job in jobs:
        path = os.path.join(run_dir, "jobs", job["key"] + ".json")
        if load_json(path) is None:
            with _Lock(os.path.join(run_dir, "locks", job["key"])):
                if load_json(path, quiet=True) is None:
                    st = (job["setting"], job["target"])
                    if st not in splits:
                        splits[st] = D.make_split(data, tspec["dataset"], *st)
                    save_json(path, run_job(model, splits[st], job, {**base, "dataset": tspec["dataset"]}, prof, device))
                    done += 1
        if progress is not None:
            progress.update(1)
    return {"trained": int(trained), "jobs": done}


def run_job(model, split, job, base, prof, device) -> dict:
    """One unlearning run on a copy of M_o, timed alone, then evaluated."""
    p = {**copy.deepcopy(job["params"]), **base, "setting": job["setting"]}
    gen = torch.Generator().manual_seed(job["unlearn_seed"] or 0)
    m = copy.deepcopy(model)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    m = M.METHODS[job["method"]](m, split, p, gen)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {**metrics.evaluate(m, split, prof["mode"], prof["eval"]["batch"]), "method_seconds": seconds}


def chunks(jobs: list[dict], size: int = 48) -> list[list[dict]]:
    """Split one model's jobs into tasks; deterministic methods stay together, so that
    corrected-mode SSD/LFSSD reuse one whole-training-set importance per original model."""
    det = [j for j in jobs if j["method"] in M.DETERMINISTIC]
    rest = [j for j in jobs if j["method"] not in M.DETERMINISTIC]
    out = [det] if det else []
    out += [rest[i:i + size] for i in range(0, len(rest), size)]
    return out


def _check_run_dir(prof: dict, run_dir: str) -> None:
    """A run folder belongs to one profile: refuse to mix another profile's results into it."""
    path = os.path.join(run_dir, "profile.json")
    if os.path.exists(path):
        with open(path) as f:
            owner = json.load(f).get("profile")
        if owner != prof["profile"]:
            raise ConfigError(f"run_dir {run_dir!r} was made by profile {owner!r}, not "
                              f"{prof['profile']!r}; choose another run_dir")
    else:
        os.makedirs(run_dir, exist_ok=True)
        _atomic_write(path, lambda f: f.write(json.dumps({"profile": prof["profile"]}).encode()))


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


def run(profile: str | dict, run_dir: str, overrides=(), executor: str = "local",
        scheduler: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Run a profile's grid into ``run_dir``; write and return ``results.csv``."""
    prof = profile if isinstance(profile, dict) else profiles.load(profile, overrides)
    _choice_executor(executor)
    _check_run_dir(prof, run_dir)
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
    table.attrs["computed"] = counts
    write_manifest(prof, run_dir, {"experiments": t1 - t0, "assemble": time.time() - t1}, counts,
                   executor, len(tspecs))
    return table


def train_all(profile: str | dict, run_dir: str, overrides=(), progress: bool = True,
              executor: str = "local", scheduler: str | None = None) -> pd.DataFrame:
    """Stage 1: train (or load) every original model the grid needs; their test accuracy."""
    prof = profile if isinstance(profile, dict) else profiles.load(profile, overrides)
    _choice_executor(executor)
    _check_run_dir(prof, run_dir)
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
        info = load_json(os.path.join(run_dir, "models", ts["key"] + ".json")) or {}
        out.append(dict(dataset=ts["dataset"], train_seed=ts["train_seed"], test_acc=acc,
                        train_seconds=info.get("train_seconds"), trained_now=trained))
    return pd.DataFrame(out).sort_values(["dataset", "train_seed"]).reset_index(drop=True)


def _choice_executor(executor):
    if executor not in ("local", "dask"):
        raise ConfigError(f"executor {executor!r} is unknown; allowed: local, dask")


def assemble(prof: dict, run_dir: str, rows: list[dict]) -> pd.DataFrame:
    """results.csv from the stored jobs, one row per evaluated model, sorted, written atomically."""
    out = []
    for r in rows:
        res = load_json(os.path.join(run_dir, "jobs", r["job"] + ".json"))
        if res is None:
            raise RuntimeError(f"job {r['job']} has no stored result; rerun to complete the grid")
        out.append({**{k: v for k, v in r.items() if k != "job"}, **res})
    table = pd.DataFrame(out, columns=COLUMNS)
    table = table.sort_values(COLUMNS[:9], kind="stable").reset_index(drop=True)
    body = table.to_csv(index=False, float_format="%.6g").encode()
    _atomic_write(os.path.join(run_dir, "results.csv"), lambda f: f.write(body))
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
    _atomic_write(os.path.join(run_dir, "manifest.json"), lambda f: f.write(body))
