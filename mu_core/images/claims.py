"""The paper's claims, each checked against a run by a stated rule (``RULES``), and the sentences
the book builds from the verdicts: the image study's own analysis (the claims are about SSD and
LFSSD), apart from the domain-neutral tables of ``mu_core.analysis`` it draws on."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .. import stats
from ..analysis import (ALPHA, DETERMINISTIC, METHODS, NOISE_RATIO, UNRANKED, W2_FLOOR, b_noise,
                        components_with_ci, label, stands_out)
from ..method import with_role
from ..sentences import overstatements


RULES = {
    "deterministic": "not measured by the run: the engine runs SSD and LFSSD once per original model and records that "
                     "result for every unlearning seed; tests/images/test_methods.py::test_ssd_and_lfssd_are_deterministic runs "
                     "each with two different unlearning generators and compares the models bit for bit",
    "vary": "holds when, in every target and metric, SSD's and LFSSD's standard deviation over protocol B's training "
            "seeds is at least the spread a single seed's unlearning runs show: the median standard deviation over "
            "protocol A's unlearning seeds of the paper's stochastic methods; partly when in some",
    "w2": f"every method's median W2(A, B) is tested against its own B-versus-B noise (measured on the grid design): "
          f"it stands out at {NOISE_RATIO:g} times that noise or more, and at least {W2_FLOOR:g} point (unrounded "
          f"values). Holds when SSD or LFSSD has the largest median and stands out; partly when one of them stands "
          f"out but another method is larger; does not hold when only other methods stand out; within noise when "
          f"none does",
    "overstate": f"per stochastic case, a test of the largest V_A(s) against V_B with no training-seed effect "
                 f"(stats.overstate_p); holds when the smallest p-value is below {ALPHA:g} divided by the number of "
                 f"cases (Bonferroni); otherwise not detected (an absence of evidence, not evidence of absence)",
    "sigma_b": "holds when the lower end of the bootstrap interval of sigma_b^2 (training seeds resampled) is above "
               "0 in every case; partly when in some",
}


def claims(table: pd.DataFrame, n_boot: int = 200) -> pd.DataFrame:
    """The paper's claims, each checked against this run by the rule in ``RULES``: one row per
    claim and setting with its verdict (holds / partly / does not hold / within noise / by
    construction / not tested) and the numbers behind it."""
    out = []
    settings = sorted(set(stats.keys(stats.select(table, "paper"))))

    def add(claim, where, verdict, evidence, rule):
        out.append(dict(claim=claim, verdict=verdict, setting=where, evidence=evidence, rule=rule))

    add("SSD and LFSSD are deterministic: protocol A gives one value", "all", "by construction",
        "one run per original model, its row repeated for every unlearning seed", "deterministic")
    for key in settings:
        sel = stats.select(table, "paper", key)
        det = sel[sel.method.isin(["ssd", "lfssd"]) & (sel.protocol == "B")]
        if det.empty:
            continue
        sd_b = det.groupby(["method", "target"])[["retain_acc", "forget_acc"]].std()
        sto = sel[~sel.method.isin(DETERMINISTIC + UNRANKED) & (sel.protocol == "A")]
        noise = sto.groupby(["method", "target"])[["retain_acc", "forget_acc"]].std().median()  # per metric
        claim = "...yet they vary across training seeds (protocol B) as much as a single seed's unlearning runs do"
        if sto.empty or noise.isna().all():
            add(claim, key, "not tested", "no stochastic method with several unlearning seeds under A to measure "
                                          "the unlearning-seed spread", "vary")
            continue
        moving = sd_b.ge(noise, axis=1)
        frac = float(moving.to_numpy().mean())
        still = [f"{METHODS[m].label} {metric.replace('_acc', '')}" for metric in sd_b.columns
                 for m in sorted(set(sd_b.index.get_level_values(0))) if not moving[metric].xs(m, level="method").any()]
        add(claim, key, "holds" if frac == 1 else ("partly" if frac > 0 else "does not hold"),
            f"median SD over B's training seeds: retain {sd_b.retain_acc.median():.2f}, forget "
            f"{sd_b.forget_acc.median():.2f} points, against the stochastic methods' SD over A's unlearning seeds: "
            f"retain {noise.retain_acc:.2f}, forget {noise.forget_acc:.2f}; in {int(moving.to_numpy().sum())} of "
            f"{moving.size} target-metric cases" + (f"; below it everywhere for {', '.join(still)}" if still else ""),
            "vary")
    w2 = stats.paper_w2(table)
    w2 = w2[~w2.method.isin(UNRANKED)]
    noise = b_noise(table)  # empty without a grid design
    for key in settings:
        for metric in ("retain_acc", "forget_acc"):
            d = w2[(stats.keys(w2) == key) & (w2.metric == metric)]
            if d.empty:
                continue
            med = d.groupby("method").w2.median().sort_values(ascending=False)
            nz = noise[(stats.keys(noise) == key) & (noise.metric == metric)].set_index("method").w2
            floor = lambda m: float(nz.get(m, 0.0))  # noqa: E731 - no grid: the absolute floor alone
            out_ = {m: bool(stands_out(med[m], floor(m))) for m in med.index}  # every method, unrounded
            top = med.index[0]
            det_out = [m for m in ("ssd", "lfssd") if out_.get(m)]
            if not any(out_.values()):
                verdict = "within noise"
            elif top in det_out:
                verdict = "holds"
            elif det_out:
                verdict = "partly"
            else:
                verdict = "does not hold"

            def said(m):
                if m not in nz.index:
                    return f"{METHODS[m].label} {med[m]:.2f}"
                ratio = med[m] / floor(m) if floor(m) > 0 else float("inf")
                return f"{METHODS[m].label} {med[m]:.2f} = {ratio:.3g} x its noise {floor(m):.2f}"
            shown = list(dict.fromkeys([top, *[m for m in ("ssd", "lfssd") if m in med.index],
                                        *[m for m in med.index if out_[m]]]))
            stand = [METHODS[m].label for m in med.index if out_[m]]
            add(f"SSD and LFSSD have the largest W2(A, B) ({metric.replace('_acc', '')} set)", key, verdict,
                f"median W2 in points: {'; '.join(said(m) for m in shown)}; standing out: "
                f"{', '.join(stand) if stand else 'none'}" + ("" if len(nz) else " (no B-vs-B noise: no grid design "
                                                                                   "for this setting)"), "w2")
    comp = components_with_ci(table, n_boot=n_boot) if not stats.select(table, "grid").empty else pd.DataFrame()
    claim_o = "A can overstate the variance: V_A(s) > V_B for some training seed s, beyond sampling"
    claim_b = "On average A understates it: σ_b² = var E(Z|S) > 0"
    if comp.empty:
        add(claim_o, "grid design", "not tested", "no grid design in this run", "overstate")
        add(claim_b, "grid design", "not tested", "no grid design in this run", "sigma_b")
        return pd.DataFrame(out)
    o = overstatements(comp)
    add(claim_o, "grid design", "not tested" if not o["of"] else ("holds" if o["min_p"] < ALPHA / o["of"] else "not detected"),
        f"p < {ALPHA:g} in {o['text']}; smallest p {o['min_p']:.4f} against {ALPHA / max(o['of'], 1):.4f}", "overstate")
    pos = int((comp.sigma_b2_lo > 0).sum())
    add(claim_b, "grid design", "holds" if pos == len(comp) else ("partly" if pos else "does not hold"),
        f"bootstrap lower bound of σ_b² above 0 in {pos} of {len(comp)} method-target-metric cases "
        f"(point estimate above 0 in {int((comp.sigma_b2 > 0).sum())})", "sigma_b")
    return pd.DataFrame(out)


def claims_summary(claims: pd.DataFrame) -> str:
    """One sentence: how many of the measured verdicts hold, and what the others are (verdicts by
    construction, or not tested, are not measurements and are counted apart)."""
    measured = claims[~claims.verdict.isin(["by construction", "not tested"])]
    counts = measured.verdict.value_counts()
    rest = [f"{n} {v}" for v, n in counts.items() if v != "holds"]
    apart = [f"{n} {v}" for v, n in claims.verdict.value_counts().items() if v in ("by construction", "not tested")]
    return (f"{int(counts.get('holds', 0))} of the {len(measured)} verdicts this run measured hold"
            + (f" ({', '.join(rest)})" if rest else "") + (f"; apart from these, {', '.join(apart)}" if apart else ""))


CLAIM_NAMES = {"deterministic": "SSD and LFSSD are deterministic", "vary": "SSD and LFSSD vary across training seeds",
               "w2": "SSD and LFSSD have the largest W2(A, B)", "overstate": "A can overstate the variance",
               "sigma_b": "σ_b² > 0 everywhere"}  # each rule of RULES as a short claim


def _some(items: list, sep: str = ", ", n: int = 4) -> str:
    """The first ``n`` items, and how many more: a sentence a newcomer reads at a glance."""
    return sep.join(items[:n]) + (f"{sep}and {len(items) - n} more" if len(items) > n else "")


def takeaways(claims: pd.DataFrame, above: pd.DataFrame) -> dict:
    """Two of the landing page's three sentences, from the claims table and the forget-set W2
    verdicts (``above_noise``): what the run found beyond sampling noise, and what it did not."""
    hits = above[above.clear].sort_values("ratio", ascending=False)
    if len(hits):
        top = hits.iloc[0]
        found = (f"in {len(hits)} of {len(above)} method-setting pairs, one training seed gives a forget-set accuracy "
                 f"distribution unlike that of many training seeds by more than sampling noise ("
                 + _some([f"{label(r.method)} on {r.dataset}/{r.setting}" for r in hits.itertuples()])
                 + f"); the clearest is {label(top.method)} on {top.dataset}/{top.setting}: W2 {top.w2_median:.2f} points, "
                 + (f"{top.ratio:.3g} times its B-versus-B noise" if np.isfinite(top.ratio) else
                    "against a B-versus-B noise of 0 (its B samples on two halves of the seeds agree exactly)"))
    else:
        found = (f"in none of {len(above)} method-setting pairs does one training seed give a forget-set accuracy "
                 f"distribution unlike many training seeds' by more than sampling noise")
    measured = claims[~claims.verdict.isin(["by construction", "not tested", "holds"])]
    quiet = above[~above.clear]
    named = measured.assign(name=[CLAIM_NAMES[r] + (f" ({m[1]} set)" if (m := re.search(r"\((\w+) set\)", c)) else "")
                                  for r, c in zip(measured.rule, measured.claim)])  # the retain and forget W2 claims apart
    groups = named.groupby(["name", "verdict"], sort=False).setting.agg(list)
    not_found = (f"{len(quiet)} of {len(above)} method-setting pairs stay within sampling noise"
                 + (f"; {len(measured)} verdict{'s' if len(measured) != 1 else ''} on the paper's claims did not hold in full here: "
                    + _some([f"{n}: {v} ({', '.join(w)})" for (n, v), w in groups.items()], "; ")
                    if len(measured) else "; every measured claim of the paper held"))
    return {"found": found, "not_found": not_found}


def complete_forgetting(table: pd.DataFrame) -> str:
    """Sentences on where SSD and LFSSD forget completely on every protocol-B model (forget-set
    accuracy 0), and so leave no forget-set spread for a single seed to hide; generated, never typed."""
    b = stats.select(table, "paper")
    b = b[(b.protocol == "B") & b.method.isin(["ssd", "lfssd"])]
    if "status" in b:  # a model at chance forgets nothing: it is broken (study.open_run keeps its row)
        b = b[b.status == "ok"]
    out = []
    for (ds, setting), d in b.groupby(["dataset", "setting"]):
        worst = d.groupby("method").forget_acc.max()
        done = [METHODS[m].label for m, v in worst.items() if v == 0]
        rest = [f"{METHODS[m].label} up to {v:.1f} %" for m, v in worst.items() if v > 0]
        where = f"{ds}/{setting}"
        if done and not rest:
            out.append(f"On {where}, {' and '.join(done)} forget completely on every protocol-B model (forget-set "
                       f"accuracy 0): no forget-set spread is left for a single seed to hide there.")
        elif done:
            out.append(f"On {where}, {' and '.join(done)} forget completely on every protocol-B model, while "
                       f"{'; '.join(rest)} of the forget set remains on some.")
        else:
            out.append(f"On {where}, no deterministic method forgets completely on every model: the forget-set "
                       f"accuracy under B reaches {'; '.join(rest)}.")
    return " ".join(out)


def deterministic_sentence(table: pd.DataFrame, key: str, target) -> str:
    """What protocols A and B show of the deterministic methods on one target, from the table."""
    sel = stats.select(table, "paper", key, target)
    det = [m for m in METHODS if METHODS[m].deterministic and m in set(sel.method)]
    if not det:
        return "this run has no deterministic method"
    b = sel[(sel.protocol == "B") & sel.method.isin(det)].groupby("method").forget_acc.agg(lambda v: v.max() - v.min())
    spans = ", ".join(f"{METHODS[m].label} {b[m]:.1f}" for m in det if m in b)
    return (f"by construction (the engine runs {', '.join(METHODS[m].label for m in det)} once per original model) "
            f"each gives a single value under protocol A; under protocol B their forget-set accuracy spans "
            f"{spans} points from one training seed to the next")


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


def init_order_of(run) -> tuple:
    """(the init_order variance table, the design in words) of a run; an empty table and 'not in
    this run' without that design."""
    if "init_order" not in run.profile["designs"]:
        return pd.DataFrame(columns=["dataset", "setting", "target", "method", "metric", "var_seed"]), "not in this run"
    cfg = run.profile["init_order"]
    return stats.init_order_table(run.table), (f"{cfg['inits']} initialisation seeds x {cfg['orders']} order seeds, "
                                               f"{cfg['J']} unlearning seeds each, for {', '.join(label(m) for m in cfg['methods'])}")

