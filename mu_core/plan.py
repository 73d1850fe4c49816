"""Planning: Algorithm 1 of the paper for a profile, as rows, keys and groups of jobs.

``rows`` lists the rows of the results table (one per evaluated model) for the profile's designs:

* ``paper``: protocol A = one original model (``a_train_seed``) unlearned with J seeds
  (``a_first_unlearn_seed`` ...); protocol B = I original models (``b_first_train_seed`` ...),
  each unlearned once with s_u = s_t ("matched").
* ``grid``: the full I x J grid, s_t = i (i = 1..I), s_u = (i-1)·J + j (j = 1..J).

A profile may cap J per method (``j_per_method``: a number for both designs, or ``{paper: n,
grid: n}`` for one design; 0 leaves the method out of that design; see ``j_cap``). A deterministic method (Original, SSD,
LFSSD) runs once per original model and target; its row is repeated for every s_u.

Each original model and each unlearning job has a key: a hash of everything that determines it
(data, normalisation, network, recipe, mode, seeds, the method's parameters, and the versions of
every piece of code that shapes it: ``code_versions``, the method's, the metrics'), so a rerun computes only what is missing or changed.
"""
from __future__ import annotations

from collections import defaultdict

from . import domains
from .store import digest

KEYS = ["design", "protocol", "dataset", "setting", "target", "method", "mode", "train_seed",
        "unlearn_seed"]  # what identifies a row, whatever the domain (with a domain's SEED_COLUMNS where present)
TAIL = ["method_seconds", "status", "commit", "computed_at"]  # after the metrics


def columns(prof: dict) -> list[str]:
    """The results table's columns for the profile's domain: the row's keys (and the domain's own
    seed columns), its metrics, then the timing, status and provenance."""
    e = domains.engine(prof)
    return KEYS + e.SEED_COLUMNS + e.METRICS + TAIL


def row_keys(columns: list[str]) -> list[str]:
    """The columns of ``columns`` that identify a row (the keys, and a domain's seed columns), in
    table order: what a results table is sorted and compared by."""
    return [c for c in columns if c in KEYS or c.endswith("_seed")]


# columns that differ between two computations of the same result: a timing and when it was computed
# (every other column is bit-identical across runs, executors and interruptions)
VOLATILE = ["method_seconds", "computed_at"]


def j_cap(prof: dict, method: str, design: str) -> int:
    """J of ``method`` in ``design``: the design's J, capped by ``j_per_method`` (a number caps
    both designs; a mapping caps the designs it names)."""
    J = prof[design]["J"]
    cap = (prof.get("j_per_method") or {}).get(method, J)
    if isinstance(cap, dict):
        cap = cap.get(design, J)
    return min(J, cap)


def design_methods(prof: dict, design: str) -> list[str]:
    """The methods ``init_order`` or ``ulira`` runs: those of its own list that the profile's
    ``methods`` also lists."""
    return [m for m in prof[design]["methods"] if m in prof["methods"]]


def rows(prof: dict) -> list[dict]:
    """Rows of the results table, without their metrics."""
    out = []

    def add(design, protocol, key, target, method, s_t, s_u, order=None, mode=None):
        ds, setting = key.split("/")
        out.append(dict(design=design, protocol=protocol, dataset=ds, setting=setting,
                        target=str(target), method=method, mode=mode or prof["mode"],
                        train_seed=s_t, unlearn_seed=s_u, init_seed=s_t, order_seed=s_t if order is None else order))

    for design in prof["designs"]:
        cfg = prof[design]
        if design == "init_order":
            # initialisation seed i x order seed o (train_seed = i), J unlearning seeds per model;
            # the models with o = i are the grid's (and protocol B's) models of s_t = i
            n_o, J = cfg["orders"], cfg["J"]
            for key, ts in prof["grid_targets"].items():
                for t in ts:
                    for m in design_methods(prof, design):
                        for i in range(1, cfg["inits"] + 1):
                            for o in range(1, n_o + 1):
                                for j in range(1, J + 1):
                                    add(design, design, key, t, m, i, ((i - 1) * n_o + o - 1) * J + j, order=o)
            continue
        if design == "ulira":
            # U-LiRA (images.ulira): model k (s_t = k) trained without half the target pool, unlearned
            # once (s_u = k) by each method; the gold standard runs from scratch (corrected mode)
            # whatever the profile's mode, as the calibration row
            for m in design_methods(prof, design):
                gold = domains.methods(prof)[m].role == "gold"
                for k in range(1, cfg["K"] + 1):
                    add(design, design, f"{cfg['dataset']}/random", k, m, k, k, mode="corrected" if gold else None)
            continue
        I, J = cfg["I"], cfg["J"]
        targets = prof["targets"] if design == "paper" else prof["grid_targets"]
        for key, ts in (targets or {}).items():
            for t in ts:
                for m in prof["methods"]:
                    Jm = j_cap(prof, m, design)
                    if Jm == 0:
                        continue
                    if design == "paper":
                        for j in range(Jm):
                            add(design, "A", key, t, m, cfg["a_train_seed"], cfg["a_first_unlearn_seed"] + j)
                        for i in range(I):
                            s = cfg["b_first_train_seed"] + i
                            add(design, "B", key, t, m, s, s)
                    else:
                        for i in range(1, I + 1):
                            for j in range(1, Jm + 1):
                                add(design, "grid", key, t, m, i, (i - 1) * J + j)
    return out


def model_spec(prof: dict, row: dict) -> dict:
    """The spec and key of the trained model behind ``row`` (its domain's ``model_spec``)."""
    return domains.engine(prof).model_spec(prof, row)


def job_spec(prof: dict, row: dict, tkey: str) -> dict:
    """Everything that determines one unlearning job, and its key: the trained model's key, the
    target, method, mode and parameters, s_u (none for a deterministic method), the evaluation's
    settings and the versions of the code the result depends on."""
    m = row["method"]
    engine = domains.engine(prof)
    rec = engine.METHODS[m]
    spec = dict(train_key=tkey, setting=row["setting"], target=row["target"], method=m, mode=row["mode"],
                params=prof["method_params"].get(m, {}), unlearn_seed=None if rec.deterministic else row["unlearn_seed"],
                versions={"method": rec.version, **engine.job_versions(row)})
    if prof["eval"]:  # the evaluation's settings (a ranker has none)
        spec["eval"] = prof["eval"]
    return {**spec, "key": f"{m}-" + digest(spec)}


def schedule(prof: dict):
    """(rows, train specs by key, unlearning jobs grouped by original model)."""
    table = rows(prof)
    tspecs, groups, seen = {}, defaultdict(list), set()
    for r in table:
        ts = model_spec(prof, r)
        tspecs[ts["key"]] = ts
        js = job_spec(prof, r, ts["key"])
        r["job"] = js["key"]
        if js["key"] not in seen:
            seen.add(js["key"])
            groups[ts["key"]].append(js)
    return table, tspecs, groups


def chunks(jobs: list[dict], size: int = 48) -> list[list[dict]]:
    """Split one model's jobs into tasks; deterministic methods stay together, so that
    corrected-mode SSD/LFSSD reuse one whole-training-set importance per original model."""
    det = [j for j in jobs if j["unlearn_seed"] is None]  # a deterministic method's job has no s_u
    rest = [j for j in jobs if j["unlearn_seed"] is not None]
    out = [det] if det else []
    out += [rest[i:i + size] for i in range(0, len(rest), size)]
    return out
