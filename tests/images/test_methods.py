"""The methods' defining properties, each checked on real digits or a tiny model."""
import copy
import math

import pytest
import torch

from mu_core import profiles
from mu_core.images import data as D, methods as M, metrics, models, train

PROF = profiles.load("classroom")


@pytest.fixture(scope="module")
def setup():
    """A classroom-sized MLP trained on 14x14 digits (10 epochs), and a full-class split."""
    data = D.load({"source": "mnist5k", "image_size": 14})
    net = models.build({"arch": "mlp", "hidden": 64}, 10, (1, 14, 14), seed=3)
    recipe = {**PROF["train"], "epochs": 10, "milestones": [6, 8]}
    train.fit(net, data.train_x, data.train_fine, recipe, torch.Generator().manual_seed(3), data)
    return data, net, recipe, D.make_split(data, "mnist10", "full_class", "7")


def params_for(method):
    return copy.deepcopy(PROF["method_params"].get(method, {}))


def ctx_for(recipe, mode="reference"):
    return M.Context(mode, recipe, {"arch": "mlp", "hidden": 64})


def run(method, setup, seed=0, mode="reference", ctx=None, recipe=None, **over):
    data, net, base_recipe, split = setup
    p = {**params_for(method), **over}
    ctx = ctx or ctx_for(recipe or base_recipe, mode)
    return M.METHODS[method].fn(copy.deepcopy(net), split, p, ctx, torch.Generator().manual_seed(seed))


def capture_fit(monkeypatch):
    seen = []
    real = train.fit

    def spy(model, x, y, *a, **k):
        seen.append((x.clone(), y.clone()))
        return real(model, x, y, *a, **k)
    monkeypatch.setattr(train, "fit", spy)
    return seen


@pytest.mark.parametrize("mode", ["reference", "corrected"])
def test_retrain_never_sees_a_forget_sample(setup, monkeypatch, mode):
    data, _, recipe, split = setup
    seen = capture_fit(monkeypatch)
    run("retrain", setup, mode=mode, recipe={**recipe, "epochs": 1})
    forget_rows = {tuple(r) for r in data.train_x[split.forget].flatten(1).tolist()}
    for x, _ in seen:
        assert len(x) == len(split.retain)
        assert not forget_rows & {tuple(r) for r in x.flatten(1).tolist()}


def test_corrected_retrain_starts_from_scratch_reference_keeps_features(setup, monkeypatch):
    data, net, recipe, split = setup
    starts = []
    real = train.fit
    monkeypatch.setattr(train, "fit", lambda m, *a, **k: starts.append(copy.deepcopy(m.state_dict())) or m)
    run("retrain", setup, mode="reference")
    run("retrain", setup, mode="corrected")
    ref, cor = starts
    w = "features.1.weight"
    assert torch.equal(ref[w], net.state_dict()[w])  # quirk: only fc was reset
    assert not torch.equal(ref["fc.weight"], net.state_dict()["fc.weight"])
    assert not torch.equal(cor[w], net.state_dict()[w])


@pytest.mark.parametrize("method", ["ssd", "lfssd"])
@pytest.mark.parametrize("mode", ["reference", "corrected"])
def test_ssd_and_lfssd_are_deterministic(setup, method, mode):
    a, b = run(method, setup, seed=1, mode=mode), run(method, setup, seed=2, mode=mode)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert not all(torch.equal(v, setup[1].state_dict()[k]) for k, v in a.state_dict().items())


def test_ssd_with_infinite_alpha_changes_nothing(setup):
    out = run("ssd", setup, alpha=math.inf)
    for k, v in out.state_dict().items():
        assert torch.equal(v, setup[1].state_dict()[k])


def tiny():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.rand(10, 1, 2, 2), torch.randint(0, 3, (10,))
    dummy = D.Data(x, y, y, x, y, y, (0.0,), (1.0,))
    return net, x, y, dummy


def test_dampen_update_rule_by_hand():
    """D_f = D and alpha < 1: every parameter with non-zero importance is scaled by lambda."""
    net, x, y, dd = tiny()
    imp = M.importance(net, x, y, dd, "ssd", "corrected")
    before = copy.deepcopy(net.state_dict())
    M.dampen(net, imp, imp, alpha=0.5, lam=0.25)
    for n, q in net.named_parameters():
        expect = torch.where(imp[n] > 0, before[n] * 0.25, before[n])
        assert torch.allclose(q, expect)
    # and a hand-made case: I_f = 4, I_D = 1, alpha 2, lambda 1 -> factor 1/4; I_f = 1 -> untouched
    w = torch.nn.Parameter(torch.tensor([2.0, 2.0]))
    holder = torch.nn.Module()
    holder.w = w
    M.dampen(holder, {"w": torch.tensor([4.0, 1.0])}, {"w": torch.tensor([1.0, 1.0])}, alpha=2, lam=1)
    assert holder.w.tolist() == [0.5, 2.0]


@pytest.mark.parametrize("kind", ["ssd", "lfssd"])
def test_corrected_importance_is_the_per_sample_mean_and_order_free(kind):
    net, x, y, dd = tiny()
    imp = M.importance(net, x, y, dd, kind, "corrected", chunk=3)
    loop = {n: torch.zeros_like(q) for n, q in net.named_parameters()}
    for i in range(len(x)):  # the plain definition: one backward pass per sample
        net.zero_grad()
        out = net(x[i:i + 1])
        loss = torch.nn.functional.cross_entropy(out, y[i:i + 1]) if kind == "ssd" else out.pow(2).sum()
        loss.backward()
        for n, q in net.named_parameters():
            loop[n] += q.grad.square() if kind == "ssd" else q.grad.abs()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    shuffled = M.importance(net, x[perm], y[perm], dd, kind, "corrected", chunk=7)
    for n in imp:
        assert torch.allclose(imp[n], loop[n] / len(x), atol=1e-7)
        assert torch.allclose(imp[n], shuffled[n], atol=1e-7)


def reference_importance_by_hand(net, x, y, dd, batch):
    """The reference's SSD importance written out: the mean over unshuffled batches of the squared
    gradient of the batch-mean cross-entropy."""
    net.eval()
    out = {n: torch.zeros_like(q) for n, q in net.named_parameters()}
    starts = range(0, len(x), batch)
    for i in starts:
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(D.normalise(x[i:i + batch], dd)), y[i:i + batch]).backward()
        for n, q in net.named_parameters():
            out[n] += q.grad.square()
    net.zero_grad()
    return {n: v / len(starts) for n, v in out.items()}


def test_reference_importance_depends_on_batch_size():
    net, x, y, dd = tiny()
    a = M.importance(net, x, y, dd, "ssd", "reference", batch=2)
    b = M.importance(net, x, y, dd, "ssd", "reference", batch=5)
    for batch, got in ((2, a), (5, b)):
        hand = reference_importance_by_hand(net, x, y, dd, batch)
        for n in got:
            assert torch.allclose(got[n], hand[n], rtol=1e-5, atol=1e-9), (batch, n)
    assert not torch.allclose(a["1.weight"], b["1.weight"])


def test_lfssd_alpha_quirk(setup, monkeypatch):
    used = []
    monkeypatch.setattr(M, "dampen", lambda m, f, d, alpha, lam: used.append(alpha) or m)
    run("lfssd", setup, mode="reference", alpha=10, alpha_full_class=5)
    run("lfssd", setup, mode="corrected", alpha=10, alpha_full_class=5)  # mnist10: fine labels
    assert used == [5, 10]


@pytest.mark.parametrize("setting,target", [("full_class", "1-7"), ("sub_class", "7")])
def test_random_labels_never_assigns_the_true_class(setup, monkeypatch, setting, target):
    data = setup[0]
    split = D.make_split(data, "mnist5", setting, target)
    seen = capture_fit(monkeypatch)
    net = models.build({"arch": "mlp", "hidden": 64}, 5, (1, 14, 14), 0)
    M.random_labels(net, split, params_for("random_labels"), ctx_for(setup[2]), torch.Generator().manual_seed(4))
    _, y = seen[0]
    given = y[len(split.retain):]
    true = split.y_train[split.forget]
    assert len(given) == len(true) and not bool((given == true).any())
    assert set(given.tolist()) == set(range(5)) - set(true.tolist())  # all other classes occur


@pytest.mark.parametrize("mode,distinct", [("reference", 3), ("corrected", 32)])
def test_unsir_noise_set(mode, distinct, monkeypatch):
    """On 3-channel images the reference keeps 3 noise images (the channel-axis slip)."""
    rng = torch.Generator().manual_seed(0)
    x = torch.rand(60, 3, 8, 8, generator=rng)
    y = torch.arange(60) % 3
    dd = D.Data(x, y, y, x[:30], y[:30], y[:30], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    split = D.Split(dd, "cifar100", "full_class", "x", y, y[:30], y, torch.arange(40), torch.arange(40, 60),
                    torch.arange(20), torch.arange(20, 30), 3, 2)
    seen = capture_fit(monkeypatch)
    net = models.build({"arch": "resnet18", "width": 4}, 3, (3, 8, 8), 0)
    p = {**params_for("unsir"), "noise_copies": 2}
    M.unsir(net, split, p, M.Context(mode, {}, {"arch": "resnet18", "width": 4}), torch.Generator().manual_seed(1))
    x_impair, y_impair = seen[0]
    n_noise = int((y_impair[: distinct * 2] == 2).sum())
    assert n_noise == distinct * 2
    assert len(torch.unique(x_impair[:n_noise].flatten(1), dim=0)) == distinct


def test_bad_teacher_same_seed_same_incompetent_teacher(setup, monkeypatch):
    built = []
    real = models.build
    monkeypatch.setattr(models, "build", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    run("bad_teacher", setup, seed=7)
    run("bad_teacher", setup, seed=7)
    run("bad_teacher", setup, seed=8)
    same = [torch.equal(built[0].state_dict()[k], built[1].state_dict()[k]) for k in built[0].state_dict()]
    assert all(same)
    assert not torch.equal(built[0].fc.weight, built[2].fc.weight)


# Margins measured on this model (see the closing note of the methods issue): Original's forget
# accuracy on digit 7 is about 95 %; every method must take at least 10 points off it, and
# keep retain accuracy within 15 points of Original's, on average over three unlearning seeds.
# Random-Labels (Adam at lr 1e-4 for 3 epochs) forgets least: over the classroom run's mnist10
# full-class rows its drop has median 19 points but ranges from 4 to 33 with the seeds (6 at the
# 5th percentile), so it must take 5 points off.
FORGET_DROP, RETAIN_MARGIN = {"random_labels": 5.0}, 15.0


# The paper's methods; Deep Unlearn's are tested by their defining properties in
# test_deepunlearn.py (on this MLP some of them, GA and NG+ at their defaults, also lose much of
# the retain set: a finding the Deep Unlearn chapter reports, not a defect to test away).
@pytest.mark.parametrize("method", [m for m, rec in M.METHODS.items() if rec.role != "original" and rec.chapter == "paper"])
def test_every_method_forgets_and_keeps_the_rest(setup, method):
    data, net, recipe, split = setup
    base = metrics.evaluate(net, split, "corrected")
    outs = [metrics.evaluate(run(method, setup, seed=s), split, "corrected") for s in range(3)]
    out = {k: sum(o[k] for o in outs) / len(outs) for k in ("forget_acc", "retain_acc")}
    assert out["forget_acc"] <= base["forget_acc"] - FORGET_DROP.get(method, 10.0), (method, base, outs)
    assert out["retain_acc"] >= base["retain_acc"] - RETAIN_MARGIN, (method, base, outs)


def test_mia_separates_members_from_held_out_on_an_overfitted_model():
    data = D.load({"source": "mnist5k", "image_size": 14})
    idx = torch.arange(0, 4000, 10)  # 400 training digits, 40 per class
    net = models.build({"arch": "mlp", "hidden": 256}, 10, (1, 14, 14), 0)
    recipe = {"epochs": 60, "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch": 32, "milestones": []}
    train.fit(net, data.train_x[idx], data.train_fine[idx], recipe, torch.Generator().manual_seed(0), data)
    ent = lambda x: metrics.entropy(metrics.logits(net, x, data))
    member, held = data.train_x[idx], data.train_x[idx + 1]  # same classes, never trained on
    nonmember = data.test_x
    score_members = metrics.mia(ent(member[:200]), ent(nonmember), ent(member[200:]), "reference")
    score_held = metrics.mia(ent(member[:200]), ent(nonmember), ent(held), "reference")
    assert score_members > score_held + 20, (score_members, score_held)


@pytest.mark.parametrize("method", ["ssd", "lfssd"])
def test_corrected_reuse_of_the_whole_data_importance_is_exact(setup, method):
    """I_D computed for one target and reused for another equals a fresh computation."""
    data, net, recipe, split7 = setup
    split3 = D.make_split(data, "mnist10", "full_class", "3")
    fn, p = M.METHODS[method].fn, params_for(method)
    shared = ctx_for(recipe, "corrected")
    fn(copy.deepcopy(net), split7, p, shared, torch.Generator())  # fills the memo
    assert shared.memo
    reused = fn(copy.deepcopy(net), split3, p, shared, torch.Generator())
    fresh = fn(copy.deepcopy(net), split3, p, ctx_for(recipe, "corrected"), torch.Generator())
    for k, v in reused.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k])


def test_reference_whole_data_importance_changes_with_the_target(setup):
    """Why the reference mode is not reused: its loader order, hence I_D, depends on the target."""
    data, net, _, split7 = setup
    split3 = D.make_split(data, "mnist10", "full_class", "3")
    imp = lambda s: M.importance(net, data.train_x[s.train_all], s.y_train[s.train_all], data, "ssd", "reference")
    a, b = imp(split7), imp(split3)
    for s, got in ((split7, a), (split3, b)):  # each is the reference expression over its own order
        hand = reference_importance_by_hand(net, data.train_x[s.train_all], s.y_train[s.train_all], data, 64)
        assert torch.allclose(got["fc.weight"], hand["fc.weight"], rtol=1e-5, atol=1e-12)
    assert torch.equal(torch.sort(split7.train_all).values, torch.sort(split3.train_all).values)  # same samples
    assert not torch.allclose(a["fc.weight"], b["fc.weight"])
