"""The language-model domain as the engine sees it: its profile schema, its data, what determines a
fine-tuned model (its spec and key), training and storing one, and one unlearning job.

Rows of the results table map as: ``dataset`` = ``facts`` (the synthetic facts), ``setting`` =
``tofu`` (TOFU's protocol), ``target`` = the forget split as TOFU names it, ``forget01`` ...
``forget50`` (the percentage of fictitious entities forgotten).

Three kinds of model, each stored in the run folder under its key and lock:

- the **base** model, pretrained once on the control facts in both phrasings (the "generic text"
  that teaches the model the paraphrase's wording), its seed fixed in the profile (``base.seed``);
- the **original** model of training seed s_t: the base fine-tuned on every fictitious fact (forget
  and retain split), its data order drawn from s_t (the network has no dropout and no new
  parameters, so the order is all s_t decides);
- the **oracle** of s_t: the base fine-tuned on the retain split alone with a seed derived from s_t
  (``oracle_seed``), distinct from every Retrain job's s_u, so that Retrain's forget quality is a
  measurement and not 1 by construction. Only its forget-set truth ratios are kept (in the
  original model's sidecar): forget quality is a KS test against them.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import re

import numpy as np
import torch

from .. import jobs, provenance, store
from ..store import digest
from ..checks import SEED, Choice, ListOf, Num, Text
from ..method import Method
from ..errors import ConfigError
from . import data as LD
from . import evaluate as EV
from . import methods as U
from . import model as LM

LM_VERSION = 2  # bump when the network, its training or the base model's data change what they compute;
                # 2: the oracle's forget-set NLLs are stored, not its truth ratios (a mode computes those)
TITLE = "Language-model unlearning (TOFU analogue)"
DESIGNS = ("paper", "grid")
PAPER_BOOK = ("lm-classroom", True)  # no paper-scale profile: a paper-scale book runs the classroom study
SEED_COLUMNS = []
STUDIED = ["log10_forget_quality", "model_utility"]
ROLES = {"forgetting": "log10_forget_quality", "utility": "model_utility"}
FLOORS = {"log10_forget_quality": 0.3}  # a factor of 2 in forget quality
SE_TARGETS = {"log10_forget_quality": 0.15}
METRICS = ["log10_forget_quality", "forget_quality", "model_utility", "forget_truth_ratio", "forget_rouge", "retain_rouge"]
WORDS = {"log10_forget_quality": ("log10 forget quality", "log10 FQ"), "forget_quality": ("forget quality (KS p-value)", "FQ"),
         "model_utility": ("model utility", "utility"), "forget_truth_ratio": ("forget truth ratio", "forget TR"),
         "forget_rouge": ("forget ROUGE-L recall", "forget ROUGE"), "retain_rouge": ("retain ROUGE-L recall", "retain ROUGE")}
JOB_VERSIONS = {"eval": EV.EVAL_VERSION}  # a job's metrics: the evaluation's code beside its method's
clock = provenance.clock()  # a CPU-only engine: seconds are the job's thread's CPU time
TARGET = re.compile(r"forget(\d\d)$")
MAX_PARAMETERS = 50_000_000  # a network this CPU study trains from scratch: 400 times the classroom's
# an optimisation recipe (``model.optimise``): the base model's, fine-tuning's and each unlearning method's
RECIPE = {"epochs": Num(1, 10_000, integer=True), "lr": Num(0, lo_open=True), "batch": Num(1, 100_000, integer=True),
          "weight_decay": Num(0), "warmup_epochs": Num(0, 10_000, integer=True)}
WEIGHTS = {"gamma": Num(0), "alpha": Num(0)}

METHODS = {
    "original": Method(U.original, "Original", True, 1, {}, role="original", chapter="lm"),
    "retrain": Method(U.retrain, "Retrain", False, 1, {}, role="gold", chapter="lm"),
    "grad_ascent": Method(U.grad_ascent, "GradAscent", False, 1, RECIPE, chapter="lm"),
    "grad_diff": Method(U.grad_diff, "GradDiff", False, 1, {**RECIPE, **WEIGHTS}, chapter="lm"),
    "npo": Method(U.npo, "NPO", False, 1, {**RECIPE, **WEIGHTS, "beta": Num(0, lo_open=True)}, chapter="lm"),
}


def forget_fraction(target: str) -> float:
    """The fraction of entities a target forgets: ``forget10`` -> 0.1."""
    m = TARGET.match(str(target))
    if not m or not 1 <= int(m.group(1)) <= 50:
        raise ConfigError(f"target {target!r} is not a forget split; allowed: forget01 ... forget50 "
                          f"(the percentage of fictitious entities forgotten, as TOFU's forget01/05/10)")
    return int(m.group(1)) / 100


def schema(prof: dict) -> dict:
    """The language-model fields of a profile (``profiles.schema`` adds those every domain shares)."""
    return {
        "data": {"source": Choice("synthetic"), "seed": SEED, "n_entities": Num(10, 100_000, integer=True),
                 "n_control": Num(4, 100_000, integer=True), "n_values": Num(LD.N_PERTURBED + 1, 10_000, integer=True)},
        "model": {"d": Num(8, 4096, integer=True), "layers": Num(1, 64, integer=True), "heads": Num(1, 64, integer=True)},
        "deterministic": Choice(False), "device": Choice("cpu"),
        "base": {"seed": SEED, **RECIPE}, "train": RECIPE,
        "targets": (Choice("facts/tofu"), ListOf(Text(nonempty=True))),
        "grid_targets": (Choice("facts/tofu"), ListOf(Text(nonempty=True))),
        "eval": {"entities": Num(2, 100_000, integer=True), "max_new": Num(1, 1000, integer=True)},
    }


def validate(prof: dict) -> None:
    for field in ("targets", "grid_targets"):
        for targets in prof[field].values():
            for t in targets:
                try:
                    forget_fraction(t)
                except ConfigError as err:
                    raise ConfigError(f"{field} facts/tofu: {err}") from None
    if prof["model"]["d"] % prof["model"]["heads"]:
        raise ConfigError(f"model.d ({prof['model']['d']}) must be a multiple of model.heads ({prof['model']['heads']})")
    d, layers = prof["model"]["d"], prof["model"]["layers"]
    size = 12 * layers * d * d  # attention (4 d^2) and the feed-forward block (8 d^2) per layer
    if size > MAX_PARAMETERS:
        raise ConfigError(f"model.d = {d} and model.layers = {layers} make a network of about {size / 1e6:,.0f} million "
                          f"parameters; this CPU analogue allows {MAX_PARAMETERS / 1e6:.0f} million: lower model.d or model.layers")


def check(prof: dict, n_models: int, n_jobs: int) -> None:
    """What the plan's size allows beyond the schema: nothing more (``validate`` bounds the network)."""


DATASETS = ("facts",)  # the first part of this domain's setting keys


def target_name(setting_key: str, target) -> str:
    return str(target)  # TOFU's split name


def place(setting_key: str, target=None) -> str:
    return "synthetic facts" + (f", {target}" if target not in (None, "") else "")


def describe_data(d: dict) -> str:
    return (f"synthetic facts (not TOFU: {d['n_entities']} fictitious entities and {d['n_control']} control "
            f"entities with five attributes each, generated from seed {d['seed']})")


@functools.lru_cache(maxsize=8)
def _load(seed, n_entities, n_control, n_values, target):
    fs = LD.facts(seed, n_entities, n_control, n_values, forget_fraction(target))
    vocab = LD.vocabulary(fs)
    return {"facts": fs, "vocab": vocab, "index": {w: i for i, w in enumerate(vocab)}}


def load(data_cfg: dict, target: str = "forget10") -> dict:
    """The facts of the profile's data with ``target``'s forget split, the vocabulary and its index
    (the vocabulary does not depend on the split); made once per process and shared: not to be changed."""
    return _load(data_cfg["seed"], data_cfg["n_entities"], data_cfg["n_control"], data_cfg["n_values"], target)


def oracle_seed(train_seed: int) -> int:
    """The oracle's seed for s_t: a hash of ('oracle', s_t), far from every small s_u."""
    return int(hashlib.sha256(f"oracle-{train_seed}".encode()).hexdigest()[:8], 16) + 2**32


def base_spec(prof: dict) -> dict:
    spec = dict(domain="lm", data=prof["data"], model=prof["model"], base=prof["base"], versions={"lm": LM_VERSION})
    return {**spec, "key": "lmbase-" + digest(spec)}


def train_spec(prof: dict, row: dict) -> dict:
    """Everything that determines an original model and its oracle (the key covers them)."""
    return dict(domain="lm", base=base_spec(prof), target=row["target"], train=prof["train"],
                train_seed=row["train_seed"], versions={"lm": LM_VERSION})


def model_spec(prof: dict, row: dict) -> dict:
    spec = train_spec(prof, row)
    return {**spec, "key": "lm-" + digest(spec)}


def job_versions(row: dict) -> dict:
    return dict(JOB_VERSIONS)


def of_split(data: dict, split: str) -> list[dict]:
    return [f for f in data["facts"] if f["split"] == split]


def encoded(data: dict, split: str, field: str = "answer") -> list:
    return [LM.encode(f["question"], f[field], data["index"]) for f in of_split(data, split)]


def _stored(path, key, run_dir, vocab, cfg):
    info = store.model_info(run_dir, key)
    state = store.load_model_state(path, key) if info is not None else None
    if state is None:
        return None
    m = LM.build(len(vocab), cfg, 0)  # weights replaced at once by the stored ones
    m.load_state_dict(state)
    return m.eval(), info


def _stored_or_trained(key, run_dir, vocab, cfg, train):
    """(model, sidecar, trained now?) of ``key``: from the store, or ``train()`` -> (model, sidecar)
    run now under the key's lock and stored (the sidecar last; ``store.stored_or_made``)."""
    path = store.model_path(run_dir, key)

    def make():
        model, info = train()
        store.save_model(path, model, key)
        store.save_json(path[:-3] + ".json", {**info, "computed": provenance.stamp("cpu")}, key)
        return model.eval(), info
    (model, info), trained = store.stored_or_made(path, lambda: _stored(path, key, run_dir, vocab, cfg), make)
    return model, info, trained


def base_model(bspec: dict, run_dir, data):
    """The base model: the control facts, answer and paraphrase, ``base.epochs`` passes (order from ``base.seed``)."""
    def train():
        m = LM.build(len(data["vocab"]), bspec["model"], bspec["base"]["seed"])
        pairs = encoded(data, "control") + encoded(data, "control", "paraphrase")
        t0 = clock()
        tokens = LM.fit(m, pairs, bspec["base"], torch.Generator().manual_seed(bspec["base"]["seed"]))
        s = clock() - t0
        return m, {"train_seconds": s, "tokens": tokens, "parameters": sum(p.numel() for p in m.parameters())}
    return _stored_or_trained(bspec["key"], run_dir, data["vocab"], bspec["model"], train)[0]


def eval_sets(data: dict, entities: int) -> dict:
    """The evaluated facts: the whole forget split; the first ``entities`` retain entities; the
    first ``entities`` control entities in two halves (``lm.evaluate`` says why)."""
    fs = data["facts"]
    first = lambda split: list(dict.fromkeys(f["entity"] for f in fs if f["split"] == split))[:entities]  # noqa: E731
    retain, control = first("retain"), first("control")
    halves = [set(control[:len(control) // 2]), set(control[len(control) // 2:])]
    return {"forget": of_split(data, "forget"),
            "retain_eval": [f for f in fs if f["entity"] in set(retain)],
            "control": [[f for f in fs if f["entity"] in h] for h in halves]}


def trained_model(tspec: dict, run_dir: str):
    """(original model, its sidecar with the oracle's forget-set NLLs, the base model, trained now?)."""
    data = load(tspec["base"]["data"], tspec["target"])
    base = base_model(tspec["base"], run_dir, data)
    cfg = tspec["base"]["model"]

    def train():
        t0 = clock()
        m = copy.deepcopy(base)
        tokens = LM.fit(m, encoded(data, "forget") + encoded(data, "retain"), tspec["train"],
                        torch.Generator().manual_seed(tspec["train_seed"]))
        seconds = clock() - t0
        oracle = copy.deepcopy(base)
        LM.fit(oracle, encoded(data, "retain"), tspec["train"], torch.Generator().manual_seed(oracle_seed(tspec["train_seed"])))
        para, pert = EV.base_and_perturbed_nlls(oracle.eval(), of_split(data, "forget"), data["index"], "paraphrase")
        return m, {"train_seconds": seconds, "tokens": tokens, "oracle_seconds": clock() - t0 - seconds,
                   "oracle_nll_paraphrase": para.tolist(), "oracle_nll_perturbed": pert.tolist()}
    model, info, trained = _stored_or_trained(tspec["key"], run_dir, data["vocab"], cfg, train)
    return model, info, base, trained


def unlearn(model, base, tspec: dict, job: dict):
    """(the method on a copy of the original model with its s_u generator, seconds it took: ``jobs.timed``)."""
    data = load(tspec["base"]["data"], tspec["target"])
    sets = {"forget": encoded(data, "forget"), "retain": encoded(data, "retain"), "base": base, "recipe": tspec["train"]}
    m = copy.deepcopy(model)
    return jobs.timed(lambda gen: METHODS[job["method"]].fn(m, sets, job["params"], gen), job["unlearn_seed"])


def evaluate_job(m, info: dict, tspec: dict, job: dict) -> dict:
    """``status`` and TOFU's metrics of an unlearned model against the oracle's forget truth ratios;
    a model with non-finite weights or outputs raises ``jobs.NonFinite`` (no metrics)."""
    with torch.no_grad():
        if not all(torch.isfinite(p).all() for p in m.parameters()):
            raise jobs.NonFinite("non-finite weights")
    data = load(tspec["base"]["data"], tspec["target"])
    oracle = (np.asarray(info["oracle_nll_paraphrase"]), np.asarray(info["oracle_nll_perturbed"]))
    return {"status": "ok", **EV.evaluate(m, eval_sets(data, job["eval"]["entities"]), oracle, data["index"],
                                          data["vocab"], job["eval"]["max_new"], job["mode"])}


def run_job(model, info: dict, base, tspec: dict, job: dict) -> dict:
    """One unlearning job: ``unlearn`` then ``evaluate_job`` (``jobs.record``)."""
    m, seconds = unlearn(model, base, tspec, job)
    return jobs.record(lambda: evaluate_job(m, info, tspec, job), seconds, METRICS)


def worker(prof: dict, run_dir: str, tspec: dict, show_epochs: bool = False):
    """(trained now?, compute): the original model of ``tspec`` (and its base and oracle) in this
    process, and the function computing one of its jobs."""
    jobs.setup(prof, torch.device("cpu"))
    model, info, base, trained = trained_model(tspec, run_dir)
    return trained, lambda job: run_job(model, info, base, tspec, {**job, "mode": prof["mode"]})


def after_run(prof: dict, run_dir: str, rows: list[dict]) -> None:
    """Nothing beyond results.csv."""
