"""The sentences the book's pages state about a run, each generated from the analysis tables
(``analysis``) and the statistics (``stats``), with the rule behind it stated: which methods break
the model, what the ICCs are with their intervals, how many seeds to use, which rankings flip.
Nothing a page states is typed; every sentence here can say the opposite on another run.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import analysis, stats
from .analysis import ALPHA, DETERMINISTIC, METHODS, UNRANKED, _num, label
from .domains import role as _role, se_targets


SE_TARGET = se_targets()  # per metric, from its domain: half its W2 floor


def icc_sentence(comp: pd.DataFrame, metric: str) -> str:
    """Each method's ICC of ``metric`` with its 95 % interval, for a page's sentence."""
    f = comp[(comp.metric == metric) & ~comp.method.isin(UNRANKED)]
    where = (lambda r: f" on {r.dataset}/{r.setting} {r.target}") if len(f.groupby(["dataset", "setting", "target"])) > 1 else (lambda r: "")
    parts = [f"{label(r.method)} {r.icc:.2f} (95 % CI {r.icc_lo:.2f} to {r.icc_hi:.2f}){where(r)}" for r in f.itertuples() if r.icc == r.icc]
    return "; ".join(parts) or "undefined"


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


def components_summary(comp: pd.DataFrame, metric: str | None = None) -> dict:
    """Text for the book: the ICC of deterministic and stochastic methods, and how often a
    training seed's V_A exceeds V_B."""
    metric = metric or _role(comp, "forgetting")  # the domain's forgetting metric, unless named
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


def icc_by_chapter(comp: pd.DataFrame, methods, metric: str | None = None, prof: dict | None = None) -> dict:
    """Text for the book: the median ICC of ``methods`` beside that of the paper's stochastic
    methods, and which of ``methods`` have an ICC above 0.5 somewhere."""
    metric = metric or _role(comp, "forgetting")  # the domain's forgetting metric, unless named
    f = comp[comp.metric == metric]
    mine = f[f.method.isin(methods)]
    paper = f[f.method.map(lambda m: m in METHODS and METHODS[m].chapter == "paper" and m not in DETERMINISTIC
                           and m not in UNRANKED)]
    high = mine[mine.icc > 0.5].assign(key=stats.keys)
    where = high.groupby("method", sort=False).key.apply(", ".join)
    return {"du_icc_median": f"{mine.icc.median():.2f}" if mine.icc.notna().any() else "undefined",
            "paper_icc_median": f"{paper.icc.median():.2f}" if paper.icc.notna().any() else "undefined",
            "du_icc_high": "; ".join(f"{label(m, prof)} ({w})" for m, w in where.items()) or "none of them"}


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


def cost_sentence(cost: pd.DataFrame, methods) -> str:
    """'from X s (fastest) to Y s (slowest) per job' among ``methods`` (``analysis.cost_table``)."""
    c = cost[cost.method.isin(methods)].sort_values("s per job")
    return (f"from {c['s per job'].iloc[0]:.2f} s ({label(c.method.iloc[0])}) to "
            f"{c['s per job'].iloc[-1]:.2f} s ({label(c.method.iloc[-1])}) per job")


NO_GRID = "not computed (no grid design in this run)"


def grid_study(run, metrics, metric: str, unit: str) -> dict:
    """What a domain page states about its grid design, for ``metric`` (in ``unit``): the variance
    components with intervals, the rank flips, how many seeds, the ICCs and the flips' sentences;
    each sentence says 'not computed' when the run has no grid."""
    if not ("grid" in run.profile["designs"] and run.profile["grid_targets"]):
        return {"components": pd.DataFrame(), "rank_flips": pd.DataFrame(),
                "sentences": {"seeds": NO_GRID, "icc": NO_GRID, "flip_any": "not computed", "flip_worst": "no pair was compared"}}
    comp = analysis.components_with_ci(run.table, metrics=metrics)
    flips = analysis.rank_flips(run.table, metric=metric)
    return {"components": comp, "rank_flips": flips,
            "sentences": {"seeds": seeds_advice(comp, run.table, float(np.median(run.train_seconds)), metric, unit),
                          "icc": icc_sentence(comp, metric), **flips_summary(flips)}}

