"""The five client-unlearning methods of the FOLTR study: ``(trained, data, spec, p, mode, gen) -> w``.

``trained`` is what ``fpdgd.train`` returned (final weights, the per-round history, the clients as
training left them); ``spec`` the training spec; ``p`` the method's parameters; ``gen`` a
``numpy.random.Generator`` seeded by the unlearning seed s_u. Clients 0 .. n_forget-1 are forgotten.

Randomness: the reference code seeds nothing when it unlearns (its unlearning seed is unused:
the displayed rankings, poison noise, Retrain's initial weights and PGA's random vectors come
from an unseeded global generator; facts A6). Here all of them come from ``gen``, so every
unlearning job is a function of its inputs and s_u. As in the reference, each client's click
generator and query cursor continue from where training left them (a copy: the trained model's
clients are never changed).

The reference's bugs are named ``quirk (reference)`` where they live; ``corrected`` does what
the methods' papers intend. Facts cited as "facts A3" are in
``shared/reference/foltr-and-lm-facts.md``.
"""
from __future__ import annotations

import copy

import numpy as np

from . import fpdgd as F


def _clients(trained):
    return copy.deepcopy(trained["clients"])


def _rounds(w, clients, active, n, rounds, lr, gen):
    """``rounds`` FedAvg rounds of the ``active`` clients, ``n`` interactions each, from ``w``."""
    for _ in range(rounds):
        w = np.mean([F.local_update(w, clients[i], n, lr, gen) for i in active], axis=0)
    return w


def retrain(trained, data, spec, p, mode, gen):
    """Retrain: FPDGD without the forgotten clients, the gold standard.

    reference: w <- 0.01 * randn (not normalised, unlike training's start), then ``rounds`` rounds
    of the remaining clients, continuing their query cursors and click generators.
    corrected: from scratch as training started (a random direction of norm 0.01) with the
    remaining clients from their first query, their clicks drawn anew from (s_u, client).
    """
    benign = range(spec["n_forget"], spec["n_clients"])
    n_features = trained["w"].shape[0]
    clients = _clients(trained)
    if mode == "reference":
        w = 0.01 * gen.standard_normal(n_features)
    else:
        w = F.initial_weights(n_features, gen)
        seed = int(gen.integers(2**62))
        for i in benign:
            clients[i].cursor, clients[i].rng = 0, np.random.default_rng([seed, i])
    return _rounds(w, clients, benign, spec["interactions"], spec["rounds"], spec["lr"], gen)


def fed_remove(trained, data, spec, p, mode, gen):
    """FedRemove: the mean of the remaining clients' stored last-round weights; deterministic and
    query-free (the same in both modes). Those weights were trained from the possibly poisoned
    global model, so a poisoned model stays poisoned (facts A7)."""
    return trained["sent"][spec["n_forget"]:, -1].mean(0)


def fine_tuning(trained, data, spec, p, mode, gen):
    """Fine-tuning: ``rounds`` more rounds from the trained model with the remaining clients only.

    quirk (reference): the round count lands in the interactions-per-round slot, capped at each
    client's number of queries, so every remaining client makes a full pass over its queries per
    round (about 20 times training's work). corrected: ``interactions`` per round, as in training.
    quirk (reference): the model returned, and scored, is the global model before the last round's
    aggregation (the reference logs ndcg_server before aggregating); corrected: after it.
    """
    benign = range(spec["n_forget"], spec["n_clients"])
    clients = _clients(trained)
    w = trained["w"].copy()
    for _ in range(spec["rounds"]):
        ups = []
        for i in benign:
            n = min(spec["rounds"], len(clients[i].queries)) if mode == "reference" else spec["interactions"]
            ups.append(F.local_update(w, clients[i], n, spec["lr"], gen))
        scored, w = w, np.mean(ups, axis=0)
    # quirk (reference): its reported ndcg_server[-1] is logged before the last round's aggregation
    return scored if mode == "reference" else w


def pga_reference_ball(trained, spec, gen):
    """(w_ref, radius) of projected gradient ascent (Halimi et al. 2022): the mean of the remaining
    clients' last-round weights, and twice its mean distance to 10 random vectors 0.01 * randn."""
    w_ref = trained["sent"][spec["n_forget"]:, -1].mean(0)
    rand = 0.01 * gen.standard_normal((10, w_ref.shape[0]))
    return w_ref, 2.0 * float(np.linalg.norm(rand - w_ref, axis=1).mean())


def _project(w, centre, radius):
    d = np.linalg.norm(w - centre)
    return w if d <= radius else centre + (w - centre) * (radius / d)


def pga(trained, data, spec, p, mode, gen):
    """PGA: the forgotten clients ascend their PDGD gradient while the others train normally;
    ``rounds`` FedAvg rounds of all clients from the trained model.

    Each forgotten client makes ``interactions`` steps on queries drawn uniformly, with replacement,
    from all training queries (its click generator draws them), its gradient negated (corrupted
    first under model poisoning with gamma ~ U(0, 1)). quirk (reference): no projection (the
    reference computes the ball and ignores it). corrected: every forgotten client's weights and
    every aggregate are projected onto the ball of ``pga_reference_ball``. quirk (reference): the
    model returned, and scored, is the global model before the last aggregation, as for Fine-tuning.
    """
    clients = _clients(trained)
    ball = pga_reference_ball(trained, spec, gen)  # the reference draws these vectors too
    train_q = data["train"]
    w = trained["w"].copy()
    for _ in range(spec["rounds"]):
        ups = []
        for i, cl in enumerate(clients):
            if i >= spec["n_forget"]:
                ups.append(F.local_update(w, cl, spec["interactions"], spec["lr"], gen))
                continue
            local = w.copy()
            for _ in range(spec["interactions"]):
                q = train_q[int(cl.rng.integers(len(train_q)))]
                ask = F.Client([q], cl.click_model, cl.malicious, cl.rng, n_grades=cl.n_grades)
                local = F.local_update(local, ask, 1, spec["lr"], gen, sign=-1.0, poison=(1.0, 0.0, 1.0))
                if mode == "corrected":
                    local = _project(local, *ball)
            ups.append(local)
        scored, w = w, np.mean(ups, axis=0)
        if mode == "corrected":
            w = _project(w, *ball)
    # quirk (reference): its reported ndcg_server[-1] is logged before the last round's aggregation
    return scored if mode == "reference" else w


def fed_eraser(trained, data, spec, p, mode, gen):
    """FedEraser (Liu et al. 2021): calibrated retraining from the stored history.

    U_0 = training's initial weights; U_1 = the remaining clients' mean round-0 weights. For
    t = 1 .. rounds-1 each remaining client makes ``interactions`` steps from U_t, giving new_i;
    every ``calibrate_every`` rounds U_{t+1} = U_t + ||mean_i w_i(t) - GM_t|| (mean new_i - U_t)
    / ||mean new_i - U_t|| (w_i(t) the stored round-t weights, GM_t the round-t global), else
    U_{t+1} = mean new_i.

    quirk (reference), twice: the clients share one array, so each starts where the previous one
    ended and U_t itself becomes the last client's result before calibration; and the model
    evaluated is w* + 0.1 (U_0 + ... + U_rounds), the trained weights with every U added at
    learning rate 0.1, not U_rounds. corrected: every client starts from U_t, and the result is
    U_rounds.
    """
    benign = list(range(spec["n_forget"], spec["n_clients"]))
    clients = _clients(trained)
    every = p["calibrate_every"]
    history, sent = trained["history"], trained["sent"]
    U = [history[0].copy(), sent[benign, 0].mean(0)]
    for t in range(1, spec["rounds"]):
        if mode == "reference":
            chain = U[t]  # quirk (reference): one array, updated in place by each client in turn
            news = []
            for i in benign:
                chain[:] = F.local_update(chain, clients[i], spec["interactions"], spec["lr"], gen)
                news.append(chain.copy())
            start = chain  # the mutated U_t
        else:
            news = [F.local_update(U[t], clients[i], spec["interactions"], spec["lr"], gen) for i in benign]
            start = U[t]
        new = np.mean(news, axis=0)
        if t % every == 0:
            step = np.linalg.norm(sent[benign, t].mean(0) - history[t])
            direction = new - start
            norm = np.linalg.norm(direction)
            U.append(start + step * direction / norm if norm > 0 else start.copy())
        else:
            U.append(new)
    if mode == "reference":
        return trained["w"] + 0.1 * np.sum(U, axis=0)  # quirk (reference): add-at-0.1 evaluation
    return U[-1]
