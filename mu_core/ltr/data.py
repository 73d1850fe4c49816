"""Learning-to-rank data: the LETOR 4.0 text format (MQ2007's folds), read as the reference code
reads it, and a seeded synthetic MQ2007-like collection written in the same format.

A collection is a list of ``Query`` (its id, graded labels, a documents x features matrix).
Facts cited as "facts A5" are in ``shared/reference/foltr-and-lm-facts.md``.

Reading rules (facts A5), with one difference: the reference silently overwrites a query whose id
reappears after other queries and ignores feature indices beyond the declared count; here each of
those, a malformed line and a missing fold file stop with one line naming the file, line and problem.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

MQ2007_FEATURES = 46
MAX_GRADE = 4  # the click models know grades 0..2 and 0..4 (``fpdgd.CLICK_MODELS_5``)
FOLD_FILES = ("train.txt", "test.txt")  # the reference reads these two, never vali.txt


@dataclass(frozen=True)
class Query:
    qid: str
    labels: np.ndarray   # int, 0/1/2 for MQ2007, 0..4 for MQ2008 and MSLR
    x: np.ndarray        # documents x features, float64


def _bad(path, line_no, problem):
    return ConfigError(f"{path}, line {line_no}: {problem}")


def parse_letor(path: str, n_features: int = MQ2007_FEATURES) -> list[Query]:
    """The queries of one LETOR file, in file order; documents numbered in file order.

    ``<label> qid:<id> <j>:<v> ... [#comment]``: features go to column j - 1, missing ones and
    NaN become 0, parsing stops at the first token that is not ``<digits>:<value>``.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: the LETOR file is missing")
    queries, seen = [], set()
    qid, labels, rows = None, [], []

    def close():
        if qid is not None:
            queries.append(Query(qid, np.array(labels, dtype=np.int64), np.array(rows, dtype=np.float64)))

    with open(path, encoding="utf-8", errors="replace") as f:  # a stray byte in a comment is no reason to stop
        for line_no, line in enumerate(f, 1):
            cols = line.split()
            if not cols:
                continue
            try:
                label = float(cols[0])
            except ValueError:
                raise _bad(path, line_no, f"the label {cols[0]!r} is not a number") from None
            if not (math.isfinite(label) and label == int(label) and label >= 0):
                raise _bad(path, line_no, f"the label {cols[0]!r} is not a non-negative whole number")
            if label > MAX_GRADE:
                raise _bad(path, line_no, f"the label {cols[0]} is above {MAX_GRADE}: relevance grades are 0..2 "
                                          f"(MQ2007) or 0..4 (MQ2008, MSLR), for which the click models are defined")
            if len(cols) < 2 or not cols[1].startswith("qid:") or len(cols[1]) == 4:
                raise _bad(path, line_no, "the second field must be qid:<id>")
            q = cols[1][4:]
            x = np.zeros(n_features)
            for tok in cols[2:]:
                head, sep, value = tok.partition(":")
                if not (sep and head.isdigit()):
                    break  # a comment (#docid = ...) or anything else ends the features
                j = int(head)
                if not 1 <= j <= n_features:
                    raise _bad(path, line_no, f"feature index {j} is outside 1..{n_features}")
                try:
                    v = float(value)
                except ValueError:
                    raise _bad(path, line_no, f"feature {j} has the value {value!r}, not a number") from None
                x[j - 1] = 0.0 if math.isnan(v) else v
            if q != qid:
                if q in seen:
                    raise _bad(path, line_no, f"query {q} appears again after other queries (its lines must be contiguous)")
                close()
                seen.add(q)
                qid, labels, rows = q, [], []
            labels.append(int(label))
            rows.append(x)
    close()
    if not queries:
        raise ConfigError(f"{path}: no query in the file")
    return queries


def load_fold(root: str, fold: int = 1, n_features: int = MQ2007_FEATURES) -> dict:
    """{'train': [...], 'test': [...]} from ``root/Fold<fold>/``; a missing folder or file stops with
    one line naming what is expected."""
    folder = os.path.join(root, f"Fold{fold}")
    missing = [f for f in FOLD_FILES if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise ConfigError(f"data.root {root!r}: expected {', '.join(os.path.join(folder, f) for f in FOLD_FILES)} "
                          f"(MQ2007's LETOR 4.0 fold layout); missing {', '.join(missing)}")
    return {name[:-4]: parse_letor(os.path.join(folder, name), n_features) for name in FOLD_FILES}


def write_letor(path: str, queries: list[Query]) -> None:
    """Write ``queries`` in the LETOR text format (what ``parse_letor`` reads back)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        for q in queries:
            for d, (label, x) in enumerate(zip(q.labels, q.x)):
                feats = " ".join(f"{j + 1}:{v:.6f}" for j, v in enumerate(x))
                f.write(f"{label} qid:{q.qid} {feats} #docid = SYN-{q.qid}-{d}\n")


def synthetic_collection(seed: int, n_queries: int = 1700, n_features: int = MQ2007_FEATURES,
                         docs_mean: int = 41) -> list[Query]:
    """A synthetic MQ2007-like collection, a function of ``seed`` alone (clearly not MQ2007).

    Each query has about ``docs_mean`` documents (Poisson, at least 5) with features in [0, 1],
    min-max scaled per query as MQ2007's QueryLevelNorm files are. Relevance comes from a hidden
    linear score plus noise, cut into grades 0/1/2 at the score's 74th and 93rd percentiles, close
    to MQ2007's label proportions (about 74 % / 19 % / 7 %).
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n_features) * (rng.random(n_features) < 0.5)  # half the features matter
    out = []
    for i in range(n_queries):
        n = max(5, int(rng.poisson(docs_mean)))
        raw = rng.gamma(2.0, 1.0, (n, n_features)) + rng.normal(0, 0.3, (1, n_features))  # a query-level shift
        lo, hi = raw.min(0), raw.max(0)
        x = (raw - lo) / np.where(hi > lo, hi - lo, 1.0)
        score = x @ w + rng.normal(0, 0.5 * np.abs(w).sum() / np.sqrt(n_features), n)
        cut1, cut2 = np.quantile(score, [0.74, 0.93])
        labels = (score > cut1).astype(np.int64) + (score > cut2)
        out.append(Query(str(i + 1), labels, x))
    return out


def write_synthetic_fold(root: str, seed: int, n_queries: int = 1700, fold: int = 1) -> str:
    """A synthetic collection written as ``root/Fold<fold>/{train,vali,test}.txt`` with MQ2007's
    3:1:1 split of queries, so that ``load_fold`` reads it as it would read MQ2007; returns the folder."""
    qs = synthetic_collection(seed, n_queries)
    n_train, n_vali = 3 * len(qs) // 5, len(qs) // 5
    folder = os.path.join(root, f"Fold{fold}")
    write_letor(os.path.join(folder, "train.txt"), qs[:n_train])
    write_letor(os.path.join(folder, "vali.txt"), qs[n_train:n_train + n_vali])
    write_letor(os.path.join(folder, "test.txt"), qs[n_train + n_vali:])
    return folder
