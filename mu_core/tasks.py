"""Tasks: the units of work an executor runs, each in whatever process it lands in.

``train_one`` trains (or finds) one original model M_o; ``run_jobs`` runs a group of unlearning
jobs of one M_o. Both start with the per-process ``setup`` and share finished work only through
the run folder's store, under per-item locks, so any executor (this process, a dask cluster) and
any interruption give the same stored results.
"""
from __future__ import annotations

import copy
import os

import torch

from . import provenance, store
from .images import data as D
from .images import methods as M
from .images import metrics, models, train, ulira
from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no GPU; use device=auto or cpu")
    return torch.device(name)


def setup(prof: dict, device) -> None:
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


def context(prof: dict):
    """(device, data) for work in this process, after the per-process ``setup``."""
    device = resolve_device(prof["device"])
    setup(prof, device)
    data = D.load(prof["data"])
    return device, (data.to(device) if device.type != "cpu" else data)


def model_path(run_dir: str, key: str) -> str:
    """Where the checkpoint of original model ``key`` lives (its ``.json`` beside it)."""
    return os.path.join(run_dir, "models", key + ".pt")


def job_path(run_dir: str, key: str) -> str:
    """Where the result of unlearning job ``key`` lives."""
    return os.path.join(run_dir, "jobs", key + ".json")


def model_info(run_dir: str, key: str, quiet: bool = False):
    """The sidecar of original model ``key`` (training seconds, provenance), or None."""
    return store.load_json(model_path(run_dir, key)[:-3] + ".json", key, quiet=quiet)


def _stored_state(path: str, key: str, run_dir: str):
    """The stored weights, or None when they or their sidecar are missing or damaged (a model
    without its sidecar is retrained: training time and provenance can only come from training)."""
    if model_info(run_dir, key) is None:
        return None
    return store.load_model_state(path, key)


def original_model(spec: dict, run_dir: str, data: D.Data, device, show_epochs: bool = False):
    """(M_o, trained now?) for ``spec``: from the store, or trained now and stored."""
    ds = spec["dataset"]
    in_shape = tuple(data.train_x.shape[1:])
    model = models.build(spec["model"], D.NUM_CLASSES[ds], in_shape, spec["train_seed"]).to(device)
    path = model_path(run_dir, spec["key"])
    state = _stored_state(path, spec["key"], run_dir)
    if state is None:
        with store.Lock(path + ".lock"):
            state = _stored_state(path, spec["key"], run_dir)  # another process may have trained it meanwhile
            if state is None:
                _train(model, spec, path, data, device, show_epochs)
                return model, True
    model.load_state_dict(state)
    return model, False


def _train(model, spec, path, data, device, show_epochs):
    ds = spec["dataset"]
    y_train, y_test = D.labels(data, ds)
    select = None
    if spec["select_on_test"]:
        # quirk (reference): the epoch with the best test accuracy is kept (test-set selection)
        select = lambda m: metrics.accuracy(metrics.logits(m, data.test_x, data), y_test, "reference")
    # data order and augmentation: the order seed (s_t itself unless the init_order design split them)
    gen = torch.Generator().manual_seed(spec.get("order_seed", spec["train_seed"]))
    idx = D.make_split(data, ds, **spec["train_on"]).train_all if "train_on" in spec else slice(None)
    clock = provenance.clock(device)
    t0 = clock()
    train.fit(model, data.train_x[idx], y_train[idx], spec["recipe"], gen, data, select=select,
              label=f"train {ds} s_t={spec['train_seed']}" if show_epochs else None)
    seconds = clock() - t0
    store.save_model(path, model, spec["key"])  # the sidecar last: a model counts as stored once it is there
    store.save_json(path[:-3] + ".json", {"train_seconds": seconds, "computed": provenance.stamp(device)}, spec["key"])


def train_one(prof: dict, run_dir: str, tspec: dict) -> int:
    """Task: train (or find) one original model. Returns 1 if it was trained now."""
    return int(_model_and_compute(prof, run_dir, tspec)[1])


def _model_and_compute(prof, run_dir, tspec, show_epochs=False):
    """(original model, trained now?, a function computing one job's result) in this process,
    for the profile's domain: an image model and ``run_job``, a ranker and ``ltr.engine.run_job``, or a
    fine-tuned language model and ``lm.engine.run_job``."""
    if tspec.get("domain") == "lm":
        from .lm import engine
        setup(prof, torch.device("cpu"))
        model, info, base, trained = engine.trained_model(tspec, run_dir, model_path, model_info)
        return model, trained, lambda job: engine.run_job(model, info, base, tspec, {**job, "mode": prof["mode"]})
    if tspec.get("domain") == "ltr":
        from .ltr import engine
        setup(prof, torch.device("cpu"))
        data = engine.load(prof["data"])
        ranker, trained = engine.trained_ranker(tspec, run_dir, data, model_path, model_info)
        before = engine.trained_ndcg(ranker, data, prof["mode"])
        return ranker, trained, lambda job: engine.run_job(ranker, data, tspec, {**job, "mode": prof["mode"]}, before)
    device, data = context(prof)
    model, trained = original_model(tspec, run_dir, data, device, show_epochs=show_epochs)
    splits, ctx = {}, {}

    def compute(job):
        st = (job["setting"], job["target"])
        if st not in splits:
            splits[st] = D.make_split(data, tspec["dataset"], *st)
        if job["mode"] not in ctx:  # U-LiRA's calibration Retrain runs corrected in any profile
            ctx[job["mode"]] = M.Context(job["mode"], tspec["recipe"], prof["model"])
        return run_job(model, splits[st], job, ctx[job["mode"]], device)
    return model, trained, compute


def stored_result(run_dir: str, key: str, quiet: bool = False):
    """The stored metrics of job ``key``, or None when missing or damaged."""
    return store.load_json(job_path(run_dir, key), key, quiet=quiet)


def run_jobs(prof: dict, run_dir: str, tspec: dict, jobs: list[dict], *, after=None, bar=None) -> dict:
    """Task: run unlearning jobs of one original model (training it first if needed).

    Each job is computed under its own lock and stored atomically; a job whose result is
    already stored is skipped. ``after`` only orders tasks (an unlearning task waits for its
    model's training task); ``bar``: a progress bar advanced per job. Returns the counts of
    what was computed here.
    """
    _, trained, compute = _model_and_compute(prof, run_dir, tspec, show_epochs=bar is not None)
    done = 0
    for job in jobs:
        if stored_result(run_dir, job["key"]) is None:
            with store.Lock(os.path.join(run_dir, "locks", job["key"])):
                if stored_result(run_dir, job["key"], quiet=True) is None:
                    result = compute(job)
                    store.save_json(job_path(run_dir, job["key"]), result, job["key"])
                    done += 1
        if bar is not None:
            bar.update(1)
    return {"trained": int(trained), "jobs": done}


def run_job(model, split, job, ctx: M.Context, device) -> dict:
    """One unlearning job: ``unlearn`` a copy of M_o, then ``evaluate_job``; with its timing and
    the provenance of this computation."""
    m, seconds = unlearn(model, split, job, ctx, device)
    out = {**evaluate_job(m, split, job, ctx), "method_seconds": seconds, "computed": provenance.stamp(device)}
    if job.get("setting") == "random" and out["status"] == "ok":
        out["pool"] = ulira.pool_statistics(m, split)
    return out


def unlearn(model, split, job, ctx: M.Context, device):
    """(unlearned copy of M_o, seconds the method took, timed alone).

    Its only randomness is a generator seeded by s_u (deterministic methods: seed 0, unused), so
    the result depends on M_o, the split, the method's parameters and s_u alone.
    """
    method = M.METHODS[job["method"]]
    p = copy.deepcopy(job["params"])
    gen = torch.Generator().manual_seed(job["unlearn_seed"] or 0)
    m = copy.deepcopy(model)
    if device.type == "cuda":
        torch.cuda.synchronize()
    clock = provenance.clock(device)
    t0 = clock()
    m = method.fn(m, split, p, ctx, gen)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return m, clock() - t0


def evaluate_job(m, split, job, ctx: M.Context) -> dict:
    """``status`` and the metrics of an unlearned model (``metrics.METRICS_VERSION`` covers this).

    A model whose outputs are not finite (a learning rate that made it diverge, say) is recorded
    as failed with empty metrics: its argmax would read as class 0 everywhere, and a diverged
    method would look like a perfect forgetter. A model whose retain accuracy fell to chance keeps
    its metrics (they are true) under the status ``collapsed: ...`` (``metrics.collapsed``), which
    no page reads as forgetting."""
    method = M.METHODS[job["method"]]
    p = job["params"]
    retain_batch = p[method.reference_retain_batch] if method.reference_retain_batch and ctx.mode == "reference" else None
    try:
        out = metrics.evaluate(m, split, ctx.mode, job["eval"]["batch"], retain_batch)
    except metrics.NonFinite as err:
        return {"status": f"failed: {err}", **{k: None for k in metrics.NAMES}}
    return {"status": metrics.collapsed(out["retain_acc"], split.num_classes) or "ok", **out}
