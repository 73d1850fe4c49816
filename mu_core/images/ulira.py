"""U-LiRA: per-sample membership inference for unlearning (Hayes et al., arXiv 2403.01218; Deep
Unlearn's variant, ``shared/reference/deepunlearn-facts.md`` §10-13), at classroom scale.

The design (the ``ulira`` section of a profile): a fixed target pool P of 2m training samples
(``data.pool``); K original models, model k trained with training seed k on the data outside P
plus a half D_f,k of P drawn from seed k (``data.random_split``), then unlearned by each method
with unlearning seed k. For every target x in P, about K/2 models forgot x and K/2 never saw it.
Per target, a Gaussian is fitted to a statistic of x over the models that forgot it and another
over those that never saw it, leaving the scored model out; the attack scores each (target,
model) pair by the log-likelihood ratio of the two fits' predictive laws (Student's t, which a
Gaussian fit predicts a new model with; see ``scores``).

Statistics: LiRA's logit-scaled confidence phi = log p_y - log sum_{y' != y} p_y' (primary) and
Deep Unlearn's 0/1 correctness (secondary; its spread is often 0, where Deep Unlearn's code gives
NaN: here every spread is at least ``SIGMA_FLOOR``). Each fit leaves the scored model out, as
LiRA does with its target models (Deep Unlearn fits and scores the same models).

Reported per method: Deep Unlearn's mean membership probability of the forgotten pairs (0.5 when
forgotten and never-seen targets look alike), the attack's AUC, its best balanced accuracy and its
TPR at 1 % FPR, with percentile bootstrap intervals over targets.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch

from .. import store
from . import data as D
from .metrics import logits

ULIRA_VERSION = 1   # bump when the stored per-target statistics change
SIGMA_FLOOR = 0.01  # the smallest spread a fitted Gaussian may have (a 0/1 statistic often has none)
STATISTICS = {"phi": "logit-scaled confidence", "correct": "0/1 correctness"}


def pool_statistics(model, split: D.Split) -> dict:
    """phi and correctness of the model on every pool sample, in pool order (stored per job)."""
    data = split.data
    idx = D.pool(len(split.y_train)).to(data.train_x.device)
    out = logits(model, data.train_x[idx], data).double()
    y = split.y_train[idx]
    logp = torch.log_softmax(out, 1)
    own = logp.gather(1, y[:, None]).squeeze(1)
    rest = torch.logsumexp(logp.scatter(1, y[:, None], -torch.inf), 1)
    return {"phi": [round(float(v), 5) for v in (own - rest)], "correct": (out.argmax(1) == y).int().tolist()}


def membership(n_train: int, ks) -> np.ndarray:
    """M[k, p] = model k forgot pool sample p (else it never saw it)."""
    p = len(D.pool(n_train))
    out = np.zeros((len(ks), p), bool)
    for r, k in enumerate(ks):
        out[r, torch.randperm(p, generator=torch.Generator().manual_seed(int(k)))[:p // 2].numpy()] = True
    return out


def _loo_fit(S: np.ndarray, M: np.ndarray, group: bool):
    """Per (model, target): the mean of S over the models in ``group`` (M == group) for that target,
    leaving the model itself out when it is in the group, and the spread with which a new model's
    value scatters around it: the unbiased variance times (1 + 1/n), so that a model scored against
    its own group (one member fewer) and one scored against the other are judged alike. (LiRA and
    Deep Unlearn use the plain ddof-0 spread, whose in-sample fit suits in-sample scoring; with the
    scored model left out it makes a forgotten model look unlike its own group, more so the
    smaller K.)"""
    G = (M == group).astype(float)
    n, s1, s2 = G.sum(0), (G * S).sum(0), (G * S * S).sum(0)
    n_k = n[None, :] - G
    mu = (s1[None, :] - G * S) / np.maximum(n_k, 1)
    var = (s2[None, :] - G * S * S - n_k * mu ** 2) / np.maximum(n_k - 1, 1) * (1 + 1 / np.maximum(n_k, 1))
    return mu, np.sqrt(np.maximum(var, SIGMA_FLOOR ** 2)), n_k


def scores(S: np.ndarray, M: np.ndarray) -> np.ndarray:
    """The attack's log-likelihood ratio log N(s; forgot) - log N(s; never) per (model, target)."""
    mf, sf, nf = _loo_fit(S, M, True)
    mn, sn, nn = _loo_fit(S, M, False)
    # Student's t with n - 1 degrees of freedom: the exact predictive law of a new draw from a
    # normal sample of n; the Gaussian it tends to for large K would favour the larger group
    from scipy import stats as sps  # here, not at the top: scipy.stats costs every worker 0.8 s to import
    llr = sps.t.logpdf(S, np.maximum(nf - 1, 1), mf, sf) - sps.t.logpdf(S, np.maximum(nn - 1, 1), mn, sn)
    return np.where((nf >= 2) & (nn >= 2), llr, np.nan)  # a target needs two models per group


def _roc(score, label, weight=None):
    """(AUC, best balanced accuracy, TPR at 1 % FPR) of ``score`` separating label 1 from 0, each
    pair counted ``weight`` times (a bootstrap's multiplicities); ties count half in the AUC."""
    return _roc_groups(*_groups(score, label), weight)


def _groups(score, label):
    ok = ~np.isnan(score)
    _, inv = np.unique(score[ok], return_inverse=True)  # equal scores: one threshold
    return inv, label[ok].astype(float), ok


def _roc_groups(inv, lab, ok, weight=None):
    w = np.ones(len(lab)) if weight is None else weight[ok]
    n = inv.max() + 1
    pos, neg = np.bincount(inv, w * lab, n), np.bincount(inv, w * (1 - lab), n)
    P, N = pos.sum(), neg.sum()
    below = np.cumsum(neg) - neg  # negatives scored lower than each group
    auc = float((pos * (below + 0.5 * neg)).sum() / (P * N))
    tp, fp = np.cumsum(pos[::-1]) / P, np.cumsum(neg[::-1]) / N  # thresholds from the top
    low = fp <= 0.01
    return auc, float(np.max((tp + 1 - fp) / 2)), float(tp[low].max()) if low.any() else 0.0


def summarise(S: np.ndarray, M: np.ndarray, n_boot: int = 200, seed: int = 0) -> dict:
    """The four numbers with 95 % percentile intervals over targets (resampled with replacement:
    each resample weighs every (model, target) pair by how often its target was drawn)."""
    L = scores(S, M)
    P = 1 / (1 + np.exp(-L))  # P(forgot | s) with equal priors, as Deep Unlearn's ratio of densities
    n_t = S.shape[1]
    du_t = np.nanmean(np.where(M, P, np.nan), axis=0)  # Deep Unlearn's score per target
    groups = _groups(L.ravel(), M.ravel())
    target_of = np.tile(np.arange(n_t), S.shape[0])

    def four(counts):
        keep = ~np.isnan(du_t)
        return (float(np.average(du_t[keep], weights=counts[keep])), *_roc_groups(*groups, counts[target_of]))
    point = four(np.ones(n_t))
    rng = np.random.default_rng(seed)
    boots = np.array([four(np.bincount(rng.integers(0, n_t, n_t), minlength=n_t).astype(float))
                      for _ in range(n_boot)])
    lo, hi = np.nanpercentile(boots, [2.5, 97.5], axis=0)
    names = ["du_membership", "auc", "balanced_acc", "tpr_at_1pct_fpr"]
    out = {}
    for i, n in enumerate(names):
        out.update({n: point[i], f"{n}_lo": float(lo[i]), f"{n}_hi": float(hi[i])})
    return out


def per_target(S: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Deep Unlearn's membership probability per target (the mean over the models that forgot it)."""
    P = 1 / (1 + np.exp(-scores(S, M)))
    return np.nanmean(np.where(M, P, np.nan), axis=0)


def tables(rows: list[dict], read, n_train: int, n_boot: int = 200):
    """(summary, per_target) tables of the ``ulira`` design's rows; ``read(job key)`` gives a
    stored result. A model whose job failed (non-finite outputs) is left out of its method's fit."""
    by: dict = {}
    for r in rows:
        if r["design"] == "ulira":
            by.setdefault((r["method"], r["mode"]), {})[int(r["target"])] = read(r["job"])
    summary, targets = [], []
    for (method, mode), res in by.items():
        ks = sorted(k for k, v in res.items() if v and v.get("status") == "ok" and "pool" in v)
        M = membership(n_train, ks)
        for stat in STATISTICS:
            S = np.array([res[k]["pool"][stat] for k in ks], float)
            summary.append(dict(method=method, mode=mode, statistic=stat, K=len(ks), failed=len(res) - len(ks),
                                targets=S.shape[1], **summarise(S, M, n_boot)))
            if stat == "phi":
                targets += [dict(method=method, mode=mode, target=p, membership=v, forgotten_by=int(M[:, p].sum()))
                            for p, v in enumerate(per_target(S, M))]
    return pd.DataFrame(summary), pd.DataFrame(targets)


def write(run_dir: str, rows: list[dict], n_train: int, n_boot: int) -> pd.DataFrame:
    """``ulira.csv`` (per method and statistic: Deep Unlearn's membership score, AUC, balanced
    accuracy, TPR at 1 % FPR, each with its bootstrap interval over targets) and
    ``ulira_targets.csv`` (each target's membership score) in the run folder, from the stored jobs
    (the image engine's after-run step)."""
    summary, targets = tables(rows, lambda key: store.stored_result(run_dir, key, quiet=True), n_train, n_boot)
    for name, df in (("ulira.csv", summary), ("ulira_targets.csv", targets)):
        store.atomic_write(os.path.join(run_dir, name), df.to_csv(index=False, float_format="%.6g").encode())
    return summary


def _label(m: str) -> str:
    from .methods import METHODS
    return METHODS[m].label if m in METHODS else m


def summary_sentences(summary: pd.DataFrame) -> dict:
    """Text for the book from ``ulira.csv``: the calibration row (the gold standard) against 0.5,
    and which methods the attack tells apart, on LiRA's statistic."""
    f = summary[summary.statistic == "phi"]
    if f.empty:
        return {"ul_calibration": "not computed (no ulira design in this run)", "ul_detected": "not computed",
                "ul_best": "not computed"}
    from .methods import METHODS
    gold = f[f.method.map(lambda m: m in METHODS and METHODS[m].role == "gold")]
    cal = "no gold-standard row"
    if len(gold):
        g = gold.iloc[0]
        inside = g.du_membership_lo <= 0.5 <= g.du_membership_hi
        cal = (f"{_label(g.method)} scores {g.du_membership:.3f} (95 % interval {g.du_membership_lo:.3f} to "
               f"{g.du_membership_hi:.3f}, {'which contains' if inside else 'which does not contain'} 0.5) with an AUC of {g.auc:.3f}")
    rest = f[~f.method.isin(gold.method)]
    seen = rest[rest.auc_lo > 0.5]
    best = rest.loc[rest.auc.idxmax()] if len(rest) else None
    return {"ul_calibration": cal,
            "ul_detected": f"{len(seen)} of {len(rest)}" + (f" ({', '.join(_label(m) for m in seen.method)})" if len(seen) else ""),
            "ul_best": (f"{_label(best.method)}: AUC {best.auc:.3f} ({best.auc_lo:.3f} to {best.auc_hi:.3f}), TPR at 1 % FPR "
                        f"{best.tpr_at_1pct_fpr:.3f}") if best is not None else "none"}


def of_run(run) -> tuple:
    """(summary, per-target scores, the design in words) of a run's U-LiRA design, read from the
    tables its after-run step wrote (``write``); empty tables and 'not in this run' without it."""
    path = os.path.join(run.run_dir, "ulira.csv")
    if "ulira" not in run.profile["designs"] or not os.path.exists(path):
        return (pd.DataFrame(columns=["method", "statistic"]), pd.DataFrame(columns=["method", "membership"]),
                "not in this run")
    summary = pd.read_csv(path)
    u = run.profile["ulira"]
    return (summary, pd.read_csv(os.path.join(run.run_dir, "ulira_targets.csv")),
            f"K = {u['K']} models on {u['dataset']}, {int(summary.targets.iloc[0]) if len(summary) else 0} pool digits, "
            f"{u['n_boot']} bootstrap resamples of the digits")

