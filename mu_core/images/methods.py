"""The unlearning methods, one plain function each: ``(model, split, p, ctx, gen) -> model``.

``model`` is a copy of the original model M_o (the caller keeps M_o); ``split`` the forget set
D_f / retain set D_r (``data.Split``, which also names the dataset and setting); ``p`` the
method's hyper-parameters from the profile (validated against the method's schema in ``METHODS``);
``ctx`` the ``Context`` of the run (mode, the original training recipe, the network, a memo);
``gen`` a ``torch.Generator`` seeded by the unlearning seed s_u, the only source of randomness.

The reference code's quirks are named ``quirk (reference)`` where they live; ``corrected`` mode
fixes them. Facts cited as "facts §N" are in ``shared/reference/reference-code-facts.md``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from . import data as D
from . import deepunlearn as DU
from . import models, train
from ..checks import Num
from ..method import Method
from .metrics import logits


@dataclass(frozen=True)
class Context:
    """What a method may know besides its own parameters."""
    mode: str            # 'reference' | 'corrected'
    recipe: dict         # the original model's training recipe (Retrain reuses it)
    model_cfg: dict      # the network, for methods that build a fresh one
    memo: dict = field(default_factory=dict)  # shared by the jobs of one M_o: exactly reusable work


def _xy(split: D.Split, idx: torch.Tensor):
    return split.data.train_x[idx], split.y_train[idx]


def _seed(gen: torch.Generator) -> int:
    """A seed drawn from the unlearning generator, for code that needs a seed rather than a generator."""
    return int(torch.randint(0, 2**62, (1,), generator=gen))


def _device(model):
    return next(model.parameters()).device


def original(model, split, p, ctx, gen):
    """Original M_o: the trained model, unchanged."""
    return model


def retrain(model, split, p, ctx, gen):
    """Retrain M_r: train on D_r only, the gold standard.

    reference: ``reset_parameters()`` on the model's direct children, then the dataset's schedule
    on D_r at lr ``p['lr']`` (0.01: the reference passes none and gets a default), no
    augmentation, through the reference's ``fit_one_cycle`` schedule (``train.lr_fit_one_cycle``).
    corrected: a fresh network initialised from s_u, trained from scratch with the original
    recipe (augmentation and schedule included), last epoch kept.
    """
    x, y = _xy(split, split.retain)
    if ctx.mode == "reference":
        dev = _device(model)
        # the reference draws the reset from torch's global generator; here it is drawn from s_u,
        # so the result depends on nothing the process ran before
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(_seed(gen))
            for child in model.children():  # quirk (reference): direct children only: only fc resets
                if hasattr(child, "reset_parameters"):
                    child.reset_parameters()
        # quirk (reference, facts §8.3): fit_one_cycle's schedule: warm-up through two epochs (to
        # twice the lr) and milestones on 0-based epochs, one epoch late
        recipe = {**ctx.recipe, "lr": p["lr"], "augment": None, "schedule": "fit_one_cycle"}
    else:
        model = models.build(ctx.model_cfg, split.num_classes, tuple(x.shape[1:]), _seed(gen)).to(_device(model))
        recipe = ctx.recipe
    return train.fit(model, x, y, recipe, gen, split.data)


def finetune(model, split, p, ctx, gen):
    """Finetune: a few epochs of SGD at a constant lr on D_r (catastrophic forgetting of D_f)."""
    x, y = _xy(split, split.retain)
    recipe = {"optimizer": "sgd", "epochs": p["epochs"], "lr": p["lr"], "momentum": p["momentum"],
              "weight_decay": p["weight_decay"], "batch": p["batch"]}
    return train.fit(model, x, y, recipe, gen, split.data)


def random_labels(model, split, p, ctx, gen):
    """Random-Labels (Golatkar et al. 2020; the reference calls it 'amnesiac').

    Each forget sample gets a label drawn uniformly from the other classes (other super-classes
    in the sub-class setting); these and the whole of D_r are shuffled together and trained on.
    """
    xf, yf = _xy(split, split.forget)
    shift = torch.randint(1, split.num_classes, (len(yf),), generator=gen).to(yf.device)
    wrong = (yf + shift) % split.num_classes  # uniform over the classes other than yf
    xr, yr = _xy(split, split.retain)
    x, y = torch.cat([xr, xf]), torch.cat([yr, wrong])
    recipe = {"optimizer": "adam", "epochs": p["epochs"], "lr": p["lr"], "batch": p["batch"]}
    return train.fit(model, x, y, recipe, gen, split.data)


def bad_teacher(model, split, p, ctx, gen):
    """Bad-Teacher (Chundawat et al. 2023; reference name 'blindspot').

    The student (a copy of M_o) matches, by KL divergence at temperature T, the incompetent
    teacher (a fresh network seeded by s_u) on D_f and the competent teacher M_o on a random
    fraction of D_r: loss = KL(student/T || f·softmax(bad/T) + (1-f)·softmax(good/T)).
    """
    dev = _device(model)
    good = copy.deepcopy(model).eval()
    in_shape = tuple(split.data.train_x.shape[1:])
    # kept in both modes: the incompetent teacher is a new random network per s_u
    bad = models.build(ctx.model_cfg, split.num_classes, in_shape, _seed(gen)).to(dev).eval()
    n_keep = int(p["retain_fraction"] * len(split.retain))  # a random 30 % of D_r
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
    recipe = {"optimizer": "adam", "epochs": p["epochs"], "lr": p["lr"], "batch": p["batch"]}
    return train.fit(model, x, target, recipe, gen, split.data, loss_fn=loss)


def unsir(model, split, p, ctx, gen):
    """UNSIR (Tarun et al. 2023): learn error-maximising noise for the forget class, impair, repair.

    (1) noise N of shape (noise_batch, C, H, W) minimises -CE(model(N), forget label)
    + reg · mean_i ||N_i||²; (2) impair: one epoch on copies of the noise (labelled with the
    forget class) mixed with the retain subset; (3) repair: one epoch on the retain subset.
    """
    dev = _device(model)
    data = split.data
    ref = ctx.mode == "reference"
    # the retain subset is the first `per_class` samples of each retained class, as the reference
    groups = split.group_train[split.retain]
    first = torch.cat([torch.nonzero(groups == g).flatten()[: p["per_class"]] for g in groups.unique()])
    sub = split.retain[first.sort().values]
    xr, yr = _xy(split, sub)
    steps = p["noise_steps"][split.setting]
    noise = torch.randn((p["noise_batch"], *xr.shape[1:]), generator=gen).to(dev).requires_grad_()
    opt = torch.optim.Adam([noise], lr=p["noise_lr"])
    target = torch.full((p["noise_batch"],), split.forget_label, device=dev)
    model.train(ref)  # quirk (reference): train mode, so BatchNorm statistics move with the noise
    # quirk (reference, facts §8.4): the loss is back-propagated into the model too and only the
    # noise optimiser is zeroed, so the model's gradients pile up over every noise step ...
    model.requires_grad_(ref)
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
    # ... and the reference's loop (backward, step, then zero_grad) adds them to the first impair
    # step; corrected starts from clean gradients
    adam = {"optimizer": "adam", "lr": p["lr"], "epochs": 1, "zero_grad_after_step": ref}
    train.fit(model, x, y, {**adam, "batch": p["impair_batch"]}, gen, data)
    model.zero_grad(set_to_none=True)
    return train.fit(model, xr, yr, {**adam, "batch": p["repair_batch"]}, gen, data)


# --- Selective Synaptic Dampening ---------------------------------------------------------

def _ssd_loss(kind, mode):
    if kind == "ssd":
        return lambda out, y: F.cross_entropy(out, y)
    if mode == "reference":
        # quirk (reference, facts §8.2): the squared Frobenius norm along the class axis, then the
        # batch mean; equal to the sum of squares in exact arithmetic, not in float rounding
        return lambda out, y: torch.norm(out, p="fro", dim=1).pow(2).mean()
    return lambda out, y: out.pow(2).sum(1).mean()  # LFSSD: squared L2 norm of the logits


def importance(model, x, y, data, kind: str, mode: str, batch: int = 64, chunk: int = 256):
    """Diagonal importance of every parameter on (x, y).

    reference: the mean over unshuffled mini-batches of ``batch`` of g_b² (SSD) or |g_b| (LFSSD),
    where g_b is the gradient of the batch-mean loss (quirk: depends on batch size and order).
    corrected: the mean over samples of g_n² or |g_n| for per-sample gradients g_n (the empirical
    diagonal Fisher for SSD), computed with torch.func in chunks.
    """
    model.eval()
    loss_fn = _ssd_loss(kind, mode)
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


def _ssd(model, split, p, ctx, kind, alpha):
    data = split.data
    imp = lambda idx: importance(model, data.train_x[idx], split.y_train[idx], data, kind, ctx.mode,
                                 p["batch"], p["chunk"])
    i_f = imp(split.forget)
    if ctx.mode == "corrected":
        # per-sample importances do not depend on order, so I_D over the whole training set is
        # a property of the original model alone: computed in dataset order (so that float
        # summation is the same whatever the target) once, and reused for every target and
        # setting with the same labels
        key = (kind, split.dataset in D.COARSE)
        if key not in ctx.memo:
            ctx.memo[key] = imp(torch.arange(len(data.train_x), device=data.train_x.device))
        i_d = ctx.memo[key]
    else:
        # quirk (reference): the whole-training-set loader is D_r (class-ordered) then D_f,
        # unshuffled, so its batches, and I_D, change with the target
        i_d = imp(split.train_all)
    return dampen(model, i_f, i_d, alpha, p["lambda"])


def ssd(model, split, p, ctx, gen):
    """SSD (Foster et al. 2024): dampen parameters far more important to D_f than to D."""
    return _ssd(model, split, p, ctx, "ssd", p["alpha"])


def lfssd(model, split, p, ctx, gen):
    """LFSSD (Foster et al. 2024, loss-free): SSD with importances from the logits' squared norm."""
    alpha = p["alpha"]
    if split.setting == "full_class" and (ctx.mode == "reference" or split.dataset in D.COARSE):
        # quirk (reference): alpha_full_class, meant for the super-class dataset only, applies to
        # every full-class run through an operator-precedence slip; corrected keeps it for the
        # super-class full-class setting only
        alpha = p["alpha_full_class"]
    return _ssd(model, split, p, ctx, "lfssd", alpha)


# --- the method table: one record per method, read by validation, the engine, plots, notebooks --

# rates, temperatures, constants: positive and at most 10^6 (a rate of 10^300 overflows the arithmetic
# before any model could diverge); counts and batches: bounded to fit a machine
POS, INT1 = Num(0, 10**6, lo_open=True), Num(1, 10**6, integer=True)
SGD = {"epochs": INT1, "lr": POS, "momentum": Num(0, 1, hi_open=True), "weight_decay": Num(0), "batch": INT1}
ADAM = {"epochs": INT1, "lr": POS, "batch": INT1}
SSD_PARAMS = {"alpha": Num(0, lo_open=True, inf=True), "lambda": POS, "batch": INT1, "chunk": INT1}

SGD_NO_WD = {"epochs": INT1, "lr": POS, "momentum": Num(0, 1, hi_open=True), "batch": INT1}
FRACTION = Num(0, 1)
LAST_K = {"epochs": INT1, "lr": POS, "batch": INT1, "k": Num(1, 4, integer=True), "l2": Num(0),
          "decay_rate": Num(0, 1, lo_open=True)}
RETAIN = {"retain": "epochs"}

# versions: retrain 2 (reference schedule), unsir 2, lfssd 2; scrub, msg and eu_k 2: Deep Unlearn's
# reference quirks of SCRUB's forget-validation set, MSG's batches, EU-k's BatchNorm1d and augmentation
METHODS = {
    "original": Method(original, "Original", True, 1, {}, role="original"),
    "retrain": Method(retrain, "Retrain", False, 2, {"lr": POS}, role="gold", reads={"retain": "recipe"}),
    "finetune": Method(finetune, "Finetune", False, 1, SGD, reads=RETAIN),
    "random_labels": Method(random_labels, "Random-Labels", False, 1, ADAM, reads={"retain": "epochs", "forget": "epochs"}),
    "bad_teacher": Method(bad_teacher, "Bad-Teacher", False, 1,
                          {**ADAM, "temperature": POS, "retain_fraction": Num(0, 1, lo_open=True)}),
    # quirk (reference, facts §8.5): UNSIR rebinds the retain-test loader to its noise batch (32),
    # so its batch-averaged retain accuracy uses batches of that size
    "unsir": Method(unsir, "UNSIR", False, 2,
                    {"noise_batch": INT1, "noise_lr": POS, "reg": Num(0), "noise_copies": INT1,
                     "noise_steps": {"full_class": Num(0, 10**6, integer=True), "sub_class": Num(0, 10**6, integer=True)},
                     "per_class": INT1, "impair_batch": INT1, "repair_batch": INT1, "lr": POS},
                    reference_retain_batch="noise_batch", random_forget=False),
    "ssd": Method(ssd, "SSD", True, 1, SSD_PARAMS),
    "lfssd": Method(lfssd, "LFSSD", True, 2, {**SSD_PARAMS, "alpha_full_class": Num(0, lo_open=True, inf=True)},
                   random_forget=False),
    # Deep Unlearn's baselines (``deepunlearn``), shown in their own chapter
    "ng_plus": Method(DU.ng_plus, "NG+", False, 1, {**SGD_NO_WD, "alpha": FRACTION},
                      chapter="deepunlearn", reads={"retain": "epochs", "forget": "epochs"}),
    "gradient_ascent": Method(DU.gradient_ascent, "GA", False, 1, SGD, chapter="deepunlearn", reads={"forget": "epochs"}),
    "srl": Method(DU.srl, "SRL", False, 1, SGD, chapter="deepunlearn", reads={"retain": "epochs", "forget": "epochs"}),
    "scrub": Method(DU.scrub, "SCRUB", False, 2,
                    {"epochs": INT1, "msteps": Num(0, 10**6, integer=True), "lr": POS, "momentum": Num(0, 1, hi_open=True),
                     "weight_decay": Num(0), "T": POS, "gamma": Num(0), "kd_alpha": Num(0),
                     "retain_batch": INT1, "forget_batch": INT1},
                    chapter="deepunlearn", reads=RETAIN),
    "salun": Method(DU.salun, "SalUn", False, 1, {**SGD, "threshold": Num(0, 1, lo_open=True)},
                    chapter="deepunlearn", reads={"retain": "epochs", "forget": "epochs"}),
    "msg": Method(DU.msg, "MSG", False, 2, {**SGD, "init_rate": FRACTION, "grad_batch": INT1},
                  chapter="deepunlearn", reads=RETAIN, conv_only=True),
    "ct": Method(DU.ct, "CT", False, 1, SGD, chapter="deepunlearn", reads=RETAIN, conv_only=True),
    "cf_k": Method(DU.cf_k, "CF-k", False, 1, LAST_K, chapter="deepunlearn", reads=RETAIN),
    "eu_k": Method(DU.eu_k, "EU-k", False, 2, LAST_K, chapter="deepunlearn", reads=RETAIN),
}
