"""A small decoder-only transformer over the synthetic facts' words, the answer-only NLL, and the
three unlearning losses of OpenUnlearning (``shared/reference/foltr-and-lm-facts.md`` §B2).

A fact is encoded as ``<bos> question <sep> answer <eos>``; the loss sees only the answer's tokens
and ``<eos>`` (labels -100 elsewhere, as Hugging Face's causal-LM loss has them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100


def encode(question: str, answer: str, index: dict) -> tuple[list[int], list[int]]:
    """(token ids, labels): labels are -100 on ``<bos>``, the question and ``<sep>``."""
    q = [index["<bos>"]] + [index[w] for w in question.split()] + [index["<sep>"]]
    a = [index[w] for w in answer.split()] + [index["<eos>"]]
    return q + a, [IGNORE] * len(q) + a


def collate(pairs: list[tuple[list[int], list[int]]], pad: int = 0):
    """Right-padded (ids, labels) tensors of a batch; pads carry label -100."""
    n = max(len(ids) for ids, _ in pairs)
    ids = torch.full((len(pairs), n), pad, dtype=torch.long)
    labels = torch.full((len(pairs), n), IGNORE, dtype=torch.long)
    for i, (x, y) in enumerate(pairs):
        ids[i, :len(x)], labels[i, :len(y)] = torch.tensor(x), torch.tensor(y)
    return ids, labels


class TinyLM(nn.Module):
    """Token and position embeddings, ``layers`` pre-norm causal self-attention blocks, a final
    LayerNorm and a linear head. ``dropout`` is 0 by default: torch's dropout draws from the global
    generator, and every result here is a function of its seeds."""

    def __init__(self, vocab: int, d: int = 64, layers: int = 2, heads: int = 4, max_len: int = 64,
                 dropout: float = 0.0):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
        block = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """The next-token logits at every position of ``ids`` (batch, length)."""
        n = ids.shape[1]
        h = self.tok(ids) + self.pos(torch.arange(n, device=ids.device))
        causal = nn.Transformer.generate_square_subsequent_mask(n, device=ids.device)
        return self.head(self.norm(self.blocks(h, mask=causal, is_causal=True)))


def build(vocab: int, cfg: dict, seed: int) -> TinyLM:
    """A freshly initialised model, its weights fixed by ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyLM(vocab, cfg.get("d", 64), cfg.get("layers", 2), cfg.get("heads", 4), cfg.get("max_len", 64))


def token_nll(model, ids, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token NLL of every next token, mask of the answer tokens), both (batch, length - 1)."""
    logits = model(ids)[:, :-1]
    target = labels[:, 1:]
    mask = target != IGNORE
    nll = F.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
    return nll * mask, mask


def nll(model, ids, labels) -> torch.Tensor:
    """Hugging Face's causal-LM loss: the mean NLL over every answer token of the batch."""
    tok, mask = token_nll(model, ids, labels)
    return tok.sum() / mask.sum()


def answer_logprob(model, ids, labels) -> torch.Tensor:
    """log pi(y | x) per sequence: the answer tokens' log-probabilities summed (NPO's)."""
    tok, _ = token_nll(model, ids, labels)
    return -tok.sum(1)


def mean_answer_nll(model, ids, labels) -> torch.Tensor:
    """Per sequence, the mean NLL of its answer tokens (TOFU's per-answer probability is its exp(-.))."""
    tok, mask = token_nll(model, ids, labels)
    return tok.sum(1) / mask.sum(1)


# --- the unlearning losses (OpenUnlearning's defaults: gamma = alpha = 1, beta = 0.1) --------

def grad_ascent_loss(model, forget) -> torch.Tensor:
    """GradAscent: L = -NLL(forget batch)."""
    return -nll(model, *forget)


def grad_diff_loss(model, forget, retain, gamma: float = 1.0, alpha: float = 1.0) -> torch.Tensor:
    """GradDiff: L = gamma·(-NLL_forget) + alpha·NLL_retain."""
    return -gamma * nll(model, *forget) + alpha * nll(model, *retain)


def npo_loss(model, reference, forget, retain, beta: float = 0.1, gamma: float = 1.0,
             alpha: float = 1.0) -> torch.Tensor:
    """NPO: L = gamma·(2/beta)·mean_i log(1 + exp(beta·(log pi(y_i|x_i) - log pi_ref(y_i|x_i))))
    + alpha·NLL_retain, log-probabilities summed over answer tokens, pi_ref frozen at the start."""
    with torch.no_grad():
        ref = answer_logprob(reference, *forget)
    ratio = answer_logprob(model, *forget) - ref
    return gamma * (2 / beta) * F.softplus(beta * ratio).mean() + alpha * nll(model, *retain)


# --- optimisation ---------------------------------------------------------------------------

def optimise(model, n: int, loss, recipe: dict, gen: torch.Generator) -> int:
    """``recipe['epochs']`` passes over ``n`` items in batches of ``recipe['batch']``, the order of
    each pass drawn from ``gen``; ``loss(indices)`` gives a batch's loss. AdamW (``lr``,
    ``weight_decay``) with Hugging Face's linear schedule: ``warmup_epochs`` (default 1) of linear
    warm-up from 0, then a linear decay to 0, as OpenUnlearning's trainer runs it. Returns the steps taken."""
    batch = recipe["batch"]
    per_epoch = -(-n // batch)
    total, warm = recipe["epochs"] * per_epoch, recipe.get("warmup_epochs", 1) * per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe.get("weight_decay", 0.01))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    model.train()
    for _ in range(recipe["epochs"]):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            opt.zero_grad()
            loss(order[i:i + batch]).backward()
            opt.step()
            sched.step()
    model.eval()
    return total


def fit(model, pairs: list, recipe: dict, gen: torch.Generator) -> int:
    """Train on encoded (ids, labels) pairs with the answer-only NLL; returns the tokens passed
    through the network (question and answer, padding not counted), for the tokens-per-second figure."""
    optimise(model, len(pairs), lambda idx: nll(model, *collate([pairs[i] for i in idx.tolist()])), recipe, gen)
    return recipe["epochs"] * sum(len(ids) for ids, _ in pairs)
