"""Federated pairwise differentiable gradient descent (FPDGD), as the reference FOLTR code runs it
(facts A1-A3 of ``shared/reference/foltr-and-lm-facts.md``), and offline nDCG@10 (facts A4).

A linear ranker ``score = X @ w``; each interaction shows a Plackett-Luce sample of the top 10,
simulates clicks with a cascade click model, and takes one PDGD step; each round every client
makes ``interactions`` steps from the global weights on its own queries, in cyclic order, and
the server averages the clients' weights (FedAvg with equal counts: the mean).

Randomness: the reference draws the initial weights, the query partition, the displayed rankings
and the model-poison noise from numpy's global generator (the initial weights unseeded) and the
clicks from ``RandomState(10 s_t + i)`` per client. Here one ``numpy.random.Generator`` seeded by
s_t draws the first four and one generator per client, seeded by (s_t, i), the clicks, so a model
is a function of its spec and s_t alone. Rankings are drawn by Gumbel-top-k, which has the same
distribution as the reference's successive weighted draws, not the same bits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

# P(click | relevance 0, 1, 2) and P(stop after a click | relevance), MQ2007 (facts A2)
CLICK_MODELS = {
    "perfect": ((0.0, 0.5, 1.0), (0.0, 0.0, 0.0)),
    "navigational": ((0.05, 0.5, 0.95), (0.2, 0.5, 0.9)),
    "informational": ((0.4, 0.7, 0.9), (0.1, 0.3, 0.5)),
    "poison": ((1.0, 0.5, 0.0), (0.0, 0.0, 0.0)),  # the data-poisoning clients' clicks
}
# the same for five grades, 0..4 (MQ2008, MSLR; facts A2)
CLICK_MODELS_5 = {
    "perfect": ((0.0, 0.2, 0.4, 0.8, 1.0), (0.0, 0.0, 0.0, 0.0, 0.0)),
    "navigational": ((0.05, 0.3, 0.5, 0.7, 0.95), (0.2, 0.3, 0.5, 0.7, 0.9)),
    "informational": ((0.4, 0.6, 0.7, 0.8, 0.9), (0.1, 0.2, 0.3, 0.4, 0.5)),
    "poison": ((1.0, 0.8, 0.6, 0.2, 0.0), (0.0, 0.0, 0.0, 0.0, 0.0)),
}
MAX_GRADE = 4


def grades(queries) -> int:
    """The click models' grade count for a collection: 3 (labels 0..2, MQ2007) or 5 (0..4)."""
    return 5 if max(int(q.labels.max()) for q in queries) > 2 else 3
SCENARIOS = ("clean", "data_poison", "model_poison")
K = 10  # displayed ranking length and nDCG cut-off


def initial_weights(n_features: int, rng: np.random.Generator) -> np.ndarray:
    """A random direction of norm 0.01 (the reference's ``random_initial``)."""
    u = rng.standard_normal(n_features)
    return 0.01 * u / np.linalg.norm(u)


def plackett_luce(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """A ranking of min(k, n) documents drawn without replacement with P ∝ exp(score) (tau = 1),
    by Gumbel-top-k: the same distribution as successive weighted draws."""
    g = scores + rng.gumbel(size=len(scores))
    return np.argsort(-g, kind="stable")[:min(k, len(scores))]


def clicks(labels: np.ndarray, model: str, rng: np.random.Generator, n_grades: int = 3) -> np.ndarray:
    """Cascade clicks on a displayed list with relevance ``labels`` (facts A2): at each examined
    position draw u1 then u2; click when u1 < P_click, stop when clicked and u2 < P_stop
    (``n_grades`` 5: the five-grade probabilities)."""
    p_click, p_stop = (CLICK_MODELS_5 if n_grades == 5 else CLICK_MODELS)[model]
    out = np.zeros(len(labels), dtype=np.int64)
    for i, rel in enumerate(labels):
        u1, u2 = rng.random(2)
        if u1 < p_click[rel]:
            out[i] = 1
            if u2 < p_stop[rel]:
                break
    return out


def pdgd_gradient(x: np.ndarray, scores: np.ndarray, ranking: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The debiased PDGD gradient of one interaction (Oosterhuis and de Rijke 2018; facts A1 step 4).

    Observed positions: 0 up to one past the last click. For each clicked p and observed unclicked
    n: w_pn = sigma(a - b) sigma(b - a) (a, b their scores), times rho = P(R*) / (P(R) + P(R*)),
    R* the ranking with p and n swapped, both probabilities Plackett-Luce over the positions
    between them with denominators over all the query's documents. Clicked documents get
    +sum_n w_pn, negatives -sum_p w_pn; the gradient is sum_d weight_d x_d.

    Every denominator adds the documents it sums, shifted by the query's highest score, and never
    removes documents from a larger sum (as the reference sums the remaining documents at each
    position): a difference of sums lost every digit once the scores spread over about 40
    (``tests/ltr/test_ltr.py`` checks a range of 60 against a 60-digit computation). A spread beyond
    about 700 would underflow the smallest terms to 0, no worse than the reference.
    """
    grad = np.zeros(x.shape[1])
    if not c.any():
        return grad
    k = len(ranking)
    last = int(np.flatnonzero(c).max())
    observed = np.arange(k) <= min(last + 1, k - 1)
    pos = np.flatnonzero(c == 1)
    neg = np.flatnonzero(observed & (c == 0))
    if len(pos) == 0 or len(neg) == 0:
        return grad
    s = scores - scores.max()
    e = np.exp(s)
    shown = e[ranking]
    unshown = np.ones(len(e), dtype=bool)
    unshown[ranking] = False
    rest = e[unshown].sum()  # the documents never shown: in every remaining set
    # span[i, j] = the sum over the documents shown at positions i .. j-1 (0 when empty): sums of
    # positive terms only, each term at most 1
    span = np.zeros((k + 1, k + 1))
    span[:k, 1:] = np.cumsum(np.triu(np.broadcast_to(shown, (k, k))), axis=1)
    a, b = s[ranking[pos]][:, None], s[ranking[neg]][None, :]
    pair = np.exp(-np.abs(a - b)) / (1.0 + np.exp(-np.abs(a - b))) ** 2  # sigma(a - b) sigma(b - a)
    lo, hi = np.minimum(pos[:, None], neg[None, :]), np.maximum(pos[:, None], neg[None, :])
    # P(R) and P(R*) share their numerators (the same documents); at a position i in lo+1 .. hi, R*
    # has placed the document at hi before i instead of the one at lo: its denominator sums the
    # documents at positions i .. k-1 but hi, the one at lo, and the unshown ones
    log_ratio = np.zeros(pair.shape)  # log P(R) / P(R*)
    tail = span[hi + 1, k] + rest + shown[lo]  # the part of R*'s denominators that does not move with i
    for i in range(1, int(hi.max()) + 1):
        inside = (lo < i) & (i <= hi)
        if inside.any():
            swapped = np.where(inside, span[i, hi] + tail, 1.0)
            log_ratio += np.where(inside, np.log(swapped) - np.log(span[i, k] + rest), 0.0)
    w_pn = pair * expit(-log_ratio)  # pair weight times rho = P(R*) / (P(R) + P(R*))
    weight = np.zeros(len(scores))
    np.add.at(weight, ranking[pos], w_pn.sum(1))
    np.add.at(weight, ranking[neg], -w_pn.sum(0))
    return weight @ x


TIES = ("reference", "stable")


def rank(scores: np.ndarray, ties: str = "stable") -> np.ndarray:
    """Documents by descending score. ``stable``: tied documents in their input order.
    quirk (reference): ``np.flip(np.argsort(scores))``, numpy's default sort reversed: ties in the
    reverse of the order that sort leaves them in, which numpy does not promise (its default sort is
    not stable, and its vectorised versions depend on the processor). Only a collection with tied
    scores (MQ2007 has duplicate feature vectors; the synthetic one has none) sees a difference."""
    if ties == "reference":
        return np.flip(np.argsort(scores))
    return np.argsort(-scores, kind="stable")


def ndcg_at_k(queries, w: np.ndarray, k: int = K, ties: str = "stable") -> float:
    """Offline nDCG@k of the linear ranker ``w``: documents by descending score (``rank``), gain
    2^rel - 1, discount log2(i + 2); the mean over queries with a relevant document (others are skipped)."""
    vals = []
    disc = 1.0 / np.log2(np.arange(k) + 2)
    for q in queries:
        if not (q.labels > 0).any():
            continue
        order = rank(q.x @ w, ties)[:k]
        dcg = np.sum((2.0 ** q.labels[order] - 1) * disc[:len(order)])
        ideal = np.sort(q.labels[q.labels > 0])[::-1][:k]
        vals.append(dcg / np.sum((2.0 ** ideal - 1) * disc[:len(ideal)]))
    return float(np.mean(vals)) if vals else float("nan")


@dataclass
class Client:
    queries: list          # its share of the training queries, in order
    click_model: str
    malicious: bool        # model poisoning: its gradients are corrupted
    rng: np.random.Generator  # its clicks
    cursor: int = 0        # the next query, cyclic, persisting across rounds
    n_grades: int = 3      # the click models' grades: 5 for a collection with labels above 2


def partition(n_queries: int, n_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The reference's split: shuffle the training queries, give client i the slice
    [i q, (i + 1) q) with q = n // n_clients; the remainder is dropped."""
    perm = rng.permutation(n_queries)
    q = n_queries // n_clients
    return [perm[i * q:(i + 1) * q] for i in range(n_clients)]


def make_clients(train, spec: dict, s_t: int, rng: np.random.Generator) -> list[Client]:
    """The clients of a scenario (facts A3): clients 0 .. n_forget-1 are the ones to forget; under
    data_poison they click with the Poison model, under model_poison their gradients are corrupted."""
    parts = partition(len(train), spec["n_clients"], rng)
    out = []
    for i, idx in enumerate(parts):
        bad = i < spec["n_forget"]
        model = "poison" if bad and spec["scenario"] == "data_poison" else spec["click_model"]
        out.append(Client([train[j] for j in idx], model, bad and spec["scenario"] == "model_poison",
                          np.random.default_rng([s_t, i]), n_grades=grades(train)))
    return out


def local_update(w: np.ndarray, client: Client, n: int, lr: float, rng: np.random.Generator,
                 sign: float = 1.0, poison=(2.0, 1.0, 2.0)) -> np.ndarray:
    """``n`` interactions of one client from ``w`` (a copy is updated): each shows a ranking, draws
    clicks, computes the PDGD gradient (corrupted for a malicious client: g <- -scale gamma g + mu,
    gamma ~ U(lo, hi), mu ~ N(mean g, std g) per entry, ``poison = (scale, lo, hi)``; training's is
    (2, 1, 2)) and steps ``w += lr * sign * g``."""
    w = w.copy()
    for _ in range(n):
        q = client.queries[client.cursor % len(client.queries)]
        client.cursor += 1
        scores = q.x @ w
        ranking = plackett_luce(scores, K, rng)
        c = clicks(q.labels[ranking], client.click_model, client.rng, client.n_grades)
        g = pdgd_gradient(q.x, scores, ranking, c)
        if client.malicious:
            gamma = rng.uniform(poison[1], poison[2])
            mu = rng.normal(g.mean(), g.std(), size=g.shape)
            g = -poison[0] * gamma * g + mu
        w += lr * sign * g
    return w


def train(data: dict, spec: dict, s_t: int, track: bool = False) -> dict:
    """FPDGD training of one global ranker: a function of ``spec`` and s_t alone.

    ``spec``: scenario, click_model, n_clients, n_forget, rounds, interactions, lr. Returns the
    final weights, the history the unlearning methods read (global weights per round, each
    client's sent weights per round), the clients (their cursors and click generators as training
    left them) and, with ``track``, the test nDCG@10 per round (before each aggregation, as the
    reference logs it; it costs as much as the training itself).
    """
    rng = np.random.default_rng(s_t)
    n_features = data["train"][0].x.shape[1]
    w = initial_weights(n_features, rng)
    clients = make_clients(data["train"], spec, s_t, rng)
    rounds = spec["rounds"]
    history = np.zeros((rounds + 1, n_features))
    sent = np.zeros((len(clients), rounds, n_features))
    ndcg = np.full(rounds, np.nan)
    history[0] = w
    for t in range(rounds):
        for i, cl in enumerate(clients):
            sent[i, t] = local_update(w, cl, spec["interactions"], spec["lr"], rng)
        if track:
            ndcg[t] = ndcg_at_k(data["test"], w)
        w = sent[:, t].mean(0)
        history[t + 1] = w
    return {"w": w, "history": history, "sent": sent, "clients": clients, "ndcg": ndcg}
