"""U-LiRA (images.ulira) and the init_order design: the pool and its halves, the attack's
calibration on statistics that carry no membership, its power on ones that do, and the designs'
rows and models in the engine."""
import numpy as np
import pandas as pd
import pytest
import torch

from mu_core import ConfigError, plan, profiles
from mu_core.images import data as D, ulira


@pytest.fixture(scope="module")
def digits():
    return D.load({"source": "mnist5k", "image_size": 7})


def test_pool_halves_forget_ten_percent_and_never_touch_the_rest(digits):
    n = len(digits.train_fine)
    pool = D.pool(n)
    assert len(pool) == 2 * round(n / 11) and len(set(pool.tolist())) == len(pool)
    a, b = D.random_split(digits, "mnist10", 1), D.random_split(digits, "mnist10", 2)
    assert len(a.forget) == len(pool) // 2
    assert len(a.forget) == pytest.approx(0.1 * len(a.train_all), abs=1)  # 10 % of the model's training set
    assert set(a.retain.tolist()).isdisjoint(pool.tolist())
    assert set(a.forget.tolist()) < set(pool.tolist()) and set(a.forget.tolist()) != set(b.forget.tolist())
    M = ulira.membership(n, [1, 2])
    assert set(pool[M[0]].tolist()) == set(a.forget.tolist())  # the membership the attack uses is the split's


def test_the_attack_is_calibrated_without_signal_and_finds_it_with():
    rng = np.random.default_rng(0)
    M = ulira.membership(4000, range(1, 65))
    null = ulira.summarise(rng.normal(size=M.shape), M, n_boot=50)
    assert null["du_membership_lo"] <= 0.5 <= null["du_membership_hi"]
    assert null["auc"] == pytest.approx(0.5, abs=0.01) and null["tpr_at_1pct_fpr"] < 0.03
    signal = ulira.summarise(rng.normal(size=M.shape) + 1.0 * M, M, n_boot=50)  # forgotten targets score higher
    assert signal["auc"] > 0.7 and signal["du_membership"] > 0.55 and signal["balanced_acc"] > 0.65
    # the 0/1 statistic with no spread in either group: no NaN (Deep Unlearn's code gives one)
    ones = ulira.summarise(np.ones(M.shape), M, n_boot=10)
    assert ones["du_membership"] == pytest.approx(0.5, abs=1e-3) and not np.isnan(ones["auc"])


def test_roc_numbers_by_hand():
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    label = np.array([True, True, False, True, False, False])
    auc, bal, tpr = ulira._roc(score, label)
    assert auc == pytest.approx(8 / 9)  # 8 of the 9 (positive, negative) pairs ordered correctly
    assert bal == pytest.approx(max((2 / 3 + 1) / 2, (1 + 2 / 3) / 2))
    assert tpr == pytest.approx(2 / 3)  # the largest TPR with no false positive
    w = np.array([2.0, 1, 3, 1, 0, 2])  # a bootstrap's multiplicities: the same as repeating the pairs
    assert ulira._roc(score, label, w) == pytest.approx(ulira._roc(np.repeat(score, w.astype(int)), np.repeat(label, w.astype(int))))
    tied = ulira._roc(np.array([1.0, 1.0]), np.array([True, False]))
    assert tied[0] == pytest.approx(0.5)  # a tie counts half


def test_the_scored_model_is_left_out_of_its_own_fit():
    M = ulira.membership(4000, range(1, 9))[:, :5]
    S = np.zeros(M.shape)
    S[0, :] = 100.0  # one model far from every other: left out, it is scored against the others only
    mu, _, n = ulira._loo_fit(S, M, True)
    assert np.all(mu[0][M[0]] == 0) and np.all(n[0][M[0]] == M[:, M[0]].sum(0) - 1)


def test_designs_plan_rows_models_and_bad_input(tmp_path):
    prof = profiles.load("smoke")
    rows, tspecs, _ = plan.schedule(prof)
    io = [r for r in rows if r["design"] == "init_order"]
    cells = {(r["init_seed"], r["order_seed"]) for r in io}
    assert cells == {(1, 1), (1, 2), (2, 1), (2, 2)}
    keys = {(r["init_seed"], r["order_seed"]): plan.model_spec(prof, r)["key"] for r in io}
    grid1 = plan.model_spec(prof, next(r for r in rows if r["design"] == "grid" and r["train_seed"] == 1))["key"]
    assert keys[(1, 1)] == grid1 and len(set(keys.values())) == 4  # the diagonal is the grid's model
    fewer = plan.rows(profiles.load("smoke", {"methods": ["original", "retrain", "finetune"]}))
    assert {r["method"] for r in fewer if r["design"] in ("init_order", "ulira")} == {"finetune", "retrain"}  # of methods only
    ul = [r for r in rows if r["design"] == "ulira"]
    assert {r["mode"] for r in ul if r["method"] == "retrain"} == {"corrected"}  # calibration: from scratch
    assert len({plan.model_spec(prof, r)["key"] for r in ul}) == prof["ulira"]["K"]
    for over, msg in (({"ulira.K": 4}, "ulira.K must be an integer >= 8"),
                      ({"init_order.orders": 1}, "init_order.orders must be an integer >= 2"),
                      ({"ulira.methods": ["unsir"]}, "ulira.methods: unsir forget a class")):
        with pytest.raises(ConfigError, match=msg):
            profiles.load("smoke", over)


def test_init_order_model_uses_its_order_seed(tmp_path, digits):
    """A model of (init i, order o) starts from i's weights and trains in o's order: for o = i it is
    the grid's model of s_t = i; (1, 2) shares (1, 1)'s start and differs after training."""
    from mu_core.images import engine as IE
    prof = profiles.load("smoke")
    rows = [r for r in plan.rows(prof) if r["design"] == "init_order" and r["method"] == "finetune"]
    spec = {(r["init_seed"], r["order_seed"]): plan.model_spec(prof, r) for r in rows}
    device, data = IE.context(prof)
    a, _ = IE.original_model(spec[(1, 1)], str(tmp_path), data, device)
    b, _ = IE.original_model(spec[(1, 2)], str(tmp_path), data, device)
    assert spec[(1, 2)]["order_seed"] == 2 and "order_seed" not in spec[(1, 1)]
    assert not torch.equal(a.fc.weight, b.fc.weight)
