"""The statistics for anyone's results table: ``python -m mu_core analyse TABLE.csv --out DIR``.

A table from OpenUnlearning, Deep Unlearn or a user's own runs needs one row per evaluated model
with a method, a training seed, an unlearning seed and metric columns (names mapped with
``--column ours=theirs``). Optional ``dataset``, ``setting`` and ``target`` columns group the rows;
an optional ``protocol`` column (values A and B) says which rows are which protocol, otherwise:

* grid: within a group and method, every training seed has the same J >= 2 unlearning seeds
  (I >= 2 training seeds): variance components, ICC, rank flips, seed budget;
* A and B: one training seed with J >= 2 unlearning seeds (A) beside I >= 2 training seeds with one
  unlearning seed each (B): W2(A, B), as the paper compares them.

The rows become the engine's own table (``design``, ``protocol``, ...), so every number comes from
the same functions as the book's.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from . import analysis, plots, stats
from .errors import ConfigError

NEEDED = ("method", "train_seed", "unlearn_seed")
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")  # shipped tables
GROUPS = ("dataset", "setting", "target")


def parse_columns(pairs) -> dict:
    """{ours: theirs} from 'ours=theirs' strings (a list, or one comma-separated string)."""
    if isinstance(pairs, str):
        pairs = [p.strip() for p in pairs.split(",") if p.strip()]
    cols = dict(c.split("=", 1) for c in pairs if "=" in c)
    if len(cols) != len(pairs):
        raise ConfigError(f"columns take OURS=THEIRS (e.g. method=algorithm), got {pairs!r}")
    return cols


def read(path: str, columns: dict | None = None, metrics=None) -> tuple[pd.DataFrame, list[str]]:
    """(the table in the engine's form, its metric columns); one line naming what is wrong."""
    if not os.path.isfile(path):
        raise ConfigError(f"table {path!r} does not exist")
    try:
        raw = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as err:
        raise ConfigError(f"table {path!r} cannot be read as CSV ({str(err).splitlines()[0]})") from None
    columns = dict(columns or {})
    absent = [theirs for theirs in columns.values() if theirs not in raw.columns]
    if absent:
        raise ConfigError(f"--column maps to {', '.join(map(repr, absent))}, which the table lacks; its columns: "
                          f"{', '.join(raw.columns)}")
    t = raw.rename(columns={theirs: ours for ours, theirs in columns.items()})
    missing = [c for c in NEEDED if c not in t.columns]
    if missing:
        raise ConfigError(f"table {path!r} lacks the column(s) {', '.join(missing)}; map yours with "
                          f"--column {missing[0]}=YOUR_NAME (its columns: {', '.join(raw.columns)})")
    known = set(NEEDED) | set(GROUPS) | {"protocol", "design", "mode", "method_seconds", "status", "commit", "computed_at"}
    metrics = list(metrics) if metrics else [c for c in t.columns if c not in known and pd.api.types.is_numeric_dtype(t[c])]
    bad = [m for m in metrics if m not in t.columns or not pd.api.types.is_numeric_dtype(t[m])]
    if not metrics or bad:
        raise ConfigError(f"table {path!r}: {'metric column(s) ' + ', '.join(bad) + ' missing or not numeric' if bad else 'no numeric metric column'}"
                          f"; name them with --metrics NAME[,NAME]")
    for g in GROUPS:
        t[g] = t[g].astype(str) if g in t.columns else "all"
    for c in ("train_seed", "unlearn_seed"):
        if not pd.api.types.is_integer_dtype(t[c]):
            raise ConfigError(f"table {path!r}: column {c} must hold whole numbers (seeds)")
    key = [*GROUPS, "method", "train_seed", "unlearn_seed"] + (["protocol"] if "protocol" in t.columns else [])
    dup = t[t.duplicated(key, keep=False)]
    if len(dup):
        r = dup.iloc[0]
        raise ConfigError(f"table {path!r} has {len(dup)} rows sharing (method, train_seed, unlearn_seed) with another, "
                          f"e.g. {r.method}, {r.train_seed}, {r.unlearn_seed}; each evaluated model may appear once")
    return _designs(t), metrics


def _designs(t: pd.DataFrame) -> pd.DataFrame:
    """The rows labelled with the engine's design and protocol (a row can serve both a grid and,
    with a protocol column, A or B)."""
    out = []
    for _, g in t.groupby([*GROUPS, "method"], sort=False):
        if "protocol" in g.columns and g.protocol.isin(["A", "B"]).any():
            out.append(g[g.protocol.isin(["A", "B"])].assign(design="paper"))
            continue
        per_seed = g.groupby("train_seed").unlearn_seed.nunique()
        if len(per_seed) >= 2 and per_seed.min() >= 2 and per_seed.nunique() == 1:
            out.append(g.assign(design="grid", protocol="grid"))
        a_seeds, b_seeds = per_seed[per_seed >= 2].index, per_seed[per_seed == 1].index
        if len(a_seeds) == 1 and len(b_seeds) >= 2:
            out.append(g.assign(design="paper", protocol=np.where(g.train_seed.isin(a_seeds), "A", "B")))
    return pd.concat(out, ignore_index=True) if out else t.iloc[:0].assign(design=[], protocol=[])


def designs_found(t: pd.DataFrame) -> str:
    """What the table supports, in one line."""
    parts = []
    for design, what in (("paper", "protocols A and B"), ("grid", "a grid")):
        d = t[t.design == design]
        if len(d):
            parts.append(f"{what} for {d.groupby([*GROUPS, 'method']).ngroups} method-group(s)")
    return "; ".join(parts) if parts else "no design: neither a grid nor protocols A and B"


def analyse(path: str, out: str, columns: dict | None = None, metrics=None, train_seconds: float | None = None) -> dict:
    """Write w2.csv, components.csv, rank_flips.csv, seed_budget.csv, figures and summary.txt for
    the table at ``path`` into ``out``; returns {name: path} of what was written."""
    t, metrics = read(path, columns, metrics)
    if not (t.design == "grid").any() and not (t.design == "paper").any():
        raise ConfigError(f"table {path!r} supports no analysis: it needs, for some method, either every training seed "
                          f"with the same J >= 2 unlearning seeds (a grid), or one training seed with J >= 2 unlearning "
                          f"seeds beside >= 2 training seeds with one each (protocols A and B), or a protocol column")
    os.makedirs(out, exist_ok=True)
    written, lines = {}, [f"table: {path}; metrics: {', '.join(metrics)}; supports {designs_found(t)}"]

    def save(df, name):
        written[name] = os.path.join(out, name + ".csv")
        df.to_csv(written[name], index=False)

    if (t.design == "paper").any():
        w2 = stats.paper_w2(t, metrics=metrics)
        save(w2, "w2")
        lines.append(f"W2(A, B): {len(w2)} method-group-metric distances (w2.csv)")
    if (t.design == "grid").any():
        comp = stats.components_table(t, metrics=metrics)
        save(comp, "components")
        flips = pd.concat([analysis.rank_flips(t, metric=m).assign(metric=m) for m in metrics], ignore_index=True)
        save(flips, "rank_flips")
        has_cost = "method_seconds" in t.columns and train_seconds is not None
        budget = pd.concat([analysis.seed_budget(t.assign(method_seconds=t.method_seconds if has_cost else 1.0),
                                                 comp, train_seconds if has_cost else 1.0, metric=m).assign(metric=m)
                            for m in metrics], ignore_index=True)
        save(budget, "seed_budget")
        lines.append(f"variance components and ICC: {len(comp)} cases (components.csv); rank flips: {len(flips)} pairs "
                     f"(rank_flips.csv); seed budget (seed_budget.csv) with "
                     + ("the table's method_seconds and --train-seconds" if has_cost else
                        "equal unit costs for a training and an unlearning run (give method_seconds and --train-seconds for real ones)"))
        for m in metrics:
            fig = plots.components_bars(comp, m)
            written[f"components_{m}"] = plots.save(fig, os.path.join(out, f"components_{m}"))[0]
            plots.plt.close(fig)  # written, not shown: a notebook calling this shows the saved files
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    written["summary"] = os.path.join(out, "summary.txt")
    return written
