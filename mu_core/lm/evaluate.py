"""TOFU's evaluation of one model over the synthetic facts (the formulas: ``lm.metrics``): answer
NLLs, truth ratios, greedy answers and their ROUGE-L recall, forget quality and model utility.

The sets evaluated, as TOFU's: the forget split; a fixed subset of the retain split (TOFU scores
its ``retain_perturbed`` subset; here the first ``eval.entities`` retain entities); and as many
control entities in two halves, standing for TOFU's two control sets (real authors, world facts),
so that model utility is a harmonic mean of nine numbers as in TOFU.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from .. import jobs
from . import metrics as MT
from . import model as LM

EVAL_VERSION = 2  # bump when what an evaluation computes changes: stored results recompute; 2: OpenUnlearning's
                  # epsilons in reference mode (``metrics.EPS``)


# a model whose answer NLLs hold NaN or infinity (it diverged): none of its metrics means anything
NonFinite = jobs.NonFinite


def _mean_nll(model, questions, answers, index, batch=256):
    out = []
    with torch.no_grad():
        for i in range(0, len(questions), batch):
            pairs = [LM.encode(q, a, index) for q, a in zip(questions[i:i + batch], answers[i:i + batch])]
            out.append(LM.mean_answer_nll(model, *LM.collate(pairs)))
    nll = torch.cat(out).numpy().astype(float)
    bad = int((~np.isfinite(nll)).sum())
    if bad:
        raise NonFinite(f"non-finite answer NLLs on {bad} of {len(nll)} answers")
    return nll


def greedy(model, questions: list[str], index: dict, vocab: list[str], max_new: int) -> list[str]:
    """The greedy answer (argmax token by token, up to ``<eos>`` or ``max_new`` tokens) to each
    question, batched by question length (no padding enters a causal model's context)."""
    by_len = defaultdict(list)
    for i, q in enumerate(questions):
        by_len[len(q.split())].append(i)
    out = [""] * len(questions)
    eos = index["<eos>"]
    with torch.no_grad():
        for idx in by_len.values():
            ids = torch.tensor([[index["<bos>"]] + [index[w] for w in questions[i].split()] + [index["<sep>"]] for i in idx])
            done = torch.zeros(len(idx), dtype=torch.bool)
            words = [[] for _ in idx]
            for _ in range(max_new):
                nxt = model(ids)[:, -1].argmax(-1)
                for k in (~done).nonzero().flatten().tolist():
                    if int(nxt[k]) != eos:
                        words[k].append(vocab[int(nxt[k])])
                done |= nxt == eos
                if done.all():
                    break
                ids = torch.cat([ids, nxt[:, None]], 1)
            for k, i in enumerate(idx):
                out[i] = " ".join(words[k])
    return out


def base_and_perturbed_nlls(model, facts: list[dict], index: dict, base: str):
    """(mean token NLL of each fact's ``base`` answer (n,), of its perturbed answers (n, k))."""
    qs = [f["question"] for f in facts]
    nll_base = _mean_nll(model, qs, [f[base] for f in facts], index)
    k = len(facts[0]["perturbed"])
    nll_pert = _mean_nll(model, [q for q in qs for _ in range(k)], [p for f in facts for p in f["perturbed"]], index)
    return nll_base, nll_pert.reshape(len(facts), k)


def truth_ratios(model, facts: list[dict], index: dict, base: str, mode: str = "corrected") -> np.ndarray:
    """TR per fact: the perturbed answers against ``base`` ('paraphrase' for fictitious entities,
    'answer' for control facts)."""
    return MT.truth_ratio(*base_and_perturbed_nlls(model, facts, index, base), mode)


def rouge(model, facts, index, vocab, max_new) -> float:
    answers = greedy(model, [f["question"] for f in facts], index, vocab, max_new)
    return float(np.mean([MT.rouge_l_recall(a, f["answer"]) for a, f in zip(answers, facts)]))


def evaluate(model, sets: dict, oracle_nlls, index: dict, vocab: list[str], max_new: int, mode: str = "corrected") -> dict:
    """The job's metrics. ``sets``: fact lists ``forget``, ``retain_eval``, ``control`` (a list of two
    halves); ``oracle_nlls``: (paraphrase NLLs, perturbed NLLs) of the forget facts under the model
    that never saw the forget split, whose truth ratios forget quality compares with."""
    model.eval()
    tr_f = truth_ratios(model, sets["forget"], index, "paraphrase", mode)
    fq = MT.forget_quality(tr_f, MT.truth_ratio(*oracle_nlls, mode))
    r = sets["retain_eval"]
    retain = {"prob": float(MT.answer_prob(_mean_nll(model, [f["question"] for f in r], [f["answer"] for f in r], index)).mean()),
              "rouge": rouge(model, r, index, vocab, max_new),
              "truth": MT.true_truth_ratio(truth_ratios(model, r, index, "paraphrase", mode))}
    controls = []
    for c in sets["control"]:
        nll_true, nll_pert = base_and_perturbed_nlls(model, c, index, "answer")
        controls.append({"prob": float(MT.normalised_prob(nll_true, nll_pert, mode).mean()),
                         "rouge": rouge(model, c, index, vocab, max_new),
                         "truth": MT.true_truth_ratio(MT.truth_ratio(nll_true, nll_pert, mode))})
    return {"log10_forget_quality": float(np.log10(fq)) if fq > 0 else float("-inf"), "forget_quality": fq,
            "model_utility": MT.model_utility(retain, controls),
            "forget_truth_ratio": MT.forget_truth_ratio(tr_f, mode),
            "forget_rouge": rouge(model, sets["forget"], index, vocab, max_new),
            "retain_rouge": retain["rouge"]}
