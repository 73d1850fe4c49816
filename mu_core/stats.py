"""The statistics of seeds: from ``results.csv`` to the quantities of the paper and beyond.

Symbols as in the book's notation page: Z the metric, S the training seed, I training seeds,
J unlearning seeds per training seed; sigma_b^2 = var E(Z|S) (between training seeds) and
sigma_w^2 = E var(Z|S) (within a training seed); V_A(s) = var(Z | S = s); V_B = var Z.

Every function takes plain arrays or the results table, and refuses malformed input with a
``ConfigError`` that says what is wrong.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from .domains import studied as _studied

from .errors import ConfigError

KEYS = ("dataset", "setting", "target", "method")


def _require(table: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ConfigError(f"the results table lacks the columns {missing}; it needs {list(columns)}")


# --- the 2-Wasserstein distance ------------------------------------------------------------

def w2(x, y) -> float:
    """Exact 2-Wasserstein distance between the empirical distributions of x and y (1-D).

    W2(x, y)^2 = integral_0^1 (F_x^{-1}(u) - F_y^{-1}(u))^2 du, with F^{-1} the empirical
    quantile functions (step functions). For equal sizes this is the mean squared difference of
    the sorted samples. (``scipy.stats.wasserstein_distance`` is W1, not this.)
    """
    xs, ys = np.sort(np.asarray(x, float)), np.sort(np.asarray(y, float))
    n, m = len(xs), len(ys)
    if n == 0 or m == 0:
        raise ConfigError("w2 needs two non-empty samples")
    if n == m:
        return float(np.sqrt(np.mean((xs - ys) ** 2)))
    # the quantile functions are constant between the breakpoints i/n and j/m
    breaks = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    widths = np.diff(np.r_[0.0, breaks])
    mid = breaks - widths / 2
    ix = np.minimum((mid * n).astype(int), n - 1)
    iy = np.minimum((mid * m).astype(int), m - 1)
    return float(np.sqrt(np.sum(widths * (xs[ix] - ys[iy]) ** 2)))


# --- tables to arrays ----------------------------------------------------------------------

def keys(t: pd.DataFrame, target: bool = False) -> pd.Series:
    """Each row's setting key, 'mnist5/sub_class' (with ``target``: 'mnist5/sub_class 7'): the
    one place the key is built from the dataset and setting columns."""
    k = t.dataset + "/" + t.setting
    return k + " " + t.target.astype(str) if target else k


def select(table: pd.DataFrame, design: str, setting_key: str | None = None, target=None,
           method: str | None = None, protocol: str | None = None) -> pd.DataFrame:
    """The rows of one design, optionally of one setting ('mnist5/sub_class'), target, method
    and protocol ('A' | 'B'): the one place rows are picked by design and protocol."""
    keep = table.design == design
    if setting_key is not None:
        ds, setting = setting_key.split("/")
        keep &= (table.dataset == ds) & (table.setting == setting)
    if target is not None:
        keep &= table.target.astype(str) == str(target)
    if method is not None:
        keep &= table.method == method
    if protocol is not None:
        keep &= table.protocol == protocol
    return table[keep]


def grid_matrix(table: pd.DataFrame, method: str, setting_key: str, target, metric: str) -> np.ndarray:
    """The I x J matrix Z[i, j] of one method, setting, target and metric from the grid design.

    Row i is training seed s_t = i (ascending); its columns are that seed's unlearning seeds in
    ascending order.
    """
    _require(table, ["design", *KEYS, "train_seed", "unlearn_seed", metric])
    t = select(table, "grid", setting_key, target, method)
    if t.empty:
        raise ConfigError(f"no grid rows for method {method!r}, {setting_key}, target {target!r}")
    rows = [g.sort_values("unlearn_seed")[metric].to_numpy(float) for _, g in t.groupby("train_seed")]
    if len({len(r) for r in rows}) != 1:
        raise ConfigError("the grid is unbalanced: every training seed needs the same number of unlearning seeds")
    return np.vstack(rows)


def grid_as_paper(table: pd.DataFrame, a_seed: int | None = None) -> pd.DataFrame:
    """The paper's two protocols drawn from the grid design, as paper-design rows: A = one training
    seed (``a_seed``; default the smallest) with all its unlearning seeds, B = every training seed
    with its first unlearning seed. So pages that draw protocol A and B read a grid the same way."""
    g = select(table, "grid")
    seed = g.train_seed.min() if a_seed is None else a_seed
    a = g[g.train_seed == seed].assign(protocol="A")
    first = g.groupby(["dataset", "setting", "target", "method", "train_seed"]).unlearn_seed.transform("min")
    b = g[g.unlearn_seed == first].assign(protocol="B")
    return pd.concat([a, b], ignore_index=True).assign(design="paper")


def protocols(table: pd.DataFrame, method: str, setting_key: str, target, metric: str):
    """The paper design's two samples (A, B) for one method, setting, target and metric."""
    _require(table, ["design", "protocol", *KEYS, metric])
    return tuple(select(table, "paper", setting_key, target, method, p)[metric].to_numpy(float) for p in "AB")


def paper_w2(table: pd.DataFrame, metrics=None) -> pd.DataFrame:
    """W2(A, B) for every method, setting, target and metric of the paper design (Figure 2), with
    the sizes n_A and n_B of the two samples.

    A method whose protocol-A sample has a single value (a profile may run it with one
    unlearning seed, ``j_per_method``) is left out: W2 between one value and I values is not the
    paper's comparison of two samples of the same size."""
    metrics = list(metrics) if metrics is not None else _studied(table)  # the domain's, unless named
    _require(table, ["design", "protocol", *KEYS, *metrics])
    out = []
    for (ds, setting, target, method), g in select(table, "paper").groupby(list(KEYS)):
        for metric in metrics:
            a, b = (select(g, "paper", protocol=p)[metric] for p in "AB")
            if len(a) > 1 and len(b):
                out.append(dict(dataset=ds, setting=setting, target=target, method=method,
                                metric=metric, w2=w2(a, b), n_A=len(a), n_B=len(b)))
    return pd.DataFrame(out, columns=[*KEYS, "metric", "w2", "n_A", "n_B"])


# --- protocol instances from a full grid ---------------------------------------------------

def b_instance(Z: np.ndarray, rng=None, exclude=None) -> np.ndarray:
    """One B instance: every training seed (but ``exclude``) with one unlearning seed.

    rng None: the paper's matched choice, the first unlearning seed of each training seed;
    otherwise a column chosen at random per training seed.
    """
    rows = [i for i in range(Z.shape[0]) if i != exclude]
    cols = np.zeros(len(rows), int) if rng is None else rng.integers(0, Z.shape[1], len(rows))
    return Z[rows, cols]


def w2_instances(Z: np.ndarray, n_b: int = 200, seed: int = 0, independent: bool = True) -> np.ndarray:
    """W2(A_i, B_k) for every A instance i (row i of Z) against n_b random B instances.

    With ``independent`` each B instance leaves out A's training seed, as the paper's protocols
    used disjoint training seeds. Returns an array of shape (I, n_b).
    """
    I = Z.shape[0]
    if I < 2 + independent:
        raise ConfigError(f"w2_instances needs at least {2 + independent} training seeds, got {I}")
    rng = np.random.default_rng(seed)
    return np.array([[w2(Z[i], b_instance(Z, rng, i if independent else None)) for _ in range(n_b)]
                     for i in range(I)])


def w2_b_baseline(Z: np.ndarray, n: int = 200, seed: int = 0) -> np.ndarray:
    """W2 between two independent B instances: the training seeds split at random into two
    disjoint halves, each seed with one random unlearning seed. What W2 is from sampling noise
    alone (on half as many seeds as a B instance, so if anything larger)."""
    I = Z.shape[0]
    if I < 4:
        raise ConfigError(f"a B-versus-B baseline needs at least 4 training seeds, got {I}")
    rng = np.random.default_rng(seed)
    out = np.empty(n)
    for k in range(n):
        perm = rng.permutation(I)
        half = I // 2
        cols = rng.integers(0, Z.shape[1], I)
        out[k] = w2(Z[perm[:half], cols[:half]], Z[perm[half:2 * half], cols[half:2 * half]])
    return out


# --- variance components -------------------------------------------------------------------

def _check_grid(Z: np.ndarray, need_j: int = 1) -> np.ndarray:
    Z = np.asarray(Z, float)
    if Z.ndim != 2 or Z.shape[0] < 2:
        raise ConfigError(f"variance components need at least two training seeds (rows); got shape {Z.shape}")
    if Z.shape[1] < need_j:
        raise ConfigError(f"this needs at least {need_j} unlearning seeds per training seed; got {Z.shape[1]}")
    return Z


def _row_var(Z: np.ndarray) -> np.ndarray:
    """Sample variance of each row; exactly 0 for a constant row (no float residue)."""
    return np.where(np.ptp(Z, axis=1) == 0, 0.0, Z.var(1, ddof=1))


def anova(Z) -> dict:
    """Balanced one-way ANOVA estimates of sigma_b^2 and sigma_w^2 from an I x J grid.

    MSB = J * sum_i (mean_i - mean)^2 / (I - 1),  MSW = sum_ij (Z_ij - mean_i)^2 / (I (J - 1)),
    sigma_w^2 = MSW,  sigma_b^2 = max(0, (MSB - MSW) / J)  (truncated at zero).
    """
    Z = _check_grid(Z, 2)
    I, J = Z.shape
    msb = J * Z.mean(1).var(ddof=1)
    msw = _row_var(Z).mean()
    return {"sigma_b2": max(0.0, (msb - msw) / J), "sigma_w2": float(msw), "msb": float(msb),
            "msw": float(msw), "I": I, "J": J}


def reml(Z) -> dict:
    """REML estimates of sigma_b^2 and sigma_w^2: statsmodels MixedLM, training seed as group.

    With no within-seed variance (a deterministic method) the likelihood is degenerate; the
    ANOVA values (sigma_w^2 = 0) are returned, flagged ``degenerate``. ``estimator`` says which
    produced the values: 'REML', 'REML (not converged: ...)' with statsmodels' warnings when the
    fit did not converge or stopped on a boundary, or 'ANOVA (degenerate: ...)'.
    """
    import warnings
    from statsmodels.regression.mixed_linear_model import MixedLM
    Z = _check_grid(Z, 2)
    I, J = Z.shape
    a = anova(Z)
    if a["msw"] <= 1e-12 * max(1.0, a["msb"]):
        return {"sigma_b2": a["msb"] / J, "sigma_w2": 0.0, "degenerate": True,
                "estimator": "ANOVA (degenerate: no within-seed variance)"}
    groups = np.repeat(np.arange(I), J)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = MixedLM(Z.ravel(), np.ones((I * J, 1)), groups).fit(reml=True)
    said = sorted({type(w.message).__name__ if not isinstance(w.message, str) else "warning"
                   for w in caught if issubclass(w.category, Warning)})
    ok = bool(getattr(fit, "converged", True)) and not said
    return {"sigma_b2": float(np.asarray(fit.cov_re)[0, 0]), "sigma_w2": float(fit.scale), "degenerate": False,
            "estimator": "REML" if ok else f"REML (not converged: {', '.join(said) or 'no convergence'})"}


def crossed_anova(Y) -> dict:
    """Variance components of a balanced crossed design Y[i, o, j]: initialisation seed i, order
    seed o, unlearning seed j (the ``init_order`` design), for the model
    Z = mu + a_i + b_o + (ab)_io + e_ioj with independent random effects.

    Mean squares MS_A = O J var_i(mean_i), MS_B = I J var_o(mean_o),
    MS_AB = J sum_io (mean_io - mean_i - mean_o + mean)^2 / ((I-1)(O-1)), MS_E = the pooled
    within-cell variance; E MS_E = s_e, E MS_AB = s_e + J s_ab, E MS_A = s_e + J s_ab + O J s_a,
    E MS_B = s_e + J s_ab + I J s_b, so (each truncated at zero)
    s_e = MS_E, s_ab = (MS_AB - MS_E) / J, s_a = (MS_A - MS_AB) / (O J), s_b = (MS_B - MS_AB) / (I J).

    var E(Z | training seed) = s_a + s_b + s_ab. A protocol that varies only the initialisation
    (Deep Unlearn's), at one order and one unlearning seed, sees s_a and, through the interaction,
    s_ab, never s_b: ``init_only_share`` = (s_a + s_ab) / (s_a + s_b + s_ab).
    """
    Y = np.asarray(Y, float)
    if Y.ndim != 3 or Y.shape[0] < 2 or Y.shape[1] < 2:
        raise ConfigError(f"the init_order components need at least 2 x 2 initialisation x order seeds; got shape {Y.shape}")
    I, O, J = Y.shape
    cell = Y.mean(2)
    m, mi, mo = cell.mean(), cell.mean(1), cell.mean(0)
    ms_a = O * J * mi.var(ddof=1)
    ms_b = I * J * mo.var(ddof=1)
    ms_ab = J * ((cell - mi[:, None] - mo[None, :] + m) ** 2).sum() / ((I - 1) * (O - 1))
    # a constant cell has exactly no within-cell variance (no float residue)
    ms_e = float(np.where(np.ptp(Y, axis=2) > 0, Y.var(2, ddof=1), 0.0).mean()) if J > 1 else 0.0
    s = {"sigma_init2": max(0.0, (ms_a - ms_ab) / (O * J)), "sigma_order2": max(0.0, (ms_b - ms_ab) / (I * J)),
         "sigma_inter2": max(0.0, (ms_ab - ms_e) / J), "sigma_unlearn2": ms_e}
    seed = s["sigma_init2"] + s["sigma_order2"] + s["sigma_inter2"]
    return {**s, "var_seed": seed, "init_only_share": (s["sigma_init2"] + s["sigma_inter2"]) / seed if seed > 0 else float("nan"),
            "ms": {"A": float(ms_a), "B": float(ms_b), "AB": float(ms_ab), "E": ms_e}, "shape": (I, O, J)}


def crossed_reml(Y) -> dict:
    """REML check of ``crossed_anova``: statsmodels MixedLM with one group and variance components
    for the initialisation, the order and their cell (crossed random effects). Returns the four
    components and ``estimator`` ('REML', or 'REML (not converged: ...)'); a design without
    within-cell variance (a deterministic method) has no REML fit: the ANOVA values, flagged."""
    import warnings
    import pandas as pd
    from statsmodels.regression.mixed_linear_model import MixedLM
    Y = np.asarray(Y, float)
    a = crossed_anova(Y)
    if a["ms"]["E"] <= 1e-12 * max(1.0, a["ms"]["A"], a["ms"]["B"]):
        return {**{k: a[k] for k in ("sigma_init2", "sigma_order2", "sigma_inter2", "sigma_unlearn2")},
                "estimator": "ANOVA (degenerate: no within-cell variance)"}
    I, O, J = Y.shape
    i, o, _ = np.meshgrid(np.arange(I), np.arange(O), np.arange(J), indexing="ij")
    d = pd.DataFrame({"z": Y.ravel(), "init": i.ravel(), "order": o.ravel(), "cell": (i * O + o).ravel(), "g": 0})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = MixedLM.from_formula("z ~ 1", d, groups="g", re_formula="0",
                                   vc_formula={"init": "0 + C(init)", "order": "0 + C(order)", "cell": "0 + C(cell)"}
                                   ).fit(reml=True)
    said = sorted({type(w.message).__name__ for w in caught if issubclass(w.category, Warning)})
    vc = dict(zip(fit.model.exog_vc.names, np.asarray(fit.vcomp, float)))
    ok = bool(getattr(fit, "converged", True)) and not said
    return {"sigma_init2": vc["init"], "sigma_order2": vc["order"], "sigma_inter2": vc["cell"],
            "sigma_unlearn2": float(fit.scale),
            "estimator": "REML" if ok else f"REML (not converged: {', '.join(said) or 'no convergence'})"}


def icc(Z, level: float = 0.95) -> dict:
    """Intraclass correlation rho = sigma_b^2 / (sigma_b^2 + sigma_w^2) with its exact F interval.

    F = MSB / MSW has (F / F_0) ~ F(I - 1, I(J - 1)), F_0 = 1 + J sigma_b^2 / sigma_w^2, which
    gives the interval [(F_L - 1) / (F_L + J - 1), (F_U - 1) / (F_U + J - 1)] with
    F_L = F / q_{1 - a/2}, F_U = F / q_{a/2}, clipped to [0, 1].
    """
    a = anova(Z)
    I, J = a["I"], a["J"]
    tot = a["sigma_b2"] + a["sigma_w2"]
    rho = a["sigma_b2"] / tot if tot > 0 else float("nan")
    if a["msw"] == 0:  # no within-seed variance: all variance is between seeds (or there is none)
        v = 1.0 if a["msb"] > 0 else float("nan")
        return {"icc": v, "lo": v, "hi": v}
    F = a["msb"] / a["msw"]
    d1, d2, alpha = I - 1, I * (J - 1), 1 - level
    fl, fu = F / sps.f.ppf(1 - alpha / 2, d1, d2), F / sps.f.ppf(alpha / 2, d1, d2)
    lo, hi = (fl - 1) / (fl + J - 1), (fu - 1) / (fu + J - 1)
    return {"icc": rho, "lo": float(np.clip(lo, 0, 1)), "hi": float(np.clip(hi, 0, 1))}


def v_a(Z) -> np.ndarray:
    """V_A(s_i) for every training seed: the sample variance of row i (what protocol A reports)."""
    return _row_var(_check_grid(Z, 2))


def overstate_p(Z, n_sim: int = 2000, seed: int = 0) -> float:
    """P-value of "some training seed's V_A(s) exceeds V_B beyond sampling noise".

    The statistic is max_s V_A(s) / V_B (V_B = sigma_b^2 + sigma_w^2, ANOVA). Its null
    distribution is simulated with no training-seed effect at all: every Z_ij drawn from one normal
    distribution, the least favourable case (every seed's true V_A then equals V_B), each simulated
    grid with its own V_B. Sample variances of J values exceed their expectation often, so a seed
    with V_A(s) > V_B is no evidence by itself; a small p is. NaN when nothing varies.
    """
    Z = _check_grid(Z, 2)
    I, J = Z.shape
    a = anova(Z)
    vb = a["sigma_b2"] + a["sigma_w2"]
    if vb <= 0:
        return float("nan")
    observed = v_a(Z).max() / vb
    sims = np.random.default_rng(seed).standard_normal((n_sim, I, J))
    msb = J * sims.mean(2).var(axis=1, ddof=1)
    within = sims.var(axis=2, ddof=1)
    msw = within.mean(1)
    vb_sim = np.maximum(0.0, (msb - msw) / J) + msw
    return float((np.sum(within.max(1) / vb_sim >= observed) + 1) / (n_sim + 1))


def components(Z) -> dict:
    """Everything of equation (2) for one grid: components, ICC, V_A(s_i) beside V_B, and the
    p-value of an overstating seed beyond sampling (``overstate_p``)."""
    a, r, c, va = anova(Z), reml(Z), icc(Z), v_a(Z)
    return {"mean": float(np.mean(Z)), "sigma_b2": a["sigma_b2"], "sigma_w2": a["sigma_w2"],
            "sigma_b2_reml": r["sigma_b2"], "sigma_w2_reml": r["sigma_w2"], "reml_estimator": r["estimator"],
            "icc": c["icc"], "icc_lo": c["lo"], "icc_hi": c["hi"],
            "V_B": a["sigma_b2"] + a["sigma_w2"], "V_A_min": float(va.min()),
            "V_A_max": float(va.max()), "V_A_mean": float(va.mean()),
            "A_overstates": float(np.mean(va > a["sigma_b2"] + a["sigma_w2"])),
            "A_overstates_p": overstate_p(Z)}


def components_table(table: pd.DataFrame, metrics=None) -> pd.DataFrame:
    """``components`` for every method, setting, target and metric of the grid design with J >= 2."""
    metrics = list(metrics) if metrics is not None else _studied(table)  # the domain's, unless named
    _require(table, ["design", *KEYS, "train_seed", "unlearn_seed", *metrics])
    out = []
    for (ds, setting, target, method), _ in select(table, "grid").groupby(list(KEYS)):
        for metric in metrics:
            Z = grid_matrix(table, method, f"{ds}/{setting}", target, metric)
            if Z.shape[1] >= 2:
                out.append(dict(dataset=ds, setting=setting, target=target, method=method, metric=metric,
                                I=Z.shape[0], J=Z.shape[1], **components(Z)))
    return pd.DataFrame(out)


def init_order_table(table: pd.DataFrame, metrics=None) -> pd.DataFrame:
    """``crossed_anova`` (with its REML check) for every method, setting, target and metric of the
    ``init_order`` design: Y[i, o, j] = initialisation seed i, order seed o, unlearning seed j."""
    metrics = list(metrics) if metrics is not None else _studied(table)  # the domain's, unless named
    _require(table, ["design", *KEYS, "init_seed", "order_seed", "unlearn_seed", *metrics])
    out = []
    for (ds, setting, target, method), g in select(table, "init_order").groupby(list(KEYS)):
        g = g.sort_values(["init_seed", "order_seed", "unlearn_seed"])
        shape = (g.init_seed.nunique(), g.order_seed.nunique())
        if len(g) % (shape[0] * shape[1]):
            raise ConfigError(f"the init_order rows of {method}, {ds}/{setting} are unbalanced")
        for metric in metrics:
            Y = g[metric].to_numpy(float).reshape(*shape, -1)
            a, r = crossed_anova(Y), crossed_reml(Y)
            out.append(dict(dataset=ds, setting=setting, target=target, method=method, metric=metric,
                            inits=shape[0], orders=shape[1], J=Y.shape[2], mean=float(Y.mean()),
                            **{k: a[k] for k in ("sigma_init2", "sigma_order2", "sigma_inter2", "sigma_unlearn2",
                                                 "var_seed", "init_only_share")},
                            reml_init2=r["sigma_init2"], reml_order2=r["sigma_order2"], reml_estimator=r["estimator"]))
    return pd.DataFrame(out)


# --- uncertainty ---------------------------------------------------------------------------

def bootstrap(Z, statistic, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap CI of ``statistic(Z)`` resampling training seeds (rows of Z).

    The training seed is the unit of replication: rows are drawn with replacement, each keeping
    all its unlearning seeds.
    """
    Z = np.asarray(Z, float)
    if Z.ndim != 2 or Z.shape[0] < 2:
        raise ConfigError(f"bootstrap needs at least two training seeds (rows); got shape {Z.shape}")
    rng = np.random.default_rng(seed)
    reps = np.array([statistic(Z[rng.integers(0, Z.shape[0], Z.shape[0])]) for _ in range(n_boot)])
    a = (1 - level) / 2
    return {"estimate": float(statistic(Z)), "lo": float(np.nanquantile(reps, a)),
            "hi": float(np.nanquantile(reps, 1 - a))}


# --- how many seeds --------------------------------------------------------------------------

def allocation(sigma_b2: float, sigma_w2: float, c_train: float, c_unlearn: float, budget: float) -> dict:
    """Split a compute budget between I training and J unlearning seeds.

    The grand mean of an I x J grid has variance sigma_b^2 / I + sigma_w^2 / (I J) and costs
    I (c_train + J c_unlearn). The continuous optimum is the classic two-stage design
    J* = sqrt(c_train sigma_w^2 / (c_unlearn sigma_b^2)); over integers, every J from 1 to the
    largest affordable is tried with I = floor(budget / (c_train + J c_unlearn)), which is
    exact. Protocol A with the same budget: I = 1 and all the rest on J, variance
    sigma_b^2 + sigma_w^2 / J. A deterministic method (sigma_w^2 = 0) gets J* = 1.
    """
    if min(c_train, c_unlearn) <= 0 or min(sigma_b2, sigma_w2) < 0:
        raise ConfigError("allocation needs positive costs and non-negative variance components")
    if budget < c_train + c_unlearn:
        raise ConfigError(f"budget {budget} cannot buy one training and one unlearning run "
                          f"({c_train + c_unlearn})")
    var = lambda I, J: sigma_b2 / I + sigma_w2 / (I * J)
    j_max = int((budget - c_train) // c_unlearn)
    best = None
    for J in range(1, j_max + 1):
        I = int(budget // (c_train + J * c_unlearn))
        if I >= 1 and (best is None or var(I, J) < best[2] - 1e-15):
            best = (I, J, var(I, J))
    j_star = float("inf") if sigma_b2 == 0 and sigma_w2 > 0 else (
        1.0 if sigma_w2 == 0 else float(np.sqrt(c_train * sigma_w2 / (c_unlearn * sigma_b2))))
    I, J, v = best
    a_var = var(1, j_max)
    # v is 0 only when both components are: nothing varies, and the gain is undefined (NaN)
    gain = a_var / v if v > 0 else float("nan")
    return {"I": I, "J": J, "variance": v, "J_star_continuous": j_star,
            "A_J": j_max, "A_variance": a_var, "gain": gain}


def seeds_for(sigma_b2: float, sigma_w2: float, c_train: float, c_unlearn: float, se: float) -> dict:
    """How many seeds a study needs for a standard error ``se`` of a method's mean.

    The split: J = J* = sqrt(c_train sigma_w^2 / (c_unlearn sigma_b^2)) rounded to the better
    neighbouring integer (at least 1; 1 for a deterministic method, sigma_w^2 = 0), then the
    smallest I with sigma_b^2 / I + sigma_w^2 / (I J) <= se^2. Protocol A (I = 1) cannot go below
    sigma_b^2 whatever its J: ``a_reaches`` says whether it could reach ``se`` at all."""
    if min(c_train, c_unlearn, se) <= 0 or min(sigma_b2, sigma_w2) < 0:
        raise ConfigError("seeds_for needs positive costs and standard error and non-negative components")
    if sigma_b2 == 0 and sigma_w2 == 0:
        return {"I": 1, "J": 1, "cost": c_train + c_unlearn, "a_reaches": True}
    need = lambda J: int(np.ceil((sigma_b2 + sigma_w2 / J) / se ** 2 - 1e-12))  # noqa: E731
    if sigma_w2 == 0:
        J = 1
    elif sigma_b2 == 0:
        J = max(1, int(np.ceil(sigma_w2 / se ** 2)))  # all the variance is within: one model, many runs
    else:
        j = np.sqrt(c_train * sigma_w2 / (c_unlearn * sigma_b2))
        J = min((max(1, int(np.floor(j))), max(1, int(np.ceil(j)))),
                key=lambda J: max(1, need(J)) * (c_train + J * c_unlearn))
    I = max(1, need(J))
    return {"I": I, "J": J, "cost": I * (c_train + J * c_unlearn), "a_reaches": sigma_b2 < se ** 2}


# --- rank flips ------------------------------------------------------------------------------

def rank_flip(Z1, Z2) -> float:
    """P(protocol A orders two methods' mean metric the other way from the full grid).

    Both grids share their original models (row i is training seed i for both). The estimate is
    the fraction of A instances (training seeds) whose within-seed means order the methods
    opposite to the grand means; a tie within a seed counts as half. When the grand means tie
    there is no order to flip, and the result is NaN.
    """
    Z1, Z2 = np.asarray(Z1, float), np.asarray(Z2, float)
    if Z1.shape[0] != Z2.shape[0] or Z1.shape[0] < 2:
        raise ConfigError("rank_flip needs two grids over the same (at least two) training seeds")
    full = np.sign(Z1.mean() - Z2.mean())
    if full == 0:
        return float("nan")
    per_seed = np.sign(Z1.mean(1) - Z2.mean(1))
    return float(np.mean(np.where(per_seed == 0, 0.5, per_seed != full)))
