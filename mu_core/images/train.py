"""Training: one loop serves the original models, Retrain, Finetune and the retain-set phases.

A recipe is a plain dict (its numbers live in the profile, never here)::

    epochs, lr, momentum, weight_decay, batch, optimizer ('sgd' | 'adam'),
    warmup_epochs (linear warm-up from 0, stepped per iteration), milestones, gamma,
    schedule: 'pretrain' (default, ``lr_at``) | 'fit_one_cycle' (the reference Retrain's)
    zero_grad_after_step: bool (the reference unlearning loop's order: gradients the model
                           already carries enter the first step)
    augment: {crop_pad, flip, rotate}   (or null for none)
    amp: null | 'bf16'     (autocast the forward pass; a GPU speed option)
    channels_last: bool    (NHWC memory layout for convolutions; a GPU speed option)

Every random choice (data order, augmentation) comes from one ``torch.Generator`` seeded by the
caller, so the training seed fixes them all; each epoch draws its order, then the augmentation of
all its samples, at its start. Weights are initialised in ``models.build``.
Data stay on the model's device; augmentation runs as batched tensor operations.
"""
from __future__ import annotations

import contextlib
import copy
import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import data as D

TRAIN_VERSION = 2  # bump when training changes what it computes (fit, lr schedules, augmentation);
                   # 2: each epoch's order and augmentation drawn at the epoch's start


def lr_at(recipe: dict, epoch: int, it: int, steps: int) -> float:
    """Pre-training: the learning rate for iteration ``it`` of ``epoch`` (epochs counted from 1).

    Linear warm-up from 0 over ``warmup_epochs``, stepped per iteration, then
    lr · gamma^(number of milestones <= epoch).
    """
    if epoch <= recipe.get("warmup_epochs", 0):
        done = (epoch - 1) * steps + it  # iterations already taken in the warm-up
        return recipe["lr"] * done / (recipe["warmup_epochs"] * steps)
    k = sum(m <= epoch for m in recipe.get("milestones", []))
    return recipe["lr"] * recipe.get("gamma", 0.2) ** k


def lr_fit_one_cycle(recipe: dict, epoch: int, it: int, steps: int) -> float:
    """The reference Retrain's schedule (its ``fit_one_cycle``; facts §8.3), epochs counted from 1.

    quirk (reference): the warm-up scheduler is stepped in the first *two* epochs, so the lr
    rises linearly (base · k / (steps + 1e-8) after k steps, as its WarmUpLR computes it) to
    twice the base by the end of epoch 2; from epoch 3 the step scheduler is given the 0-based
    epoch, lr · gamma^(number of milestones <= epoch - 1): every milestone one epoch late.
    Without milestones the lr is constant (no warm-up either).
    """
    milestones = recipe.get("milestones") or []
    if not milestones:
        return recipe["lr"]
    if epoch <= 2:
        return recipe["lr"] * ((epoch - 1) * steps + it) / (steps + 1e-8)
    return recipe["lr"] * recipe.get("gamma", 0.2) ** sum(m <= epoch - 1 for m in milestones)


SCHEDULES = {"pretrain": lr_at, "fit_one_cycle": lr_fit_one_cycle}


def augment(x: torch.Tensor, gen: torch.Generator, crop_pad=0, flip=False, rotate=0) -> torch.Tensor:
    """Random crop with zero padding, horizontal flip, rotation: torchvision's order, batched."""
    b, _, h, w = x.shape
    if crop_pad:
        p = crop_pad
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (b,), generator=gen).to(x.device)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=gen).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
        x = padded[torch.arange(b, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(b, generator=gen) < 0.5).to(x.device).view(b, 1, 1, 1)
        x = torch.where(mask, x.flip(3), x)
    if rotate:
        ang = (torch.rand(b, generator=gen) * 2 - 1).to(x.device) * math.radians(rotate)
        cos, sin, zero = ang.cos(), ang.sin(), torch.zeros_like(ang)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return x.contiguous()


def optimizer(recipe: dict, params):
    """SGD or Adam, fused: the same update in one kernel (about 10 % less time per step here)."""
    if recipe.get("optimizer", "sgd") == "adam":
        return torch.optim.Adam(params, lr=recipe["lr"], fused=True)
    return torch.optim.SGD(params, lr=recipe["lr"], momentum=recipe.get("momentum", 0.0),
                           weight_decay=recipe.get("weight_decay", 0.0), fused=True)


def fit(model, x, y, recipe: dict, gen: torch.Generator, data: D.Data, *,
        select=None, label: str | None = None, loss_fn=None):
    """Train ``model`` in place on images ``x`` (in [0, 1]) with labels ``y``.

    ``select``: a function model -> score, called after every epoch; the best-scoring epoch's
    weights are kept (the reference's test-set model selection). ``loss_fn(logits, y)``
    replaces cross-entropy. Returns the model.
    """
    dev = next(model.parameters()).device
    opt = optimizer(recipe, model.parameters())
    aug = recipe.get("augment") or {}
    steps = math.ceil(len(x) / recipe["batch"])
    if not aug:  # normalise once, not per batch (the same numbers, less work per step)
        x = D.normalise(x, data)
    layout = torch.channels_last if recipe.get("channels_last") and x.dim() == 4 else torch.contiguous_format
    model.to(memory_format=layout)
    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if recipe.get("amp") == "bf16" \
        else contextlib.nullcontext
    schedule = SCHEDULES[recipe.get("schedule", "pretrain")]
    zero_after = recipe.get("zero_grad_after_step", False)
    best, best_state = -math.inf, None
    epochs = range(1, recipe["epochs"] + 1)
    if label and recipe["epochs"] >= 10:
        epochs = tqdm(epochs, desc=label, leave=False)
    for epoch in epochs:
        model.train()
        # the epoch's randomness is drawn at its start: the order, then the augmentation of every
        # sample at once; the steps then take contiguous slices, with no draw, gather or host
        # copy inside the step loop (on a GPU nothing makes the host wait for the device)
        order = torch.randperm(len(x), generator=gen).to(dev)
        xe, ye = x[order], y[order]
        if aug:
            xe = D.normalise(augment(xe, gen, **aug), data)
        if layout is torch.channels_last:
            xe = xe.contiguous(memory_format=layout)
        for it, (xb, yb) in enumerate(zip(xe.split(recipe["batch"]), ye.split(recipe["batch"]))):
            lr = schedule(recipe, epoch, it, steps)
            if lr != opt.param_groups[0]["lr"]:
                for group in opt.param_groups:
                    group["lr"] = lr
            with autocast():
                out = model(xb)
                loss = loss_fn(out, yb) if loss_fn else F.cross_entropy(out, yb)
            if not zero_after:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if zero_after:
                opt.zero_grad(set_to_none=True)
        if select is not None:
            score = select(model)
            if score > best:
                best, best_state = score, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return model
