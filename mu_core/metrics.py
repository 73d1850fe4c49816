"""Metrics, in percent: retain / forget / test accuracy on the test split, and the entropy MIA.

One forward pass over the test images and one over the training images give every metric: the
class-ordered subsets are gathered from those logits afterwards.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from . import data as D


@torch.no_grad()
def logits(model, x: torch.Tensor, data: D.Data, batch: int = 1024) -> torch.Tensor:
    """Eval-mode outputs over ``x``. In eval mode BatchNorm is per-sample, so the chunk size
    does not change the result beyond float rounding."""
    model.eval()
    return torch.cat([model(D.normalise(xb, data)) for xb in x.split(batch)]).float()


def accuracy(out: torch.Tensor, y: torch.Tensor, mode: str, batch: int = 64) -> float:
    """Percent correct.

    reference: the mean of per-batch accuracies over batches of ``batch`` in the given order
    (quirk of the reference code: a short last batch weighs as much as a full one).
    corrected: the fraction of correct samples.
    """
    correct = (out.argmax(1) == y).float()
    if len(correct) == 0:
        return float("nan")
    if mode == "reference":
        return 100 * torch.stack([c.mean() for c in correct.split(batch)]).mean().item()
    return 100 * correct.mean().item()


def entropy(out: torch.Tensor) -> np.ndarray:
    """Entropy of the softmax output, per sample."""
    logp = torch.log_softmax(out, 1)
    return (-(logp.exp() * logp).sum(1)).cpu().numpy()


def mia(ent_member: np.ndarray, ent_nonmember: np.ndarray, ent_target: np.ndarray) -> float:
    """Percent of ``ent_target`` samples that an entropy attack calls members.

    A logistic regression (balanced class weights, lbfgs) on the one feature entropy, fitted on
    members (label 1) against non-members (label 0), as the reference does with retain-train
    against the test split; applied to the forget-train samples.
    """
    feats = np.concatenate([ent_member, ent_nonmember])[:, None]
    labels = np.r_[np.ones(len(ent_member)), np.zeros(len(ent_nonmember))]
    clf = LogisticRegression(class_weight="balanced", solver="lbfgs").fit(feats, labels)
    return 100 * float(clf.predict(ent_target[:, None]).mean())


def evaluate(model, split: D.Split, mode: str, batch: int = 64) -> dict:
    """retain_acc, forget_acc, test_acc and mia of ``model`` on ``split``."""
    d = split.data
    out_test = logits(model, d.test_x, d)
    out_train = logits(model, d.train_x[split.train_all], d)  # one pass: retain, then forget
    ent_train = entropy(out_train)
    n_r = len(split.retain)
    yt = split.y_test
    return {
        "retain_acc": accuracy(out_test[split.test_retain], yt[split.test_retain], mode, batch),
        "forget_acc": accuracy(out_test[split.test_forget], yt[split.test_forget], mode, batch),
        "test_acc": accuracy(out_test, yt, mode, batch),
        "mia": mia(ent_train[:n_r], entropy(out_test), ent_train[n_r:]),
    }
