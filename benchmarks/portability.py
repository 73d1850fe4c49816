"""How far results travel between numerical paths: the book's studies run on each path, compared.

``python benchmarks/portability.py [--profile classroom] [--paths default,aten,mkl] [--root runs/portability]``

For each path (``PATHS``: this machine's default, and stand-ins for another processor that any x86
machine has) the script runs the book's notebooks (``make notebooks``: the image study and its
corrected rerun, the learning-to-rank and language-model studies, every page's tables and
sentences) into ``ROOT/PATH``, with the path's environment set in every process (papermill's
kernel and the dask workers inherit it). A path already run is reused (delete its folder to rerun).

It then compares each path with the first, per domain and metric: the largest difference of a
row, of a method's mean (per design, protocol, setting and target), of a W2(A, B), and of a
variance component and ICC; the rank flips; and every sentence and table the book shows (glued
texts and displayed tables of the executed notebooks), listing those that differ. The result is
printed and written to ``benchmarks/results/portability-DATE.json``; ``benchmarks/README.md``
records the measurement and the decision taken from it.
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import subprocess
import sys
import time

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from mu_core import analysis, plan, provenance, stats  # noqa: E402

PATHS = {"default": {},
         "aten": {"ATEN_CPU_CAPABILITY": "default"},
         "mkl": {"MKL_CBWR": "COMPATIBLE"},
         "pinned": {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default"}}
RUNS = {"images": "", "images corrected": "-corrected", "ltr": "-ltr", "lm": "-lm"}  # run folders, by suffix


def run_path(name: str, profile: str, root: str) -> float:
    """The book's notebooks on one path (skipped when its executed notebooks exist); wall seconds."""
    where = os.path.join(root, name)
    if glob.glob(os.path.join(where, "executed", "*.ipynb")) and os.path.exists(os.path.join(where, "seconds")):
        return float(open(os.path.join(where, "seconds")).read())
    os.makedirs(where, exist_ok=True)
    t0 = time.time()
    subprocess.run(["make", "-s", "notebooks", f"PROFILE={profile}", f"RUN_DIR={where}/{profile}",
                    f"EXECUTED={where}/executed"], cwd=ROOT, check=True, env={**os.environ, **PATHS[name]})
    seconds = time.time() - t0
    with open(os.path.join(where, "seconds"), "w") as f:
        f.write(str(seconds))
    return seconds


# the slice (--slice): each domain's classroom study run by python -m mu_core run, not the notebooks;
# images with the paper's methods on the paper and grid designs (what Figures 1 and 2, the claims and
# the components read), learning to rank and language models whole
SLICE = {"images": ("classroom", ["designs=[paper, grid]", "methods=[original, retrain, finetune, random_labels, "
                                  "bad_teacher, unsir, ssd, lfssd]"]),
         "ltr": ("ltr-classroom", []), "lm": ("lm-classroom", [])}


def run_slice(name: str, profile: str, root: str) -> float:
    """The slice's studies on one path, into ROOT/PATH/PROFILE[-ltr|-lm] (a folder with a finished
    run is reused, so a book run's folders can stand for the default path); wall seconds."""
    where = os.path.join(root, name)
    os.makedirs(where, exist_ok=True)
    t0 = time.time()
    for what, (prof, sets) in SLICE.items():
        folder = os.path.join(where, profile + RUNS[what])
        if os.path.exists(os.path.join(folder, "results.csv")):
            continue
        cmd = [sys.executable, "-m", "mu_core", "run", "--profile", prof, "--run-dir", folder, "--no-progress"]
        for s in sets:
            cmd += ["--set", s]
        subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, **PATHS[name]})
    return time.time() - t0


def verdicts(t: pd.DataFrame, what: str) -> dict:
    """{question: answer} of the verdicts a table's pages state: each method's W2 against its noise
    per setting, and (images) each of the paper's claims per setting."""
    metric = {"images": "forget_acc", "ltr": "ndcg", "lm": "log10_forget_quality"}[what.split()[0]]
    out = {}
    w2 = stats.paper_w2(t, metrics=(metric,))
    above = analysis.above_noise(w2, analysis.b_noise(t, metrics=(metric,)), metric=metric)
    for r in above.itertuples():
        out[f"W2 stands out: {r.method} on {r.dataset}/{r.setting}"] = bool(r.clear)
    if what == "images":
        from mu_core.images import claims
        c = claims.claims(analysis.in_chapter(t, "paper"), n_boot=50)
        for r in c.itertuples():
            out[f"claim {r.rule} on {r.setting}: {r.claim[:40]}"] = r.verdict
    return out


def _table(run_dir: str) -> pd.DataFrame | None:
    path = os.path.join(run_dir, "results.csv")
    if not os.path.exists(path):
        return None
    t = pd.read_csv(path, dtype={"target": str})
    return t[t.status == "ok"]


def compare_tables(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Per metric: the largest absolute difference of a row, a method mean, a W2 and a variance
    component or ICC; and whether any rank-flip probability moved."""
    keys = plan.row_keys(list(a.columns))
    metrics = [c for c in a.columns if c not in keys + plan.TAIL and pd.api.types.is_numeric_dtype(a[c])]
    both = a.merge(b, on=keys, suffixes=("", "_b"))
    out = {"rows": len(a), "rows_matched": len(both), "metrics": {}}
    group = ["design", "protocol", "dataset", "setting", "target", "method"]
    w2a, w2b = stats.paper_w2(a, metrics=metrics), stats.paper_w2(b, metrics=metrics)
    has_grid = (a.design == "grid").any()
    ca = stats.components_table(a, metrics=metrics) if has_grid else None
    cb = stats.components_table(b, metrics=metrics) if has_grid else None
    for m in metrics:
        d = (both[m] - both[m + "_b"]).abs()
        means = (a.groupby(group)[m].mean() - b.groupby(group)[m].mean()).abs()
        w = w2a[w2a.metric == m].merge(w2b[w2b.metric == m], on=["dataset", "setting", "target", "method", "metric"])
        rec = {"row": float(d.max()), "rows_differing": int((d > 0).sum()), "mean": float(means.max()),
               "w2": float((w.w2_x - w.w2_y).abs().max()) if len(w) else None}
        if has_grid:
            c = ca[ca.metric == m].merge(cb[cb.metric == m], on=["dataset", "setting", "target", "method", "metric"])
            rec["sigma_b2"] = float((c.sigma_b2_x - c.sigma_b2_y).abs().max())
            rec["sigma_w2"] = float((c.sigma_w2_x - c.sigma_w2_y).abs().max())
            rec["icc"] = float((c.icc_x - c.icc_y).abs().max())
            fa, fb = analysis.rank_flips(a, metric=m), analysis.rank_flips(b, metric=m)
            f = fa.merge(fb, on=["setting", "pair"])
            rec["rank_flip_p"] = float((f.p_flip_x - f.p_flip_y).abs().max()) if len(f) else None
            rec["rank_flips_changed"] = int(((f.p_flip_x > 0) != (f.p_flip_y > 0)).sum()) if len(f) else 0
        out["metrics"][m] = rec
    return out


def book_texts(executed: str) -> dict:
    """Every glued text and displayed table of the executed notebooks: {notebook/name: text}."""
    out = {}
    for path in sorted(glob.glob(os.path.join(executed, "*.ipynb"))):
        nb = json.load(open(path))
        name = os.path.basename(path)[:-6]
        for i, cell in enumerate(nb["cells"]):
            for j, o in enumerate(cell.get("outputs", [])):
                glued = o.get("metadata", {}).get("scrapbook", {}).get("name")
                data = {k.replace("application/papermill.record/", ""): v for k, v in o.get("data", {}).items()}
                if glued and "text/plain" in data:
                    out[f"{name}/{glued}"] = "".join(data["text/plain"])
                elif "text/html" in data and "<table" in "".join(data["text/html"]):
                    out[f"{name}/table {i}.{j}"] = "".join(data["text/html"])
    return out


# glued texts that hold a timing, a date or a folder, not a result
TIMING = ("seconds", "cost", "time", "provenance", "minutes", "speed", "tokens", "run_dir", "folder")


def compare_book(a: dict, b: dict) -> dict:
    differ = sorted(k for k in a if k in b and a[k] != b[k])
    results = [k for k in differ if not any(w in k.split("/")[-1].lower() for w in TIMING)]
    return {"compared": len(set(a) & set(b)), "differ": len(differ), "differ_results": results,
            "texts": {k: [a[k][:400], b[k][:400]] for k in results}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="classroom")
    ap.add_argument("--paths", default="default,aten,mkl")
    ap.add_argument("--root", default=os.path.join(ROOT, "runs", "portability"))
    ap.add_argument("--slice", action="store_true", help="each domain's study (SLICE) instead of the whole book")
    args = ap.parse_args(argv)
    names = args.paths.split(",")
    seconds = {n: (run_slice if args.slice else run_path)(n, args.profile, args.root) for n in names}
    base = names[0]
    report = {"date": datetime.date.today().isoformat(), "commit": provenance.commit(), "profile": args.profile,
              "slice": {w: [p, *s] for w, (p, s) in SLICE.items()} if args.slice else None,
              "machine": provenance.numerics(), "paths": {n: PATHS[n] for n in names}, "wall_seconds": seconds,
              "against": base, "comparisons": {}}
    texts = {n: book_texts(os.path.join(args.root, n, "executed")) for n in names}
    for n in names[1:]:
        comp = {"book": compare_book(texts[base], texts[n]), "domains": {}}
        comp["verdicts"] = {}
        for what, suffix in RUNS.items():
            ta = _table(os.path.join(args.root, base, args.profile + suffix))
            tb = _table(os.path.join(args.root, n, args.profile + suffix))
            if ta is not None and tb is not None:
                keys = plan.row_keys(list(ta.columns))
                ta = ta.merge(tb[keys], on=keys)  # the rows both paths ran (a book run holds more than a slice)
                comp["domains"][what] = compare_tables(ta, tb)
                va, vb = verdicts(ta, what), verdicts(tb, what)
                comp["verdicts"][what] = {"compared": len(set(va) & set(vb)),
                                          "changed": {k: [va[k], vb[k]] for k in va if k in vb and va[k] != vb[k]}}
        report["comparisons"][n] = comp
        print(f"== {n} against {base} ({PATHS[n]}); wall {seconds[n]:.0f} s against {seconds[base]:.0f} s")
        for what, c in comp["domains"].items():
            for m, r in c["metrics"].items():
                print(f"  {what:17s} {m:22s} " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                                          for k, v in r.items()))
        for what, v in comp["verdicts"].items():
            print(f"  verdicts {what}: {len(v['changed'])} of {v['compared']} changed" +
                  "".join(f"\n    {k}: {a} -> {b}" for k, (a, b) in v["changed"].items()))
        b = comp["book"]
        print(f"  book: {b['differ']} of {b['compared']} texts and tables differ; results among them: "
              f"{len(b['differ_results'])}")
        for k in b["differ_results"]:
            print(f"    {k}")
    out = os.path.join(ROOT, "benchmarks", "results", f"portability-{report['date']}.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=1, default=float)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
