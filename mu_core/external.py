"""The statistics for anyone's results table: ``python -m mu_core analyse TABLE.csv --out DIR``.

A table from OpenUnlearning, Deep Unlearn, a paper's published per-seed results or a user's own
runs needs one row per evaluated model with a method, a training seed, an unlearning seed and
metric columns (names mapped with ``--column ours=theirs``). Optional ``dataset``, ``setting`` and
``target`` columns group the rows. Which rows are which design:

* a ``design`` column (the engine's own ``results.csv``) says it: ``paper`` rows carry protocol A
  or B, ``grid`` rows the grid; other designs (``init_order``, ``ulira``) are left out, said so;
* a ``protocol`` column says it (values A, B or grid; another coding is mapped with ``--protocol
  A=1 --protocol B=2``, any value left unmapped is refused, never ignored);
* otherwise it is inferred per group and method (``RULES``): a grid when every training seed has
  the same J >= 2 unlearning seeds (I >= 2); protocols A and B when one training seed has J >= 2
  unlearning seeds (A) beside I >= 2 training seeds with one each (B). When every B row is
  matched (s_u = s_t, as the paper's B is) and A's seed also has its matched row, that row is the
  A model both protocols share, and it counts in B too, as the paper's code counts it.

What is missing, unknown or left out (empty or non-numeric cells, failed rows, design-code columns,
groups that fit no design) is said in one summary line each; what makes an analysis impossible is
refused in one line before anything is written. The rows become the engine's own table, so every
number comes from the same functions as the book's.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from . import analysis, plots, sentences, stats
from .domains import ENGINES, engine_of
from .errors import ConfigError

NEEDED = ("method", "train_seed", "unlearn_seed")
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")  # shipped tables
EXAMPLE_PROVENANCE = ("a small table in another tool's column names (algorithm, seed_train, seed_unlearn), added at commit "
                      "9dcc811 on 2026-11-29 with values from this companion's image engine on real MNIST digits "
                      "(sub-class setting, digit 7; that commit does not record the profile); an example of the format, "
                      "not a published result")
GROUPS = ("dataset", "setting", "target")
ENGINE = ("protocol", "design", "mode", "method_seconds", "status", "commit", "computed_at",  # the engine's own table's
          *(c for e in ENGINES for c in engine_of(e).SEED_COLUMNS))  # columns that are not metrics
PROTOCOLS = ("A", "B", "grid")
OTHER_DESIGNS = ("init_order", "ulira")  # the engine's designs this command does not analyse
DESIGN_CODES = 5  # an unnamed integer column with at most this many values is read as a design code
RULES = {
    "shared": "the A seed's matched row (s_u = s_t) counted in B as well, as the paper's protocols share it",
    "apart": "A = the training seed with several unlearning seeds, B = the training seeds with one",
}


def parse_pairs(pairs, what: str, example: str) -> dict:
    """{left: right} from 'left=right' strings (a list, or one comma-separated string)."""
    if isinstance(pairs, str):
        pairs = [p.strip() for p in pairs.split(",") if p.strip()]
    out = dict(p.split("=", 1) for p in pairs if "=" in p)
    if len(out) != len(pairs):
        raise ConfigError(f"{what} take OURS=THEIRS (e.g. {example}), got {pairs!r}")
    return out


def parse_columns(pairs) -> dict:
    """{ours: theirs} from 'ours=theirs' strings (a list, or one comma-separated string)."""
    return parse_pairs(pairs, "columns", "method=algorithm")


def parse_protocols(pairs) -> dict:
    """{their value: ours} from 'A=1'-style strings: what a protocol column's values mean."""
    ours = parse_pairs(pairs, "protocols", "A=1")
    bad = [k for k in ours if k not in PROTOCOLS]
    if bad:
        raise ConfigError(f"--protocol maps {bad[0]!r}, which is not a protocol; allowed: {', '.join(PROTOCOLS)} "
                          f"(e.g. --protocol A=1 --protocol B=2)")
    return {str(theirs).strip(): o for o, theirs in ours.items()}


def _rows(index, n: int = 5) -> str:
    """Table rows as a reader counts them (the header is line 1): '2, 7, 9 ...'."""
    lines = [str(int(i) + 2) for i in list(index)[:n]]
    return ", ".join(lines) + (" ..." if len(index) > n else "")


def _read_csv(path: str) -> pd.DataFrame:
    if os.path.isdir(path):
        raise ConfigError(f"table {path!r} is a folder, not a CSV file")
    if not os.path.isfile(path):
        raise ConfigError(f"table {path!r} does not exist")
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"table {path!r} is empty") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"table {path!r} is not text (a byte at position {err.start} is not UTF-8)") from None
    except (ValueError, pd.errors.ParserError) as err:
        raise ConfigError(f"table {path!r} cannot be read as CSV ({str(err).splitlines()[0]})") from None


def _numbers(col: pd.Series) -> pd.Series | None:
    """The column as numbers, or None when it is not a numeric column (fewer than 80 % of its
    non-empty cells are numbers): a few bad cells do not drop a metric."""
    if pd.api.types.is_numeric_dtype(col):
        return col.astype(float)
    nums = pd.to_numeric(col, errors="coerce")
    filled = col.notna() & (col.astype(str).str.strip() != "")
    return nums if filled.any() and nums[filled].notna().mean() >= 0.8 else None


def _design_code(col: pd.Series) -> bool:
    v = col.dropna()
    return len(v) > 0 and (v == v.round()).all() and v.nunique() <= DESIGN_CODES


def read(path: str, columns: dict | None = None, metrics=None, protocols: dict | None = None):
    """(the table in the engine's form, its metric columns, notes on what was left out); one line
    naming what is wrong when the table cannot be analysed."""
    raw = _read_csv(path)
    columns = dict(columns or {})
    absent = [theirs for theirs in columns.values() if theirs not in raw.columns]
    if absent:
        raise ConfigError(f"--column maps to {', '.join(map(repr, absent))}, which the table lacks; its columns: "
                          f"{', '.join(map(str, raw.columns))}")
    t = raw.rename(columns={theirs: ours for ours, theirs in columns.items()})
    missing = [c for c in NEEDED if c not in t.columns]
    if missing:
        raise ConfigError(f"table {path!r} lacks the column(s) {', '.join(missing)}; map yours with "
                          f"--column {missing[0]}=YOUR_NAME (its columns: {', '.join(map(str, raw.columns))})")
    notes = []
    for c in ("train_seed", "unlearn_seed"):
        seeds = pd.to_numeric(t[c], errors="coerce")
        bad = t.index[seeds.isna() | (seeds != seeds.round())]
        if len(bad):
            raise ConfigError(f"table {path!r}: column {c} must hold whole numbers (seeds); rows {_rows(bad)} do not")
        t[c] = seeds.astype(np.int64)
    if "status" in t.columns:
        failed = t.index[t.status.astype(str) != "ok"]
        if len(failed):
            notes.append(f"{len(failed)} row(s) whose status is not ok (failed jobs, no metrics) left out: rows {_rows(failed)}")
            t = t.drop(index=failed)
    for g in GROUPS:
        t[g] = t[g].astype(str) if g in t.columns else "all"
    t["method"] = t["method"].astype(str)
    t, notes = _protocol_column(t, protocols or {}, columns, notes)
    metrics, notes = _metrics(t, metrics, path, notes)
    key = [*GROUPS, "method", "train_seed", "unlearn_seed"] + (["protocol"] if "protocol" in t.columns else [])
    dup = t[t.duplicated(key, keep=False)]
    if len(dup):
        r = dup.iloc[0]
        codes = [c for c in raw.columns if c not in (*columns.values(), *NEEDED, *GROUPS, *ENGINE) and _design_code(raw[c])]
        hint = (f"; if column {codes[0]} says which protocol a row belongs to, map it: --column protocol={codes[0]} "
                f"--protocol A=... --protocol B=..." if codes else "")
        raise ConfigError(f"table {path!r} has {len(dup)} rows sharing (method, train_seed, unlearn_seed) with another, "
                          f"e.g. {r.method}, {r.train_seed}, {r.unlearn_seed}; each evaluated model may appear once{hint}")
    t, notes = _designs(t, notes)
    return t, metrics, notes


def _protocol_column(t: pd.DataFrame, protocols: dict, columns: dict, notes: list):
    """The protocol column with its values mapped and checked (none: as it was)."""
    if "protocol" not in t.columns:
        if protocols:
            raise ConfigError("--protocol maps a protocol column's values, but the table has none; name it with "
                              "--column protocol=YOUR_COLUMN")
        return t, notes
    name = columns.get("protocol", "protocol")
    values = t.protocol.astype(str).str.strip().map(lambda v: protocols.get(v, v))
    if "design" in t.columns:  # the engine's own table: its other designs are left out, said so
        other = t.design.isin(OTHER_DESIGNS)
        if other.any():
            kinds = ", ".join(f"{d} ({n} rows)" for d, n in t[other].design.value_counts().items())
            notes.append(f"designs this command does not analyse left out: {kinds}")
        t, values = t[~other], values[~other]
    unknown = sorted(set(values) - set(PROTOCOLS))
    if unknown:
        shown = ", ".join(map(repr, unknown[:6])) + (" ..." if len(unknown) > 6 else "")
        example = " ".join(f"--protocol {p}={v}" for p, v in zip("AB", unknown))
        raise ConfigError(f"column {name} holds the value(s) {shown}, which are not protocols (A, B or grid); map "
                          f"them, e.g. {example}" + ("; --protocol values are matched as the table writes them"
                                                      if protocols else ""))
    return t.assign(protocol=values), notes


def _metrics(t: pd.DataFrame, metrics, path: str, notes: list):
    """The metric columns as numbers; cells that are empty, not numbers or infinite are left out
    (said per metric); unnamed integer columns with few values are read as design codes."""
    known = (*NEEDED, *GROUPS, *ENGINE)
    named = list(metrics) if metrics else None
    if named:
        bad = [m for m in named if m not in t.columns or _numbers(t[m]) is None]
        if bad:
            raise ConfigError(f"table {path!r}: metric column(s) {', '.join(bad)} missing or not numeric; "
                              f"its columns: {', '.join(map(str, t.columns))}")
        chosen = named
    else:
        chosen = [c for c in t.columns if c not in known and _numbers(t[c]) is not None]
        codes = [c for c in chosen if _design_code(_numbers(t[c]))]
        if codes:
            shown = "; ".join(f"{c} (values {', '.join(str(int(v)) for v in sorted(_numbers(t[c]).dropna().unique()))})"
                              for c in codes)
            notes.append(f"column(s) {shown} look like design codes, not metrics: left out; name one in --metrics to "
                         f"analyse it, or map it with --column protocol=NAME --protocol A=... --protocol B=...")
            chosen = [c for c in chosen if c not in codes]
    if not chosen:
        raise ConfigError(f"table {path!r}: no numeric metric column; name them with --metrics NAME[,NAME]")
    keep = []
    for m in chosen:
        nums = _numbers(t[m])
        bad = t.index[~np.isfinite(nums.fillna(np.nan).to_numpy(dtype=float))]
        if len(bad) == len(t):
            notes.append(f"metric {m} has no finite value: left out")
            continue
        if len(bad):
            notes.append(f"metric {m}: {len(bad)} cell(s) empty, not a number or infinite, left out (rows {_rows(bad)})")
        t[m] = nums.where(np.isfinite(nums.to_numpy(dtype=float)))
        keep.append(m)
    if not keep:
        raise ConfigError(f"table {path!r}: no metric column holds a finite value ({', '.join(chosen)})")
    return keep, notes


def _where(group, method) -> str:
    parts = [str(v) for v in group if v != "all"]
    return f"{method}" + (f" on {'/'.join(parts)}" if parts else "")


def _designs(t: pd.DataFrame, notes: list):
    """The rows labelled with the engine's design and protocol (a row can serve both protocols)."""
    out, shared, unfit = [], 0, []
    for (*group, method), g in t.groupby([*GROUPS, "method"], sort=False):
        if "design" in g.columns and "protocol" in g.columns:  # the engine's own table
            out.append(g[g.design.isin(["paper", "grid"])])
            continue
        if "protocol" in g.columns:
            paper = g[g.protocol.isin(["A", "B"])]
            if len(paper) and set(paper.protocol) != {"A", "B"}:
                lacking = ({"A", "B"} - set(paper.protocol)).pop()
                notes.append(f"{_where(group, method)}: protocol {lacking} has no row, so W2(A, B) is left out")
            elif len(paper):
                out.append(paper.assign(design="paper"))
            if (g.protocol == "grid").any():
                out.append(g[g.protocol == "grid"].assign(design="grid"))
            continue
        per_seed = g.groupby("train_seed").unlearn_seed.nunique()
        is_grid = len(per_seed) >= 2 and per_seed.min() >= 2 and per_seed.nunique() == 1
        if is_grid:
            out.append(g.assign(design="grid", protocol="grid"))
        a_seeds, b_seeds = per_seed[per_seed >= 2].index, per_seed[per_seed == 1].index
        if len(a_seeds) == 1 and len(b_seeds) >= 2:
            a = g[g.train_seed == a_seeds[0]]
            b = g[g.train_seed.isin(b_seeds)]
            both = a[a.unlearn_seed == a.train_seed]
            if (b.unlearn_seed == b.train_seed).all() and len(both):
                b = pd.concat([both, b])
                shared += len(both)
            out += [a.assign(design="paper", protocol="A"), b.assign(design="paper", protocol="B")]
        elif not is_grid:
            unfit.append(f"{_where(group, method)} ({', '.join(str(n) for n in per_seed.tolist()[:6])} unlearning "
                         f"seeds per training seed)")
    if "protocol" not in t.columns and any((d.design == "paper").any() for d in out):
        notes.append(f"protocols inferred: {RULES['apart']}"
                     + (f"; {RULES['shared']} ({shared} row(s))" if shared else ""))
    if unfit:
        notes.append(f"neither a grid nor protocols A and B, left out: {'; '.join(unfit[:4])}"
                     + (f" and {len(unfit) - 4} more" if len(unfit) > 4 else ""))
    table = pd.concat(out, ignore_index=True) if out else t.iloc[:0].assign(design=[], protocol=[])
    return table, notes


def designs_found(t: pd.DataFrame) -> str:
    """What the table supports, in one line."""
    parts = []
    for design, what in (("paper", "protocols A and B"), ("grid", "a grid")):
        d = t[t.design == design]
        if len(d):
            parts.append(f"{what} for {d.groupby([*GROUPS, 'method']).ngroups} method-group(s)")
    return "; ".join(parts) if parts else "no design: neither a grid nor protocols A and B"


def _complete(t: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The rows with a value of ``metric``; in a grid, a training seed that lost one of its values
    is dropped from its group, for every method (the grids stay rectangular and comparable)."""
    t = t[t[metric].notna()]
    g = t[t.design == "grid"]
    if g.empty:
        return t
    key = [*GROUPS, "method"]
    per = g.groupby([*key, "train_seed"]).unlearn_seed.transform("nunique")
    full = per.groupby([g[k] for k in key]).transform("max")  # the method's J
    short = set(map(tuple, g.loc[per < full, [*GROUPS, "train_seed"]].to_numpy()))
    keep = [tuple(r) not in short for r in g[[*GROUPS, "train_seed"]].to_numpy()]
    return pd.concat([t[t.design != "grid"], g[keep]])


def analyse(path: str, out: str, columns: dict | None = None, metrics=None, train_seconds: float | None = None,
            protocols: dict | None = None) -> dict:
    """Write w2.csv, components.csv, rank_flips.csv, seed_budget.csv, figures and summary.txt for
    the table at ``path`` into ``out``; returns {name: path} of what was written. Everything is
    computed before the first file is written: a refused table leaves nothing behind."""
    if not isinstance(out, str) or not out.strip() or (os.path.exists(out) and not os.path.isdir(out)):
        raise ConfigError(f"--out must name a folder for the results, got {out!r}" + (
            " (it exists and is not a folder)" if isinstance(out, str) and out.strip() else ""))
    if train_seconds is not None and not (isinstance(train_seconds, (int, float)) and np.isfinite(train_seconds)
                                          and train_seconds > 0):
        raise ConfigError(f"--train-seconds must be a finite number of seconds > 0, got {train_seconds!r}")
    t, metrics, notes = read(path, columns, metrics, protocols)
    if not (t.design == "grid").any() and not (t.design == "paper").any():
        raise ConfigError(f"table {path!r} supports no analysis: it needs, for some method, either every training seed "
                          f"with the same J >= 2 unlearning seeds (a grid), or one training seed with J >= 2 unlearning "
                          f"seeds beside >= 2 training seeds with one each (protocols A and B), or a protocol column"
                          + "".join(f"; {n}" for n in notes))
    tables, figures = {}, {}
    lines = [f"table: {path}; metrics: {', '.join(metrics)}; supports {designs_found(t)}"] + notes
    if (t.design == "paper").any():
        w2 = pd.concat([stats.paper_w2(_complete(t, m), metrics=[m]) for m in metrics], ignore_index=True)
        tables["w2"] = w2
        lines.append(f"W2(A, B): {len(w2)} method-group-metric distances (w2.csv), from {_sizes(w2.n_A)} rows under A "
                     f"and {_sizes(w2.n_B)} under B")
    if (t.design == "grid").any():
        comps, flips, budget = [], [], []
        has_cost = "method_seconds" in t.columns and train_seconds is not None
        for m in metrics:
            tm = _complete(t, m)
            comp = stats.components_table(tm, metrics=[m])
            comps.append(comp)
            flips.append(analysis.rank_flips(tm, metric=m).assign(metric=m))
            budget.append(analysis.seed_budget(tm.assign(method_seconds=tm.method_seconds if has_cost else 1.0),
                                               comp, train_seconds if has_cost else 1.0, metric=m).assign(metric=m))
        comp = pd.concat(comps, ignore_index=True)
        for m in metrics:  # how many seeds (book: derivation, "How many seeds?"), per metric
            c = comp[comp.metric == m]
            if c.empty or not c.sigma_b2.notna().any():
                continue
            se = sentences.SE_TARGET.get(m) or float(f"{0.25 * np.sqrt(np.nanmedian(c.sigma_b2 + c.sigma_w2)):.2g}") or 1.0
            tm = _complete(t, m)
            advice = sentences.seeds_advice(c, tm.assign(method_seconds=tm.method_seconds if has_cost else 1.0),
                                           train_seconds if has_cost else 1.0, m, "units", se=se)
            lines.append(f"how many seeds ({m}; standard error {se:g}"
                         + ("" if m in sentences.SE_TARGET else ", a quarter of the median method's standard deviation")
                         + ("" if has_cost else "; equal unit costs") + f"): {advice}")
        tables.update(components=comp, rank_flips=pd.concat(flips, ignore_index=True),
                      seed_budget=pd.concat(budget, ignore_index=True))
        lines.append(f"variance components and ICC: {len(comp)} cases (components.csv); rank flips: "
                     f"{len(tables['rank_flips'])} pairs (rank_flips.csv); seed budget (seed_budget.csv) with "
                     + ("the table's method_seconds and --train-seconds" if has_cost else
                        "equal unit costs for a training and an unlearning run (give method_seconds and --train-seconds for real ones)"))
        figures = {m: plots.components_bars(comp, m) for m in metrics if (comp.metric == m).any()}
    os.makedirs(out, exist_ok=True)
    written = {name: os.path.join(out, name + ".csv") for name in tables}
    for name, df in tables.items():
        df.to_csv(written[name], index=False)
    for m, fig in figures.items():
        written[f"components_{m}"] = plots.save(fig, os.path.join(out, f"components_{m}"))[0]
        plots.plt.close(fig)  # written, not shown: a notebook calling this shows the saved files
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    written["summary"] = os.path.join(out, "summary.txt")
    return written


def _sizes(n: pd.Series) -> str:
    return str(int(n.min())) if n.min() == n.max() else f"{int(n.min())} to {int(n.max())}"
