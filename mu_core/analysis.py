"""Beyond the paper: the analysis tables of a run's grid design, one function each.

Each takes the results table (and, for costs, the run) and returns a tidy table; the notebooks
only call them and draw. The statistics themselves are in ``stats``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .domains import all_methods, floors, label, role as _role, studied as _studied
from .method import with_role

METHODS = all_methods()  # every domain's: the analyses take any domain's results table
DETERMINISTIC = [m for m, rec in METHODS.items() if rec.deterministic]
UNRANKED = with_role(METHODS, "original")  # reference rows: never ranked or compared


def methods_in(table: pd.DataFrame) -> list[str]:
    """The methods of ``table`` (Original aside) in the method table's order, a user's own after."""
    known = [m for m in METHODS if m in set(table.method)]
    return [m for m in known + sorted(set(table.method) - set(METHODS)) if m not in UNRANKED]


def in_chapter(table: pd.DataFrame, chapter: str) -> pd.DataFrame:
    """The rows of the methods a chapter introduces (their record's ``chapter``), Original kept:
    a page about the paper's methods shows theirs, whatever else the run computed."""
    keep = {m for m, rec in METHODS.items() if rec.chapter == chapter} | set(UNRANKED)
    return table[table.method.isin(keep)]


def grid_keys(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(setting key, target) of every target of the grid design."""
    g = stats.select(table, "grid")
    return sorted(set(zip(stats.keys(g), g.target.astype(str))))


def components_with_ci(table: pd.DataFrame, n_boot: int = 200, seed: int = 0,
                       metrics=None) -> pd.DataFrame:
    """``stats.components_table`` plus bootstrap intervals of sigma_b^2 and sigma_w^2 (resampling
    training seeds; the ICC's exact interval is ``stats.icc``'s)."""
    metrics = list(metrics) if metrics is not None else _studied(table)  # the domain's, unless named
    comp = stats.components_table(table, metrics=metrics)
    ci = {"b": [], "w": []}
    for r in comp.itertuples():
        Z = stats.grid_matrix(table, r.method, f"{r.dataset}/{r.setting}", r.target, r.metric)
        for part in ci:
            ci[part].append(stats.bootstrap(Z, lambda z, p=part: stats.anova(z)[f"sigma_{p}2"], n_boot=n_boot, seed=seed))
    return comp.assign(**{f"sigma_{p}2_{end}": [c[end] for c in ci[p]] for p in ci for end in ("lo", "hi")})


def _num(v: float) -> str:
    """A variance or share as a reader compares it: three significant figures, never 0.000 for a
    small positive number."""
    return "0" if v == 0 else f"{v:.3g}"


def with_intervals(comp: pd.DataFrame) -> pd.DataFrame:
    """The components table as pages show it: each variance and the ICC beside its 95 % interval
    (bootstrap for the variances, exact F for the ICC), in three significant figures."""
    def iv(v, lo, hi):
        return "–" if v != v else f"{_num(v)} ({_num(lo)} to {_num(hi)})"
    out = comp[[c for c in ("dataset", "setting", "target", "method", "metric", "I", "J", "mean") if c in comp]].copy()
    for p, name in (("b", "sigma_b2 (95 % CI)"), ("w", "sigma_w2 (95 % CI)")):
        if f"sigma_{p}2_lo" in comp:
            out[name] = [iv(v, lo, hi) for v, lo, hi in zip(comp[f"sigma_{p}2"], comp[f"sigma_{p}2_lo"], comp[f"sigma_{p}2_hi"])]
        else:
            out[name] = comp[f"sigma_{p}2"].map(_num)
    out["ICC (95 % CI)"] = [iv(v, lo, hi) for v, lo, hi in zip(comp.icc, comp.icc_lo, comp.icc_hi)]
    return out


def w2_instances(table: pd.DataFrame, n_b: int = 50, seed: int = 0,
                 metrics=None) -> pd.DataFrame:
    """W2(A_i, B_k) over every A instance and ``n_b`` B instances, per setting, method and metric,
    and beside it the B-versus-B baseline: W2 between two independent B instances (sampling noise)."""
    metrics = list(metrics) if metrics is not None else _studied(table)  # the domain's, unless named
    out = []
    for key, target in grid_keys(table):
        for method in methods_in(table):
            if stats.select(table, "grid", key, target, method).empty:
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


def b_noise(table: pd.DataFrame, n: int = 200, seed: int = 0, metrics=None) -> pd.DataFrame:
    """Per setting, method and metric: the median W2 between two independent B instances on the
    setting's grid target (``stats.w2_b_baseline``), the size of W2 from sampling noise alone."""
    metrics = list(metrics) if metrics is not None else _studied(table)  # the domain's, unless named
    out = []
    for key, target in grid_keys(table):
        ds, setting = key.split("/")
        for method in methods_in(table):
            if stats.select(table, "grid", key, target, method).empty:
                continue
            for metric in metrics:
                Z = stats.grid_matrix(table, method, key, target, metric)
                if Z.shape[0] >= 4:
                    out.append(dict(dataset=ds, setting=setting, method=method, metric=metric,
                                    w2=float(np.median(stats.w2_b_baseline(Z, n=n, seed=seed))), half=Z.shape[0] // 2))
    return pd.DataFrame(out, columns=["dataset", "setting", "method", "metric", "w2", "half"])


ALPHA = 0.05        # the level of every test a verdict rests on
NOISE_RATIO = 2.0   # a W2 "stands out" at this many times its B-versus-B noise ...
W2_FLOOR = 1.0      # ... and at least this many points (a noise of 0 makes any ratio infinite)


FLOORS = floors()  # W2_FLOOR in each metric's units, declared by its domain (one nDCG point; a factor of 2 in forget quality)


def stands_out(w2_median, b_vs_b, floor: float = W2_FLOOR):
    """The rule for a W2 that is more than sampling noise: at least NOISE_RATIO times the
    B-versus-B noise and at least ``floor`` (W2_FLOOR points of accuracy; FLOORS for other metrics)."""
    return (w2_median >= NOISE_RATIO * b_vs_b) & (w2_median >= floor)


def above_noise(w2: pd.DataFrame, noise: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Per setting and method: the median W2(A, B) over targets beside the B-versus-B noise, and
    whether it stands out (``clear``, see ``stands_out``): the noise is itself an estimate, from
    samples of half the training seeds, so a distance just above it proves little."""
    metric = metric or _role(w2, "forgetting")  # the domain's forgetting metric, unless named
    med = w2[w2.metric == metric].groupby(["dataset", "setting", "method"]).w2.median().rename("w2_median")
    nz = noise[noise.metric == metric].set_index(["dataset", "setting", "method"]).w2.rename("b_vs_b")
    both = pd.concat([med, nz], axis=1, join="inner").reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = both.w2_median / both.b_vs_b
    return both.assign(ratio=ratio, clear=stands_out(both.w2_median, both.b_vs_b, FLOORS.get(metric, W2_FLOOR)),
                       label=both.method.map(lambda m: METHODS[m].label))


def cost_table(table: pd.DataFrame, design: str = "grid") -> pd.DataFrame:
    """Each method's median CPU seconds per job in ``design``, its chapter and whether it is
    deterministic, in the method table's order."""
    g = stats.select(table, design)
    cost = (g.groupby("method").method_seconds.median().rename("s per job").reset_index()
            .assign(chapter=lambda d: d.method.map(lambda m: METHODS[m].chapter if m in METHODS else "yours"),
                    det=lambda d: d.method.map(lambda m: "yes" if m in DETERMINISTIC else "no")))
    return cost.set_index("method").loc[methods_in(g)].reset_index()


def rank_flips(table: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """P(protocol A orders two methods the other way from the full grid), for every pair of
    methods (Original aside) on every grid target."""
    metric = metric or _role(table, "forgetting")  # the domain's forgetting metric, unless named
    out = []
    for key, target in grid_keys(table):
        present = [m for m in methods_in(table) if not stats.select(table, "grid", key, target, m).empty]
        for i, m1 in enumerate(present):
            for m2 in present[i + 1:]:
                Z1 = stats.grid_matrix(table, m1, key, target, metric)
                Z2 = stats.grid_matrix(table, m2, key, target, metric)
                out.append(dict(setting=f"{key} {target}", pair=f"{m1} vs {m2}", p_flip=stats.rank_flip(Z1, Z2)))
    return pd.DataFrame(out, columns=["setting", "pair", "p_flip"])


def seed_budget(table: pd.DataFrame, comp: pd.DataFrame, c_train: float, metric: str | None = None) -> pd.DataFrame:
    """For each method and grid target: the best split of the budget its grid actually cost
    (I training runs, I·J unlearning runs, with the run's measured costs) between training and
    unlearning seeds, beside protocol A's variance at the same budget."""
    metric = metric or _role(table, "forgetting")  # the domain's forgetting metric, unless named
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


def ab_ranges(ab: pd.DataFrame, panels, methods) -> pd.DataFrame:
    """The range (max - min) of each method's values under protocol A and under B, per panel
    (setting key, target, metric) of a paper-design table (or ``stats.grid_as_paper``'s)."""
    rows = []
    for key, target, metric in panels:
        for m in methods:
            a, b = stats.protocols(ab, m, key, target, metric)
            if len(a) and len(b):
                rows.append(dict(key=key, target=str(target), metric=metric, method=m, label=label(m),
                                 range_A=float(np.ptp(a)), range_B=float(np.ptp(b))))
    return pd.DataFrame(rows, columns=["key", "target", "metric", "method", "label", "range_A", "range_B"])


def pairs_among(flips: pd.DataFrame, methods) -> pd.DataFrame:
    """The rows of ``rank_flips`` whose two methods are both in ``methods``."""
    both = flips.pair.str.split(" vs ").map(lambda p: p[0] in methods and p[1] in methods)
    return flips[both.astype(bool)] if len(flips) else flips


