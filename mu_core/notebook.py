"""The stage notebooks' parameters: one table of what each takes, checked before any work.

papermill injects ``-p NAME VALUE`` as a cell after the notebook's parameters cell and silently
ignores a NAME the notebook does not have; ``parameters(globals(), notebook)`` therefore refuses
any name it does not know, checks every value, and returns them. The book's re-runner page is
generated from ``PARAMETERS``.
"""
from __future__ import annotations

import os
import types

from .checks import Choice, Num, Text
from .errors import ConfigError

EXECUTORS = ("auto", "local", "dask")  # study.EXECUTORS; repeated here so that this module (and the
# numpy-only simulation notebook) need not import torch; tests/engine/test_validation.py checks they agree


class Overrides:
    """Profile overrides: a mapping, a list of field=value, or a string holding either."""

    def __call__(self, field, v):
        from . import profiles
        try:
            profiles.parse_overrides(v)
        except ConfigError as err:  # name the parameter, then what is wrong with it
            raise ConfigError(f"{field}: {err}") from None
        return v

    def allowed(self):
        return 'a mapping {field: value}, e.g. {"mode": "corrected"} (also as a string), or a list of "field=value"'


def _profile():
    here = os.path.join(os.path.dirname(__file__), "profiles")
    return Choice(*sorted(f[:-5] for f in os.listdir(here) if f.endswith(".yaml")))


RUN = {
    "profile": (_profile, "classroom", "the profile whose run is read or made"),
    "run_dir": (lambda: Text(nonempty=True), "runs/classroom", "the run folder"),
    "overrides": (Overrides, {}, "profile fields to change; figure notebooks refuse any the run does not reflect"),
}
EXEC = {
    "executor": (lambda: Choice(*EXECUTORS), "auto", "auto: dask on more than one core; local: this process"),
    "scheduler": (lambda: Text(optional=True), None, "a dask scheduler address; None starts a LocalCluster"),
}
TARGET = lambda doc: (lambda: Text(optional=True), None, doc)  # noqa: E731
REAL = lambda lo, default, doc, hi=None, **kw: (lambda: Num(lo, hi, **kw), default, doc)  # noqa: E731

PARAMETERS = {
    "01_train": {**RUN, **EXEC},
    "02_unlearn": {**RUN, **EXEC,
                   "figure_setting": TARGET("e.g. 'mnist5/sub_class'; None: the first setting Figure 1 does not show"),
                   "figure_target": TARGET("e.g. '7'; None: that setting's first target")},
    "03_figure1": {**RUN, "panel_a_target": TARGET("full-class target; None: 'pine' if the profile has it, else its first"),
                   "panel_b_target": TARGET("sub-class target; None: 'sea' if the profile has it, else its first")},
    "04_figure2": {**RUN},
    "08_claims": {**RUN},
    "05_beyond": {**RUN, "n_b": REAL(1, 50, "B instances per A instance", integer=True, hi=10_000),
                  "n_boot": REAL(10, 200, "bootstrap resamples of training seeds", integer=True, hi=10_000)},
    "06_modes": {**RUN, **EXEC,
                 "corrected_run_dir": (lambda: Text(optional=True), None, "None: run_dir + '-corrected'"),
                 "n_targets": REAL(1, 1, "targets per setting rerun in corrected mode", integer=True)},
    "10_ltr": {**RUN, **EXEC,
               "ltr_run_dir": (lambda: Text(optional=True), None, "the learning-to-rank run folder; None: run_dir + '-ltr'")},
    "11_lm": {**RUN, **EXEC,
              "lm_run_dir": (lambda: Text(optional=True), None, "the language-model run folder; None: run_dir + '-lm'")},
    "12_analyse": {"table": (lambda: Text(optional=True), None, "the results table (CSV) to analyse; None: the example "
                             "shipped in examples/grid_results.csv"),
                   "columns": (lambda: Text(), "method=algorithm,train_seed=seed_train,unlearn_seed=seed_unlearn",
                               "column names, ours=theirs, comma-separated ('' when the table uses ours)"),
                   "metrics": (lambda: Text(optional=True), None, "metric columns, comma-separated; None: every other numeric column"),
                   "profile": (lambda: Text(), "none", "unused: the page reads a table, not a run"),
                   "run_dir": (lambda: Text(nonempty=True), "runs/analyse", "the outputs go to run_dir + '-analyse'"),
                   "overrides": (Overrides, {}, "unused")},
    "09_deepunlearn": {**RUN, "n_boot": REAL(10, 200, "bootstrap resamples of training seeds", integer=True, hi=10_000)},
    "07_simulation": {"sigma_b": REAL(0, 3.0, "spread of the per-seed means (points)"),
                      "sigma_w": REAL(0, 1.5, "typical spread across unlearning seeds (points)"),
                      "tau": REAL(0, 0.8, "how much that spread differs between training seeds"),
                      "mu": REAL(None, 60.0, "overall mean (%)"),
                      "I": REAL(2, 11, "protocol B's training seeds", integer=True, hi=1000),
                      "J": REAL(2, 11, "protocol A's unlearning seeds", integer=True, hi=1000),
                      "n_seeds": REAL(2, 5000, "training seeds simulated", integer=True, hi=100_000),
                      "seed": REAL(0, 0, "the simulation's seed", integer=True),
                      "profile": (lambda: Text(), "none", "unused: the simulation runs no experiment"),
                      "run_dir": (lambda: Text(nonempty=True), "runs/simulation", "where the figure is saved"),
                      "overrides": (Overrides, {}, "unused")},
}

_IPYTHON = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def parameters(namespace: dict, notebook: str) -> types.SimpleNamespace:
    """The parameters of ``notebook`` found in ``namespace`` (a notebook's ``globals()``), checked.

    Call it right after the parameters cell: every other plain value there is an unknown
    parameter (a misspelt ``-p`` name) and is refused with the list of those allowed.
    """
    spec = PARAMETERS[notebook]
    given = {k: v for k, v in namespace.items()
             if not k.startswith("_") and k not in _IPYTHON
             and not isinstance(v, (types.ModuleType, types.FunctionType, type, types.BuiltinFunctionType))}
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ConfigError(f"parameter {unknown[0]!r} is unknown to {notebook}; its parameters: {', '.join(spec)}")
    out = {}
    for name, (check, default, _) in spec.items():
        c, v = check(), given.get(name, default)
        if isinstance(c, Text) and isinstance(v, (int, float)) and not isinstance(v, bool):
            raise ConfigError(f"parameter {name} must be a string, got the number {v!r}: papermill's -p reads "
                              f"{v!r} as a number; pass text with -r {name} {v!r}")
        out[name] = c(f"parameter {name}", v)
        if name in FOLDERS and isinstance(out[name], str):
            out[name] = os.path.normpath(out[name])  # 'runs/x/' and 'runs/x' are one folder
            namespace[name] = out[name]
    if notebook == "07_simulation" and out["I"] >= out["n_seeds"]:
        raise ConfigError(f"parameter I ({out['I']}) must be less than n_seeds ({out['n_seeds']}): protocol B "
                          f"takes I training seeds other than protocol A's from the n_seeds simulated")
    return types.SimpleNamespace(**out)


FOLDERS = ("run_dir", "corrected_run_dir", "ltr_run_dir", "lm_run_dir")

# The design each figure notebook draws, and the least I and J it can draw it from.
NEEDS = {"02_unlearn": "paper", "03_figure1": "paper", "04_figure2": "paper", "08_claims": "paper",
         "06_modes": "paper", "05_beyond": "grid", "10_ltr": "paper", "09_deepunlearn": "grid",
         "11_lm": "paper"}


def chapter_methods(run, chapter: str) -> list[str]:
    """The methods a chapter introduces (their record's ``chapter``) that the run's grid holds, in
    the method table's order, or one line saying the run has none of them."""
    from .analysis import METHODS
    from .stats import select
    held = set(select(run.table, "grid").method)
    out = [m for m, rec in METHODS.items() if rec.chapter == chapter and m in held]
    if not out:
        wanted = ", ".join(m for m, rec in METHODS.items() if rec.chapter == chapter)
        raise ConfigError(f"the run in {run.run_dir!r} has none of the {chapter} methods ({wanted}) on its grid; "
                          f"add them to the profile's methods and run stage 2 again")
    return out


def grid_sentence(table, methods) -> str:
    """'I training seeds x J unlearning seeds on N targets' for ``methods`` in the grid, from the rows."""
    from .analysis import label
    from .stats import select
    g = select(table, "grid")
    g = g[g.method.isin(methods)]
    shape = g.groupby(["method", "dataset", "setting", "target"]).agg(I=("train_seed", "nunique"), n=("unlearn_seed", "size"))
    shape["J"] = shape.n // shape.I
    per = shape.groupby("method")[["I", "J"]].min()
    kinds = per.drop_duplicates()
    n_targets = g.groupby(["dataset", "setting", "target"]).ngroups
    text = "; ".join(f"{i} training seeds x {j} unlearning seeds"
                     + ("" if len(kinds) == 1 else f" ({', '.join(label(m) for m in per.index[(per.I == i) & (per.J == j)])})")
                     for i, j in kinds.itertuples(index=False))
    one_each = n_targets == g.groupby(["dataset", "setting"]).ngroups
    return f"{text}, on {n_targets} target{'s' * (n_targets != 1)}" + (" (one per setting)" if one_each else "")


def domain_profile(domain: str, profile: str) -> tuple[str, bool]:
    """(the ``ltr`` or ``lm`` profile, run it here?) for the book's image profile: smoke and
    classroom builds run their own small study; a paper build reads an existing ltr-paper run
    (MQ2007 and 1,000 rounds are not started inside a book build) or, for language models, which
    have no paper-scale profile, the classroom study."""
    if profile in ("smoke", "classroom"):
        return f"{domain}-{profile}", True
    from .domains import engine_of
    return engine_of(domain).PAPER_BOOK
def domain_run(domain: str, nb: str, profile: str, folder: str, overrides, executor: str, scheduler):
    """The run a page of another domain draws (its profile from ``domain_profile``): refused in one
    line before any work when the profile lacks the page's design, run into ``folder`` when the
    build runs it, then opened (a paper build's missing run: one line saying how to make it)."""
    from . import profiles, study
    name, run_here = domain_profile(domain, profile)
    if run_here:
        require(profiles.load(name, overrides), nb)
        study.run(name, folder, overrides, executor=executor, scheduler=scheduler)
    run = study.open_run(folder, name, overrides)
    require(run, nb)
    return run


WHAT = {"paper": "protocols A and B", "grid": "the I x J grid of training and unlearning seeds"}


def design_facts(prof: dict) -> dict:
    """Sentences' worth of profile facts for the paper-design pages, from the profile (never typed):
    I and J, the settings as rows, and the methods with one unlearning seed under protocol A."""
    from .images import data as D
    from .domains import methods
    from .plan import j_cap
    METHODS = methods(prof)  # the profile's domain's table
    one = [METHODS[m].label for m in prof["methods"] if not METHODS[m].deterministic and j_cap(prof, m, "paper") == 1]
    return {"design_I": str(prof["paper"]["I"]), "design_J": str(prof["paper"]["J"]),
            "design_rows": "; ".join(D.setting_name(k) for k in prof["targets"]),
            "design_one_seed": (f"{', '.join(one)}, run with a single unlearning seed under A in this profile, "
                                f"{'is' if len(one) == 1 else 'are'} left out: one value against {prof['paper']['I']} "
                                f"is not the paper's comparison") if one else
                               f"every stochastic method ran with {prof['paper']['J']} unlearning seeds under A"}


def require(run, notebook: str) -> None:
    """Refuse, in one line, a run (or a resolved profile, before it runs) that lacks the design
    ``notebook`` draws or has fewer than two seeds on either side of it: validation accepts such
    runs, the figures cannot be drawn from them."""
    design = NEEDS[notebook]
    prof = getattr(run, "profile", run)
    where = f"the run in {run.run_dir!r}" if hasattr(run, "run_dir") else f"profile {prof['profile']!r}"
    targets = prof["targets"] if design == "paper" else prof["grid_targets"]
    if design not in prof["designs"] or not any(targets.values()):
        raise ConfigError(f"{notebook} draws {WHAT[design]}: it needs the {design} design with at least one target, "
                          f"and {where} has designs {prof['designs']}; run stage 2 with "
                          f"designs including {design!r} into another run_dir")
    if prof[design]["I"] < 2 or prof[design]["J"] < 2:
        raise ConfigError(f"{notebook} draws {WHAT[design]}: it needs {design}.I >= 2 and {design}.J >= 2, and "
                          f"{where} has I = {prof[design]['I']}, J = {prof[design]['J']}")


def table(notebook: str):
    """Rows (name, allowed, default, meaning) of ``notebook``'s parameters, for the book."""
    rows = []
    for name, (check, default, doc) in PARAMETERS[notebook].items():
        c = check()
        allowed = c.allowed() if hasattr(c, "allowed") and callable(c.allowed) else (
            ", ".join(map(str, c.allowed)) if hasattr(c, "allowed") else "a string" + (" or None" if getattr(c, "optional", False) else ""))
        rows.append({"parameter": name, "allowed": allowed, "default": repr(default), "meaning": doc})
    return rows


def paper_target(prof: dict, setting: str | None, target: str | None) -> tuple[str, str]:
    """(setting key, target) of the paper design for a figure: the given ones, checked, or the
    first target of the first setting that the paper's Figure 1 does not show (so that stage 2's
    figure adds a setting rather than repeating Figure 1's)."""
    Err = ConfigError
    targets = prof["targets"]
    shown = {prof_key for prof_key, _ in figure1_targets(prof, None, None)} if setting is None else set()
    key = setting or next((k for k in targets if k not in shown), next(iter(targets), None))
    if key not in targets:
        raise Err(f"parameter figure_setting {key!r} is not a setting of the paper design; allowed: {', '.join(targets)}")
    t = target or targets[key][0]
    if t not in targets[key]:
        raise Err(f"parameter figure_target {t!r} is not a target of {key} in the paper design; allowed: {', '.join(targets[key])}")
    return key, t


def figure1_targets(prof: dict, a: str | None, b: str | None):
    """The paper's Figure 1 panels: (a) a full-class target ('pine' when the profile has it),
    (b) a sub-class target ('sea' when it has it)."""
    Err = ConfigError
    out = []
    for name, given, suffix, paper in (("panel_a_target", a, "full_class", "pine"), ("panel_b_target", b, "sub_class", "sea")):
        keys = [k for k in prof["targets"] if k.endswith(suffix)]
        if not keys:
            raise Err(f"parameter {name}: the run's paper design has no {suffix} setting")
        names = prof["targets"][keys[0]]
        t = given or (paper if paper in names else names[0])
        if t not in names:
            raise Err(f"parameter {name} {t!r} is not a target of {keys[0]}; allowed: {', '.join(names)}")
        out.append((keys[0], t))
    return out


