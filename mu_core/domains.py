"""The domains the engine runs (a profile's ``domain``), and the few facts it asks of each: the
metric columns of its results, its methods, how a page names its data.

``images`` (the paper's study; the default) lives in ``mu_core.images``; ``ltr`` (federated
online learning-to-rank) in ``mu_core.ltr``; ``lm`` (language-model unlearning, TOFU's analogue)
in ``mu_core.lm``. The last two reach the engine through one module each (``engine``). The planner, store, executors, statistics
and plots take metric names and never a domain's internals.
"""
from __future__ import annotations

DOMAINS = ("images", "ltr", "lm")
TITLES = {"images": "Image classification", "ltr": "Federated online learning to rank",
          "lm": "Language-model unlearning (TOFU analogue)"}  # each domain as the book's tables title it
IMAGE_METRICS = ["retain_acc", "forget_acc", "test_acc", "mia"]


def of(prof: dict) -> str:
    return prof.get("domain", "images")


# What an engine module provides (``ltr.engine``, ``lm.engine``), checked for each by
# tests/test_structure.py: its method table (``method.Method`` records), its metric columns and their
# words, the versions a job's result depends on beyond its method's, the profile schema and the
# checks beyond it, its data, the spec (and key) of one trained model, and one job. Images does not
# yet have such a module: it is still the default branch of plan, tasks, study and profiles.
CONTRACT = ("METHODS", "METRICS", "WORDS", "JOB_VERSIONS", "schema", "validate", "load", "train_spec", "run_job")


def engine(prof: dict):
    """The engine module of a profile's domain other than images (``ltr.engine``, ``lm.engine``:
    schema, validate, load, train_spec, METRICS, METHODS), or None for images."""
    d = of(prof)
    if d == "ltr":
        from .ltr import engine as e
        return e
    if d == "lm":
        from .lm import engine as e
        return e
    return None


def metrics(prof: dict) -> list[str]:
    """The metric columns of the domain's results, in table order."""
    e = engine(prof)
    return e.METRICS if e else IMAGE_METRICS


def methods(prof: dict) -> dict:
    """The method table of the profile's domain (``methods.Method`` records)."""
    e = engine(prof)
    if e:
        return e.METHODS
    from .images.methods import METHODS
    return METHODS


def all_methods() -> dict:
    """Every domain's methods in one table, in table order (images first; a name two domains
    share, Retrain or Original, is one row): for labels and orders on pages that show any domain's results."""
    from .ltr.engine import METHODS as LTR
    from .lm.engine import METHODS as LMS
    from .images.methods import METHODS
    out = dict(METHODS)
    for table in (LTR, LMS):
        out.update({m: rec for m, rec in table.items() if m not in out})
    return out


CONV_ONLY = ("msg", "ct")  # Deep Unlearn's methods defined on convolutions (images.deepunlearn: their analogues)


def metric_words() -> dict:
    """{metric: (figure label, table header)} of every domain, each declared beside its metrics
    (``images.metrics.WORDS``, ``ltr.engine.WORDS``, ``lm.engine.WORDS``)."""
    from .images.metrics import WORDS
    from .lm.engine import WORDS as LMW
    from .ltr.engine import WORDS as LTRW
    return {**WORDS, **LTRW, **LMW}


def metric_label(metric: str) -> str:
    """A metric as a figure's axis names it (the name itself for a user's own metric)."""
    return metric_words().get(metric, (metric,))[0]


def label(method: str, prof: dict | None = None) -> str:
    """A method as pages name it, whatever its domain; with the profile, a convolution-only method
    on a network without convolutions is named as the analogue it is."""
    rec = all_methods().get(method)
    name = rec.label if rec else method
    if prof is not None and method in CONV_ONLY and prof.get("model", {}).get("arch") == "mlp":
        return f"{name} (MLP analogue)"
    return name


def describe_data(prof: dict) -> str:
    """The data a profile reads, as a page names them (real or synthetic)."""
    d = prof["data"]
    if of(prof) == "lm":
        return (f"synthetic facts (not TOFU: {d['n_entities']} fictitious entities and {d['n_control']} control "
                f"entities with five attributes each, generated from seed {d['seed']})")
    if of(prof) == "ltr":
        if d["source"] == "synthetic":
            return (f"a synthetic MQ2007-like collection (not MQ2007: {d['n_queries']:,} queries generated from "
                    f"seed {d['seed']})")
        return f"real MQ2007, fold {d.get('fold') or 1}"
    from .images import data as D
    return D.describe(d)
