"""Figures in one style: seaborn, a colour-blind-safe palette, axes in %, protocols named.

Every function returns a matplotlib Figure; ``save`` writes it as PNG and PDF.
"""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

PROTOCOL_LABELS = {"A": "A: one training seed, J unlearning seeds",
                   "B": "B: I training seeds, one unlearning seed each"}
METRIC_LABELS = {"retain_acc": "retain-set accuracy (%)", "forget_acc": "forget-set accuracy (%)",
                 "test_acc": "test accuracy (%)", "mia": "MIA (% of forget set called member)"}
METHOD_ORDER = ["original", "retrain", "finetune", "random_labels", "bad_teacher", "unsir", "ssd", "lfssd"]


def style():
    sns.set_theme(style="whitegrid", context="paper", palette="colorblind", font_scale=1.1)


def save(fig, path_without_ext: str) -> list[str]:
    """Write ``fig`` as PNG (for the book) and PDF (for reviewers)."""
    os.makedirs(os.path.dirname(path_without_ext) or ".", exist_ok=True)
    out = [f"{path_without_ext}.{ext}" for ext in ("png", "pdf")]
    for p in out:
        fig.savefig(p, bbox_inches="tight", dpi=150)
    return out


def ab_boxplot(table: pd.DataFrame, setting_key: str, target: str, metrics=("forget_acc", "retain_acc"),
               methods=None, retrain_lines=False):
    """Box plots (whiskers to min and max) of protocol A beside protocol B, per method.

    ``retrain_lines``: horizontal lines at the 25/50/75 % quantiles of Retrain under B, as in the
    paper's Figure 1.
    """
    style()
    ds, setting = setting_key.split("/")
    t = table[(table.design == "paper") & (table.dataset == ds) & (table.setting == setting)
              & (table.target == str(target))]
    present = [m for m in METHOD_ORDER if m in set(t.method)]
    methods = [m for m in (methods or present) if m in present]
    t = t[t.method.isin(methods)].assign(protocol=lambda d: d.protocol.map(PROTOCOL_LABELS))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.boxplot(data=t, x="method", y=metric, hue="protocol", order=methods,
                    hue_order=list(PROTOCOL_LABELS.values()), whis=(0, 100), ax=ax, fliersize=0)
        if retrain_lines:
            r = table[(table.design == "paper") & (table.protocol == "B") & (table.method == "retrain")
                      & (table.dataset == ds) & (table.setting == setting) & (table.target == str(target))]
            for q, ls in ((0.25, ":"), (0.5, "-"), (0.75, ":")):
                if len(r):
                    ax.axhline(r[metric].quantile(q), color="black", lw=1, ls=ls)
        ax.set_xlabel("")
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.set_title(f"{setting_key}, target {target}")
        ax.tick_params(axis="x", rotation=30)
        ax.get_legend().remove()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.08), frameon=False)
    fig.tight_layout()
    return fig
