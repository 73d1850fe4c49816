"""Deep Unlearn's baselines (Cadet et al., arXiv 2410.01276), one function each beside its loss.

Same signature as ``methods``: ``(model, split, p, ctx, gen) -> model``; every random draw (loader
orders, relabels, subsets, re-initialisations) comes from ``gen``, the unlearning seed s_u, where
Deep Unlearn draws from torch's global generator. Facts cited as "DU §N" are in
``shared/reference/deepunlearn-facts.md``; Deep Unlearn's quirks are named ``quirk (reference)``
where they live and fixed in ``corrected`` mode.

Two networks: on a network with ``nn.Conv2d`` layers (the CIFAR ResNet-18) ``reference`` mode
does what Deep Unlearn's code does. The classroom MLP has none, so MSG and CT act on its analogues
(DU §13): MSG re-initialises the hidden ``nn.Linear`` weights (never the classifier ``fc``, as Deep
Unlearn never touches it), CT permutes the first layer's input columns by the image transpose,
and a "block" of CF-k / EU-k is the hidden layer (the MLP has one, so k = 1 trains everything).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data as D
from . import train
from .metrics import accuracy, logits


def _xy(split, idx):
    return D.normalise(split.data.train_x[idx], split.data), split.y_train[idx]


def _shuffled(x, y, batch, gen):
    """One epoch of mini-batches in an order drawn from ``gen`` (a loader with shuffle=True)."""
    order = torch.randperm(len(x), generator=gen).to(x.device)
    return list(zip(x[order].split(batch), y[order].split(batch)))


def _sgd(params, p, momentum=None, wd=None):
    return torch.optim.SGD(params, lr=p["lr"], momentum=p.get("momentum", 0.0) if momentum is None else momentum,
                           weight_decay=p.get("weight_decay", 0.0) if wd is None else wd)


def _set_lr(opt, lr):
    for g in opt.param_groups:
        g["lr"] = lr


def _step(opt, loss):
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _step_decay(lr, epoch, epochs, rate=0.1):
    """SCRUB's ``adjust_learning_rate`` as Deep Unlearn calls it: lr · rate^#{d : epoch > d} over
    the decay epochs [⌊E/2⌋, ⌊0.8E⌋, ⌊0.9E⌋] (DU §4, §8)."""
    decay = [int(epochs * f) for f in (0.5, 0.8, 0.9)]
    return lr * rate ** sum(epoch > d for d in decay)


# --- NG+ (DU §1) ---------------------------------------------------------------------------

def ng_plus(model, split, p, ctx, gen):
    """NG+: L = α·CE(f(x_r), y_r) − (1 − α)·CE(f(x_f), y_f) per step, over the retain batches with
    the forget batches cycled beside them (the L2-to-original term is off: λ = 0 by default).

    quirk (reference): the whole run is in eval mode (BatchNorm frozen), as SCRUB's notebook;
    corrected trains in train mode.
    """
    xr, yr = _xy(split, split.retain)
    xf, yf = _xy(split, split.forget)
    opt = _sgd(model.parameters(), p, wd=0.0)
    model.train(ctx.mode == "corrected")
    a = p["alpha"]
    for _ in range(p["epochs"]):
        forget = _shuffled(xf, yf, p["batch"], gen)  # itertools.cycle replays the first pass's order
        for i, (xb, yb) in enumerate(_shuffled(xr, yr, p["batch"], gen)):
            xfb, yfb = forget[i % len(forget)]
            _step(opt, a * F.cross_entropy(model(xb), yb) - (1 - a) * F.cross_entropy(model(xfb), yfb))
    return model


# --- GA (DU §2) ----------------------------------------------------------------------------

def gradient_ascent(model, split, p, ctx, gen):
    """Gradient ascent: L = −CE(f(x_f), y_f) per forget batch, in train mode."""
    xf, yf = _xy(split, split.forget)
    opt = _sgd(model.parameters(), p)
    model.train()
    for _ in range(p["epochs"]):
        for xb, yb in _shuffled(xf, yf, p["batch"], gen):
            _step(opt, -F.cross_entropy(model(xb), yb))
    return model


# --- SRL and SalUn (DU §3, §5) ---------------------------------------------------------------

def _relabel_epoch(split, p, ctx, gen):
    """One epoch of Deep Unlearn's ``RandomRelabel`` data: D_f (relabelled) and D_r shuffled
    together. Labels are uniform over all C classes (the true one included).

    quirk (reference): a fresh ``RandomState(123)`` per epoch hands out labels in loading order,
    so the label sequence is the same every epoch and s_u enters only through the shuffle;
    corrected draws the labels from s_u."""
    xf, _ = _xy(split, split.forget)
    xr, yr = _xy(split, split.retain)
    nf, C = len(xf), split.num_classes
    order = torch.randperm(nf + len(xr), generator=gen).to(xr.device)
    is_forget = order < nf
    if ctx.mode == "reference":
        seq = torch.from_numpy(np.random.RandomState(123).randint(0, C, nf)).to(yr.device)
    else:
        seq = torch.randint(0, C, (nf,), generator=gen).to(yr.device)
    x = torch.cat([xf, xr])[order]
    y = torch.cat([torch.zeros(nf, dtype=yr.dtype, device=yr.device), yr])[order]
    y[is_forget] = seq  # the k-th forget sample loaded gets the k-th label
    return zip(x.split(p["batch"]), y.split(p["batch"]))


def _relabel_train(model, split, p, ctx, gen, opt, mask=None, schedule=None):
    model.train()
    for e in range(p["epochs"]):
        if schedule:
            _set_lr(opt, schedule(e))
        for xb, yb in _relabel_epoch(split, p, ctx, gen):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            if mask is not None:
                for n, q in model.named_parameters():
                    q.grad *= mask[n]
            opt.step()
    return model


def srl(model, split, p, ctx, gen):
    """Successive Random Labels: CE on D_r ∪ D_f with D_f's labels drawn at random each epoch.

    quirk (reference): the cosine schedule Deep Unlearn builds is discarded, so the lr is
    constant; corrected anneals it per epoch, lr·(1 + cos(π e / E)) / 2."""
    opt = _sgd(model.parameters(), p)
    cosine = None if ctx.mode == "reference" else \
        (lambda e: p["lr"] * (1 + math.cos(math.pi * e / p["epochs"])) / 2)
    return _relabel_train(model, split, p, ctx, gen, opt, schedule=cosine)


def saliency_mask(model, split, p, ctx, gen) -> dict:
    """SalUn's weight saliency: abs(G) of the forget loss's gradient G, summed over forget batches;
    the top ``threshold`` fraction of all entries (one global ranking) is 1, the rest 0.

    quirk (reference): Deep Unlearn zeroes another model's gradients, so the copy's ``.grad``
    accumulates and G = Σ_b (B − b + 1)·g_b, which depends on the forget order; corrected sums
    each batch's gradient once, G = Σ_b g_b."""
    m = copy.deepcopy(model).eval()
    xf, yf = _xy(split, split.forget)
    G = {n: torch.zeros_like(q) for n, q in m.named_parameters()}
    for xb, yb in _shuffled(xf, yf, p["batch"], gen):
        if ctx.mode == "corrected":
            m.zero_grad(set_to_none=True)
        (-F.cross_entropy(m(xb), yb)).backward()
        for n, q in m.named_parameters():
            G[n] += q.grad
    flat = torch.cat([g.abs().flatten() for g in G.values()])
    k = int(p["threshold"] * len(flat))
    keep = torch.zeros(len(flat), device=flat.device)
    keep[torch.argsort(flat, descending=True, stable=True)[:k]] = 1
    return {n: part.view_as(g) for (n, g), part in zip(G.items(), keep.split([g.numel() for g in G.values()]))}


def salun(model, split, p, ctx, gen):
    """SalUn: random-label training (as SRL) with each gradient multiplied by the saliency mask."""
    mask = saliency_mask(model, split, p, ctx, gen)
    opt = _sgd(model.parameters(), p)
    return _relabel_train(model, split, p, ctx, gen, opt, mask=mask)


# --- SCRUB (DU §4) ---------------------------------------------------------------------------

def distill_kl(out_s, out_t, T):
    """DistillKL: T²/B · Σ KL(softmax(t/T) ‖ softmax(s/T))."""
    return F.kl_div(F.log_softmax(out_s / T, 1), F.softmax(out_t / T, 1), reduction="sum") * T * T / len(out_s)


def _error(model, idx_x, y, data):
    return 100 - accuracy(logits(model, idx_x, data), y, "corrected")


def scrub_checkpoint(err_f: list, err_fv: float) -> int:
    """SCRUB's choice: the index i (0 = the original) whose forget error is closest to the final
    student's forget-validation error; ties go to the first."""
    return int(np.argmin([abs(v - err_fv) for v in err_f]))


def forget_validation(split, mode: str) -> torch.Tensor:
    """SCRUB's forget-validation set: test samples like the forget set.

    quirk (reference): Deep Unlearn takes the validation samples whose *label* occurs in the forget
    set; in the sub-class setting the labels are super-classes, so that is the whole super-class
    (both digits of a pair, all five fine classes of a CIFAR-20 class), not the forgotten class.
    corrected: the forgotten class's test samples, the set whose error SCRUB means to match
    (the same in the full-class setting, and under random forgetting all of the test set)."""
    if mode == "reference" and split.setting == "sub_class":
        labels = split.y_train[split.forget].unique()
        return torch.nonzero(torch.isin(split.y_test, labels)).flatten()
    return split.test_forget


def scrub(model, split, p, ctx, gen):
    """SCRUB: per epoch, max steps (e ≤ msteps) push the student from the teacher on D_f,
    L = −KL(s, t); min steps keep it on D_r, L = γ·CE + α·KL(s, t); lr decays at ⌊E/2⌋, ⌊0.8E⌋,
    ⌊0.9E⌋. The returned checkpoint i* = argmin_i abs(err_f[i] − err_fv[E]) has the forget error
    closest to the final student's error on the forget-validation set (``forget_validation``)."""
    data, T = split.data, p["T"]
    teacher = copy.deepcopy(model).eval()
    original = copy.deepcopy(model.state_dict())
    xr, yr = _xy(split, split.retain)
    xf, yf = _xy(split, split.forget)
    opt = _sgd(model.parameters(), p)
    E = p["epochs"]
    err_f, ckpt = [], {}
    fv = forget_validation(split, ctx.mode)
    raw_f, raw_fv = data.train_x[split.forget], data.test_x[fv]
    for e in range(1, E + 1):
        _set_lr(opt, _step_decay(p["lr"], e, E))
        err_f.append(_error(model, raw_f, yf, data))  # the student after e - 1 epochs
        model.train()
        if e <= p["msteps"]:
            for xb in xf.split(p["forget_batch"]):  # forget is not shuffled
                with torch.no_grad():
                    t = teacher(xb)
                _step(opt, -distill_kl(model(xb), t, T))
        for xb, yb in _shuffled(xr, yr, p["retain_batch"], gen):
            with torch.no_grad():
                t = teacher(xb)
            out = model(xb)
            _step(opt, p["gamma"] * F.cross_entropy(out, yb) + p["kd_alpha"] * distill_kl(out, t, T))
        ckpt[e] = copy.deepcopy(model.state_dict())
    err_f.append(_error(model, raw_f, yf, data))
    err_fv = _error(model, raw_fv, split.y_test[fv], data)
    best = scrub_checkpoint(err_f, err_fv)
    if best >= 1:
        model.load_state_dict(ckpt[best])
    elif ctx.mode == "corrected":
        model.load_state_dict(original)
    # quirk (reference): i* = 0 (the original) returns the final student
    return model


# --- MSG (DU §6) ---------------------------------------------------------------------------

def reinit_targets(model) -> list:
    """The layers MSG re-initialises: every ``nn.Conv2d`` (Deep Unlearn); on a network without one
    (the classroom MLP), every hidden ``nn.Linear`` (the analogue; the classifier ``fc`` never)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs or [m for m in model.modules() if isinstance(m, nn.Linear) and m is not model.fc]


def msg(model, split, p, ctx, gen):
    """Masked Small Gradients: (1) g = Σ ∇CE on a random retain subset the size of D_f − Σ ∇CE on D_f
    (batches of 64, gradients never zeroed in between, train mode); (2) per layer, the
    ``init_rate`` fraction of weights with the smallest abs(g) take new Kaiming-normal (fan_out, ReLU)
    values, and the other weights' gradients are scaled by 0.1; (3) fine-tune on D_r with a linear
    warm-up and decay per epoch, lr·e/A for e ≤ A, lr·(T − e)/(T − A) after (A = ⌊(E+1)/2⌋, T = E + 1).
    """
    xr, yr = _xy(split, split.retain)
    xf, yf = _xy(split, split.forget)
    model.train()  # Deep Unlearn never sets a mode: BatchNorm statistics move in the gradient pass
    model.zero_grad(set_to_none=True)
    sub = torch.randperm(len(xr), generator=gen)[:len(xf)].to(xr.device)
    # quirk (reference): the retain subset's loader has Deep Unlearn's fixed batch of 64
    # (``grad_batch``), the forget loader the configured batch size; corrected passes both in
    # batches of ``grad_batch``, so the two gradient sums being subtracted are alike
    forget_batch = p["batch"] if ctx.mode == "reference" else p["grad_batch"]
    for xb, yb in _shuffled(xr[sub], yr[sub], p["grad_batch"], gen):
        F.cross_entropy(model(xb), yb).backward()
    for xb, yb in _shuffled(xf, yf, forget_batch, gen):
        (-F.cross_entropy(model(xb), yb)).backward()
    hooks = []
    with torch.no_grad():
        for layer in reinit_targets(model):
            w = layer.weight
            k = round(p["init_rate"] * w.numel())
            chosen = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
            chosen[torch.topk(-w.grad.abs().flatten(), k).indices] = True
            chosen = chosen.view_as(w)
            fresh = torch.empty(w.shape)  # drawn on the CPU, where the s_u generator lives
            nn.init.kaiming_normal_(fresh, mode="fan_out", nonlinearity="relu", generator=gen)
            w[chosen] = fresh.to(w.device)[chosen]
            if ctx.mode == "reference" and isinstance(layer, nn.Conv2d) and layer.bias is not None:
                # quirk (reference): the new MaskConv2d copies the old weight only, so a convolution
                # with a bias gets a fresh one (torch's default draw; ResNet-18's convolutions have
                # none); corrected keeps the trained bias, as MSG means to reset chosen weights only
                bound = 1 / math.sqrt(w[0].numel())
                layer.bias.copy_(torch.empty(layer.bias.shape).uniform_(-bound, bound, generator=gen).to(w.device))
            scale = torch.where(chosen, 1.0, 0.1)
            hooks.append(w.register_hook(lambda g, s=scale: g * s))
    model.zero_grad(set_to_none=True)
    opt = _sgd(model.parameters(), p)
    E = p["epochs"]
    A, T = (E + 1) // 2, E + 1
    model.train()
    for e in range(1, E + 1):
        _set_lr(opt, p["lr"] * (e / A if e <= A else (T - e) / (T - A)))
        for xb, yb in _shuffled(xr, yr, p["batch"], gen):
            _step(opt, F.cross_entropy(model(xb), yb))
    for h in hooks:
        h.remove()
    return model


# --- CT (DU §7) ----------------------------------------------------------------------------

def transpose_network(model, in_shape):
    """Make ``model`` compute f(xᵀ): every Conv2d kernel transposed (Deep Unlearn); without a
    Conv2d, the first Linear layer's input columns permuted by the image transpose (the analogue)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for c in convs:
            c.weight = nn.Parameter(c.weight.swapaxes(2, 3).contiguous())
        if not convs:
            first = next(m for m in model.modules() if isinstance(m, nn.Linear))
            perm = torch.arange(math.prod(in_shape)).view(in_shape).transpose(-1, -2).flatten()
            first.weight.copy_(first.weight[:, perm.to(first.weight.device)])
    return model


def ct(model, split, p, ctx, gen):
    """Convolution Transpose: transpose the network (f(x) becomes f(xᵀ)), then fine-tune on D_r
    with a cosine lr per epoch, lr·(1 + cos(π e / E)) / 2 for e = 0 .. E − 1."""
    transpose_network(model, tuple(split.data.train_x.shape[1:]))
    xr, yr = _xy(split, split.retain)
    opt = _sgd(model.parameters(), p)
    model.train()
    for e in range(p["epochs"]):
        _set_lr(opt, p["lr"] * (1 + math.cos(math.pi * e / p["epochs"])) / 2)
        for xb, yb in _shuffled(xr, yr, p["batch"], gen):
            _step(opt, F.cross_entropy(model(xb), yb))
    return model


# --- CF-k and EU-k (DU §8) -------------------------------------------------------------------

def last_blocks(model, k: int) -> list:
    """The last k blocks and the classifier: ResNet's layer1..layer4, the MLP's hidden layer."""
    blocks = [model.layer1, model.layer2, model.layer3, model.layer4] if hasattr(model, "layer4") \
        else [model.features]
    return blocks[-k:] + [model.fc]


def _reinit(modules, gen, mode: str):
    """EU-k's ``init_weights``: Conv2d Kaiming-uniform (fan_out, ReLU), BatchNorm weight 1 and
    bias 0 (running statistics kept), Linear Xavier-uniform; biases 0.

    quirk (reference): Deep Unlearn's ``init_weights`` resets ``BatchNorm2d`` only, so an MLP's
    ``BatchNorm1d`` keeps its trained affine parameters; corrected resets both, as EU-k means to
    re-initialise the blocks it retrains whole."""
    norms = (nn.BatchNorm2d,) if mode == "reference" else (nn.BatchNorm1d, nn.BatchNorm2d)
    def draw(w, init, **kw):  # on the CPU, where the s_u generator lives, then to the weight's device
        fresh = torch.empty(w.shape)
        init(fresh, generator=gen, **kw)
        w.copy_(fresh)

    with torch.no_grad():
        for mod in modules:
            for m in mod.modules():
                if isinstance(m, nn.Conv2d):
                    draw(m.weight, nn.init.kaiming_uniform_, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, norms):
                    m.weight.fill_(1)
                elif isinstance(m, nn.Linear):
                    draw(m.weight, nn.init.xavier_uniform_)
                if isinstance(m, (nn.Conv2d, nn.Linear, *norms)) and m.bias is not None:
                    m.bias.zero_()


# Deep Unlearn's augmented retain loader, per dataset (DU §8): CIFAR's random crop (padding 4) and
# horizontal flip, the digits' horizontal flip alone
DU_AUGMENT = {"cifar": {"crop_pad": 4, "flip": True, "rotate": 0}, "mnist": {"crop_pad": 0, "flip": True, "rotate": 0}}


def eu_k_augment(dataset: str, ctx) -> dict | None:
    """EU-k's augmentation of D_r. quirk (reference): Deep Unlearn's own transform for the dataset
    (``DU_AUGMENT``; a flipped digit is another shape, and the paper profile's 15-degree rotation is
    not in it); corrected: the original model's training augmentation, what it learnt D_r with."""
    if ctx.mode == "reference":
        return DU_AUGMENT["cifar" if dataset.startswith("cifar") else "mnist"]
    return ctx.recipe.get("augment")


def _last_k(model, split, p, ctx, gen, reinit: bool):
    trainable = last_blocks(model, p["k"])
    model.requires_grad_(False)
    for mod in trainable:
        mod.requires_grad_(True)
    if reinit:
        _reinit(trainable, gen, ctx.mode)
    start = {n: q.detach().clone() for n, q in model.named_parameters() if q.requires_grad}
    opt = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=p["lr"])  # no momentum, wd 0
    raw, yr = split.data.train_x[split.retain], split.y_train[split.retain]
    aug = eu_k_augment(split.dataset, ctx) if reinit else None  # EU-k trains on augmented D_r
    model.eval()  # Deep Unlearn's run_train_epoch trains in eval mode (BatchNorm frozen)
    for e in range(p["epochs"]):
        _set_lr(opt, _step_decay(p["lr"], e, p["epochs"], p["decay_rate"]))
        order = torch.randperm(len(raw), generator=gen).to(raw.device)
        x = raw[order]
        x = D.normalise(train.augment(x, gen, **aug) if aug else x, split.data)
        for xb, yb in zip(x.split(p["batch"]), yr[order].split(p["batch"])):
            l2 = sum((q - start[n]).pow(2).sum() for n, q in model.named_parameters() if q.requires_grad)
            _step(opt, F.cross_entropy(model(xb), yb) + p["l2"] / 2 * l2)
    model.requires_grad_(True)
    return model


def cf_k(model, split, p, ctx, gen):
    """CF-k: train only the last k blocks and the classifier on D_r, L = CE + (λ/2)·‖θ − θ_0‖²."""
    return _last_k(model, split, p, ctx, gen, reinit=False)


def eu_k(model, split, p, ctx, gen):
    """EU-k: as CF-k, with those blocks re-initialised first (θ_0 is then the new initialisation)."""
    return _last_k(model, split, p, ctx, gen, reinit=True)
