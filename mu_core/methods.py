"""The unlearning methods, one plain function each: ``(model, split, p, gen) -> model``.

``model`` is a copy of the original model M_o (the caller keeps M_o), ``split`` the forget set
D_f / retain set D_r (``data.Split``), ``gen`` a ``torch.Generator`` seeded by the unlearning
seed s_u that drives every random choice, and ``p`` the method's parameters from the profile
plus the context keys ``mode`` ('reference' | 'corrected'), ``dataset``, ``setting``, ``train``
(the original training recipe), ``model_cfg`` and ``memo`` (a dict shared by all jobs of one
original model, for work that is exactly reusable).

Hyper-parameters are in the profile; the reference code's quirks are named where they live.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from . import data as D
from . import models, train
from .metrics import logits


def _xy(split: D.Split, idx: torch.Tensor):
    return split.data.train_x[idx], split.y_train[idx]


def _seed(gen: torch.Generator) -> int:
    """A seed drawn from the unlearning generator, for code that uses torch's global RNG."""
    return int(torch.randint(0, 2**62, (1,), generator=gen))


def _device(model):
    return next(model.parameters()).device


def original(model, split, p, gen):
    """Original M_o: the trained model, unchanged."""
    return model


def retrain(model, split, p, gen):
    """Retrain M_r: train on D_r only, the gold standard.

    reference: calls ``reset_parameters()`` on the model's direct children, which resets only the
    final ``fc`` (the feature layers sit inside ``nn.Sequential``), then trains on D_r with the
    dataset's schedule at lr ``p['lr']`` (0.01: the reference passes none and gets a default) and
    no augmentation. corrected: a fresh network initialised from s_u, trained from scratch with
    the original training recipe (augmentation included), last epoch kept.
    """
    x, y = _xy(split, split.retain)
    if p["mode"] == "reference":
        for child in model.children():  # quirk: direct children only, so only fc is reset
            if hasattr(child, "reset_parameters"):
                child.reset_parameters()
        recipe = {**p["train"], "lr": p["lr"], "augment": None}
    else:
        dev = _device(model)
        model = models.build(p["model_cfg"], split.num_classes, tuple(x.shape[1:]), _seed(gen)).to(dev)
        recipe = p["train"]
    return train.fit(model, x, y, recipe, gen, split.data)


def finetune(model, split, p, gen):
    """Finetune: a few epochs of SGD on D_r (catastrophic forgetting of D_f)."""
    x, y = _xy(split, split.retain)
    return train.fit(model, x, y, {**p, "optimizer": "sgd"}, gen, split.data)


def random_labels(model, split, p, gen):
    """Random-Labels (Golatkar et al. 2020; the reference calls it 'amnesiac').

    Each forget sample gets a label drawn uniformly from the other classes (other super-classes
    in the sub-class setting); these and the whole of D_r are shuffled together and trained on.
    """
    xf, yf = _xy(split, split.forget)
    shift = torch.randint(1, split.num_classes, (len(yf),), generator=gen).to(yf.device)
    wrong = (yf + shift) % split.num_classes  # uniform over the classes other than yf
    xr, yr = _xy(split, split.retain)
    x, y = torch.cat([xr, xf]), torch.cat([yr, wrong])
    return train.fit(model, x, y, {**p, "optimizer": "adam"}, gen, split.data)


def bad_teacher(model, split, p, gen):
    """Bad-Teacher (Chundawat et al. 2023; reference name 'blindspot').

    The student (a copy of M_o) matches, by KL divergence at temperature T, the incompetent
    teacher (a fresh network seeded by s_u) on D_f and the competent teacher M_o on a random
    fraction of D_r: loss = KL(student/T || f·softmax(bad/T) + (1-f)·softmax(good/T)).
    """
    dev = _device(model)
    good = copy.deepcopy(model).eval()
    in_shape = tuple(split.data.train_x.shape[1:])
    # quirk kept in both modes: the incompetent teacher is a new random network per s_u
    bad = models.build(p["model_cfg"], split.num_classes, in_shape, _seed(gen)).to(dev).eval()
    n_keep = int(p["retain_fraction"] * len(split.retain))  # quirk: a random 30 % of D_r
    keep = split.retain[torch.randperm(len(split.retain), generator=gen)[:n_keep].to(dev)]
    idx = torch.cat([split.forget, keep])
    flag = torch.cat([torch.ones(len(split.forget)), torch.zeros(n_keep)]).to(dev)
    x = split.data.train_x[idx]
    t = p["temperature"]
    with torch.no_grad():
        target = torch.where(flag[:, None] > 0,
                             torch.softmax(logits(bad, x, split.data) / t, 1),
                             torch.softmax(logits(good, x, split.data) / t, 1))

    def loss(out, tgt):  # KL with torch's 'mean' reduction (over all elements), as the reference
        return (torch.special.xlogy(tgt, tgt) - tgt * torch.log_softmax(out / t, 1)).mean()
    return train.fit(model, x, target, {**p, "optimizer": "adam"}, gen, split.data, loss_fn=loss)


def unsir(model, split, p, gen):
    """UNSIR (Tarun et al. 2023): learn error-maximising noise for the forget class, impair, repair.

    (1) noise N of shape (noise_batch, C, H, W) minimises -CE(model(N), forget label)
    + reg · mean_i ||N_i||²; (2) impair: one epoch on copies of the noise (labelled with the
    forget class) mixed with the retain subset; (3) repair: one epoch on the retain subset.
    """
    dev = _device(model)
    data = split.data
    ref = p["mode"] == "reference"
    # quirk: the retain subset is the first `per_class` samples of each retained class
    groups = split.group_train[split.retain]
    first = torch.cat([torch.nonzero(groups == g).flatten()[: p["per_class"]] for g in groups.unique()])
    sub = split.retain[first.sort().values]
    xr, yr = _xy(split, sub)
    steps = p["noise_steps"][split.setting]
    noise = torch.randn((p["noise_batch"], *xr.shape[1:]), generator=gen).to(dev).requires_grad_()
    opt = torch.optim.Adam([noise], lr=p["noise_lr"])
    target = torch.full((p["noise_batch"],), split.forget_label, device=dev)
    model.train(ref)  # quirk (reference): train mode, so BatchNorm statistics move with the noise
    model.requires_grad_(False)  # only the noise is optimised here
    for _ in range(steps):
        # the noise lives in the normalised input space, as in the reference
        loss = -F.cross_entropy(model(noise), target) + p["reg"] * noise.pow(2).sum((1, 2, 3)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    noise = noise.detach()
    model.requires_grad_(True)
    # quirk (reference): the loader walks the channel axis, so only the first C noise images
    # are used, each copied noise_copies times; corrected uses every noise image
    kept = noise[: noise.shape[1]] if ref else noise
    noisy = kept.repeat(p["noise_copies"], 1, 1, 1)
    # noise is already normalised; undo the normalisation fit() applies to every batch
    mean = torch.tensor(data.mean, device=dev).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=dev).view(1, -1, 1, 1)
    x = torch.cat([noisy * std + mean, xr])
    y = torch.cat([torch.full((len(noisy),), split.forget_label, device=dev), yr])
    adam = {"optimizer": "adam", "lr": p["lr"], "epochs": 1}
    train.fit(model, x, y, {**adam, "batch": p["impair_batch"]}, gen, data)
    return train.fit(model, xr, yr, {**adam, "batch": p["repair_batch"]}, gen, data)


# --- Selective Synaptic Dampening ---------------------------------------------------------

def _ssd_loss(kind):
    if kind == "ssd":
        return lambda out, y: F.cross_entropy(out, y)
    return lambda out, y: out.pow(2).sum(1).mean()  # LFSSD: squared L2 norm of the logits


def importance(model, x, y, data, kind: str, mode: str, batch: int = 64, chunk: int = 256):
    """Diagonal importance of every parameter on (x, y).

    reference: the mean over unshuffled mini-batches of ``batch`` of g_b² (SSD) or |g_b| (LFSSD),
    where g_b is the gradient of the batch-mean loss (quirk: depends on batch size and order).
    corrected: the mean over samples of g_n² or |g_n| for per-sample gradients g_n (the empirical
    diagonal Fisher for SSD), computed with torch.func in chunks.
    """
    model.eval()
    loss_fn = _ssd_loss(kind)
    post = torch.square if kind == "ssd" else torch.abs
    params = {n: q.detach() for n, q in model.named_parameters()}
    imp = {n: torch.zeros_like(q) for n, q in params.items()}
    xn = D.normalise(x, data)
    if mode == "reference":
        parts = list(zip(xn.split(batch), y.split(batch)))
        for xb, yb in parts:
            model.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            for n, q in model.named_parameters():
                imp[n] += post(q.grad)
        model.zero_grad(set_to_none=True)
        return {n: v / len(parts) for n, v in imp.items()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def one(prm, xi, yi):
        out = functional_call(model, (prm, buffers), (xi[None],))
        return loss_fn(out, yi[None])
    per_sample = vmap(grad(one), in_dims=(None, 0, 0))
    for xb, yb in zip(xn.split(chunk), y.split(chunk)):
        for n, g in per_sample(params, xb, yb).items():
            imp[n] += post(g).sum(0)
    return {n: v / len(x) for n, v in imp.items()}


@torch.no_grad()
def dampen(model, imp_forget: dict, imp_all: dict, alpha: float, lam: float):
    """SSD's update: where I_f > alpha·I_D, multiply the parameter by min(lam·I_D / I_f, 1)."""
    for n, q in model.named_parameters():
        sel = imp_forget[n] > alpha * imp_all[n]
        factor = (lam * imp_all[n] / imp_forget[n]).clamp(max=1)
        q[sel] *= factor[sel]
    return model


def _ssd(model, split, p, kind, alpha):
    data = split.data
    mode = p["mode"]
    imp = lambda idx: importance(model, data.train_x[idx], split.y_train[idx], data, kind, mode,
                                 p["batch"], p.get("chunk", 256))
    i_f = imp(split.forget)
    if mode == "corrected":
        # per-sample importances do not depend on order, so I_D over the whole training set is
        # a property of the original model alone: computed in dataset order (so that float
        # summation is the same whatever the target) once, and reused for every target and
        # setting with the same labels
        key = (kind, split.dataset in D.COARSE)
        if key not in p["memo"]:
            p["memo"][key] = imp(torch.arange(len(data.train_x), device=data.train_x.device))
        i_d = p["memo"][key]
    else:
        # quirk: the reference's whole-training-set loader is D_r (class-ordered) then D_f,
        # unshuffled, so its batches, and I_D, change with the target
        i_d = imp(split.train_all)
    return dampen(model, i_f, i_d, alpha, p["lambda"])


def ssd(model, split, p, gen):
    """SSD (Foster et al. 2024): dampen parameters far more important to D_f than to D."""
    return _ssd(model, split, p, "ssd", p["alpha"])


def lfssd(model, split, p, gen):
    """LFSSD (Foster et al. 2024, loss-free): SSD with importances from the logits' squared norm."""
    alpha = p["alpha"]
    if split.setting == "full_class" and (p["mode"] == "reference" or split.dataset in D.COARSE):
        # quirk (reference): alpha_full_class, meant for the super-class dataset only, applies to
        # every full-class run through an operator-precedence slip; corrected keeps it for the
        # super-class full-class setting only
        alpha = p["alpha_full_class"]
    return _ssd(model, split, p, "lfssd", alpha)


METHODS = {
    "original": original, "retrain": retrain, "finetune": finetune,
    "random_labels": random_labels, "bad_teacher": bad_teacher, "unsir": unsir,
    "ssd": ssd, "lfssd": lfssd,
}
DETERMINISTIC = {"original", "ssd", "lfssd"}  # one run per original model, whatever s_u
# Bump a method's version when its code changes what it computes: cached results then recompute.
VERSION = {m: 1 for m in METHODS}
