"""Image classification (the paper's study) as the engine runs it: the contract every domain
provides (``domains.CONTRACT``), for images.

A trained model is a network of ``models`` trained by ``train.fit`` on a dataset of ``data``
with seed s_t (and, in the init_order design, a separate data-order seed); a job is one method of
``methods.METHODS`` on a copy of it with seed s_u, evaluated by ``metrics.evaluate``. Beyond the
paper and grid designs, images has init_order and U-LiRA (``ulira``), whose after-run step writes
its membership tables.
"""
from __future__ import annotations

import copy

import torch

from .. import jobs, provenance, store
from ..checks import BATCH, EPOCHS, SEEDS, Bool, Choice, ListOf, Num, Optional, Text, section
from ..errors import ConfigError
from . import data as D
from . import methods as M
from . import metrics, models, train, ulira

TITLE = "Image classification"
METHODS = M.METHODS
METRICS = ["retain_acc", "forget_acc", "test_acc", "mia"]
WORDS = metrics.WORDS
STUDIED = ["retain_acc", "forget_acc"]  # what a page studies unless it names its metrics
ROLES = {"forgetting": "forget_acc", "utility": "retain_acc", "generalisation": "test_acc", "privacy": "mia"}
FLOORS = {m: 1.0 for m in METRICS}  # a W2 stands out only above one point of accuracy (analysis.stands_out)
SE_TARGETS = {"forget_acc": 0.5, "retain_acc": 0.5}  # the standard error a mean should reach: half the floor
SEED_COLUMNS = ["init_seed", "order_seed"]  # an image model's initialisation and data-order seeds
DESIGNS = ("paper", "grid", "init_order", "ulira")
DEVICES = ("auto", "cpu", "cuda")
PAPER_BOOK = ("paper", True)  # a paper-scale book's image pages run (or find) the paper profile


def code_versions(reference_selection: bool = False) -> dict:
    """The versions of the code that shapes an original model: the data and splits, the network,
    training and (when the epoch is selected on test accuracy) the accuracy that selects it.
    Each version lives beside its code; ``tests/engine/test_golden.py`` fails when a result changes
    without one of them changing."""
    v = {"data": D.DATA_VERSION, "models": models.MODELS_VERSION, "train": train.TRAIN_VERSION}
    return {**v, "accuracy": metrics.ACCURACY_VERSION} if reference_selection else v


# --- the profile ---------------------------------------------------------------------------

class _Augment:
    """null (no augmentation) or {crop_pad, flip, rotate}."""
    FIELDS = {"crop_pad": Num(0, 64, integer=True), "flip": Bool(), "rotate": Num(0, 180)}  # a pad beyond 64
    # pixels only adds zeros (and memory: the padded batch is built whole)

    def __call__(self, field, v):
        return v if v is None else section(field, v, self.FIELDS)


def schema(prof: dict) -> dict:
    """The image fields of a profile (settings and datasets by its data source); ``profiles.schema``
    adds the fields every domain shares."""
    src = prof.get("data", {}).get("source") if isinstance(prof.get("data"), dict) else None
    settings = D.SETTINGS.get(src if isinstance(src, str) else None, [s for v in D.SETTINGS.values() for s in v])
    datasets = sorted({s.split("/")[0] for s in settings})
    names = ListOf(Text(nonempty=True))
    return {
        "data": {"source": Choice(*D.SETTINGS), "image_size": Optional(Num(1, 28, integer=True)),
                 "root": Optional(Text(optional=True)), "download": Optional(Bool())},
        "model": {"arch": Choice(*models.ARCHS), "hidden": Optional(Num(1, 65_536, integer=True)),
                  "width": Optional(Num(1, 1024, integer=True))},
        "deterministic": Bool(), "device": Choice(*DEVICES),
        "train": {"optimizer": Choice("sgd", "adam"), "lr": Num(0, lo_open=True),
                  "momentum": Num(0, 1, hi_open=True), "weight_decay": Num(0), "batch": BATCH,
                  "warmup_epochs": Num(0, 10_000, integer=True), "gamma": Num(0, 1, lo_open=True),
                  "epochs": (Choice(*datasets), EPOCHS),
                  "milestones": (Choice(*datasets), ListOf(EPOCHS, ascending=True)),
                  "augment": _Augment(), "amp": Choice(None, "bf16"), "channels_last": Bool()},
        # initialisation x order seeds on the grid targets (train_seed = init seed), J unlearning seeds
        # each, for those of its methods the profile's methods list (as ulira's)
        "init_order": Optional({"inits": Num(2, 100, integer=True), "orders": Num(2, 100, integer=True), "J": SEEDS,
                                "methods": ListOf(Choice(*METHODS), nonempty=True)}),
        # U-LiRA (images.ulira): K models, each without half a fixed target pool, unlearned by each method
        "ulira": Optional({"K": Num(8, 1000, integer=True), "dataset": Choice(*datasets),
                           "methods": ListOf(Choice(*METHODS), nonempty=True), "n_boot": Num(10, 10_000, integer=True)}),
        "targets": (Choice(*settings), names), "grid_targets": (Choice(*settings), names),
        "eval": {"batch": BATCH},
    }


def validate(prof: dict) -> None:
    """What the schema cannot say: an image size for the small digits, every target a class of
    its setting, a recipe for every dataset used, U-LiRA's methods able to forget random samples."""
    if prof["data"]["source"] == "mnist5k" and "image_size" not in prof["data"]:
        raise ConfigError("data.image_size is needed for data.source mnist5k (28, 14 or 7)")
    datasets = set()
    for field in ("targets", "grid_targets"):
        for key, targets in prof[field].items():
            ds, setting = key.split("/")
            for t in targets:
                D.target_index(ds, setting, t)
            datasets.add(ds)
    for design, fields in (("init_order", "inits, orders, J, methods"), ("ulira", "K, dataset, methods, n_boot")):
        if design in prof["designs"] and not prof.get(design):
            raise ConfigError(f"designs lists {design} but the profile has no {design} section ({fields})")
    if "ulira" in prof["designs"]:
        no_random = [m for m in prof["ulira"]["methods"] if not METHODS[m].random_forget]
        if no_random:  # each needs a forgotten class (UNSIR's noise label, LFSSD's full-class alpha)
            raise ConfigError(f"ulira.methods: {', '.join(no_random)} forget a class, not random samples; "
                              f"allowed: the other methods")
        datasets.add(prof["ulira"]["dataset"])
    for ds in sorted(datasets):
        for field in ("epochs", "milestones"):
            if ds not in prof["train"][field]:
                raise ConfigError(f"train.{field} has no entry for dataset {ds}; add train.{field}.{ds}")


def check(prof: dict, n_models: int, n_jobs: int) -> None:
    """What the data and the plan's size allow beyond the schema: for images, nothing more (the
    row cap of ``profiles`` bounds a plan)."""


def load(data_cfg: dict) -> D.Data:
    return D.load(data_cfg)


def describe_data(data_cfg: dict) -> str:
    return D.describe(data_cfg)


DATASETS = tuple(D.NUM_CLASSES)  # the first part of this domain's setting keys


def target_name(setting_key: str, target) -> str:
    """A forget target as a reader says it: 'digit 7', 'digits 1 and 7', or the CIFAR class."""
    t = str(target)
    if setting_key.startswith("mnist"):
        return f"digits {t.replace('-', ' and ')}" if "-" in t else f"digit {t}"
    return f"'{t}'"


def place(setting_key: str, target=None) -> str:
    """A setting (and target) as a figure names it: 'digit pairs, sub-class: digit 7'."""
    return D.setting_label(setting_key) + (f": {target_name(setting_key, target)}" if target not in (None, "") else "")


# --- specs and keys ------------------------------------------------------------------------

def recipe(prof: dict, dataset: str) -> dict:
    """The training recipe of ``dataset``: per-dataset epochs and milestones resolved."""
    r = {k: v for k, v in prof["train"].items() if k not in ("epochs", "milestones")}
    return {**r, "epochs": prof["train"]["epochs"][dataset], "milestones": prof["train"]["milestones"][dataset]}


def train_spec(prof: dict, dataset: str, seed: int, order_seed: int | None = None, train_on: dict | None = None) -> dict:
    """Everything that determines one original model, and its key. ``seed`` (s_t) initialises
    the network and, unless ``order_seed`` differs from it, draws the data order and augmentation
    (a model of one s_t keeps the key it had before the seeds were split)."""
    spec = dict(data=prof["data"], model=prof["model"], dataset=dataset, recipe=recipe(prof, dataset),
                normalisation=D.NORMALISATION[prof["data"]["source"]],
                select_on_test=prof["mode"] == "reference", train_seed=seed,
                versions=code_versions(prof["mode"] == "reference"))
    if order_seed is not None and order_seed != seed:
        spec["order_seed"] = order_seed
    if train_on:  # trained on one split's D_r and D_f only (U-LiRA's models)
        spec["train_on"] = train_on
    # where CIFAR lives does not change what is trained
    key_spec = copy.deepcopy(spec)
    key_spec["data"] = {k: v for k, v in spec["data"].items() if k not in ("root", "download")}
    return {**spec, "key": "train-" + store.digest(key_spec)}


def model_spec(prof: dict, row: dict) -> dict:
    """The spec and key of the original model behind ``row``: its dataset and s_t (a U-LiRA row's
    model is trained without half its target pool)."""
    train_on = {"setting": row["setting"], "target": row["target"]} if row["setting"] == "random" else None
    return train_spec(prof, row["dataset"], row["train_seed"], row.get("order_seed"), train_on)


def job_versions(row: dict) -> dict:
    """The versions a job's result depends on beyond its method's: the model's code, accuracy and
    the metrics (and U-LiRA's pool statistics on a random split)."""
    v = {**code_versions(), "accuracy": metrics.ACCURACY_VERSION, "metrics": metrics.METRICS_VERSION}
    return {**v, "ulira": ulira.ULIRA_VERSION} if row["setting"] == "random" else v


def training_images(tspecs: dict, groups: dict, sizes: dict) -> int:
    """Images passed through training steps by a plan (``plan.schedule``'s models and jobs): every
    original model's epochs and every method's epochs over the sets its record ``reads`` (methods
    that read none add little). ``sizes``: ``{"train": images per dataset, "forget": forget-set
    images per "dataset/setting"}`` (a sub-class forget set is one fine class, not its
    super-class). For projections only."""
    # a U-LiRA model (``train_on``) never sees the other half of the pool, as large as its forget set
    total = sum(ts["recipe"]["epochs"] * (sizes["train"][ts["dataset"]] - (
        sizes["forget"][f"{ts['dataset']}/random"] if "train_on" in ts else 0)) for ts in tspecs.values())
    for tkey, group in groups.items():
        ds = tspecs[tkey]["dataset"]
        n = sizes["train"][ds]
        for j in group:
            n_forget = sizes["forget"][f"{ds}/{j['setting']}"]
            for part, epochs in METHODS[j["method"]].reads.items():
                e = tspecs[tkey]["recipe"]["epochs"] if epochs == "recipe" else j["params"][epochs]
                total += e * (n - n_forget if part == "retain" else n_forget)
    return total


# --- training and jobs ---------------------------------------------------------------------

def context(prof: dict):
    """(device, data) for work in this process, after the per-process ``jobs.setup``."""
    device = jobs.resolve_device(prof["device"])
    jobs.setup(prof, device)
    data = D.load(prof["data"])
    return device, (data.to(device) if device.type != "cpu" else data)


def original_model(spec: dict, run_dir: str, data: D.Data, device, show_epochs: bool = False):
    """(M_o, trained now?) for ``spec``: from the store, or trained now and stored."""
    ds = spec["dataset"]
    model = models.build(spec["model"], D.NUM_CLASSES[ds], tuple(data.train_x.shape[1:]), spec["train_seed"]).to(device)
    path = store.model_path(run_dir, spec["key"])

    def stored():  # a model without its sidecar is retrained: time and provenance come only from training
        return store.load_model_state(path, spec["key"]) if store.model_info(run_dir, spec["key"]) is not None else None
    state, trained = store.stored_or_made(path, stored, lambda: _train(model, spec, path, data, device, show_epochs))
    if not trained:
        model.load_state_dict(state)
    return model, trained


def _train(model, spec, path, data, device, show_epochs):
    ds = spec["dataset"]
    y_train, y_test = D.labels(data, ds)
    select = None
    if spec["select_on_test"]:
        # quirk (reference): the epoch with the best test accuracy is kept (test-set selection)
        select = lambda m: metrics.accuracy(metrics.logits(m, data.test_x, data), y_test, "reference")  # noqa: E731
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
    return model.state_dict()


def worker(prof: dict, run_dir: str, tspec: dict, show_epochs: bool = False):
    """(trained now?, compute): the original model of ``tspec`` in this process, from the store or
    trained now, and the function computing one of its jobs (``run_job``)."""
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
    return trained, compute


def unlearn(model, split, job, ctx: M.Context, device):
    """(unlearned copy of M_o, seconds the method took): ``jobs.timed``, M_o and the job's
    parameters copied first (a method may change both)."""
    m, p = copy.deepcopy(model), copy.deepcopy(job["params"])
    return jobs.timed(lambda gen: METHODS[job["method"]].fn(m, split, p, ctx, gen), job["unlearn_seed"], device)


def run_job(model, split, job, ctx: M.Context, device) -> dict:
    """One unlearning job: ``unlearn`` then ``evaluate_job`` (``jobs.record``); a job on a random
    split also stores U-LiRA's statistics of the target pool."""
    m, seconds = unlearn(model, split, job, ctx, device)
    out = jobs.record(lambda: evaluate_job(m, split, job, ctx), seconds, metrics.NAMES, device)
    if job.get("setting") == "random" and out["status"] == "ok":
        out["pool"] = ulira.pool_statistics(m, split)
    return out


def evaluate_job(m, split, job, ctx: M.Context) -> dict:
    """``status`` and the metrics of an unlearned model (``metrics.METRICS_VERSION`` covers this).

    A model whose outputs are not finite raises ``jobs.NonFinite`` (recorded as failed, metrics
    empty): its argmax would read as class 0 everywhere, and a diverged method would look like a
    perfect forgetter. A model whose retain accuracy fell to chance keeps its metrics (they are
    true) under the status ``collapsed: ...`` (``metrics.collapsed``), which no page reads as
    forgetting."""
    method = METHODS[job["method"]]
    p = job["params"]
    retain_batch = p[method.reference_retain_batch] if method.reference_retain_batch and ctx.mode == "reference" else None
    out = metrics.evaluate(m, split, ctx.mode, job["eval"]["batch"], retain_batch)
    return {"status": metrics.collapsed(out["retain_acc"], split.num_classes) or "ok", **out}


def after_run(prof: dict, run_dir: str, rows: list[dict]) -> None:
    """U-LiRA's tables (``ulira.write``) when the profile runs that design."""
    if "ulira" in prof["designs"]:
        n_train = len(D.labels(D.load(prof["data"]), prof["ulira"]["dataset"])[0])
        ulira.write(run_dir, rows, n_train, prof["ulira"]["n_boot"])
