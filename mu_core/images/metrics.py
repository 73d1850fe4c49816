"""Metrics, in percent: retain / forget / test accuracy on the test split, and the entropy MIA.

One forward pass over the test images and one over the training images give every metric: the
class-ordered subsets are gathered from those logits afterwards.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import jobs
from . import data as D

# each metric as a figure labels it and as a table heads it (domains.metric_words gathers every domain's)
WORDS = {"retain_acc": ("retain-set accuracy (%)", "retain (%)"), "forget_acc": ("forget-set accuracy (%)", "forget (%)"),
         "test_acc": ("test accuracy (%)", "test (%)"), "mia": ("MIA (% of forget set called member)", "MIA (%)")}

ACCURACY_VERSION = 1  # bump when ``logits`` or ``accuracy`` change what they compute (they also
                      # select the reference's original models, so a bump retrains those)
METRICS_VERSION = 4   # bump when evaluation changes what it computes (``evaluate``, the entropy MIA,
                      # and ``engine.evaluate_job``); 2, 3: the MIA's exact objective; 4: collapsed models


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


def logistic_fit(x: np.ndarray, y: np.ndarray, mode: str, C: float = 1.0):
    """(w, b) of a logistic regression of labels ``y`` (0/1) on the one feature ``x``, with
    balanced class weights s_i = n / (2 n_{y_i}) and an L2 penalty on the weight (not the bias),
    as scikit-learn defines it: minimise  c · sum_i s_i · log(1 + exp(-y'_i (w x_i + b))) + w²/2,
    y' = ±1.

    reference: quirk (facts §8.6): the reference fits scikit-learn's two-class *multinomial* model:
    one weight vector per class, penalty (w_1² + w_0²) / 2. Only w = w_1 - w_0 and b = b_1 - b_0
    matter, and at the optimum w_1 = -w_0 = w/2, so the penalty is w² / 4: a binary logistic
    regression with C doubled (c = 2C). corrected: the binary model (c = C).

    The objective is strictly convex in (w, b), so Newton's method with a backtracking line search
    finds its minimum to float precision in a few steps (the reference stopped scikit-learn's
    lbfgs at a tolerance of 1e-4).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    n1, n0 = y.sum(), len(y) - y.sum()
    s = np.where(y == 1, len(y) / (2 * n1), len(y) / (2 * n0))
    c = 2 * C if mode == "reference" else C
    sign = 2 * y - 1

    def f(w, b):
        return c * np.sum(s * np.logaddexp(0, -sign * (w * x + b))) + w * w / 2
    w = b = 0.0
    fw = f(w, b)
    for _ in range(100):
        t = w * x + b
        q = np.exp(-np.logaddexp(0, -t))          # sigmoid(t)
        r = s * (q - y)                          # d loss_i / dt, times s_i
        g = np.array([c * np.dot(r, x) + w, c * r.sum()])
        h = c * s * q * (1 - q)
        H = np.array([[np.dot(h, x * x) + 1, np.dot(h, x)], [np.dot(h, x), h.sum()]])
        step = np.linalg.solve(H, g)
        if abs(step[0]) <= 1e-12 * (1 + abs(w)) and abs(step[1]) <= 1e-12 * (1 + abs(b)):
            break  # converged: the next step is below float resolution
        a = 1.0
        while a > 1e-6 and f(w - a * step[0], b - a * step[1]) > fw:
            a /= 2
        w, b = w - a * step[0], b - a * step[1]
        fw = f(w, b)
    return float(w), float(b)


def mia(ent_member: np.ndarray, ent_nonmember: np.ndarray, ent_target: np.ndarray, mode: str) -> float:
    """Percent of ``ent_target`` samples that an entropy attack calls members.

    A logistic regression on the one feature entropy (``logistic_fit``), fitted on members
    (label 1) against non-members (label 0), as the reference does with retain-train against the
    test split; applied to the forget-train samples.
    """
    feats = np.concatenate([ent_member, ent_nonmember])
    labels = np.r_[np.ones(len(ent_member)), np.zeros(len(ent_nonmember))]
    w, b = logistic_fit(feats, labels, mode)
    return 100 * float(np.mean(w * ent_target + b > 0))


NAMES = ("retain_acc", "forget_acc", "test_acc", "mia")
COLLAPSE = 1.25  # a retain accuracy at most this many times chance (100 / classes) is a destroyed model


def collapsed(retain_acc: float, num_classes: int) -> str | None:
    """The status of a model destroyed by unlearning, or None: its retain accuracy is at chance
    (at most ``COLLAPSE`` x 100 / classes). Its forget accuracy and MIA, near 0, are true
    measurements of a model that predicts one class, not forgetting."""
    chance = 100 / num_classes
    if retain_acc <= COLLAPSE * chance:
        return f"collapsed: retain accuracy {retain_acc:.1f} % at chance ({chance:.1f} %)"
    return None


# a model whose outputs hold NaN or infinity: no metric of it means anything (the job: failed)
NonFinite = jobs.NonFinite


def _finite(out: torch.Tensor, where: str) -> torch.Tensor:
    bad = int((~torch.isfinite(out)).any(1).sum())
    if bad:
        raise NonFinite(f"non-finite outputs on {bad} of {len(out)} {where} images")
    return out


def evaluate(model, split: D.Split, mode: str, batch: int = 64, retain_batch: int | None = None) -> dict:
    """retain_acc, forget_acc, test_acc and mia of ``model`` on ``split``; raises ``NonFinite``
    when any output is NaN or infinite.

    ``retain_batch``: the batch of the batch-averaged retain accuracy when it differs from
    ``batch`` (the reference's UNSIR, see ``methods.METHODS``)."""
    d = split.data
    out_test = _finite(logits(model, d.test_x, d), "test")
    out_train = _finite(logits(model, d.train_x[split.train_all], d), "training")  # one pass: retain, then forget
    ent_train = entropy(out_train)
    n_r = len(split.retain)
    yt = split.y_test
    return {
        "retain_acc": accuracy(out_test[split.test_retain], yt[split.test_retain], mode, retain_batch or batch),
        "forget_acc": accuracy(out_test[split.test_forget], yt[split.test_forget], mode, batch),
        "test_acc": accuracy(out_test, yt, mode, batch),
        "mia": mia(ent_train[:n_r], entropy(out_test), ent_train[n_r:], mode),
    }
