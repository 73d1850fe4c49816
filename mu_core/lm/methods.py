"""Language-model unlearning methods (OpenUnlearning's GradAscent, GradDiff and NPO; Retrain), one
function each. Every method takes ``(model, sets, params, gen)``: a copy of the fine-tuned model,
the encoded splits ``sets`` (``forget``, ``retain``, and the ``base`` model that fine-tuning started
from, with the fine-tuning ``recipe``), its hyper-parameters and the job's s_u generator, its only
randomness. Reference and corrected mode compute the same: no quirk of OpenUnlearning's losses
is recorded in ``shared/reference/foltr-and-lm-facts.md``.
"""
from __future__ import annotations

import copy

import torch

from . import model as LM


def original(model, sets, params, gen):
    """Original: the fine-tuned model, unchanged (a reference row)."""
    return model


def retrain(model, sets, params, gen):
    """Retrain: the base model fine-tuned on the retain split alone, with the fine-tuning recipe,
    its data order drawn from s_u."""
    m = copy.deepcopy(sets["base"])
    LM.fit(m, sets["retain"], sets["recipe"], gen)
    return m


def _forget_retain(model, sets, params, gen, loss):
    """OpenUnlearning's loop: each epoch passes over the forget set in batches (order from s_u),
    each forget item paired with a retain item drawn uniformly (its ForgetRetainDataset calls
    ``torch.randint`` on the global generator its seed sets; here the job's s_u generator draws it);
    ``loss(forget_batch, retain_batch)``."""
    forget, retain = sets["forget"], sets["retain"]

    def step(idx):
        partner = torch.randint(len(retain), (len(idx),), generator=gen).tolist()
        return loss(LM.collate([forget[i] for i in idx.tolist()]), LM.collate([retain[i] for i in partner]))
    LM.optimise(model, len(forget), step, params, gen)
    return model


def grad_ascent(model, sets, params, gen):
    """GradAscent: L = -NLL(forget batch) (the retain pairing is drawn, and unused, as upstream)."""
    return _forget_retain(model, sets, params, gen, lambda f, r: LM.grad_ascent_loss(model, f))


def grad_diff(model, sets, params, gen):
    """GradDiff: L = gamma·(-NLL_forget) + alpha·NLL_retain."""
    return _forget_retain(model, sets, params, gen,
                          lambda f, r: LM.grad_diff_loss(model, f, r, params["gamma"], params["alpha"]))


def npo(model, sets, params, gen):
    """NPO against a frozen copy of the model at the start of unlearning (``model.npo_loss``)."""
    reference = copy.deepcopy(model).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    return _forget_retain(model, sets, params, gen, lambda f, r: LM.npo_loss(
        model, reference, f, r, params["beta"], params["gamma"], params["alpha"]))
