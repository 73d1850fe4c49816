"""FPDGD interactions per second: a reference-style loop beside ``mu_core.ltr.fpdgd``, in one run,
and the paper's full learning-to-rank grid projected from the measured rate.

* ``reference style``: one interaction at a time as the reference code makes it (facts A1): the
  displayed ranking drawn position by position with weighted choices among the documents left,
  the PDGD pair weights in a double Python loop with both Plackett-Luce probabilities written out.
* ``mu_core``: ``fpdgd.local_update`` (Gumbel-top-k sampling, the pair weights as arrays).

Both run the same clients on the same synthetic MQ2007-like collection (1,700 queries, 46
features); each interaction's draws differ, so the two are compared by speed, not bits. The
projection counts the interactions of the ``ltr-paper`` plan (3 scenarios x 3 click models x 5
methods, protocols A and B with 10 seeds each, 1,000 rounds; the reference fine-tuning's full
passes included) and divides by the measured rate on every core of this machine. Run::

    .venv/bin/python benchmarks/ltr.py            # about a minute on 2 cores
    .venv/bin/python benchmarks/ltr.py --smoke    # a few interactions (make test)
"""
import argparse
import datetime
import math
import os
import platform
import time

import numpy as np

from mu_core import plan, profiles
from mu_core.ltr import data as L
from mu_core.ltr import fpdgd as F


def reference_ranking(scores, k, rng):
    """Position by position: a weighted choice among the documents not yet placed."""
    p = np.exp(scores - scores.max())
    left = list(range(len(scores)))
    out = []
    for _ in range(min(k, len(scores))):
        w = p[left] / p[left].sum()
        out.append(left.pop(int(rng.choice(len(left), p=w))))
    return np.array(out)


def reference_gradient(x, scores, ranking, c):
    """The PDGD gradient with its pair weights in a double loop, both probabilities written out."""
    grad = np.zeros(x.shape[1])
    if not c.any():
        return grad
    last = int(np.flatnonzero(c).max())
    observed = [i for i in range(len(ranking)) if i <= min(last + 1, len(ranking) - 1)]
    e = np.exp(scores - scores.max())

    def prob(order, lo, hi):
        placed, p = set(order[:lo]), 1.0
        for i in range(lo, hi + 1):
            p *= e[order[i]] / sum(e[d] for d in range(len(e)) if d not in placed)
            placed.add(order[i])
        return p
    for p_ in [i for i in observed if c[i]]:
        for n in [i for i in observed if not c[i]]:
            a, b = scores[ranking[p_]], scores[ranking[n]]
            pair = math.exp(a - b) / (1 + math.exp(a - b)) ** 2
            swapped = list(ranking)
            swapped[p_], swapped[n] = swapped[n], swapped[p_]
            lo, hi = min(p_, n), max(p_, n)
            pr, ps = prob(list(ranking), lo, hi), prob(swapped, lo, hi)
            w = pair * ps / (pr + ps)
            grad += w * (x[ranking[p_]] - x[ranking[n]])
    return grad


def reference_update(w, client, n, lr, rng):
    w = w.copy()
    for _ in range(n):
        q = client.queries[client.cursor % len(client.queries)]
        client.cursor += 1
        s = q.x @ w
        r = reference_ranking(s, F.K, rng)
        c = F.clicks(q.labels[r], client.click_model, client.rng)
        w += lr * reference_gradient(q.x, s, r, c)
    return w


def rate(update, clients, rounds, n):
    rng = np.random.default_rng(0)
    w = F.initial_weights(clients[0].queries[0].x.shape[1], rng)
    t0 = time.perf_counter()
    for _ in range(rounds):
        w = np.mean([update(w, cl, n, 0.1, rng) for cl in clients], axis=0)
    return rounds * len(clients) * n / (time.perf_counter() - t0)


def paper_interactions() -> dict:
    """Interactions of the ltr-paper plan by what makes them (training, each method's jobs)."""
    prof = profiles.load("ltr-paper")
    _, tspecs, groups = plan.schedule(prof)
    t = prof["train"]
    per_client = 1692 * 3 // 5 // t["n_clients"]  # MQ2007 Fold1's training queries per client
    benign, n, rounds = t["n_clients"] - t["n_forget"], t["interactions"], t["rounds"]
    per_job = {"retrain": rounds * benign * n, "fed_eraser": rounds * benign * n, "fed_remove": 0,
               "pga": rounds * t["n_clients"] * n, "fine_tuning": rounds * benign * min(rounds, per_client)}
    out = {"training": len(tspecs) * rounds * t["n_clients"] * n}
    for jobs in groups.values():
        for j in jobs:
            out[j["method"]] = out.get(j["method"], 0) + per_job[j["method"]]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="a few interactions (CPU seconds)")
    args = ap.parse_args()
    n_queries, rounds = (200, 2) if args.smoke else (1700, 20)
    qs = L.synthetic_collection(0, n_queries)
    fold = {"train": qs[:3 * n_queries // 5], "test": qs[4 * n_queries // 5:]}
    spec = {"scenario": "clean", "click_model": "navigational", "n_clients": 10, "n_forget": 3}
    make = lambda: F.make_clients(fold["train"], spec, 1, np.random.default_rng(1))  # noqa: E731
    ref = rate(reference_update, make(), rounds, 5)
    ours = rate(F.local_update, make(), rounds, 5)
    cores = os.cpu_count() or 1
    counts = paper_interactions()
    total = sum(counts.values())
    print(f"machine: {platform.machine()}, {cores} cores; {datetime.date.today()}; synthetic collection of "
          f"{n_queries} queries, 10 clients x 5 interactions x {rounds} rounds, one core\n")
    print("| path | interactions/s | paper grid, hours on every core |")
    print("| --- | --- | --- |")
    for name, r in (("reference style (one interaction at a time, pair loop)", ref), ("mu_core.ltr.fpdgd", ours)):
        print(f"| {name} | {r:,.0f} | {total / r / cores / 3600:,.1f} |")
    print(f"\npaper grid: {total / 1e6:,.1f} M interactions: " +
          ", ".join(f"{k} {v / 1e6:,.1f} M" for k, v in counts.items()))


if __name__ == "__main__":
    main()
