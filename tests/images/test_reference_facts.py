"""The six facts of reference-code-facts.md §8, each pinned against an independent computation."""
import copy
import types

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from mu_core.images import engine as IE
from mu_core.images import data as D, methods as M, metrics, models, train


# --- §8.1 normalisation ----------------------------------------------------------------------

def test_cifar_normalisation_uses_the_full_precision_statistics(cifar_root):
    mean = (0.5070751592371323, 0.48654887331495095, 0.4409178433670343)  # facts §8.1
    std = (0.2673342858792401, 0.2564384629170883, 0.27615047132568404)
    d = D.load_cifar100(cifar_root)
    assert d.mean == mean and d.std == std
    x = d.train_x[:5]
    expect = (x.double() - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) \
        / torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    got = D.normalise(x, d)
    assert torch.allclose(got.double(), expect, atol=2e-6, rtol=0)
    rounded = (x - torch.tensor([0.5071, 0.4865, 0.4409]).view(1, 3, 1, 1)) / torch.tensor([0.2673, 0.2564, 0.2762]).view(1, 3, 1, 1)
    assert (got - rounded).abs().max() > 1e-4  # the 4-digit constants would move the inputs
    assert D.load_mnist5k(7).mean == (0.1307,)  # the digits keep theirs


# --- §8.2 LFSSD's loss expression ------------------------------------------------------------

def _tiny(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))
    x = torch.rand(40, 3, 2, 2)
    y = torch.randint(0, 5, (40,))
    return net, x, y, D.Data(x, y, y, x, y, y, (0.5,) * 3, (0.25,) * 3)


def test_reference_lfssd_importance_is_the_reference_expression_bit_for_bit():
    net, x, y, dd = _tiny()
    got = M.importance(net, x, y, dd, "lfssd", "reference", batch=16)
    expect = {n: torch.zeros_like(q) for n, q in net.named_parameters()}
    batches = 0
    for xb in D.normalise(x, dd).split(16):  # a plain loop with the code's own expression
        net.zero_grad()
        out = net(xb)
        torch.linalg.vector_norm(out, ord=2, dim=1).square().mean().backward()
        for n, q in net.named_parameters():
            expect[n] += q.grad.abs()
        batches += 1
    for n in got:
        assert torch.equal(got[n], expect[n] / batches), n


def test_lfssd_losses_of_the_two_modes_differ_only_in_float_rounding():
    """mu_core's two LFSSD losses: reference is the code's squared Frobenius norm, corrected the sum
    of squares. Equal in exact arithmetic; their gradients, which LFSSD's importances are made of,
    differ in the last bits (why reference mode keeps the code's expression)."""
    torch.manual_seed(0)
    net, x = torch.nn.Linear(20, 10), torch.randn(64, 20)
    y = torch.zeros(64, dtype=torch.long)
    out = net(x).detach()
    assert torch.equal(M._ssd_loss("lfssd", "reference")(out, y), torch.norm(out, p="fro", dim=1).pow(2).mean())
    assert torch.equal(M._ssd_loss("lfssd", "corrected")(out, y), out.pow(2).sum(1).mean())
    grads = []
    for mode in ("reference", "corrected"):
        net.zero_grad()
        M._ssd_loss("lfssd", mode)(net(x), y).backward()
        grads.append([q.grad.clone() for q in net.parameters()])
    for g_ref, g_cor in zip(*grads):
        assert torch.allclose(g_ref, g_cor, rtol=1e-5) and not torch.equal(g_ref, g_cor)


# --- §8.3 Retrain's schedule -----------------------------------------------------------------

# 3 steps per epoch, milestones 2 and 4, gamma 0.2; rows are epochs 1..5 (counted from 1)
BASE = 0.01
PRETRAIN = [[0, BASE / 3, 2 * BASE / 3], [0.002] * 3, [0.002] * 3, [0.0004] * 3, [0.0004] * 3]
FIT_ONE_CYCLE = [[0, BASE * 1 / (3 + 1e-8), BASE * 2 / (3 + 1e-8)],
                 [BASE * 3 / (3 + 1e-8), BASE * 4 / (3 + 1e-8), BASE * 5 / (3 + 1e-8)],
                 [0.002] * 3, [0.002] * 3, [0.0004] * 3]


@pytest.mark.parametrize("fn,table", [(train.lr_at, PRETRAIN), (train.lr_fit_one_cycle, FIT_ONE_CYCLE)])
def test_schedules_step_by_step_against_a_hand_written_table(fn, table):
    recipe = {"lr": BASE, "warmup_epochs": 1, "milestones": [2, 4], "gamma": 0.2}
    got = [[fn(recipe, e, it, 3) for it in range(3)] for e in range(1, 6)]
    assert np.allclose(got, table, rtol=1e-12, atol=0), got


def test_fit_one_cycle_matches_torch_schedulers_driven_as_the_reference_drives_them():
    """MultiStepLR stepped with the 0-based epoch from epoch 2, a warm-up scheduler stepped after
    every iteration of epochs 0 and 1: the learning rate of every iteration of a 6-epoch run."""
    steps, milestones = 4, [2, 3, 5]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
    multi = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.2)

    class WarmUp(torch.optim.lr_scheduler.LRScheduler):
        def get_lr(self):
            return [b * self.last_epoch / (steps + 1e-8) for b in self.base_lrs]
    warm = WarmUp(opt)
    seen = []
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the epoch argument of step() is deprecated
        for epoch in range(6):
            if epoch > 1:
                multi.step(epoch)
            for _ in range(steps):
                seen.append(opt.param_groups[0]["lr"])
                opt.step()
                if epoch <= 1:
                    warm.step()
    recipe = {"lr": BASE, "milestones": milestones, "gamma": 0.2}
    ours = [train.lr_fit_one_cycle(recipe, e, it, steps) for e in range(1, 7) for it in range(steps)]
    assert np.allclose(ours, seen, rtol=1e-12, atol=1e-15), list(zip(ours, seen))


def test_reference_retrain_trains_with_fit_one_cycle_and_corrected_with_the_recipe(monkeypatch):
    data = D.load_mnist5k(7)
    split = D.make_split(data, "mnist10", "full_class", "7")
    recipes = []
    monkeypatch.setattr(train, "fit", lambda m, x, y, r, *a, **k: recipes.append(r) or m)
    base = {"epochs": 3, "lr": 0.1, "batch": 64, "milestones": [2], "warmup_epochs": 1, "augment": {"crop_pad": 1}}
    for mode in ("reference", "corrected"):
        M.retrain(models.build({"arch": "mlp", "hidden": 8}, 10, (1, 7, 7), 0), split, {"lr": 0.01},
                  M.Context(mode, base, {"arch": "mlp", "hidden": 8}), torch.Generator().manual_seed(0))
    assert recipes[0]["schedule"] == "fit_one_cycle" and recipes[0]["lr"] == 0.01 and recipes[0]["augment"] is None
    assert recipes[1] == base


# --- §8.4 UNSIR's leaked gradients -------------------------------------------------------------

def _unsir_setup():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 4, 4, generator=g)
    y = torch.arange(60) % 3
    dd = D.Data(x, y, y, x[:30], y[:30], y[:30], (0.5,), (0.25,))
    split = D.Split(dd, "mnist10", "full_class", "2", y, y[:30], y, torch.arange(40), torch.arange(40, 60),
                    torch.arange(20), torch.arange(20, 30), 3, 2)
    net = models.build({"arch": "mlp", "hidden": 8}, 3, (1, 4, 4), 0)
    p = {"noise_batch": 6, "noise_lr": 0.1, "noise_steps": {"full_class": 5, "sub_class": 5}, "reg": 0.1,
         "noise_copies": 2, "per_class": 10, "impair_batch": 8, "repair_batch": 8, "lr": 0.01}
    return net, split, p


@pytest.mark.parametrize("mode", ["reference", "corrected"])
def test_unsir_noise_phase_gradients_enter_the_first_impair_step_in_reference_mode(monkeypatch, mode):
    net, split, p = _unsir_setup()
    entry = []
    real = train.fit
    monkeypatch.setattr(train, "fit", lambda m, *a, **k: entry.append(
        {n: None if q.grad is None else q.grad.clone() for n, q in m.named_parameters()}) or real(m, *a, **k))
    M.unsir(copy.deepcopy(net), split, p, M.Context(mode, {}, {}), torch.Generator().manual_seed(3))
    impair = entry[0]
    if mode == "corrected":
        assert all(g is None for g in impair.values())
        return
    # independently: the same noise (the generator's first draw), the same 5 Adam steps, with the
    # model's gradients summed by hand
    gen = torch.Generator().manual_seed(3)
    noise = torch.randn((6, 1, 4, 4), generator=gen).requires_grad_()
    opt = torch.optim.Adam([noise], lr=0.1)
    model = copy.deepcopy(net).train()
    total = {n: torch.zeros_like(q) for n, q in model.named_parameters()}
    for _ in range(5):
        loss = -torch.nn.functional.cross_entropy(model(noise), torch.full((6,), 2)) + 0.1 * noise.pow(2).sum((1, 2, 3)).mean()
        grads = torch.autograd.grad(loss, [noise, *model.parameters()])
        noise.grad = grads[0]
        opt.step()
        for (n, _), g in zip(model.named_parameters(), grads[1:]):
            total[n] += g
    for n, g in impair.items():
        assert torch.allclose(g, total[n], atol=1e-6), n


def test_fit_with_the_reference_loop_order_adds_carried_gradients_to_the_first_step():
    net = torch.nn.Linear(3, 2)
    x, y = torch.rand(4, 1, 1, 3), torch.tensor([0, 1, 0, 1])
    dd = D.Data(x, y, y, x, y, y, (0.0,), (1.0,))
    carried = {n: torch.full_like(q, 0.5) for n, q in net.named_parameters()}
    before = {n: q.detach().clone() for n, q in net.named_parameters()}
    for n, q in net.named_parameters():
        q.grad = carried[n].clone()
    flat = torch.nn.Sequential(torch.nn.Flatten(), net)
    train.fit(flat, x, y, {"optimizer": "sgd", "lr": 1.0, "epochs": 1, "batch": 4, "zero_grad_after_step": True},
              torch.Generator().manual_seed(0), dd)
    ref = copy.deepcopy(before)
    w = torch.nn.Linear(3, 2)
    w.load_state_dict(ref)
    torch.nn.functional.cross_entropy(w(x.flatten(1)), y).backward()  # one full batch: order is irrelevant
    for n, q in net.named_parameters():
        assert torch.allclose(q, before[n] - (carried[n] + getattr(w, n).grad), atol=1e-6), n
        assert q.grad is None  # zeroed after the step, as the reference does


# --- §8.5 UNSIR's retain accuracy on batches of 32 ---------------------------------------------

def test_evaluate_uses_the_retain_batch_it_is_given():
    data = D.load_mnist5k(7)
    split = D.make_split(data, "mnist10", "full_class", "7")
    net = models.build({"arch": "mlp", "hidden": 8}, 10, (1, 7, 7), 0)
    out = metrics.logits(net, data.test_x, data)
    correct = (out[split.test_retain].argmax(1) == split.y_test[split.test_retain]).numpy()
    by_hand = lambda b: 100 * np.mean([correct[i:i + b].mean() for i in range(0, len(correct), b)])
    assert len(correct) % 32 and len(correct) % 64  # short last batches: the batch size matters
    r32 = metrics.evaluate(net, split, "reference", 64, retain_batch=32)["retain_acc"]
    r64 = metrics.evaluate(net, split, "reference", 64)["retain_acc"]
    assert r32 == pytest.approx(by_hand(32), abs=1e-4) and r64 == pytest.approx(by_hand(64), abs=1e-4)  # float32 sums
    assert r32 != r64


@pytest.mark.parametrize("method,mode,expect", [("unsir", "reference", 32), ("unsir", "corrected", None),
                                                ("finetune", "reference", None)])
def test_the_engine_evaluates_unsir_retain_accuracy_on_its_noise_batch(monkeypatch, method, mode, expect):
    seen = []
    monkeypatch.setattr(metrics, "evaluate", lambda m, s, md, b, rb=None: seen.append(rb) or {"retain_acc": 90.0})
    fake = M.Method(lambda m, *a: m, "x", False, 1, {}, M.METHODS[method].reference_retain_batch)
    monkeypatch.setitem(M.METHODS, method, fake)
    job = {"method": method, "params": {"noise_batch": 32}, "unlearn_seed": 1, "eval": {"batch": 64}}
    split = types.SimpleNamespace(num_classes=10)  # all the evaluation reads of it, with evaluate replaced
    IE.run_job(torch.nn.Linear(1, 1), split, job, M.Context(mode, {}, {}), torch.device("cpu"))
    assert seen == [expect]


# --- §8.6 the MIA's multinomial logistic regression --------------------------------------------

def _balanced(y):
    return np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))


def _multinomial_direct(x, y, C=1.0):
    """scikit-learn's two-class multinomial objective, minimised directly: one weight and bias per
    class, C · sum_i s_i · CE_i + (w_0² + w_1²) / 2."""
    s = _balanced(y)

    def f(t):
        w0, w1, b0, b1 = t
        z = np.stack([w0 * x + b0, w1 * x + b1], 1)
        lse = np.logaddexp(z[:, 0], z[:, 1])
        ce = lse - z[np.arange(len(y)), y.astype(int)]
        return C * np.sum(s * ce) + (w0 ** 2 + w1 ** 2) / 2
    t = minimize(f, np.zeros(4), method="BFGS", options={"gtol": 1e-10, "maxiter": 10000}).x
    return t[1] - t[0], t[3] - t[2]


def _binary_direct(x, y, C=1.0):
    s, sign = _balanced(y), 2 * y - 1

    def f(t):
        return C * np.sum(s * np.logaddexp(0, -sign * (t[0] * x + t[1]))) + t[0] ** 2 / 2
    return tuple(minimize(f, np.zeros(2), method="BFGS", options={"gtol": 1e-10, "maxiter": 10000}).x)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mia_fit_equals_a_direct_minimisation_of_each_objective(seed):
    rng = np.random.default_rng(seed)
    n1, n0 = 300 + 50 * seed, 120
    x = np.r_[rng.gamma(2.0, 0.3, n1), rng.gamma(3.0, 0.4, n0)]  # entropies of members / non-members
    y = np.r_[np.ones(n1), np.zeros(n0)]
    w, b = metrics.logistic_fit(x, y, "reference")
    dw, db = _multinomial_direct(x, y)
    assert abs(w - dw) < 1e-6 and abs(b - db) < 1e-6, (w, b, dw, db)
    w, b = metrics.logistic_fit(x, y, "corrected")
    bw, bb = _binary_direct(x, y)
    assert abs(w - bw) < 1e-6 and abs(b - bb) < 1e-6
    assert abs(dw - bw) > 1e-3  # the two objectives really differ


def test_mia_reference_agrees_with_scikit_learns_binary_fit_with_c_doubled():
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(5)
    x = np.r_[rng.gamma(2.0, 0.3, 400), rng.gamma(3.0, 0.4, 100)]
    y = np.r_[np.ones(400), np.zeros(100)]
    clf = LogisticRegression(C=2.0, class_weight="balanced", tol=1e-12, max_iter=10000).fit(x[:, None], y)
    w, b = metrics.logistic_fit(x, y, "reference")
    assert abs(w - clf.coef_[0, 0]) < 1e-5 and abs(b - clf.intercept_[0]) < 1e-5
