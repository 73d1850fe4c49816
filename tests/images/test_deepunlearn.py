"""Deep Unlearn's nine baselines: each one's defining property against an independent computation,
on the classroom MLP and (every method, both modes) on a small ResNet-18 over a synthetic CIFAR
archive."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mu_core import profiles
from mu_core.images import data as D, deepunlearn as DU, methods as M, models, train
from mu_core.errors import ConfigError

PROF = profiles.load("classroom")
NINE = ["ng_plus", "gradient_ascent", "srl", "scrub", "salun", "msg", "ct", "cf_k", "eu_k"]
MLP = {"arch": "mlp", "hidden": 32}


@pytest.fixture(scope="module")
def digits():
    """A briefly trained MLP on 14x14 digits and the full-class split of digit 7."""
    data = D.load({"source": "mnist5k", "image_size": 14})
    net = models.build(MLP, 10, (1, 14, 14), seed=3)
    recipe = {**PROF["train"], "epochs": 2, "milestones": []}
    train.fit(net, data.train_x, data.train_fine, recipe, torch.Generator().manual_seed(3), data)
    return net, recipe, D.make_split(data, "mnist10", "full_class", "7")


def call(name, net, split, recipe, mode="reference", seed=0, **over):
    p = {**PROF["method_params"][name], **over}
    ctx = M.Context(mode, recipe, MLP)
    return M.METHODS[name].fn(copy.deepcopy(net), split, p, ctx, torch.Generator().manual_seed(seed))


def xy(split, idx):
    return D.normalise(split.data.train_x[idx], split.data), split.y_train[idx]


def test_the_registry_names_them_in_their_own_chapter():
    assert [m for m, r in M.METHODS.items() if r.chapter == "deepunlearn"] == NINE
    assert all(set(PROF["method_params"][m]) == set(M.METHODS[m].params) for m in NINE)


def test_ct_network_on_x_is_the_original_on_x_transposed(digits):
    net, _, split = digits
    x = torch.rand(5, 1, 14, 14, generator=torch.Generator().manual_seed(1))
    t = DU.transpose_network(copy.deepcopy(net), (1, 14, 14)).eval()
    # equal up to float summation order (the permuted columns are summed in another order)
    torch.testing.assert_close(t(x), net.eval()(x.transpose(2, 3)), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(t(x), net(x))
    res = models.build({"arch": "resnet18", "width": 4}, 20, (3, 32, 32), 0).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    rt = DU.transpose_network(copy.deepcopy(res), (3, 32, 32)).eval()
    torch.testing.assert_close(rt(x), res(x.transpose(2, 3)), rtol=1e-4, atol=1e-5)


def test_ng_plus_one_step_by_hand(digits):
    """One retain batch and one forget batch, no momentum: θ' = θ − lr·∇[α CE_r − (1 − α) CE_f]
    in eval mode (reference) and train mode (corrected)."""
    net, recipe, split = digits
    for mode, train_mode in (("reference", False), ("corrected", True)):
        out = call("ng_plus", net, split, recipe, mode, epochs=1, batch=10**6, momentum=0.0, alpha=0.7, lr=0.05)
        ref = copy.deepcopy(net).train(train_mode)
        (xr, yr), (xf, yf) = xy(split, split.retain), xy(split, split.forget)
        loss = 0.7 * F.cross_entropy(ref(xr), yr) - 0.3 * F.cross_entropy(ref(xf), yf)
        grads = torch.autograd.grad(loss, list(ref.parameters()))
        for (n, q), g, q0 in zip(out.named_parameters(), grads, ref.parameters()):
            torch.testing.assert_close(q, q0 - 0.05 * g, rtol=1e-4, atol=1e-6, msg=f"{mode} {n}")


def test_gradient_ascent_one_step_by_hand(digits):
    net, recipe, split = digits
    out = call("gradient_ascent", net, split, recipe, epochs=1, batch=10**6, momentum=0.0, weight_decay=0.0, lr=0.1)
    ref = copy.deepcopy(net).train()
    xf, yf = xy(split, split.forget)
    grads = torch.autograd.grad(F.cross_entropy(ref(xf), yf), list(ref.parameters()))
    for q, g, q0 in zip(out.parameters(), grads, ref.parameters()):
        torch.testing.assert_close(q, q0 + 0.1 * g, rtol=1e-4, atol=1e-6)


def test_srl_reference_labels_repeat_every_epoch_corrected_draw_from_s_u(digits):
    _, _, split = digits
    p = PROF["method_params"]["srl"]
    nf, C = len(split.forget), split.num_classes
    seq = torch.from_numpy(np.random.RandomState(123).randint(0, C, nf))
    for mode in ("reference", "corrected"):
        gen = torch.Generator().manual_seed(5)
        ctx = M.Context(mode, {}, MLP)
        per_epoch = []
        for _ in range(2):
            twin = torch.Generator()
            twin.set_state(gen.get_state())
            order = torch.randperm(nf + len(split.retain), generator=twin)  # the epoch's loading order
            y = torch.cat([yb for _, yb in DU._relabel_epoch(split, p, ctx, gen)])
            per_epoch.append(y[order < nf])  # the forget samples' labels, in loading order
        if mode == "reference":
            assert all(torch.equal(y, seq) for y in per_epoch)  # quirk: RandomState(123) every epoch
        else:
            assert not torch.equal(per_epoch[0], per_epoch[1]) and not torch.equal(per_epoch[0], seq)
            assert set(torch.cat(per_epoch).tolist()) == set(range(C))  # the true class can be drawn


def test_salun_mask_size_and_cumulative_gradient(digits):
    """Two forget batches with gradients g1, g2: the reference ranks |2·g1 + g2| (the copy's .grad is
    never zeroed), corrected |g1 + g2|; either way exactly ⌊threshold·N⌋ entries are kept."""
    net, _, split = digits
    half = (len(split.forget) + 1) // 2
    p = {**PROF["method_params"]["salun"], "batch": half, "threshold": 0.3}
    n_params = sum(q.numel() for q in net.parameters())
    order = torch.randperm(len(split.forget), generator=torch.Generator().manual_seed(7))
    xf, yf = xy(split, split.forget)
    m = copy.deepcopy(net).eval()
    g = [torch.autograd.grad(-F.cross_entropy(m(xb), yb), list(m.parameters()))
         for xb, yb in zip(xf[order].split(half), yf[order].split(half))]
    for mode, weights in (("reference", (2, 1)), ("corrected", (1, 1))):
        mask = DU.saliency_mask(net, split, p, M.Context(mode, {}, MLP), torch.Generator().manual_seed(7))
        assert int(sum(v.sum() for v in mask.values())) == int(0.3 * n_params)
        G = torch.cat([(weights[0] * a + weights[1] * b).abs().flatten() for a, b in zip(*g)])
        flat = torch.cat([v.flatten() for v in mask.values()])
        # the kept entries are the largest |G|: every kept one at least as large as every dropped one
        assert G[flat == 1].min() >= G[flat == 0].max()


def test_salun_moves_only_masked_entries(digits):
    net, recipe, split = digits
    p = {**PROF["method_params"]["salun"], "threshold": 0.2, "epochs": 1}
    mask = DU.saliency_mask(net, split, p, M.Context("reference", {}, MLP), torch.Generator().manual_seed(2))
    out = call("salun", net, split, recipe, seed=2, threshold=0.2, epochs=1)
    moved = 0
    for (n, q), q0 in zip(out.named_parameters(), net.parameters()):
        assert torch.equal(q[mask[n] == 0], q0[mask[n] == 0]), n
        moved += int((q != q0).sum())
    # most salient entries move (a bias before BatchNorm gets no gradient in train mode, nor a
    # weight whose input pixel is blank in every digit of a batch)
    assert moved > 0.75 * sum(int(v.sum()) for v in mask.values())


def test_scrub_lr_schedule_and_max_steps(digits, monkeypatch):
    assert [DU._step_decay(5e-4, e, 5) for e in range(1, 6)] == pytest.approx([5e-4, 5e-4, 5e-5, 5e-5, 5e-7])
    net, recipe, split = digits
    calls = []
    real = DU.distill_kl
    monkeypatch.setattr(DU, "distill_kl", lambda s, t, T: calls.append(len(s)) or real(s, t, T))
    call("scrub", net, split, recipe, epochs=3, msteps=2, retain_batch=512, forget_batch=64)
    n_f, n_r = math.ceil(len(split.forget) / 64), math.ceil(len(split.retain) / 512)
    assert len(calls) == 2 * n_f + 3 * n_r  # max steps in epochs 1-2 only, min steps every epoch


def test_scrub_checkpoint_choice():
    """i* = argmin_i |err_f[i] − err_fv|, ties to the first index."""
    assert DU.scrub_checkpoint([40, 9, 8, 7], 40) == 0
    assert DU.scrub_checkpoint([0, 5, 3, 5], 5) == 1
    assert DU.scrub_checkpoint([0, 40, 1, 1], 1) == 2


@pytest.mark.parametrize("errors,expect", [([40, 9, 8, 40], {"reference": "final", "corrected": "original"}),
                                           ([0, 1, 40, 40], {"reference": "final", "corrected": "final"}),
                                           ([0, 40, 1, 40], {"reference": "first", "corrected": "first"})])
def test_scrub_returns_the_chosen_checkpoint(digits, monkeypatch, errors, expect):
    """errors = err_f[0..E] then the final forget-validation error (E = 2). i* = 0 returns the
    final student in the reference (quirk), the original when corrected; i* = 1 the student after
    epoch 1, which is neither."""
    net, recipe, split = digits
    got = {}
    for mode in ("reference", "corrected"):
        seq = iter(errors)
        monkeypatch.setattr(DU, "_error", lambda *a: next(seq))
        got[mode] = call("scrub", net, split, recipe, mode, epochs=2, msteps=1, retain_batch=256).state_dict()
    final = got["reference"] if expect["reference"] == "final" else None
    for mode, which in expect.items():
        same_as_original = all(torch.equal(got[mode][k], v) for k, v in net.state_dict().items())
        assert same_as_original == (which == "original"), mode
    if expect["reference"] == "first":
        seq = iter([0, 1, 40, 40])  # the same run, returning its final student (i* = 2)
        monkeypatch.setattr(DU, "_error", lambda *a: next(seq))
        final = call("scrub", net, split, recipe, "reference", epochs=2, msteps=1, retain_batch=256).state_dict()
        assert not all(torch.equal(got["reference"][k], v) for k, v in final.items())
    elif final is not None:
        assert all(torch.equal(got["corrected"][k], final[k]) for k in final) == (expect["corrected"] == "final")


def test_msg_reinitialises_the_smallest_gradients_and_scales_the_rest(digits):
    net, recipe, split = digits
    rate = 0.3
    # one batch for the fine-tuning step below; in reference mode it is also D_f's gradient batch
    p = {**PROF["method_params"]["msg"], "init_rate": rate, "momentum": 0.0, "weight_decay": 0.0, "batch": 10**6}
    reinit = call("msg", net, split, recipe, seed=4, **{**p, "epochs": 0})
    # g, computed independently with the same draws: a retain subset of |D_f|, both passes shuffled
    gen = torch.Generator().manual_seed(4)
    (xr, yr), (xf, yf) = xy(split, split.retain), xy(split, split.forget)
    sub = torch.randperm(len(xr), generator=gen)[:len(xf)]
    m = copy.deepcopy(net).train()
    w = m.features[1].weight
    g = torch.zeros_like(w)
    # Deep Unlearn's batches (reference): 64 for the retain subset, the configured batch for D_f
    for x, y, sign, batch in ((xr[sub], yr[sub], 1, p["grad_batch"]), (xf, yf, -1, p["batch"])):
        o = torch.randperm(len(x), generator=gen)
        for xb, yb in zip(x[o].split(batch), y[o].split(batch)):
            g += sign * torch.autograd.grad(F.cross_entropy(m(xb), yb), w)[0]
    changed = reinit.features[1].weight != net.features[1].weight
    k = round(rate * w.numel())
    assert int(changed.sum()) == k  # exactly the intended fraction of the hidden layer ...
    assert g.abs()[changed].max() <= g.abs()[~changed].min()  # ... with the smallest |g|
    assert torch.equal(reinit.fc.weight, net.fc.weight)  # the classifier is never re-initialised
    # one full-batch fine-tuning step without momentum: kept weights move by 0.1 x the gradient
    one = call("msg", net, split, recipe, seed=4, **{**p, "epochs": 1, "lr": 0.1})
    m2 = copy.deepcopy(reinit).train()
    # the same BatchNorm statistics path: reinit's running stats moved in the gradient pass as one's did
    grad = torch.autograd.grad(F.cross_entropy(m2(xr), yr), m2.features[1].weight)[0]
    scale = torch.where(changed, 1.0, 0.1)
    torch.testing.assert_close(one.features[1].weight, reinit.features[1].weight - 0.1 * grad * scale,
                               rtol=1e-4, atol=1e-7)


def test_cf_k_trains_only_the_last_block_and_eu_k_reinitialises_it(cifar_root):
    data = D.load_cifar100(cifar_root)
    split = D.make_split(data, "cifar20", "full_class", "vehicle2")
    cfg = {"arch": "resnet18", "width": 4}
    net = models.build(cfg, 20, (3, 32, 32), 0)
    p = {"epochs": 1, "lr": 0.01, "batch": 64, "k": 1, "l2": 0.1, "decay_rate": 0.1}
    ctx = M.Context("reference", {"augment": {"crop_pad": 4, "flip": True, "rotate": 0}}, cfg)
    for name in ("cf_k", "eu_k"):
        out = M.METHODS[name].fn(copy.deepcopy(net), split, p, ctx, torch.Generator().manual_seed(1))
        before, after = net.state_dict(), out.state_dict()
        for k in before:
            same = torch.equal(before[k], after[k])
            trainable = (k.startswith("layer4") or k.startswith("fc")) and "running" not in k and "num_batches" not in k
            assert same != trainable, (name, k)
    # EU-k's start: BatchNorm weights 1, biases 0, Linear Xavier-uniform within its bound
    fresh = copy.deepcopy(net)
    DU._reinit(DU.last_blocks(fresh, 1), torch.Generator().manual_seed(0), "reference")
    bn = fresh.layer4[0].residual[1]
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and not bn.bias.any() and not fresh.fc.bias.any()
    bound = math.sqrt(6 / (fresh.fc.in_features + fresh.fc.out_features))
    assert fresh.fc.weight.abs().max() <= bound


def test_msg_passes_its_two_gradient_sets_in_deep_unlearns_batches_when_reference(digits, monkeypatch):
    """Reference: the retain subset in batches of ``grad_batch`` (Deep Unlearn's fixed 64), D_f in
    the configured ``batch``; corrected: both in ``grad_batch``."""
    net, recipe, split = digits
    seen = []
    real = DU._shuffled
    monkeypatch.setattr(DU, "_shuffled", lambda x, y, batch, gen: seen.append(batch) or real(x, y, batch, gen))
    for mode in ("reference", "corrected"):
        seen.clear()
        call("msg", net, split, recipe, mode, grad_batch=64, batch=200, epochs=0)
        assert seen == ([64, 200] if mode == "reference" else [64, 64]), mode


class TinyCNN(torch.nn.Module):
    """One convolution with a bias, then a classifier: what MSG's fresh-bias quirk needs."""
    def __init__(self):
        super().__init__()
        self.conv, self.fc = torch.nn.Conv2d(1, 4, 3), torch.nn.Linear(4 * 12 * 12, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_msg_gives_a_convolution_with_a_bias_a_fresh_one_when_reference(digits):
    """Deep Unlearn's MaskConv2d copies the old weight only: a conv layer's bias is drawn anew
    (torch's default, within 1/sqrt(fan_in)), from s_u; corrected keeps the trained bias."""
    _, recipe, split = digits
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = TinyCNN()
    out = {mode: [call("msg", net, split, recipe, mode, seed=s, epochs=0) for s in (1, 2)] for mode in ("reference", "corrected")}
    ref, cor = out["reference"], out["corrected"]
    assert not torch.equal(ref[0].conv.bias, net.conv.bias) and not torch.equal(ref[0].conv.bias, ref[1].conv.bias)
    assert ref[0].conv.bias.abs().max() <= 1 / 3  # fan_in = 1 x 3 x 3
    assert all(torch.equal(m.conv.bias, net.conv.bias) for m in cor)
    assert torch.equal(ref[0].conv.weight, cor[0].conv.weight)  # the same weights chosen and drawn


def test_eu_k_resets_a_batchnorm1d_only_when_corrected(digits):
    """Deep Unlearn's init_weights resets BatchNorm2d only: the MLP's trained BatchNorm1d keeps its
    affine parameters in reference mode, and is reset (weight 1, bias 0) when corrected."""
    net, recipe, split = digits
    bn = net.features[2]
    assert not torch.equal(bn.weight, torch.ones_like(bn.weight)) and bn.bias.abs().sum() > 0  # trained
    for mode in ("reference", "corrected"):
        fresh = copy.deepcopy(net)
        DU._reinit(DU.last_blocks(fresh, 1), torch.Generator().manual_seed(0), mode)
        b = fresh.features[2]
        if mode == "reference":
            assert torch.equal(b.weight, bn.weight) and torch.equal(b.bias, bn.bias)
        else:
            assert torch.equal(b.weight, torch.ones_like(b.weight)) and not b.bias.any()
        assert not fresh.features[1].bias.any() and not torch.equal(fresh.features[1].weight, net.features[1].weight)


def test_eu_k_augments_as_deep_unlearn_does_when_reference():
    """Reference: Deep Unlearn's transform per dataset (CIFAR crop 4 and flip; the digits a flip);
    corrected: the original model's training augmentation."""
    recipe = {"augment": {"crop_pad": 4, "flip": True, "rotate": 15}}
    ref, cor = (M.Context(mode, recipe, MLP) for mode in ("reference", "corrected"))
    assert DU.eu_k_augment("cifar20", ref) == {"crop_pad": 4, "flip": True, "rotate": 0}
    assert DU.eu_k_augment("mnist10", ref) == {"crop_pad": 0, "flip": True, "rotate": 0}
    assert DU.eu_k_augment("cifar100", cor) == recipe["augment"]


def test_scrub_forget_validation_is_the_super_class_when_reference_and_sub_class():
    """Deep Unlearn takes the test samples whose label occurs in D_f: in the sub-class setting the
    labels are super-classes, so digit 7's pair, {1, 7}; corrected keeps the forgotten class."""
    data = D.load({"source": "mnist5k", "image_size": 7})
    split = D.make_split(data, "mnist5", "sub_class", "7")
    ref, cor = DU.forget_validation(split, "reference"), DU.forget_validation(split, "corrected")
    assert set(data.test_fine[ref].tolist()) == {1, 7} and len(ref) == int(((data.test_fine == 1) | (data.test_fine == 7)).sum())
    assert torch.equal(cor, split.test_forget) and set(data.test_fine[cor].tolist()) == {7}
    full = D.make_split(data, "mnist10", "full_class", "7")
    assert torch.equal(DU.forget_validation(full, "reference"), full.test_forget)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["reference", "corrected"])
def test_all_nine_run_on_a_resnet18_and_are_functions_of_s_u(cifar_root, mode):
    data = D.load_cifar100(cifar_root)
    split = D.make_split(data, "cifar20", "sub_class", "rocket")
    cfg = {"arch": "resnet18", "width": 4}
    net = models.build(cfg, 20, (3, 32, 32), 0)
    ctx = M.Context(mode, {"augment": {"crop_pad": 4, "flip": True, "rotate": 0}}, cfg)
    small = {"epochs": 1, "batch": 64, "retain_batch": 64}
    for name in NINE:
        p = {k: small.get(k, v) for k, v in PROF["method_params"][name].items()}
        runs = [M.METHODS[name].fn(copy.deepcopy(net), split, p, ctx, torch.Generator().manual_seed(s)).state_dict()
                for s in (1, 1, 2)]
        assert all(torch.isfinite(v.float()).all() for v in runs[0].values()), name
        assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0]), name  # same s_u, same model
        moved = any(not torch.equal(runs[0][k], net.state_dict()[k]) for k in runs[0])
        # corrected SCRUB may rightly return the original (its checkpoint 0) after one epoch
        assert moved or (name, mode) == ("scrub", "corrected"), name


@pytest.mark.parametrize("field,value,allowed", [("salun.threshold", 0, "> 0"), ("salun.threshold", 1.5, "<= 1"),
                                                 ("msg.init_rate", -0.1, ">= 0"), ("msg.init_rate", 1.2, "<= 1")])
def test_out_of_range_parameters_stop_the_run_naming_the_field(field, value, allowed):
    with pytest.raises(ConfigError, match=rf"method_params\.{field} must be .*{allowed}"):
        profiles.load("classroom", {f"method_params.{field}": value})


def test_a_misspelt_method_is_refused_with_the_allowed_names():
    with pytest.raises(ConfigError, match="ng_plus"):
        profiles.load("classroom", {"methods": ["original", "ngplus"]})
