"""The learning-to-rank domain as the engine sees it: its profile schema, its data, what
determines a trained ranker (its spec and key), storing and loading one, and one unlearning job.

Rows of the results table map as: ``dataset`` = the collection (``synthetic`` or ``mq2007``),
``setting`` = the scenario (``clean``, ``data_poison``, ``model_poison``), ``target`` = the click
model (``perfect``, ``navigational``, ``informational``). Unlike an image model, a ranker depends
on its scenario and click model, so each (setting, target) trains its own rankers.
"""
from __future__ import annotations

import functools
import os
import tempfile

import numpy as np
import torch

from .. import provenance, store
from .. import jobs
from ..checks import SEED, Choice, ListOf, Num, Optional, Text
from ..errors import ConfigError
from ..method import Method
from . import data as L
from . import fpdgd as F
from . import methods as U

LTR_VERSION = 2   # bump when FPDGD training, the click models or nDCG change what they compute; 2: PDGD's
                  # denominators as log-sum-exps, nDCG's tie order and scored stage by mode
DATA_VERSION = 1  # bump when the LETOR reader or the synthetic collection change what they give
COLLECTIONS = ("synthetic", "mq2007")
CLICK_MODELS = ("perfect", "navigational", "informational")
TITLE = "Federated online learning to rank"
DESIGNS = ("paper", "grid")
PAPER_BOOK = ("ltr-paper", False)  # a paper-scale book reads an existing ltr-paper run: MQ2007 is not started in a build
SEED_COLUMNS = []
STUDIED = ["ndcg"]
ROLES = {"utility": "ndcg", "utility_before": "ndcg_trained"}  # nDCG after unlearning is what forgetting costs
FLOORS = {"ndcg": 0.01, "ndcg_trained": 0.01}  # one nDCG point
SE_TARGETS = {"ndcg": 0.005}
METRICS = ["ndcg", "ndcg_trained"]
WORDS = {"ndcg": ("nDCG@10 after unlearning", "nDCG@10"), "ndcg_trained": ("nDCG@10 of the trained ranker", "nDCG@10 trained")}
JOB_VERSIONS: dict = {}  # versions of code a job's result depends on beyond its method's (LTR_VERSION is the model's)
clock = provenance.clock()  # a CPU-only engine: seconds are the job's thread's CPU time

METHODS = {
    "retrain": Method(U.retrain, "Retrain", False, 1, {}),
    "fed_remove": Method(U.fed_remove, "FedRemove", True, 1, {}),
    "fed_eraser": Method(U.fed_eraser, "FedEraser", False, 1, {"calibrate_every": Num(1, 10**6, integer=True)}),
    "fine_tuning": Method(U.fine_tuning, "Fine-tuning", False, 2, {}),  # 2: reference scores before the last aggregation
    "pga": Method(U.pga, "PGA", False, 2, {}),
}


def settings() -> list[str]:
    return [f"{c}/{s}" for c in COLLECTIONS for s in F.SCENARIOS]


def schema(prof: dict) -> dict:
    """The learning-to-rank fields of a profile (``profiles.schema`` adds those every domain shares)."""
    names = ListOf(Choice(*CLICK_MODELS))
    return {
        "data": {"source": Choice(*COLLECTIONS), "seed": Optional(SEED), "n_queries": Optional(Num(25, 100_000, integer=True)),
                 "root": Optional(Text(optional=True)), "fold": Optional(Num(1, 5, integer=True))},
        "deterministic": Choice(False), "device": Choice("cpu"),
        "train": {"n_clients": Num(2, 1000, integer=True), "n_forget": Num(1, 999, integer=True),
                  "rounds": Num(1, 100_000, integer=True), "interactions": Num(1, 10_000, integer=True),
                  "lr": Num(0, lo_open=True)},
        "targets": (Choice(*settings()), names), "grid_targets": (Choice(*settings()), names),
        "eval": {},
    }


def validate(prof: dict) -> None:
    t = prof["train"]
    if t["n_forget"] >= t["n_clients"]:
        raise ConfigError(f"train.n_forget ({t['n_forget']}) must be below train.n_clients ({t['n_clients']}): "
                          f"some clients must remain")
    src = prof["data"]["source"]
    for field in ("targets", "grid_targets"):
        for key in prof[field]:
            if key.split("/")[0] != src:
                raise ConfigError(f"{field} {key!r} names collection {key.split('/')[0]!r}, but data.source is {src!r}")
    if src == "synthetic" and not {"seed", "n_queries"} <= set(prof["data"]):
        raise ConfigError("data.seed and data.n_queries are needed for data.source synthetic")


DATASETS = COLLECTIONS  # the first part of this domain's setting keys


def target_name(setting_key: str, target) -> str:
    return f"{target} clicks"  # a target is the click model


LABELS = {"synthetic": "synthetic LTR", "mq2007": "MQ2007"}


def place(setting_key: str, target=None) -> str:
    """A collection and scenario (and click model) as a figure names it: 'MQ2007, poison: perfect clicks'."""
    collection, scenario = setting_key.split("/")
    return f"{LABELS[collection]}, {scenario.replace('_', '-')}" + (f": {target_name(setting_key, target)}"
                                                                      if target not in (None, "") else "")


def describe_data(d: dict) -> str:
    if d["source"] == "synthetic":
        return f"a synthetic MQ2007-like collection (not MQ2007: {d['n_queries']:,} queries generated from seed {d['seed']})"
    return f"real MQ2007, fold {d.get('fold') or 1}"


@functools.lru_cache(maxsize=4)
def _load(source, seed, n_queries, root, fold):
    if source == "synthetic":
        # written in the LETOR format and read back by the same reader a real MQ2007 fold goes through
        with tempfile.TemporaryDirectory() as d:
            L.write_synthetic_fold(d, seed, n_queries, fold or 1)
            return L.load_fold(d, fold or 1)
    if not root:
        raise ConfigError(f"data.root is not set: set it to your MQ2007 folder, the one holding Fold{fold or 1}/train.txt "
                          f"and Fold{fold or 1}/test.txt (--set data.root=PATH)")
    return L.load_fold(root, fold or 1)


def load(data_cfg: dict) -> dict:
    """{'train': [...], 'test': [...]} of the profile's collection (once per process)."""
    return _load(data_cfg["source"], data_cfg.get("seed"), data_cfg.get("n_queries"), data_cfg.get("root"),
                 data_cfg.get("fold"))


# a run must fit one machine: the clients' stored weights (clients x rounds x features floats per
# ranker) and the interactions it simulates
MAX_HISTORY = 5_000_000      # clients x rounds per ranker: 1.8 GB of stored weights at 46 features
MAX_INTERACTIONS = 2 * 10**9  # training and unlearning interactions of the whole plan


def check(prof: dict, n_rankers: int, n_jobs: int) -> None:
    """What the profile's data and size allow, checked before the run claims its folder: a test
    split with a relevant document, as many training queries as clients, a plan that fits."""
    data = load(prof["data"])
    where = "the synthetic collection" if prof["data"]["source"] == "synthetic" else \
        os.path.join(str(prof["data"].get("root")), f"Fold{prof['data'].get('fold') or 1}")
    if not any((q.labels > 0).any() for q in data["test"]):
        raise ConfigError(f"{where}: no test query has a relevant document (a label above 0), so nDCG@10 is "
                          f"undefined on it; use a test file with graded relevance")
    t = prof["train"]
    if t["n_clients"] > len(data["train"]):
        raise ConfigError(f"train.n_clients ({t['n_clients']}) is more than the {len(data['train'])} training queries "
                          f"of {where}: every client needs a query; lower train.n_clients or use more queries")
    per = t["rounds"] * t["n_clients"]
    if per > MAX_HISTORY:
        raise ConfigError(f"train.rounds x train.n_clients = {per:,} is more than the {MAX_HISTORY:,} a ranker's stored "
                          f"history may hold ({per * data['train'][0].x.shape[1] * 8 / 1e9:,.0f} GB); lower one of them")
    total = (n_rankers + n_jobs) * per * t["interactions"]
    if total > MAX_INTERACTIONS:
        raise ConfigError(f"the plan simulates about {total:,} interactions ({n_rankers} rankers and {n_jobs} unlearning "
                          f"jobs of {t['rounds']} rounds x {t['n_clients']} clients x {t['interactions']} interactions), "
                          f"more than the {MAX_INTERACTIONS:,} one run may hold; lower train.rounds, train.n_clients or "
                          f"the seeds")


@functools.lru_cache(maxsize=8)
def _files_digest(root: str, fold: int, stamp: tuple) -> str:
    import hashlib
    h = hashlib.sha256()
    for name in L.FOLD_FILES:
        with open(os.path.join(root, f"Fold{fold}", name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:20]


def files_digest(data_cfg: dict) -> str | None:
    """The checksum of a real collection's fold files (None for the synthetic one, which its seed
    fixes): a ranker's key holds what it was trained on, not where the files lie."""
    if data_cfg["source"] == "synthetic":
        return None
    root, fold = data_cfg.get("root"), data_cfg.get("fold") or 1
    paths = [os.path.join(root or "", f"Fold{fold}", n) for n in L.FOLD_FILES]
    if not root or not all(map(os.path.isfile, paths)):
        return None  # a plan without the files (the paper profile here) can be shown; training names what is missing
    return _files_digest(root, fold, tuple((os.path.getsize(p), os.stat(p).st_mtime_ns) for p in paths))


def train_spec(prof: dict, row: dict) -> dict:
    """Everything that determines one trained ranker (its key covers them)."""
    data = {k: v for k, v in prof["data"].items() if k != "root"}  # where MQ2007 lives changes nothing ...
    if files_digest(prof["data"]):
        data["files"] = files_digest(prof["data"])  # ... what its files hold does
    return dict(domain="ltr", data=data, dataset=row["dataset"], scenario=row["setting"], click_model=row["target"],
                train=prof["train"], train_seed=row["train_seed"],
                versions={"ltr": LTR_VERSION, "data": DATA_VERSION})


def model_spec(prof: dict, row: dict) -> dict:
    spec = train_spec(prof, row)
    return {**spec, "key": "ranker-" + store.digest(spec)}


def job_versions(row: dict) -> dict:
    return {}  # a job's nDCG: the ranker's code, which its model's key holds


def fit_spec(tspec: dict) -> dict:
    """The spec ``fpdgd.train`` and the methods read."""
    return {**tspec["train"], "scenario": tspec["scenario"], "click_model": tspec["click_model"]}


def _save(path, key, trained, seconds):
    cl = trained["clients"]
    state = {"w": trained["w"], "history": trained["history"], "sent": trained["sent"],
             "cursors": np.array([c.cursor for c in cl])}
    store.save_state(path, {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}, key)
    store.save_json(path[:-3] + ".json", {
        "train_seconds": seconds, "computed": provenance.stamp("cpu"),
        "clients": [{"queries": [q.qid for q in c.queries], "click_model": c.click_model, "malicious": c.malicious,
                     "rng": c.rng.bit_generator.state} for c in cl]}, key)


def _restore(state, info, data):
    by_qid = {q.qid: q for q in data["train"]}
    clients = []
    for c, cursor in zip(info["clients"], state["cursors"].tolist()):
        bits = np.random.PCG64(0)  # replaced at once by the state training left (no draw happens here)
        bits.state = c["rng"]
        rng = np.random.Generator(bits)
        clients.append(F.Client([by_qid[q] for q in c["queries"]], c["click_model"], c["malicious"], rng, cursor,
                                F.grades(data["train"])))
    return {"w": state["w"].numpy(), "history": state["history"].numpy(), "sent": state["sent"].numpy(),
            "clients": clients}


def trained_ranker(tspec: dict, run_dir: str, data: dict):
    """(trained ranker, trained now?): from the store, or trained now and stored (``store.stored_or_made``)."""
    key = tspec["key"]
    path = store.model_path(run_dir, key)

    def stored():
        info = store.model_info(run_dir, key)
        state = store.load_model_state(path, key) if info is not None else None
        return None if state is None else _restore(state, info, data)

    def make():
        t0 = clock()
        trained = F.train(data, fit_spec(tspec), tspec["train_seed"])
        _save(path, key, trained, clock() - t0)
        return trained
    return store.stored_or_made(path, stored, make)


def ties(mode: str) -> str:
    """How nDCG orders tied scores in ``mode`` (``fpdgd.rank``: the reference's rule, or stable)."""
    return "reference" if mode == "reference" else "stable"


def trained_ndcg(trained: dict, data: dict, mode: str) -> float | None:
    """The test nDCG@10 of the trained ranker, or None when it diverged.

    quirk (reference): the reference reports ``ndcg_server[-1]``, logged *before* each round's
    aggregation, so its trained model's nDCG is that of the global weights before the last
    aggregation (``history[-2]``); corrected scores the final weights."""
    w = trained["history"][-2] if mode == "reference" else trained["w"]
    return F.ndcg_at_k(data["test"], w, ties=ties(mode)) if np.isfinite(w).all() else None


def run_job(trained: dict, data: dict, tspec: dict, job: dict, ndcg_trained: float) -> dict:
    """One unlearning job: the method on the trained ranker (methods copy what they change) with
    its s_u generator (``jobs.timed``), then the test nDCG@10 of the result beside the trained ranker's."""
    w, seconds = jobs.timed(lambda gen: METHODS[job["method"]].fn(trained, data, fit_spec(tspec), job["params"],
                                                                  job["mode"], gen), job["unlearn_seed"], numpy=True)

    def evaluate():
        if not np.isfinite(w).all():  # a diverged ranker has no nDCG (its ranking would be arbitrary), never a number
            return {"status": "failed: non-finite ranker weights", "ndcg": None, "ndcg_trained": ndcg_trained}
        return {"status": "ok", "ndcg": F.ndcg_at_k(data["test"], w, ties=ties(job["mode"])), "ndcg_trained": ndcg_trained}
    return jobs.record(evaluate, seconds, METRICS)


def worker(prof: dict, run_dir: str, tspec: dict, show_epochs: bool = False):
    """(trained now?, compute): the ranker of ``tspec`` in this process and the function computing one of its jobs."""
    jobs.setup(prof, torch.device("cpu"))
    data = load(prof["data"])
    ranker, trained = trained_ranker(tspec, run_dir, data)
    before = trained_ndcg(ranker, data, prof["mode"])
    return trained, lambda job: run_job(ranker, data, tspec, {**job, "mode": prof["mode"]}, before)


def after_run(prof: dict, run_dir: str, rows: list[dict]) -> None:
    """Nothing beyond results.csv."""
