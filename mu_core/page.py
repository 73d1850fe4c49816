"""What a notebook puts on its page for the book: figures (saved as PNG and PDF with their
provenance, a phone rendering beside each), glued sentences, tables (shown, and saved for
download), and the tidying of an executed notebook before the book renders it.

A notebook's parameters and what it requires of a run are ``notebook``'s; what it states is
computed by ``analysis``, ``sentences`` and the domains' modules, and only shown here.
"""
from __future__ import annotations

import os


def figure(fig, key: str, run, rows=None, book: str | None = None) -> list[str]:
    """Save ``fig`` as PNG and PDF in the run's figures folder (with the run's profile, mode and
    the commits of ``rows``, the results it draws, in the files' metadata), glue it under ``key``
    for the book, and close it (so the notebook shows it once, through the glued copy). During a
    book build (when ``book`` exists) both files are copied to ``book/figures/`` for the pages."""
    import shutil

    import matplotlib.pyplot as plt
    from myst_nb import glue

    from . import single_column
    from .plots import save
    book = book or EXECUTED
    if hasattr(run, "figures"):
        paths = save(fig, os.path.join(run.figures, key), run.metadata(rows))
    else:
        paths = save(fig, os.path.join(run, key))
    from IPython.display import Image, display
    display(fig, metadata=ECHO)  # for a rerun notebook; the book shows the glued copy
    glue(key, fig, display=False)
    # the phone rendering (served below 600 px): a multi-panel figure as one column of panels
    narrow = single_column.stack(fig) or open(paths[0], "rb").read()
    paths.append(paths[0][:-4] + "_narrow.png")
    with open(paths[-1], "wb") as f:
        f.write(narrow)
    glue(key + "_narrow", Image(data=narrow, format="png"), display=False)
    if os.path.isdir(book):
        os.makedirs(os.path.join(book, "figures"), exist_ok=True)
        for path in paths:  # the PDF for the page's link, the PNGs for pages that show it again (the landing page)
            shutil.copy(path, os.path.join(book, "figures", os.path.basename(path)))
    print(f"figure saved as {paths[0]} and {os.path.basename(paths[1])} beside it")
    plt.close("all")
    return paths


# where a book build keeps its executed notebooks (``make notebooks EXECUTED=...`` sets it)
EXECUTED = os.environ.get("MU_CORE_EXECUTED", os.path.join("book", "executed"))


ECHO = {"mu_core": "echo"}  # output metadata: shown when a notebook is rerun, dropped by ``tidy`` for the book


def glue_text(**values) -> None:
    """Glue each keyword as text for the book's captions and prose, and show the values (a
    rerun notebook's markdown shows only the {glue:text} markup; the book drops this echo)."""
    from IPython.display import Markdown, display
    from myst_nb import glue
    for k, v in values.items():
        glue(k, str(v), display=False)
    display(Markdown("\n".join(f"- `{k}`: {v}" for k, v in values.items())), metadata=ECHO)


HEADERS = {"sigma_b2": "σ_b²", "sigma_b2_lo": "σ_b² low", "sigma_b2_hi": "σ_b² high", "sigma_w2": "σ_w²", "icc": "ICC",
           "sigma_init2": "σ²_init", "sigma_order2": "σ²_order", "sigma_inter2": "σ²_init×order",
           "sigma_unlearn2": "σ²_unlearn", "init_only_share": "init-only share", "w2_median": "W2(A, B)",
           "b_vs_b": "B vs B", "stands_out": "stands out", "du_membership": "DU score",
           "du_membership_lo": "low", "du_membership_hi": "high", "auc": "AUC", "auc_lo": "AUC low",
           "auc_hi": "AUC high", "balanced_acc": "best bal. acc.", "tpr_at_1pct_fpr": "TPR at 1 % FPR"}
# the statistics' column headers; a metric's header is its domain's (domains.metric_words)


def header(column: str) -> str:
    from .domains import metric_words
    return HEADERS.get(column) or metric_words().get(column, (None, column))[1]


def show(df, digits: int = 2, nan: str = "–", caption: str | None = None):
    """A table for the book: no pandas index, one number format, NaN shown as a dash (each page
    says what a dash means where one can occur), methods and metrics named as the book names them."""
    import pandas as pd
    out = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df
    if isinstance(out.columns, pd.MultiIndex):
        out = out.copy()
        out.columns = [" ".join(str(c) for c in col if str(c)) for col in out.columns]
    if {"method", "pair"} & set(out.columns):
        from .domains import label
        if "method" in out.columns:
            out = out.assign(method=out.method.map(label))
        if "pair" in out.columns:  # 'finetune vs ssd' -> 'Finetune vs SSD'
            out = out.assign(pair=out.pair.map(lambda p: " vs ".join(map(label, str(p).split(" vs ")))))
    out = out.rename(columns=header)
    styled = out.style.format(precision=digits, na_rep=nan).hide(axis="index")
    return styled.set_caption(caption) if caption else styled


def tables_by(df, by: list, columns: list, digits: int = 2, note: str = "") -> None:
    """Display one short table per group of ``by`` (a setting, a target), with ``columns``."""
    from IPython.display import display
    if "method" in df.columns:  # methods in the method table's order
        from .domains import all_methods
        order = list(all_methods())
        df = df.sort_values("method", key=lambda m: m.map(order.index), kind="stable")
    for key, g in df.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        display(show(g[columns].reset_index(drop=True), digits, caption=" ".join(_name(str(k)) for k in key) + note))


def _name(key: str) -> str:
    """A table's group as a reader says it: 'mnist5/sub_class, target 1-7' -> 'digit pairs,
    sub-class: digits 1 and 7'; anything else as it is."""
    import re

    from .plots import place
    m = re.match(r"^([a-z0-9]+/[a-z_]+)(?:,? (?:target )?(\S.*))?$", key)
    return place(m[1] + (" " + m[2] if m[2] else "")) if m else key


def settings_tables(table, metrics, design: str = "paper", digits: int = 1) -> None:
    """One short table per setting: each method's mean of ``metrics`` per protocol, side by side
    (protocol A's rows are one training seed's, B's one per training seed: never averaged together,
    and neither are full-class and sub-class numbers)."""
    from .stats import keys
    t = table[table.design == design].assign(key=keys)
    means = t.groupby(["key", "method", "protocol"], sort=False)[list(metrics)].mean().unstack("protocol")
    protocols = sorted(set(t.protocol))
    means.columns = [f"{header(m)}, {p}" for m, p in means.columns]
    cols = [f"{header(m)}, {p}" for m in metrics for p in protocols]
    tables_by(means.reset_index(), ["key"], ["method", *cols], digits,
              f": means per protocol ({', '.join(protocols)}) of the {design} design")


def tidy(path: str) -> None:
    """Prepare an executed notebook for the book: papermill's injected-parameters cell removed
    (the page keeps the notebook's own parameters cell, folded), every code cell's input folded,
    and the echoes of glued figures and sentences (``ECHO``, for reruns) dropped."""
    import json
    with open(path) as f:
        nb = json.load(f)
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["outputs"] = [o for o in cell.get("outputs", []) if o.get("metadata", {}).get("mu_core") != "echo"]
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        want = "remove-cell" if "injected-parameters" in tags else "hide-input"
        if want not in tags and "remove-input" not in tags:
            tags.append(want)
    with open(path, "w") as f:
        json.dump(nb, f, indent=1)


def save_table(df, name: str, run, book: str | None = None) -> str:
    """Write ``df`` as ``<name>.csv`` beside the run's figures (the full table behind a page) and,
    during a book build (when ``book`` exists), a copy in ``book/tables/`` that the page offers
    for download."""
    book = book or EXECUTED
    os.makedirs(run.figures, exist_ok=True)
    path = os.path.join(run.figures, name + ".csv")
    df.to_csv(path, index=False)
    if os.path.isdir(book):
        os.makedirs(os.path.join(book, "tables"), exist_ok=True)
        df.to_csv(os.path.join(book, "tables", name + ".csv"), index=False)
    return path
