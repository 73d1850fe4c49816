"""The domains the engine runs (a profile's ``domain``): a table from each name to its engine
module, and the few facts pages ask of every domain.

``images`` (the paper's study; the default) is ``mu_core.images.engine``; ``ltr`` (federated
online learning-to-rank) ``mu_core.ltr.engine``; ``lm`` (language-model unlearning, TOFU's
analogue) ``mu_core.lm.engine``. The planner, tasks, study, store, executors, statistics and plots
ask the engine of a profile (``engine``) and never branch on a domain's name; an engine module
imports none of them (no circle: tests/engine/test_structure.py).
"""
from __future__ import annotations

import importlib

ENGINES = {"images": "mu_core.images.engine", "ltr": "mu_core.ltr.engine", "lm": "mu_core.lm.engine"}
DOMAINS = tuple(ENGINES)

# What an engine module provides, checked for each by tests/engine/test_structure.py:
#   TITLE                  the domain as the book's tables title it
#   METHODS                its method table (``method.Method`` records)
#   METRICS, WORDS         its metric columns, and each one's figure label and table header
#   SEED_COLUMNS           key columns of its rows beyond s_t and s_u (images: init and order seeds)
#   STUDIED, ROLES         the metrics a page studies unless it names them; which metric plays which
#                          role (forgetting, utility, privacy ...)
#   FLOORS, SE_TARGETS     per metric: the smallest W2 that can stand out, the standard error a seed
#                          budget aims at (in the metric's units)
#   DESIGNS                the designs it runs (paper and grid at least)
#   schema(prof)           its profile fields (``profiles.schema`` adds those every domain shares)
#   validate(prof)         what its schema cannot say
#   load(data_cfg)         its data (once per process)
#   check(prof, n_models, n_jobs)   what the data and the plan's size allow
#   describe_data(data_cfg)         the data as a page names them (real or synthetic)
#   model_spec(prof, row)  the spec and key of the trained model behind a row
#   job_versions(row)      the versions a job's result depends on beyond its method's
#   worker(prof, run_dir, tspec, show_epochs)  (trained now?, a function computing one job)
#   after_run(prof, run_dir, rows)  what a finished run writes beyond results.csv
#   DATASETS, place(setting_key, target), target_name(setting_key, target)   how its figures name settings and targets
#   PAPER_BOOK             (profile, run it in the build?) that a paper-scale book reads for this domain
CONTRACT = ("TITLE", "METHODS", "METRICS", "WORDS", "SEED_COLUMNS", "STUDIED", "ROLES", "FLOORS", "SE_TARGETS", "DESIGNS", "DATASETS", "schema", "validate", "load",
            "check", "describe_data", "place", "target_name", "PAPER_BOOK", "model_spec", "job_versions", "worker", "after_run")


def of(prof: dict) -> str:
    return prof.get("domain", "images")


def engine_of(name: str):
    """The engine module of domain ``name``."""
    return importlib.import_module(ENGINES[name])


def engine(prof: dict):
    """The engine module of a profile's domain (images when the profile names none)."""
    return engine_of(of(prof))


def metrics(prof: dict) -> list[str]:
    """The metric columns of the domain's results, in table order."""
    return engine(prof).METRICS


def methods(prof: dict) -> dict:
    """The method table of the profile's domain (``method.Method`` records)."""
    return engine(prof).METHODS


def all_methods() -> dict:
    """Every domain's methods in one table, in table order (images first; a name two domains
    share, Retrain or Original, is one row): for labels and orders on pages that show any domain's results."""
    out = {}
    for name in ENGINES:
        out.update({m: rec for m, rec in engine_of(name).METHODS.items() if m not in out})
    return out


def titles() -> dict:
    """{domain: its title}, as the book's tables title each domain."""
    return {name: engine_of(name).TITLE for name in ENGINES}


def metric_words() -> dict:
    """{metric: (figure label, table header)} of every domain, each declared beside its metrics."""
    out = {}
    for name in ENGINES:
        out.update(engine_of(name).WORDS)
    return out


def floors() -> dict:
    """{metric: the smallest W2 that can stand out} of every domain."""
    return {m: v for name in ENGINES for m, v in engine_of(name).FLOORS.items()}


def se_targets() -> dict:
    """{metric: the standard error a seed budget aims at} of every domain."""
    return {m: v for name in ENGINES for m, v in engine_of(name).SE_TARGETS.items()}


def of_table(table):
    """The engine module whose datasets a results table's rows open, or None (a user's own table)."""
    if "dataset" not in table or not len(table):
        return None
    return of_dataset(str(table["dataset"].iloc[0]))


def studied(table) -> list[str]:
    """The metrics a page studies when it names none: its domain's ``STUDIED``; for a table of a
    user's own datasets, those of its columns some domain studies (retain and forget accuracy, say)."""
    e = of_table(table)
    if e is not None:
        return list(e.STUDIED)
    known = [m for name in ENGINES for m in engine_of(name).STUDIED if m in table]
    if not known:
        from .errors import ConfigError
        raise ConfigError("metrics: the table's datasets belong to no domain of mu_core and it has no metric column one "
                          "studies; name the metrics to study")
    return known


def role(table, name: str) -> str:
    """The metric that plays role ``name`` (forgetting, utility, ...) in the table's domain; for a
    table of a user's own datasets, the first domain's metric of that role among its columns."""
    e = of_table(table)
    found = [e.ROLES.get(name)] if e is not None else [engine_of(d).ROLES.get(name) for d in ENGINES]
    found = [m for m in found if m and (e is not None or m in table)]
    if not found:
        from .errors import ConfigError
        raise ConfigError(f"metric: no metric plays the role {name!r} in this table; name the metric")
    return found[0]


def metric_label(metric: str) -> str:
    """A metric as a figure's axis names it (the name itself for a user's own metric)."""
    return metric_words().get(metric, (metric,))[0]


def label(method: str, prof: dict | None = None) -> str:
    """A method as pages name it, whatever its domain; with the profile, a method defined on
    convolutions run on a network without any is named as the analogue it is."""
    rec = all_methods().get(method)
    name = rec.label if rec else method
    if prof is not None and rec is not None and rec.conv_only and prof.get("model", {}).get("arch") == "mlp":
        return f"{name} (MLP analogue)"
    return name


def of_dataset(dataset: str):
    """The engine module whose settings ``dataset`` opens (its ``DATASETS``), or None (a user's own table)."""
    return next((e for e in map(engine_of, ENGINES) if dataset in e.DATASETS), None)


def place(setting_key: str, target=None) -> str:
    """A setting key (and target) as its domain's figures name it; a key no domain knows as it is."""
    e = of_dataset(setting_key.split("/")[0])
    if e is None:
        return setting_key + (f" {target}" if target not in (None, "") else "")
    return e.place(setting_key, target)


def target_name(setting_key: str, target) -> str:
    e = of_dataset(setting_key.split("/")[0])
    return str(target) if e is None else e.target_name(setting_key, target)


def describe_data(prof: dict) -> str:
    """The data a profile reads, as a page names them (real or synthetic)."""
    return engine(prof).describe_data(prof["data"])
