"""TOFU's evaluation as OpenUnlearning computes it (``shared/reference/foltr-and-lm-facts.md``
§B3), from per-answer token NLLs and generated text, so that any model can be scored.

- P(a | q) = exp(-mean token NLL of a): the length-normalised probability of an answer.
- Truth ratio of a question: TR = P_pert / P_para, P_pert = exp(-mean over the perturbed answers of
  their mean-token NLL), P_para the paraphrased (or, for the control sets, the original) answer's.
- Forget truth ratio = mean(min(TR, 1/TR)); retain and control truth ratio = mean(max(0, 1 - TR)).
- Forget quality = the p-value of a two-sample KS test of the forget truth ratios of the unlearned
  model against those of a model never trained on the forget set (``scipy.stats.ks_2samp``).
- ROUGE-L recall of a greedy answer against the reference, with the ``rouge-score`` package and its
  Porter stemmer (lower case, non-alphanumerics to spaces, tokens longer than 3 characters stemmed).
- Model utility = the harmonic mean of the retain set's mean P, ROUGE-L recall and truth ratio and,
  for each control set, its normalised P = P_true / (P_true + sum of P_pert), ROUGE-L recall and
  truth ratio.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as sps


def answer_prob(mean_nll) -> np.ndarray:
    """P(a | q) from an answer's mean token NLL."""
    return np.exp(-np.asarray(mean_nll, float))


#: quirk (reference): OpenUnlearning adds 1e-10 to the correct answer's probability in the truth
#: ratio, to the truth ratio inside 1/TR of the forget aggregate, and to the normalised probability's
#: denominator. It matters only where an answer's probability is near 1e-10 (about 23 nats per
#: token), which unlearning that destroys an answer reaches: there the ratio saturates. corrected
#: computes the ratios from the NLLs directly (their logarithms), without it.
EPS = 1e-10


def truth_ratio(nll_para, nll_pert, mode: str = "corrected") -> np.ndarray:
    """TR per question from the paraphrased answer's mean token NLL (n,) and the perturbed answers'
    (n, k): exp(-mean_k nll_pert) / exp(-nll_para); in reference mode / (exp(-nll_para) + EPS)."""
    nll_para, mean_pert = np.asarray(nll_para, float), np.asarray(nll_pert, float).mean(1)
    if mode == "reference":
        return np.exp(-mean_pert) / (np.exp(-nll_para) + EPS)
    return np.exp(nll_para - mean_pert)


def forget_truth_ratio(tr, mode: str = "corrected") -> float:
    """TOFU's forget-set aggregate: closer to 1 is better, min(TR, 1/TR) averaged (reference:
    1/(TR + EPS))."""
    tr = np.asarray(tr, float)
    return float(np.minimum(tr, 1 / (tr + EPS) if mode == "reference" else 1 / tr).mean())


def true_truth_ratio(tr) -> float:
    """TOFU's retain and control aggregate: the true answer more likely is better, max(0, 1 - TR)."""
    return float(np.maximum(0.0, 1 - np.asarray(tr, float)).mean())


def forget_quality(tr_unlearned, tr_oracle) -> float:
    """The KS test's p-value between two models' forget-set truth ratios (1: indistinguishable)."""
    return float(sps.ks_2samp(np.asarray(tr_unlearned, float), np.asarray(tr_oracle, float)).pvalue)


def normalised_prob(nll_true, nll_pert, mode: str = "corrected") -> np.ndarray:
    """P_true / (P_true + sum of P_pert) per question (the control sets' probability; reference:
    EPS added to the denominator)."""
    p_true = answer_prob(nll_true)
    return p_true / (p_true + answer_prob(nll_pert).sum(1) + (EPS if mode == "reference" else 0.0))


_SCORER = None


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall (LCS / reference tokens) as ``rouge_score.RougeScorer(['rougeL'],
    use_stemmer=True)`` gives it."""
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer
        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(_SCORER.score(reference, prediction)["rougeL"].recall)


def model_utility(retain: dict, controls: list[dict]) -> float:
    """The harmonic mean of the nine numbers: ``retain`` = {prob, rouge, truth} (mean P, ROUGE-L
    recall, ``true_truth_ratio``); each control = {prob (normalised), rouge, truth}. A zero makes
    it zero, as in TOFU."""
    values = [retain[k] for k in ("prob", "rouge", "truth")] + [c[k] for c in controls for k in ("prob", "rouge", "truth")]
    values = np.asarray(values, float)
    return 0.0 if (values <= 0).any() else float(sps.hmean(values))
