"""The language-model analogue's network and losses (mu_core.lm.model), each loss by hand on one batch."""
import math

import pytest
import torch

from mu_core.lm import data as LD, model as LM


@pytest.fixture(scope="module")
def batch():
    fs = LD.facts(0, n_entities=10, n_control=2)
    vocab = LD.vocabulary(fs)
    index = {w: i for i, w in enumerate(vocab)}
    forget = LM.collate([LM.encode(f["question"], f["answer"], index) for f in fs if f["split"] == "forget"])
    retain = LM.collate([LM.encode(f["question"], f["answer"], index) for f in fs if f["split"] == "retain"][:6])
    return vocab, index, forget, retain


def _by_hand(model, ids, labels):
    """Per sequence: the answer tokens' log-probabilities, one token at a time."""
    out = []
    logp = torch.log_softmax(model(ids), -1)
    for b in range(len(ids)):
        out.append([float(logp[b, t - 1, labels[b, t]]) for t in range(1, ids.shape[1]) if labels[b, t] != LM.IGNORE])
    return out


def test_encoding_masks_the_question_and_the_model_is_causal_and_seeded(batch):
    vocab, index, forget, _ = batch
    ids, labels = LM.encode("where was x born ?".replace("x", "<pad>"), "<pad> was born in <pad> .", index)
    assert labels[:7] == [LM.IGNORE] * 7 and labels[-1] == index["<eos>"] and ids[7:] == labels[7:]
    a, b = LM.build(len(vocab), {}, 1), LM.build(len(vocab), {}, 1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    ids = forget[0][:1]
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % len(vocab)  # a later token cannot change earlier outputs
    with torch.no_grad():
        torch.testing.assert_close(a(ids)[0, :-1], a(changed)[0, :-1])


def test_nll_and_answer_logprob_by_hand(batch):
    vocab, _, forget, _ = batch
    model = LM.build(len(vocab), {}, 2).eval()
    with torch.no_grad():
        hand = _by_hand(model, *forget)
        flat = [v for seq in hand for v in seq]
        assert float(LM.nll(model, *forget)) == pytest.approx(-sum(flat) / len(flat), rel=1e-5)
        assert LM.answer_logprob(model, *forget).tolist() == pytest.approx([sum(s) for s in hand], rel=1e-5)
        assert LM.mean_answer_nll(model, *forget).tolist() == pytest.approx([-sum(s) / len(s) for s in hand], rel=1e-5)


def test_the_three_losses_by_hand(batch):
    vocab, _, forget, retain = batch
    model, ref = LM.build(len(vocab), {}, 3).eval(), LM.build(len(vocab), {}, 4).eval()
    with torch.no_grad():
        nf, nr = float(LM.nll(model, *forget)), float(LM.nll(model, *retain))
        assert float(LM.grad_ascent_loss(model, forget)) == pytest.approx(-nf)
        assert float(LM.grad_diff_loss(model, forget, retain, gamma=2.0, alpha=0.5)) == pytest.approx(-2 * nf + 0.5 * nr, rel=1e-6)
        lp = [sum(s) for s in _by_hand(model, *forget)]
        lr = [sum(s) for s in _by_hand(ref, *forget)]
        beta = 0.1
        npo = (2 / beta) * sum(math.log1p(math.exp(beta * (a - b))) for a, b in zip(lp, lr)) / len(lp) + nr
        assert float(LM.npo_loss(model, ref, forget, retain, beta=beta)) == pytest.approx(npo, rel=1e-5)
        # with the model as its own reference, the forget term is (2 / beta)·log 2
        assert float(LM.npo_loss(model, model, forget, retain, beta=beta)) == pytest.approx(2 / beta * math.log(2) + nr, rel=1e-5)
