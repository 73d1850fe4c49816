import numpy as np
import pandas as pd
import pytest

from mu_core import ConfigError, stats


def test_w2_hand_cases_symmetry_and_shift():
    assert stats.w2([0, 1], [0, 1]) == 0
    assert stats.w2([0, 0], [3, 4]) == pytest.approx(np.sqrt((9 + 16) / 2))
    assert stats.w2([4, 3], [0, 0]) == pytest.approx(np.sqrt(12.5))  # order does not matter
    # unequal sizes by hand: x = {0}, y = {0, 2}: quantiles differ by 2 on half of [0, 1]
    assert stats.w2([0], [0, 2]) == pytest.approx(np.sqrt(2))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=11), rng.normal(size=7)
    assert stats.w2(x, y) == pytest.approx(stats.w2(y, x))
    assert stats.w2(x, x + 2.5) == pytest.approx(2.5)
    from scipy.stats import wasserstein_distance  # W1, which is not W2
    assert stats.w2([0, 0, 0, 10], [0, 0, 0, 0]) == pytest.approx(5.0)
    assert wasserstein_distance([0, 0, 0, 10], [0, 0, 0, 0]) == pytest.approx(2.5)


@pytest.mark.parametrize("n,m", [(11, 7), (5, 12), (3, 9)])
def test_w2_unequal_sizes_against_a_fine_quantile_grid(n, m):
    rng = np.random.default_rng(n * m)
    x, y = rng.exponential(size=n), rng.normal(size=m)
    u = (np.arange(200_000) + 0.5) / 200_000  # independent: sample both quantile functions
    qx = np.sort(x)[np.minimum((u * n).astype(int), n - 1)]
    qy = np.sort(y)[np.minimum((u * m).astype(int), m - 1)]
    assert stats.w2(x, y) == pytest.approx(np.sqrt(np.mean((qx - qy) ** 2)), rel=1e-3)


def simulate(I, J, sb, sw, rng):
    return 50 + rng.normal(0, sb, (I, 1)) + rng.normal(0, sw, (I, J))


def test_anova_estimators_unbiased_and_icc_interval_covers():
    """Over 2,000 simulated 12 x 11 grids (sigma_b = 2, sigma_w = 1): the estimators' means are
    within 5 % of the truth, and the 95 % ICC interval covers the true ICC 93-97 % of the time."""
    rng = np.random.default_rng(1)
    sb, sw, reps = 2.0, 1.0, 2000
    est = np.array([[stats.anova(simulate(12, 11, sb, sw, rng))[k] for k in ("sigma_b2", "sigma_w2")]
                    for _ in range(reps)])
    assert est[:, 0].mean() == pytest.approx(sb ** 2, rel=0.05)
    assert est[:, 1].mean() == pytest.approx(sw ** 2, rel=0.05)
    true_icc = sb ** 2 / (sb ** 2 + sw ** 2)
    cover = [(c["lo"] <= true_icc <= c["hi"]) for c in
             (stats.icc(simulate(12, 11, sb, sw, rng)) for _ in range(reps))]
    assert 0.93 <= np.mean(cover) <= 0.97


def test_reml_agrees_with_anova_on_balanced_data():
    rng = np.random.default_rng(2)
    for _ in range(5):
        Z = simulate(12, 11, 1.5, 1.0, rng)
        a, r = stats.anova(Z), stats.reml(Z)
        assert a["sigma_b2"] > 0
        assert r["sigma_b2"] == pytest.approx(a["sigma_b2"], rel=1e-3)
        assert r["sigma_w2"] == pytest.approx(a["sigma_w2"], rel=1e-3)


def test_deterministic_method():
    rng = np.random.default_rng(3)
    Z = np.repeat(rng.normal(60, 5, (12, 1)), 11, axis=1)  # no within-seed variance
    c = stats.components(Z)
    assert c["sigma_w2"] == 0 and c["sigma_w2_reml"] == 0 and c["V_A_max"] == 0
    assert c["icc"] == c["icc_lo"] == c["icc_hi"] == 1.0
    flat = stats.icc(np.full((4, 3), 7.0))
    assert np.isnan(flat["icc"]) and np.isnan(flat["lo"])
    assert c["sigma_b2"] == pytest.approx(Z[:, 0].var(ddof=1))
    a = stats.allocation(c["sigma_b2"], c["sigma_w2"], c_train=10, c_unlearn=1, budget=200)
    assert a["J"] == 1 and a["J_star_continuous"] == 1 and a["I"] == 18


@pytest.mark.parametrize("sb2,sw2,ct,cu,budget", [
    (4.0, 1.0, 10, 1, 300), (0.5, 9.0, 20, 1, 500), (1.0, 1.0, 3, 2, 97), (0.01, 4.0, 50, 0.5, 400)])
def test_allocation_matches_brute_force(sb2, sw2, ct, cu, budget):
    a = stats.allocation(sb2, sw2, ct, cu, budget)
    best = min((sb2 / I + sw2 / (I * J), I, J) for I in range(1, 400) for J in range(1, 800)
               if I * (ct + J * cu) <= budget)
    assert a["variance"] == pytest.approx(best[0])
    assert a["I"] * (ct + a["J"] * cu) <= budget
    assert a["A_variance"] >= a["variance"]


def test_w2_instances_and_rank_flips():
    rng = np.random.default_rng(4)
    Z = simulate(12, 11, 3, 0.5, rng)
    w = stats.w2_instances(Z, n_b=20, seed=7)
    again = np.random.default_rng(7)  # the same draws, recomputed one by one
    direct = [[stats.w2(Z[i], stats.b_instance(Z, again, i)) for _ in range(20)] for i in range(12)]
    assert w.shape == (12, 20) and np.array_equal(w, np.array(direct))
    # sigma_b = 3 >> sigma_w = 0.5: an A instance sits near its own seed's mean, so W2(A, B) is of
    # the order of sigma_b, while two B instances differ only by sampling noise
    assert 1.5 < np.median(w) < 6 and np.median(stats.w2_b_baseline(Z, 200)) < np.median(w)
    Z2 = Z + 100  # always better: never flips
    assert stats.rank_flip(Z2, Z) == 0
    close = Z + rng.normal(0, 3, (12, 1))  # seed-dependent differences: some flips
    assert 0 < stats.rank_flip(close, Z) < 1
    assert np.isnan(stats.rank_flip(Z, Z.copy()))  # equal grand means: nothing to flip


def test_bootstrap_resamples_training_seeds():
    rng = np.random.default_rng(5)
    Z = simulate(12, 11, 2, 1, rng)
    ci = stats.bootstrap(Z, lambda z: z.mean(), n_boot=300)
    assert ci["lo"] < ci["estimate"] < ci["hi"]
    # resampling whole rows: the interval reflects sigma_b (about 2 / sqrt(12) per side)
    assert 0.6 < (ci["hi"] - ci["lo"]) / 2 < 2.0


def test_tables_and_refusals():
    rows = []
    for i in range(1, 4):
        for j in range(1, 3):
            rows.append(dict(design="grid", dataset="mnist10", setting="full_class", target="7",
                             method="ssd", train_seed=i, unlearn_seed=(i - 1) * 2 + j,
                             retain_acc=10.0 * i, forget_acc=1.0 * i + j))
    t = pd.DataFrame(rows)
    Z = stats.grid_matrix(t, "ssd", "mnist10/full_class", "7", "forget_acc")
    assert Z.tolist() == [[2, 3], [3, 4], [4, 5]]
    comp = stats.components_table(t)
    assert set(comp.metric) == {"retain_acc", "forget_acc"}
    with pytest.raises(ConfigError, match="lacks the columns"):
        stats.grid_matrix(t.drop(columns="train_seed"), "ssd", "mnist10/full_class", "7", "forget_acc")
    with pytest.raises(ConfigError, match="at least two training seeds"):
        stats.anova(Z[:1])
    with pytest.raises(ConfigError, match="at least two training seeds"):
        stats.bootstrap(Z[:1], np.mean)
    with pytest.raises(ConfigError, match="budget"):
        stats.allocation(1, 1, 10, 1, 5)


def test_allocation_gain_is_undefined_only_when_nothing_varies():
    assert np.isnan(stats.allocation(0.0, 0.0, 10, 1, 200)["gain"])  # a method with one value on every seed
    assert stats.allocation(2.0, 0.0, 10, 1, 200)["gain"] == pytest.approx(18.0)  # I = 200 // (10 + 1) at J = 1


def test_reml_says_which_estimator_produced_each_value():
    rng = np.random.default_rng(0)
    fine = rng.normal(size=(6, 1)) * 3 + rng.normal(size=(6, 5))
    assert stats.reml(fine)["estimator"] == "REML"
    det = np.repeat(rng.normal(size=(6, 1)), 5, 1)  # a deterministic method: no within-seed variance
    r = stats.reml(det)
    assert r["degenerate"] and r["estimator"].startswith("ANOVA")
    assert r["sigma_b2"] == pytest.approx(stats.anova(det)["msb"] / 5)
    # no between-seed variance: MixedLM stops on the boundary and warns; the table says so
    flat = np.random.default_rng(1).normal(size=(4, 3))
    assert stats.reml(flat)["estimator"].startswith("REML (not converged")
    comp = stats.components(det)
    assert comp["reml_estimator"].startswith("ANOVA")


# --- the init_order design: crossed initialisation x order seeds ------------------------------

def _crossed(rng, I, O, J, sa, sb, sab, se):
    return (10 + rng.normal(0, np.sqrt(sa), (I, 1, 1)) + rng.normal(0, np.sqrt(sb), (1, O, 1))
            + rng.normal(0, np.sqrt(sab), (I, O, 1)) + rng.normal(0, np.sqrt(se), (I, O, J)))


def test_crossed_anova_recovers_known_components_on_average():
    rng = np.random.default_rng(1)
    truth = np.array([4.0, 2.0, 1.0, 1.0])  # init, order, interaction, unlearning
    names = ("sigma_init2", "sigma_order2", "sigma_inter2", "sigma_unlearn2")
    est = np.array([[stats.crossed_anova(_crossed(rng, 6, 6, 3, *truth))[k] for k in names] for _ in range(600)])
    se = est.std(0) / np.sqrt(len(est))
    assert np.all(np.abs(est.mean(0) - truth) < 4 * se + 0.02 * truth), (est.mean(0), se)


def test_crossed_reml_agrees_with_anova_on_a_balanced_design():
    Y = _crossed(np.random.default_rng(3), 6, 5, 3, 4.0, 3.0, 1.0, 1.0)
    a, r = stats.crossed_anova(Y), stats.crossed_reml(Y)
    assert r["estimator"] == "REML"
    for k in ("sigma_init2", "sigma_order2", "sigma_inter2", "sigma_unlearn2"):
        assert r[k] == pytest.approx(a[k], rel=1e-3, abs=1e-4), k


def test_init_only_share_counts_what_an_init_only_protocol_varies():
    i, o, j = np.meshgrid(np.arange(4.0), np.arange(4.0), np.arange(3.0), indexing="ij")
    assert stats.crossed_anova(i + 0.01 * j)["init_only_share"] == pytest.approx(1.0)  # initialisation only
    assert stats.crossed_anova(o + 0.01 * j)["init_only_share"] == pytest.approx(0.0)  # order only: never seen
    both = stats.crossed_anova(i + o)
    assert both["sigma_init2"] == pytest.approx(both["sigma_order2"]) and both["init_only_share"] == pytest.approx(0.5)
    assert both["sigma_unlearn2"] == 0 and stats.crossed_reml(i + o)["estimator"].startswith("ANOVA (degenerate")
    with pytest.raises(ConfigError, match="at least 2 x 2"):
        stats.crossed_anova(np.zeros((2, 1, 3)))


@pytest.mark.parametrize("b2,w2,I,J,reaches", [
    (4.0, 1.0, 18, 2, False),   # J* = sqrt(10 * 1 / 4) = 1.58: J = 2 costs 18 x 12 = 216, J = 1 20 x 11 = 220
    (4.0, 0.0, 16, 1, False),   # deterministic: J = 1, I = 4 / 0.25
    (0.0, 4.0, 1, 16, True),    # nothing between training seeds: one model, 16 runs
    (0.2, 0.0, 1, 1, True),     # sigma_b^2 below se^2: one training seed suffices
])
def test_seeds_for_splits_by_j_star_and_counts_training_seeds_for_the_standard_error(b2, w2, I, J, reaches):
    a = stats.seeds_for(b2, w2, 10.0, 1.0, 0.5)
    assert (a["I"], a["J"], a["a_reaches"]) == (I, J, reaches)
    assert b2 / a["I"] + w2 / (a["I"] * a["J"]) <= 0.25 + 1e-12  # the standard error is met ...
    if a["I"] > 1:  # ... and not with one training seed fewer
        assert b2 / (a["I"] - 1) + w2 / ((a["I"] - 1) * a["J"]) > 0.25
