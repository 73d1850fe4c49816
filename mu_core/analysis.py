"""Beyond the paper: the analysis tables of a run's grid design, one function each.

Each takes the results table (and, for costs, the run) and returns a tidy table; the notebooks
only call them and draw. The statistics themselves are in ``stats``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .methods import METHODS

DETERMINISTIC = [m for m, rec in METHODS.items() if rec.deterministic]


def grid_keys(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(setting key, target) of every target of the grid design."""
    g = stats.select(table, "grid")
    return sorted(set(zip(g.dataset + "/" + g.setting, g.target.astype(str))))


def components_with_ci(table: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """``stats.components_table`` plus a bootstrap interval of sigma_b^2 (resampling training seeds)."""
    comp = stats.components_table(table)
    lo, hi = [], []
    for r in comp.itertuples():
        Z = stats.grid_matrix(table, r.method, f"{r.dataset}/{r.setting}", r.target, r.metric)
        ci = stats.bootstrap(Z, lambda z: stats.anova(z)["sigma_b2"], n_boot=n_boot, seed=seed)
        lo.append(ci["lo"])
        hi.append(ci["hi"])
    return comp.assign(sigma_b2_lo=lo, sigma_b2_hi=hi)


def w2_instances(table: pd.DataFrame, n_b: int = 50, seed: int = 0,
                 metrics=("retain_acc", "forget_acc")) -> pd.DataFrame:
    """W2(A_i, B_k) over every A instance and ``n_b`` B instances, per setting, method and metric,
    and beside it the B-versus-B baseline: W2 between two independent B instances (sampling noise)."""
    out = []
    for key, target in grid_keys(table):
        for method in METHODS:
            if method == "original" or stats.select(table, "grid", key, target, method).empty:
                continue
            for metric in metrics:
                Z = stats.grid_matrix(table, method, key, target, metric)
                if Z.shape[0] < 3 or Z.shape[1] < 2:  # one unlearning seed: an A instance is one value
                    continue
                w = stats.w2_instances(Z, n_b=n_b, seed=seed)
                pairs = [("A vs B", w.ravel())]
                if Z.shape[0] >= 4:  # two disjoint halves of at least two seeds each
                    pairs.append(("B vs B", stats.w2_b_baseline(Z, n=w.size, seed=seed)))
                for name, values in pairs:
                    out.append(pd.DataFrame({"key": f"{key} {target}", "method": method, "metric": metric,
                                             "comparison": name, "w2": values}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(
        columns=["key", "method", "metric", "comparison", "w2"])


def b_noise(table: pd.DataFrame, n: int = 200, seed: int = 0, metrics=("retain_acc", "forget_acc")) -> pd.DataFrame:
    """Per setting, method and metric: the median W2 between two independent B instances on the
    setting's grid target (``stats.w2_b_baseline``), the size of W2 from sampling noise alone."""
    out = []
    for key, target in grid_keys(table):
        ds, setting = key.split("/")
        for method in METHODS:
            if method == "original" or stats.select(table, "grid", key, target, method).empty:
                continue
            for metric in metrics:
                Z = stats.grid_matrix(table, method, key, target, metric)
                if Z.shape[0] >= 4:
                    out.append(dict(dataset=ds, setting=setting, method=method, metric=metric,
                                    w2=float(np.median(stats.w2_b_baseline(Z, n=n, seed=seed))), half=Z.shape[0] // 2))
    return pd.DataFrame(out, columns=["dataset", "setting", "method", "metric", "w2", "half"])


def above_noise(w2: pd.DataFrame, noise: pd.DataFrame, metric: str = "forget_acc") -> pd.DataFrame:
    """Per setting and method: the median W2(A, B) over targets beside the B-versus-B noise, and
    whether it is at least twice the noise (``clear``): the noise is itself an estimate, from
    samples of half the training seeds, so a distance just above it proves little."""
    med = w2[w2.metric == metric].groupby(["dataset", "setting", "method"]).w2.median().rename("w2_median")
    nz = noise[noise.metric == metric].set_index(["dataset", "setting", "method"]).w2.rename("b_vs_b")
    both = pd.concat([med, nz], axis=1, join="inner").reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = both.w2_median / both.b_vs_b
    return both.assign(ratio=ratio, clear=ratio >= 2, label=both.method.map(lambda m: METHODS[m].label))


def rank_flips(table: pd.DataFrame, metric: str = "forget_acc") -> pd.DataFrame:
    """P(protocol A orders two methods the other way from the full grid), for every pair of
    methods (Original aside) on every grid target."""
    out = []
    for key, target in grid_keys(table):
        present = [m for m in METHODS if m != "original" and not stats.select(table, "grid", key, target, m).empty]
        for i, m1 in enumerate(present):
            for m2 in present[i + 1:]:
                Z1 = stats.grid_matrix(table, m1, key, target, metric)
                Z2 = stats.grid_matrix(table, m2, key, target, metric)
                out.append(dict(setting=f"{key} {target}", pair=f"{m1} vs {m2}", p_flip=stats.rank_flip(Z1, Z2)))
    return pd.DataFrame(out, columns=["setting", "pair", "p_flip"])


def seed_budget(table: pd.DataFrame, comp: pd.DataFrame, c_train: float, metric: str = "forget_acc") -> pd.DataFrame:
    """For each method and grid target: the best split of the budget its grid actually cost
    (I training runs, I·J unlearning runs, with the run's measured costs) between training and
    unlearning seeds, beside protocol A's variance at the same budget."""
    out = []
    for r in comp[comp.metric == metric].itertuples():
        rows = stats.select(table, "grid", f"{r.dataset}/{r.setting}", r.target, r.method)
        c_unlearn = max(float(rows.method_seconds.median()), 1e-3)
        budget = r.I * c_train + r.I * r.J * c_unlearn  # what this method's grid cost
        a = stats.allocation(r.sigma_b2, r.sigma_w2, c_train, c_unlearn, budget)
        out.append(dict(setting=f"{r.dataset}/{r.setting} {r.target}", method=r.method, grid=f"{r.I} x {r.J}",
                        c_unlearn_s=c_unlearn, J_star=a["J_star_continuous"], I_best=a["I"], J_best=a["J"],
                        var_best=a["variance"], var_protocol_A=a["A_variance"], A_over_best=a["gain"]))
    return pd.DataFrame(out)


def median_gain(budget: pd.DataFrame) -> float:
    """Median of protocol A's variance over the best allocation's, where it is defined."""
    return float(budget.A_over_best.median())


def components_summary(comp: pd.DataFrame, metric: str = "forget_acc") -> dict:
    """Text for the book: the ICC of deterministic and stochastic methods, and how often a
    training seed's V_A exceeds V_B."""
    f = comp[comp.metric == metric]
    det, sto = f[f.method.isin(DETERMINISTIC)], f[~f.method.isin(DETERMINISTIC)]
    undefined = det[det.icc.isna()]
    det_text = ("1 (all their variance is between training seeds)" if det.icc.dropna().eq(1).all() and len(det.icc.dropna())
                else "not 1 (see the table)") if len(det.icc.dropna()) else "undefined"
    if len(undefined):
        det_text += f"; undefined for {', '.join(sorted(undefined.method + ' on ' + undefined.dataset + '/' + undefined.setting))}, which gave the same value on every seed"
    return {"icc_det": det_text,
            "icc_sto_range": f"{sto.icc.min():.2f} to {sto.icc.max():.2f}" if len(sto) else "n/a",
            "n_overstate": f"{int((f.A_overstates > 0).sum())} of {len(f)}"}


def flips_summary(flips: pd.DataFrame) -> dict:
    """Text for the book: how many pairs flip at all, and the most fragile pair."""
    f = flips.dropna(subset=["p_flip"])
    if f.empty:
        return {"flip_any": "0 of 0", "flip_worst_pair": "none", "flip_worst_p": "0"}
    worst = f.sort_values("p_flip", ascending=False, kind="stable").iloc[0]
    return {"flip_any": f"{int((f.p_flip > 0).sum())} of {len(f)}",
            "flip_worst_pair": f"{worst.pair} ({worst.setting})", "flip_worst_p": f"{worst.p_flip:.2f}"}


def modes_table(reference: pd.DataFrame, corrected: pd.DataFrame, protocols=("A", "B")) -> pd.DataFrame:
    """The paper-design rows of a reference run and a corrected run over the targets both have."""
    ref = stats.select(reference, "paper")
    cor = stats.select(corrected, "paper")
    common = cor[["dataset", "setting", "target"]].drop_duplicates()
    both = pd.concat([ref.merge(common), cor], ignore_index=True)
    return both[both.protocol.isin(protocols)]


def claims(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's claims, each checked against this run: one row per claim and setting, with a
    verdict (holds / partly / does not hold / not tested) and the number behind it."""
    out = []
    settings = sorted(set(stats.select(table, "paper").pipe(lambda t: t.dataset + "/" + t.setting)))

    def add(claim, where, verdict, evidence):
        out.append(dict(claim=claim, setting=where, verdict=verdict, evidence=evidence))

    for key in settings:
        sel = stats.select(table, "paper", key)
        det = sel[sel.method.isin(["ssd", "lfssd"])]
        if det.empty:
            continue
        ranges = det.groupby(["method", "target", "protocol"])[["retain_acc", "forget_acc"]].agg(lambda v: v.max() - v.min())
        a_max = float(ranges.xs("A", level="protocol").to_numpy().max())
        add("SSD and LFSSD are deterministic: protocol A gives one value", key,
            "holds" if a_max == 0 else "does not hold", f"largest range under A: {a_max:.2f} points")
        b = ranges.xs("B", level="protocol")
        moving = b.gt(0.05)
        frac = float(moving.to_numpy().mean())
        verdict = "holds" if frac == 1 else ("partly" if frac > 0 else "does not hold")
        still = [f"{m} {metric}" for metric in b.columns for m in sorted(set(b.index.get_level_values(0)))
                 if not moving[metric].xs(m, level="method").any()]
        add("...yet they vary across training seeds (protocol B)", key, verdict,
            f"median range under B: retain {b.retain_acc.median():.1f}, forget {b.forget_acc.median():.1f} points"
            + (f"; no spread at all for {', '.join(still)}" if still else ""))
    w2 = stats.paper_w2(table)
    w2 = w2[w2.method != "original"]
    noise = b_noise(table)  # empty without a grid design
    for key in settings:
        for metric in ("retain_acc", "forget_acc"):
            d = w2[(w2.dataset + "/" + w2.setting == key) & (w2.metric == metric)]
            if d.empty:
                continue
            med = d.groupby("method").w2.median().sort_values(ascending=False)
            top = med.index[0]
            verdict = "holds" if top in ("ssd", "lfssd") else ("partly" if {"ssd", "lfssd"} & set(med.index[:2]) else "does not hold")
            add(f"SSD and LFSSD have the largest W2(A, B) ({metric.replace('_acc', '')} set)", key, verdict,
                f"largest median: {METHODS[top].label} {med.iloc[0]:.2f}; SSD {med.get('ssd', float('nan')):.2f}, "
                f"LFSSD {med.get('lfssd', float('nan')):.2f} points"
                + "".join(f"; B-vs-B noise for {METHODS[top].label}: {v:.2f}" for v in
                          noise[(noise.dataset + "/" + noise.setting == key) & (noise.metric == metric) & (noise.method == top)].w2))
    comp = stats.components_table(table) if not stats.select(table, "grid").empty else pd.DataFrame()
    if comp.empty:
        add("A can overstate the variance: V_A(s) > V_B for some training seed s", "grid design", "not tested", "no grid design in this run")
        return pd.DataFrame(out)
    sto = comp[~comp.method.isin(DETERMINISTIC)]
    n_over = int((sto.A_overstates > 0).sum())
    add("A can overstate the variance: V_A(s) > V_B for some training seed s", "grid design",
        "holds" if n_over else "does not hold", f"{n_over} of {len(sto)} stochastic method-target-metric cases")
    pos = int((comp.sigma_b2 > 0).sum())
    add("On average A understates it: σ_b² = var E(Z|S) > 0", "grid design",
        "holds" if pos == len(comp) else ("partly" if pos else "does not hold"),
        f"σ_b² > 0 in {pos} of {len(comp)} method-target-metric cases")
    return pd.DataFrame(out)


def modes_summary(both: pd.DataFrame) -> dict:
    """Text for the book: the method whose forget-set accuracy under B moves most between modes,
    and SSD's forget-set range under B in corrected mode."""
    b = both[both.protocol == "B"]
    mean = b.groupby(["method", "mode"]).forget_acc.mean().unstack()
    shift = (mean["corrected"] - mean["reference"]).dropna()
    top = shift.abs().idxmax()
    ssd = b[(b.method == "ssd") & (b["mode"] == "corrected")].groupby("target").forget_acc.agg(lambda v: v.max() - v.min())
    return {"modes_biggest": f"{METHODS[top].label} ({shift[top]:+.1f} points)",
            "modes_ssd_b_range": f"{ssd.min():.1f} to {ssd.max():.1f}" if len(ssd) else "n/a"}
