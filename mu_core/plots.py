"""Figures in one style: seaborn, a colour-blind-safe palette, axes in %, protocols named.

Every function returns a matplotlib Figure; ``save`` writes it as PNG and PDF.
"""
from __future__ import annotations

import os
import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from . import stats
from .domains import all_methods as _methods, label as _label, metric_label, place as _place, role as _role
from .domains import studied as _studied, target_name as _target_name
from .method import with_role

NOISE_COLOR = "#d55e00"  # the B-versus-B baseline, wherever it is drawn


def method_order(present) -> list:
    """The methods of ``present`` in the method table's order (others, from a user's own table,
    after them in name order)."""
    known = _methods()
    return [m for m in known if m in set(present)] + sorted(set(present) - set(known))


def _relabel(ax):
    """Method names on the x axis as the book writes them (Bad-Teacher, not bad_teacher)."""
    if not any(t.get_text() for t in ax.get_xticklabels()):
        return  # an inner facet: its shared axis is labelled where the labels show
    ax.set_xticks(ax.get_xticks(), [_label(t.get_text()) for t in ax.get_xticklabels()],
                  rotation=40, ha="right", rotation_mode="anchor")


def target_name(setting_key: str, target) -> str:
    """A forget target as a reader says it, in its domain's words ('digit 7', 'perfect clicks')."""
    return _target_name(setting_key, target)


def place(key: str) -> str:
    """A figure's name for a setting key, or a 'setting target' key, in its domain's words:
    'mnist5/sub_class 7' -> 'digit pairs, sub-class: digit 7'."""
    setting, _, target = key.partition(" ")
    return _place(setting, target or None)


def style():
    # figures are at most 8 in wide, so that at the book's page width (about 750 px) tick labels
    # stay at 9 pt or more
    sns.set_theme(style="whitegrid", context="paper", palette="colorblind", font_scale=1.25)


def save(fig, path_without_ext: str, metadata: dict | None = None) -> list[str]:
    """Write ``fig`` as PNG (for the book) and PDF (for reviewers); ``metadata`` (Title, Subject,
    Keywords: the run's profile, mode and commits) goes into both files."""
    os.makedirs(os.path.dirname(path_without_ext) or ".", exist_ok=True)
    out = [f"{path_without_ext}.{ext}" for ext in ("png", "pdf")]
    for p in out:
        fig.savefig(p, bbox_inches="tight", dpi=200, metadata=metadata)
    return out


def ab_boxplot(table: pd.DataFrame, panels, methods=None, retrain_lines=True):
    """Box plots (whiskers to min and max) of protocol A beside protocol B, per method, one panel
    per (setting key, target, metric) of ``panels``, side by side with one legend.

    ``retrain_lines``: horizontal lines at the 25/50/75 % quantiles of Retrain under B, as in the
    paper's Figure 1.
    """
    from matplotlib.lines import Line2D
    style()
    ncols = min(2, len(panels))  # at most two panels a row: a page (or a phone) keeps them legible
    nrows = -(-len(panels) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.8 * nrows), squeeze=False)
    for ax in grid.flat[len(panels):]:
        ax.set_visible(False)
    axes = [list(grid.flat)]
    first = stats.select(table, "paper", panels[0][0], panels[0][1])
    n_a = first[first.protocol == "A"].groupby("method").size().max()
    n_b = first[first.protocol == "B"].groupby("method").size().max()
    labels = {"A": f"A: one training seed, {n_a} unlearning seeds",  # this run's I and J, not symbols
              "B": f"B: {n_b} training seeds, one unlearning seed each"}
    for k, (ax, (setting_key, target, metric)) in enumerate(zip(axes[0], panels)):
        t = stats.select(table, "paper", setting_key, target)
        present = [m for m in method_order(t.method) if len(stats.select(t, "paper", method=m, protocol="A")) > 1]
        order = [m for m in (methods or present) if m in present]  # a single A value is no box
        t = t[t.method.isin(order)].assign(protocol=lambda d: d.protocol.map(labels))
        sns.boxplot(data=t, x="method", y=metric, hue="protocol", order=order,
                    hue_order=list(labels.values()), whis=(0, 100), ax=ax, fliersize=0)
        r = stats.select(table, "paper", setting_key, target, with_role(_methods(), "gold")[0], "B")
        for q, ls in ((0.25, ":"), (0.5, "-"), (0.75, ":")):
            if retrain_lines and len(r):
                ax.axhline(r[metric].quantile(q), color="black", lw=1, ls=ls)
        ax.set_xlabel("")
        ax.set_ylabel(metric_label(metric))
        where = place(f"{setting_key} {target}")
        ax.set_title(f"({'abcdefgh'[k]}) {where}" if len(panels) > 1 else where)
        _relabel(ax)
        ax.get_legend().remove()
    handles, names = axes[0][0].get_legend_handles_labels()
    if retrain_lines:
        handles.append(Line2D([], [], color="black", lw=1))
        names.append("Retrain under B: median (solid), quartiles (dotted)")
    fig.legend(handles, names, loc="lower center", ncol=2 if len(handles) < 3 else 1, bbox_to_anchor=(0.5, -0.08 * (1 + (len(handles) > 2)) / nrows),
               frameon=False)
    fig.tight_layout()
    return fig


def w2_boxes(w2table: pd.DataFrame, settings=None, noise: pd.DataFrame | None = None):
    """The paper's Figure 2: W2(A, B) over forget targets, per method; rows = settings,
    columns = retain / forget set. ``noise`` (``analysis.b_noise``): a dash per method at the
    W2 of two independent B instances, sampling noise alone (beyond the paper)."""
    style()
    t = w2table.assign(key=stats.keys(w2table))
    settings = settings or sorted(t.key.unique())
    metrics = list(dict.fromkeys(t.metric))  # in the order the table holds them
    methods = method_order(t.method)
    fig, axes = plt.subplots(len(settings), len(metrics), figsize=(4 * len(metrics), 2.9 * len(settings)),
                             squeeze=False)  # own y per panel: retain-set distances are a tenth of forget-set ones
    for r, key in enumerate(settings):
        for c, metric in enumerate(metrics):
            ax = axes[r][c]
            d = t[(t.key == key) & (t.metric == metric)]
            sns.boxplot(data=d, x="method", y="w2", order=methods, ax=ax, whis=(0, 100),
                        color=sns.color_palette("colorblind")[2], fliersize=0)
            sns.stripplot(data=d, x="method", y="w2", order=methods, ax=ax, color="black", size=3)
            if noise is not None:
                nz = noise[(stats.keys(noise) == key) & (noise.metric == metric)].set_index("method").w2
                for i, m in enumerate(methods):
                    if m in nz:
                        ax.hlines(nz[m], i - 0.42, i + 0.42, color=NOISE_COLOR, linestyle=(0, (3, 1.5)), lw=2, zorder=5)
            ax.set_xlabel("")
            ax.set_ylabel(f"{place(key)}\n$W_2$(A, B) (% points)" if c == 0 else "")
            ax.set_title(metric_label(metric).replace(" (%)", "") if r == 0 else "")
            if r == len(settings) - 1:
                _relabel(ax)
            else:
                ax.tick_params(axis="x", labelbottom=False)
    if noise is not None and len(noise):
        fig.legend(handles=[plt.Line2D([], [], color=NOISE_COLOR, linestyle=(0, (3, 1.5)), lw=2)],
                   labels=[f"B vs B: two independent B instances of {int(noise.half.min())} training seeds "
                           "(sampling noise alone)"], loc="lower center", frameon=False)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
    else:
        fig.tight_layout()
    return fig


def icc_dots(comp: pd.DataFrame, highlight, metric: str | None = None):
    """The ICC of ``metric`` per method (rows) and grid target (colours) with its 95 % interval;
    the methods in ``highlight`` filled, the others hollow."""
    metric = metric or _role(comp, "forgetting")  # the domain's forgetting metric, unless named
    style()
    t = comp[(comp.metric == metric) & comp.icc.notna()]
    t = t[~t.method.isin(with_role(_methods(), "original"))]  # M_o is no method
    order = method_order(t.method)
    keys = sorted(set(stats.keys(t, target=True)))
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(order) + 1.4))
    for k, key in enumerate(keys):
        d = t[stats.keys(t, target=True) == key].set_index("method")
        c = sns.color_palette()[k]
        for n, (i, m) in enumerate((i, m) for i, m in enumerate(order) if m in d.index):
            y = i + (k - 1) * 0.18
            ax.plot([d.loc[m, "icc_lo"], d.loc[m, "icc_hi"]], [y, y], color=c, lw=1)  # its exact 95 % interval
            ax.plot(d.loc[m, "icc"], y, "o", color=c, mfc=c if m in highlight else "white",
                    label=place(key) if n == 0 else None)  # one legend entry per target
    ax.set_yticks(range(len(order)), [_label(m) for m in order])
    ax.invert_yaxis()
    ax.set_xlim(-0.03, 1.03)
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("ICC: share of the variance due to the training seed")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.4 / len(order)), ncol=1, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


IO_PARTS = {"sigma_init2": "initialisation", "sigma_order2": "data order", "sigma_inter2": "their interaction",
            "sigma_unlearn2": "unlearning seed"}


def init_order_bars(io: pd.DataFrame, metric: str | None = None):
    """Per method, the share of the variance of ``metric`` each source carries in the
    ``init_order`` design (stacked to 1), one panel per target; a panel says so when a method has
    no variance at all."""
    metric = metric or _role(io, "forgetting")  # the domain's forgetting metric, unless named
    style()
    t = io[io.metric == metric].assign(key=lambda d: stats.keys(d, target=True))
    keys = sorted(set(t.key)) or ["(no init_order design in this run)"]
    fig, axes = plt.subplots(len(keys), 1, figsize=(6.5, 0.3 * max(1, t.method.nunique()) * len(keys) + 1.2 * len(keys)),
                             squeeze=False)
    colours = sns.color_palette("colorblind", 4)
    for ax, key in zip(axes[:, 0], keys):
        d = t[t.key == key].set_index("method")
        if d.empty:  # no init_order rows: the panel says so
            ax.text(0.5, 0.5, key, ha="center", va="center", transform=ax.transAxes)
            continue
        order = method_order(d.index)
        total = d[list(IO_PARTS)].sum(1)
        left = pd.Series(0.0, index=order)
        for (col, name), c in zip(IO_PARTS.items(), colours):
            share = (d.loc[order, col] / total.loc[order]).where(total.loc[order] > 0, 0.0)
            ax.barh(range(len(order)), share.to_numpy(), left=left.to_numpy(), color=c, label=name)
            left = left + share
        ax.set_yticks(range(len(order)), [_label(m) for m in order])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(place(key) if " " in key and not key.startswith("(") else key, fontsize=9)
    axes[-1, 0].set_xlabel("share of the variance (no bar: no variance at all)")
    axes[0, 0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.12), ncol=4, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def ulira_targets(targets: pd.DataFrame):
    """Per method, the distribution over targets of Deep Unlearn's membership probability (0.5:
    a forgotten target looks like one never trained on), from ``ulira_targets.csv``."""
    style()
    order = method_order(targets.method) if len(targets) else []
    fig, ax = plt.subplots(figsize=(6.5, 0.34 * max(1, len(order)) + 1.3))
    if order:
        sns.boxplot(data=targets, y="method", x="membership", order=order, whis=(5, 95), fliersize=1.5,
                    color=sns.color_palette()[0], ax=ax)
        ax.set_yticks(range(len(order)), [_label(m) for m in order])
    else:
        ax.text(0.5, 0.5, "no ulira design in this run", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(0.5, color="black", lw=1)
    ax.set_xlabel("membership probability of a forgotten target (0.5: indistinguishable)")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig


def components_bars(comp: pd.DataFrame, metric: str | None = None):
    """Between-seed and within-seed variance (the two terms of equation 2) per method and setting."""
    metric = metric or _role(comp, "forgetting")  # the domain's forgetting metric, unless named
    style()
    t = comp[comp.metric == metric].assign(key=lambda d: stats.keys(d, target=True))
    long = t.melt(id_vars=["key", "method"], value_vars=["sigma_b2", "sigma_w2"], var_name="component",
                  value_name="variance")
    long["component"] = long.component.map({"sigma_b2": r"training seed: $\sigma_b^2 = \mathrm{var}\,E(Z\mid S)$",
                                            "sigma_w2": r"unlearning seed: $\sigma_w^2 = E\,\mathrm{var}(Z\mid S)$"})
    methods = method_order(t.method)
    long["key"] = long.key.map(place)
    one = long.key.nunique() == 1  # a single panel is widened to its methods, so their names do not collide
    g = sns.catplot(data=long, x="method", y="variance", hue="component", col="key", kind="bar",
                    order=methods, height=3.2, aspect=max(0.95, 0.4 * len(methods)) if one else 0.95, sharey=False)
    g.set_axis_labels("", f"variance of {metric_label(metric).split(' (')[0]}"
                          + (" (%$^2$)" if "(%" in metric_label(metric) else ""))
    g.set_titles("{col_name}")
    for ax in g.axes.flat:
        _relabel(ax)
    sns.move_legend(g, "lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, title=None, frameon=False)
    return g.figure


def instances_boxes(w2inst: pd.DataFrame):
    """W2(A_i, B_k) over many A and B instances, per method, beside the B-versus-B baseline
    (sampling noise alone), when the table has it (beyond the paper)."""
    style()
    methods = method_order(w2inst.method)
    hue = "comparison" if "comparison" in w2inst and w2inst.comparison.nunique() > 1 else None
    d = w2inst.assign(metric=w2inst.metric.map(lambda m: metric_label(m).split(" accuracy")[0]),
                      key=w2inst.key.map(place))
    g = sns.catplot(data=d, x="method", y="w2", col="key", row="metric", kind="box", order=methods,
                    hue=hue, whis=(0, 100), fliersize=0, height=2.9, aspect=0.9, sharey=False, margin_titles=True,
                    **({} if hue else {"color": sns.color_palette("colorblind")[4]}))
    g.set_axis_labels("", "$W_2$ (% points)")
    g.set_titles(col_template="{col_name}", row_template="{row_name}")
    for ax in g.axes[0]:  # a long setting name on two lines, never over its neighbour's
        ax.set_title(textwrap.fill(ax.get_title(), 22))
    for ax in g.axes.flat:
        _relabel(ax)
    if hue:
        sns.move_legend(g, "lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, title=None, frameon=False)
    return g.figure


# four hues a reader tells apart (colour-blind safe): the two oranges of the default cycle were not
MODE_COLOURS = dict(zip(("reference, A", "reference, B", "corrected, A", "corrected, B"),
                        [sns.color_palette("colorblind")[i] for i in (0, 2, 4, 1)]))


def modes_boxes(both: pd.DataFrame):
    """Reference against corrected mode, per method and protocol: retain- and forget-set accuracy,
    one row of panels per setting (full-class and sub-class accuracies are never pooled)."""
    style()
    methods = method_order(both.method)
    d = both.assign(group=both["mode"] + ", " + both.protocol.map({"A": "A", "B": "B"}),
                    key=stats.keys(both))
    order = [f"{m}, {p}" for m in ("reference", "corrected") for p in "AB" if f"{m}, {p}" in set(d.group)]
    keys = sorted(set(d.key))
    fig, axes = plt.subplots(len(keys), 2, figsize=(8, 3.2 * len(keys)), squeeze=False)
    for row, key in zip(axes, keys):
        for ax, metric in zip(row, _studied(both)):
            sns.boxplot(data=d[d.key == key], x="method", y=metric, hue="group", hue_order=order, order=methods,
                        whis=(0, 100), fliersize=0, ax=ax, palette=MODE_COLOURS)
            ax.set_xlabel("")
            ax.set_ylabel(metric_label(metric))
            ax.set_title(place(key))
            _relabel(ax)
            ax.get_legend().remove()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(order), bbox_to_anchor=(0.5, -0.08), frameon=False)
    fig.tight_layout()
    return fig


def message_figure(text: str):
    """A figure that says why there is no figure (e.g. a run that was not made)."""
    import textwrap
    fig, ax = plt.subplots(figsize=(8, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, textwrap.fill(text, 90), ha="center", va="center", fontsize=11)
    return fig


def simulation_figure(a_values, b_values, v_a, v_b, v_a_sample=None):
    """Teaching figure: one A sample and one B sample from a simulated nested study (left); the
    true V_A(s) over training seeds, and the sample variance of J runs, against V_B (right)."""
    import numpy as np
    style()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    d = pd.DataFrame({"Z": list(a_values) + list(b_values),
                      "protocol": ["A: one\ntraining seed"] * len(a_values) + ["B: many\ntraining seeds"] * len(b_values)})
    sns.stripplot(data=d, x="protocol", y="Z", ax=axes[0], size=5, jitter=0.15)
    axes[0].set_xlabel("")
    axes[0].set_ylabel("metric $Z$ (%)")
    values = [np.asarray(v_a)] + ([np.asarray(v_a_sample)] if v_a_sample is not None else [])
    positive = np.concatenate([v[v > 0] for v in values])
    bins = np.geomspace(positive.min(), max(positive.max(), v_b), 40) if len(positive) else 30
    pal = sns.color_palette("colorblind")
    axes[1].hist(values[0], bins=bins, color=pal[0], alpha=0.8, label=r"true $\mathcal{V}_A(s)$")
    if v_a_sample is not None:
        axes[1].hist(values[1], bins=bins, color=pal[1], alpha=0.5, label=r"sample variance of $J$ runs")
    if len(positive):
        axes[1].set_xscale("log")
    axes[1].axvline(v_b, color="black", lw=2, label=r"$\mathcal{V}_B = \mathrm{var}\,Z$")
    axes[1].set_xlabel(r"variance (%$^2$) over simulated training seeds $s$")
    axes[1].set_ylabel("count")
    axes[1].legend(frameon=False, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=1)
    fig.tight_layout()
    return fig
