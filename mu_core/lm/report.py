"""Sentences and tables of the language-model chapter, computed from a run (nothing typed by hand)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import plan, stats, store
from ..domains import label


def costs(run) -> dict:
    """Measured costs: the base model's and each original model's training (from their sidecars)
    and every method's median seconds per job (from the results)."""
    tspecs = plan.schedule(run.profile)[1]
    infos = [i for k in tspecs if (i := store.model_info(run.run_dir, k, quiet=True))]
    base = store.model_info(run.run_dir, next(iter(tspecs.values()))["base"]["key"], quiet=True) or {}
    ok = run.table[run.table.status == "ok"]
    return {"parameters": base.get("parameters"), "base_seconds": base.get("train_seconds"),
            "train_seconds": float(np.median([i["train_seconds"] for i in infos])),
            "oracle_seconds": float(np.median([i["oracle_seconds"] for i in infos])),
            "tokens_per_second": float(np.median([i["tokens"] / i["train_seconds"] for i in infos])),
            "job_seconds": ok.groupby("method").method_seconds.median().to_dict()}


def costs_sentence(c: dict) -> str:
    jobs = ", ".join(f"{label(m)} {s:.2f} s" for m, s in c["job_seconds"].items() if m != "original")
    return (f"the base model ({c['parameters']:,} parameters) trained in {c['base_seconds']:.1f} s; fine-tuning one "
            f"original model took a median {c['train_seconds']:.1f} s ({c['tokens_per_second']:,.0f} tokens per second "
            f"on one thread) and its oracle {c['oracle_seconds']:.1f} s; a median job took {jobs}")


def original_vs_retrain(table: pd.DataFrame, key: str, target: str) -> str:
    """Protocol B's log10 forget quality of Original and Retrain (one model per training seed)."""
    b = stats.select(table, "paper", key, target, protocol="B")
    o, r = (b[b.method == m].log10_forget_quality for m in ("original", "retrain"))
    if o.empty or r.empty:
        return "not measured (the run lacks Original or Retrain under protocol B)"
    return (f"under protocol B ({len(o)} training seeds) the Original models' log10 forget quality has a median of "
            f"{o.median():.1f} (from {o.min():.1f} to {o.max():.1f}) against Retrain's {r.median():.2f} (from {r.min():.2f} "
            f"to {r.max():.2f}); {int((o < r.min()).sum())} of {len(o)} Original values lie below Retrain's lowest, and the "
            f"medians are {r.median() - o.median():.1f} orders of magnitude apart")


def split_name(target: str) -> str:
    """'forget10' -> 'the forget10 split (10 % of the fictitious entities forgotten)'."""
    from .engine import forget_fraction
    return f"the {target} split ({forget_fraction(target) * 100:.0f} % of the fictitious entities forgotten)"


def method_means(table: pd.DataFrame, key: str, target: str) -> pd.DataFrame:
    """Mean of every metric per method under protocol B (the page's first table)."""
    from . import engine
    b = stats.select(table, "paper", key, target, protocol="B")
    out = b.groupby("method")[engine.METRICS].mean().drop(columns="forget_quality")
    return out.loc[[m for m in engine.METHODS if m in out.index]]
