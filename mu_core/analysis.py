"""Beyond the paper: the analysis tables of a run's grid design, one function each.

Each takes the results table (and, for costs, the run) and returns a tidy table; the notebooks
only call them and draw. The statistics themselves are in ``stats``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .domains import all_methods, label
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
                       metrics=("retain_acc", "forget_acc")) -> pd.DataFrame:
    """``stats.components_table`` plus bootstrap intervals of sigma_b^2 and sigma_w^2 (resampling
    training seeds; the ICC's exact interval is ``stats.icc``'s)."""
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


def icc_sentence(comp: pd.DataFrame, metric: str) -> str:
    """Each method's ICC of ``metric`` with its 95 % interval, for a page's sentence."""
    f = comp[(comp.metric == metric) & ~comp.method.isin(UNRANKED)]
    where = (lambda r: f" on {r.dataset}/{r.setting} {r.target}") if len(f.groupby(["dataset", "setting", "target"])) > 1 else (lambda r: "")
    parts = [f"{label(r.method)} {r.icc:.2f} (95 % CI {r.icc_lo:.2f} to {r.icc_hi:.2f}){where(r)}" for r in f.itertuples() if r.icc == r.icc]
    return "; ".join(parts) or "undefined"


def w2_instances(table: pd.DataFrame, n_b: int = 50, seed: int = 0,
                 metrics=("retain_acc", "forget_acc")) -> pd.DataFrame:
    """W2(A_i, B_k) over every A instance and ``n_b`` B instances, per setting, method and metric,
    and beside it the B-versus-B baseline: W2 between two independent B instances (sampling noise)."""
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


def b_noise(table: pd.DataFrame, n: int = 200, seed: int = 0, metrics=("retain_acc", "forget_acc")) -> pd.DataFrame:
    """Per setting, method and metric: the median W2 between two independent B instances on the
    setting's grid target (``stats.w2_b_baseline``), the size of W2 from sampling noise alone."""
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


FLOORS = {"ndcg": 0.01, "log10_forget_quality": 0.3}  # W2_FLOOR in other units: one nDCG point; a factor of 2 in forget quality


def stands_out(w2_median, b_vs_b, floor: float = W2_FLOOR):
    """The rule for a W2 that is more than sampling noise: at least NOISE_RATIO times the
    B-versus-B noise and at least ``floor`` (W2_FLOOR points of accuracy; FLOORS for other metrics)."""
    return (w2_median >= NOISE_RATIO * b_vs_b) & (w2_median >= floor)


def above_noise(w2: pd.DataFrame, noise: pd.DataFrame, metric: str = "forget_acc") -> pd.DataFrame:
    """Per setting and method: the median W2(A, B) over targets beside the B-versus-B noise, and
    whether it stands out (``clear``, see ``stands_out``): the noise is itself an estimate, from
    samples of half the training seeds, so a distance just above it proves little."""
    med = w2[w2.metric == metric].groupby(["dataset", "setting", "method"]).w2.median().rename("w2_median")
    nz = noise[noise.metric == metric].set_index(["dataset", "setting", "method"]).w2.rename("b_vs_b")
    both = pd.concat([med, nz], axis=1, join="inner").reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = both.w2_median / both.b_vs_b
    return both.assign(ratio=ratio, clear=stands_out(both.w2_median, both.b_vs_b, FLOORS.get(metric, W2_FLOOR)),
                       label=both.method.map(lambda m: METHODS[m].label))


BREAK_POINTS = 10.0  # a method "breaks the model" when its retain accuracy is this many points below Retrain's


def utility(table: pd.DataFrame, methods, design: str = "grid") -> pd.DataFrame:
    """Per setting, target and method (Original and Retrain beside the methods asked for): the mean
    forget-, retain- and test-set accuracy over every row of the design, what forgetting cost."""
    sel = stats.select(table, design)
    keep = list(dict.fromkeys([*with_role(METHODS, "original"), *with_role(METHODS, "gold"), *methods]))
    sel = sel[sel.method.isin(keep)]
    out = (sel.groupby(["dataset", "setting", "target", "method"])[["forget_acc", "retain_acc", "test_acc"]]
           .mean().reset_index())
    order = {m: i for i, m in enumerate(keep)}
    return out.sort_values(["dataset", "setting", "target", "method"], kind="stable",
                           key=lambda c: c.map(order) if c.name == "method" else c).reset_index(drop=True)


def breaking(util: pd.DataFrame, methods, prof: dict | None = None) -> dict:
    """The rule the Deep Unlearn chapter states, from ``utility``: a method forgets by breaking the
    model on a target when its mean retain accuracy is more than BREAK_POINTS below Retrain's; it
    barely forgets when its mean forget accuracy is nearer Original's than Retrain's. Sentences
    naming the methods, with the worst case's numbers."""
    broken, barely = [], []
    for (ds, setting, target), g in util.groupby(["dataset", "setting", "target"]):
        g = g.set_index("method")
        if "retrain" not in g.index or "original" not in g.index:
            continue
        r, o = g.loc["retrain"], g.loc["original"]
        for m in [m for m in methods if m in g.index]:
            x = g.loc[m]
            where = f"{ds}/{setting} {target}"
            if x.retain_acc < r.retain_acc - BREAK_POINTS:
                broken.append((m, r.retain_acc - x.retain_acc, f"{x.retain_acc:.1f} % retain accuracy against "
                                                               f"Retrain's {r.retain_acc:.1f} % on {where}"))
            if abs(x.forget_acc - o.forget_acc) < abs(x.forget_acc - r.forget_acc):
                barely.append((m, -abs(x.forget_acc - o.forget_acc), f"{x.forget_acc:.1f} % forget accuracy against "
                                                                     f"Original's {o.forget_acc:.1f} % and Retrain's "
                                                                     f"{r.forget_acc:.1f} % on {where}"))

    def name(cases):
        worst = {}
        for m, size, text in cases:  # each method's largest case
            if m not in worst or size > worst[m][0]:
                worst[m] = (size, text)
        n = {m: sum(c[0] == m for c in cases) for m in worst}
        return "; ".join(f"{label(m, prof)} ({n[m]} of {util.groupby(['dataset', 'setting', 'target']).ngroups} "
                         f"targets; worst {worst[m][1]})" for m in worst) or "none"
    return {"break_rule": f"mean retain accuracy more than {BREAK_POINTS:g} points below Retrain's on a target",
            "barely_rule": "mean forget accuracy nearer Original's than Retrain's on a target",
            "broken": name(broken), "barely": name(barely)}


def rank_flips(table: pd.DataFrame, metric: str = "forget_acc") -> pd.DataFrame:
    """P(protocol A orders two methods the other way from the full grid), for every pair of
    methods (Original aside) on every grid target."""
    out = []
    for key, target in grid_keys(table):
        present = [m for m in methods_in(table) if not stats.select(table, "grid", key, target, m).empty]
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


def budget_sentence(budget: pd.DataFrame) -> str:
    """What the best splits say, from the table: how the best I and J of the stochastic methods
    compare with the grid's; a deterministic method's J = 1 is forced, not found, and said apart."""
    b = budget.dropna(subset=["I_best", "J_best"])
    det = b[b.method.isin(DETERMINISTIC)]
    b = b[~b.method.isin(DETERMINISTIC)]
    forced = (f"; for the deterministic methods ({', '.join(sorted({label(m) for m in det.method}))}) J = 1 by "
              f"construction, every run a new training seed" if len(det) else "")
    if b.empty:
        return "no stochastic method varies, so no split of the budget is better than another" + forced
    grid_j = b.grid.str.split(" x ").str[1].astype(int)
    fewer = int((b.J_best < grid_j).sum())
    return (f"for the stochastic methods, in {fewer} of {len(b)} method-target cases the best split uses fewer "
            f"unlearning seeds per training seed than the grid's {int(grid_j.median())} (median best split: "
            f"{b.I_best.median():.1f} training seeds x {b.J_best.median():.1f} unlearning seeds)" + forced)


SE_TARGET = {"forget_acc": 0.5, "retain_acc": 0.5, "ndcg": 0.005, "log10_forget_quality": 0.15}  # half each W2 floor


def _seeds(n: int) -> str:
    return f"{n} training seed{'s' if n != 1 else ''}"


def _cpu(s: float) -> str:
    return f"{s:,.0f}" if s >= 10 else f"{s:.2g}"


def seeds_advice(comp: pd.DataFrame, table: pd.DataFrame, c_train: float, metric: str, unit: str,
                 short: bool = False, se: float | None = None) -> str:
    """The worked answer to "how many seeds?" for one run and metric (``stats.seeds_for``): for the
    median stochastic method's variance components and the run's median costs, the split and the
    number of training seeds for a standard error of half the W2 rule's floor; the deterministic
    methods' answer apart; whether protocol A could reach that standard error at all."""
    se = se or SE_TARGET[metric]
    f = comp[(comp.metric == metric) & ~comp.method.isin(UNRANKED) & comp.sigma_b2.notna()]
    sto, det = f[~f.method.isin(DETERMINISTIC)], f[f.method.isin(DETERMINISTIC)]
    if sto.empty and det.empty:
        return "not computed (no grid design in this run)"
    ok = table[(table.get("status", "ok") == "ok") & table.method.isin(f.method)]
    c_unlearn = max(float(ok[~ok.method.isin(DETERMINISTIC)].method_seconds.median()), 1e-3) if len(sto) else 1e-3
    out = []
    if len(sto):
        b2, w2 = float(sto.sigma_b2.median()), float(sto.sigma_w2.median())
        a = stats.seeds_for(b2, w2, c_train, c_unlearn, se)
        if short:  # the landing page's version
            return (f"about {_seeds(a['I'])} with {a['J']} unlearning seed{'s' if a['J'] > 1 else ''} each give a "
                    f"typical method's mean a standard error of {se:g} {unit}"
                    + (", which no number of unlearning runs on one training seed reaches" if not a["a_reaches"] else
                       "; here one training seed with enough unlearning runs could reach it too")
                    + "; a deterministic method needs training seeds only")
        out.append(f"for the median stochastic method (σ_b² {_num(b2)}, σ_w² {_num(w2)} {unit}², over {len(sto)} "
                   f"method-target cases) with training at {c_train:.3g} s and unlearning at {c_unlearn:.3g} s a job "
                   f"(medians of the results), a standard error of {se:g} {unit} needs {_seeds(a['I'])} with "
                   f"{a['J']} unlearning seed{'s' if a['J'] > 1 else ''} each (about {_cpu(a['cost'])} CPU-s); "
                   + ("protocol A could reach it with enough unlearning seeds" if a["a_reaches"] else
                      f"protocol A cannot reach it with any number of unlearning seeds, since one training seed "
                      f"leaves σ_b² = {_num(b2)} however many runs are averaged"))
    if len(det):
        b2 = float(det.sigma_b2.median())
        a = stats.seeds_for(b2, 0.0, c_train, c_unlearn, se)
        out.append(f"for the deterministic methods ({', '.join(sorted({label(m) for m in det.method}))}), J = 1 by "
                   f"construction and {_seeds(a['I'])} (median σ_b² {_num(b2)} {unit}²)")
    return "; ".join(out)


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
    o = overstatements(comp, metric)
    return {"icc_det": det_text,
            "icc_sto_range": f"{sto.icc.min():.2f} to {sto.icc.max():.2f}" if len(sto) else "n/a",
            "n_overstate": o["text"],
            "overstate_verdict": ("so protocol A can overstate the variance as well as understate it"
                                  if o["of"] and o["min_p"] < ALPHA / o["of"] else
                                  "no more than sampling noise alone would give: this run shows no training seed "
                                  "whose protocol A overstates the variance")}


def overstatements(comp: pd.DataFrame, metric: str | None = None) -> dict:
    """The one count of "protocol A overstates" used on every page: among the stochastic
    method-target-metric cases of the grid, those whose largest V_A(s) exceeds V_B by more than
    sampling gives (``stats.overstate_p`` below ALPHA), with the number expected by chance."""
    sto = comp[~comp.method.isin(DETERMINISTIC)]
    if metric is not None:
        sto = sto[sto.metric == metric]
    p = sto.A_overstates_p.dropna()
    n = int((p < ALPHA).sum())
    return {"n": n, "of": len(p), "min_p": float(p.min()) if len(p) else float("nan"),
            "text": f"{n} of {len(p)} (about {ALPHA * len(p):.1f} expected by chance alone)"}


def flips_summary(flips: pd.DataFrame, prof: dict | None = None) -> dict:
    """Text for the book: how many pairs flip at all, and the most fragile pair."""
    f = flips.dropna(subset=["p_flip"])
    if f.empty:
        return {"flip_any": "0 of 0", "flip_worst_pair": "none", "flip_worst_p": "0",
                "flip_worst": "no pair could be compared"}
    worst = f.sort_values("p_flip", ascending=False, kind="stable").iloc[0]
    pair = f"{' vs '.join(label(m, prof) for m in worst.pair.split(' vs '))} ({worst.setting})"
    return {"flip_any": f"{int((f.p_flip > 0).sum())} of {len(f)}", "flip_worst_pair": pair,
            "flip_worst_p": f"{worst.p_flip:.2f}",
            "flip_worst": f"the most fragile is {pair}, flipped with probability {worst.p_flip:.2f}" if worst.p_flip > 0
            else "no pair flips on any training seed"}


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


def wider_sentence(ranges: pd.DataFrame, place) -> str:
    """Per panel, the methods whose range under B is more than twice their range under A
    (``place(key, target)`` names the panel)."""
    parts = []
    for (key, target, metric), g in ranges.groupby(["key", "target", "metric"], sort=False):
        wide = g[g.range_B > 2 * g.range_A]
        what = metric.replace("_acc", "").replace("_", " ")
        parts.append(f"{len(wide)} of {len(g)} methods on {place(key, target)} ({what} accuracy"
                     + (f": {', '.join(wide.label)})" if len(wide) else ")"))
    return "; ".join(parts) or "no panel"


def icc_by_chapter(comp: pd.DataFrame, methods, metric: str = "forget_acc", prof: dict | None = None) -> dict:
    """Text for the book: the median ICC of ``methods`` beside that of the paper's stochastic
    methods, and which of ``methods`` have an ICC above 0.5 somewhere."""
    f = comp[comp.metric == metric]
    mine = f[f.method.isin(methods)]
    paper = f[f.method.map(lambda m: m in METHODS and METHODS[m].chapter == "paper" and m not in DETERMINISTIC
                           and m not in UNRANKED)]
    high = mine[mine.icc > 0.5].assign(key=stats.keys)
    where = high.groupby("method", sort=False).key.apply(", ".join)
    return {"du_icc_median": f"{mine.icc.median():.2f}" if mine.icc.notna().any() else "undefined",
            "paper_icc_median": f"{paper.icc.median():.2f}" if paper.icc.notna().any() else "undefined",
            "du_icc_high": "; ".join(f"{label(m, prof)} ({w})" for m, w in where.items()) or "none of them"}


def pairs_among(flips: pd.DataFrame, methods) -> pd.DataFrame:
    """The rows of ``rank_flips`` whose two methods are both in ``methods``."""
    both = flips.pair.str.split(" vs ").map(lambda p: p[0] in methods and p[1] in methods)
    return flips[both.astype(bool)] if len(flips) else flips


def trio_sentence(flips: pd.DataFrame, prof: dict | None = None) -> str:
    """Per pair, where protocol A can order it the other way and how likely that is (with the
    profile, an analogue is named as one: ``domains.label``)."""
    if flips.empty:
        return "No pair of these methods is in this run"
    parts = []
    for pair, g in flips.groupby("pair", sort=False):
        name = " and ".join(label(m, prof) for m in pair.split(" vs "))
        ranked = g.dropna(subset=["p_flip"])  # a tie (equal means) has no order to flip
        hit = ranked[ranked.p_flip > 0]
        ties = len(g) - len(ranked)
        if ranked.empty:
            parts.append(f"{name} tie on every target ({ties}): there is no order to flip")
            continue
        parts.append(f"{name} flip on {len(hit)} of {len(ranked)} target{'s' * (len(ranked) != 1)} where they differ"
                     + (f" (at most with probability {hit.p_flip.max():.2f}, {hit.loc[hit.p_flip.idxmax(), 'setting']})"
                        if len(hit) else "") + (f"; they tie on {ties}" if ties else ""))
    return "; ".join(parts)


def init_order_summary(io: pd.DataFrame, metric: str = "forget_acc") -> dict:
    """Text for the book: the share of var E(Z | S) an init-only protocol sees, where the order
    seed outweighs the initialisation, and how the REML check went."""
    f = io[(io.metric == metric) & (io.var_seed > 0)]
    if f.empty:
        return {"io_share": "not defined (no training-seed variance in this run's init_order design)",
                "io_order_major": "none", "io_reml": "no fit"}
    by = f.groupby("method", sort=False).init_only_share.median()
    lo, hi = by.idxmin(), by.idxmax()
    order_major = f[f.sigma_order2 > f.sigma_init2].method.unique()
    fits = io[io.metric == metric]
    conv = fits.reml_estimator == "REML"
    gap = (fits[conv].reml_init2 - fits[conv].sigma_init2).abs().max() if conv.any() else float("nan")
    return {"io_share": f"a median {100 * f.init_only_share.median():.0f} % over methods and targets (per method, from "
                        f"{100 * by[lo]:.0f} % for {label(lo)} to {100 * by[hi]:.0f} % for {label(hi)})",
            "io_order_major": ", ".join(label(m) for m in order_major) or "none",
            "io_reml": f"REML converged in {int(conv.sum())} of {len(fits)} fits"
                       + (f", its initialisation variance within {gap:.2g} of the ANOVA estimate there" if conv.any() else "")
                       + f"; {int(fits.reml_estimator.str.startswith('ANOVA').sum())} fits had no within-cell variance"}


def ulira_summary(summary: pd.DataFrame) -> dict:
    """Text for the book from ``ulira.csv``: the calibration row (the gold standard) against 0.5,
    and which methods the attack tells apart, on LiRA's statistic."""
    f = summary[summary.statistic == "phi"]
    if f.empty:
        return {"ul_calibration": "not computed (no ulira design in this run)", "ul_detected": "not computed",
                "ul_best": "not computed"}
    gold = f[f.method.map(lambda m: m in METHODS and METHODS[m].role == "gold")]
    cal = "no gold-standard row"
    if len(gold):
        g = gold.iloc[0]
        inside = g.du_membership_lo <= 0.5 <= g.du_membership_hi
        cal = (f"{label(g.method)} scores {g.du_membership:.3f} (95 % interval {g.du_membership_lo:.3f} to "
               f"{g.du_membership_hi:.3f}, {'which contains' if inside else 'which does not contain'} 0.5) with an AUC of {g.auc:.3f}")
    rest = f[~f.method.isin(gold.method)]
    seen = rest[rest.auc_lo > 0.5]
    best = rest.loc[rest.auc.idxmax()] if len(rest) else None
    return {"ul_calibration": cal,
            "ul_detected": f"{len(seen)} of {len(rest)}" + (f" ({', '.join(label(m) for m in seen.method)})" if len(seen) else ""),
            "ul_best": (f"{label(best.method)}: AUC {best.auc:.3f} ({best.auc_lo:.3f} to {best.auc_hi:.3f}), TPR at 1 % FPR "
                        f"{best.tpr_at_1pct_fpr:.3f}") if best is not None else "none"}


def modes_table(reference: pd.DataFrame, corrected: pd.DataFrame, protocols=("A", "B")) -> pd.DataFrame:
    """The paper-design rows of a reference run and a corrected run over the targets both have."""
    ref = stats.select(reference, "paper")
    cor = stats.select(corrected, "paper")
    common = cor[["dataset", "setting", "target"]].drop_duplicates()
    both = pd.concat([ref.merge(common), cor], ignore_index=True)
    return both[both.protocol.isin(protocols)]


def modes_summary(both: pd.DataFrame) -> dict:
    """Text for the book: the method and setting whose mean forget-set accuracy under B moves most
    between modes, and SSD's forget-set range under B in corrected mode (per target)."""
    b = both[both.protocol == "B"].assign(key=stats.keys)
    mean = b.groupby(["key", "method", "mode"]).forget_acc.mean().unstack()  # per setting: never pooled
    shift = (mean["corrected"] - mean["reference"]).dropna()
    key, top = shift.abs().idxmax()
    ssd = b[(b.method == "ssd") & (b["mode"] == "corrected")].groupby(["key", "target"]).forget_acc.agg(lambda v: v.max() - v.min())
    return {"modes_biggest": f"{METHODS[top].label} on {key} ({shift[(key, top)]:+.1f} points)",
            "modes_ssd_b_range": f"{ssd.min():.1f} to {ssd.max():.1f}" if len(ssd) else "n/a"}
