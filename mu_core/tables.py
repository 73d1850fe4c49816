"""Tables the book includes, generated from their one source: the method hyper-parameters of
every profile (from the YAML files) and every notebook's parameters (from ``notebook.PARAMETERS``).

``python -m mu_core tables --out book/generated`` writes them as MyST markdown.
"""
from __future__ import annotations

import os

from . import domains, notebook, profiles


def _flat(node, prefix=""):
    for k, v in node.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def method_params() -> str:
    """Markdown: per domain, one row per method parameter and one column per profile."""
    profs = {n: profiles.load(n) for n in profiles.names()}
    out = []
    for domain in domains.DOMAINS:
        names = [n for n, p in profs.items() if domains.of(p) == domain]
        methods = domains.methods(profs[names[0]]) if names else {}
        lines = [f"**{domains.titles()[domain]}**", "",
                 "| method | parameter | " + " | ".join(f"`{n}`" for n in names) + " |",
                 "| --- | --- | " + " | ".join("---" for _ in names) + " |"]
        for m, rec in methods.items():
            params = {}  # every profile's fields, in the order they first appear
            for n in names:
                params.update(dict(_flat(profs[n]["method_params"].get(m, {}))))
            for field in params:
                cells = [str(dict(_flat(profs[n]["method_params"].get(m, {}))).get(field, "")) for n in names]
                lines.append(f"| {rec.label} | `{field}` | " + " | ".join(cells) + " |")
        out += lines + [""]
    return "\n".join(out)


def notebook_params() -> str:
    """Markdown: the parameters several notebooks share in one table (with the notebooks that take
    them), then a section per notebook with only its own."""
    rows = {nb: [tuple(r[k] for k in ("parameter", "meaning", "default", "allowed")) for r in notebook.table(nb)]
            for nb in sorted(notebook.PARAMETERS)}
    where = {}
    for nb, rs in rows.items():
        for r in rs:
            where.setdefault(r, []).append(nb)
    shared = [r for r, nbs in where.items() if len(nbs) > 1]
    head = ["| parameter | meaning | default | allowed |", "| --- | --- | --- | --- |"]
    line = lambda r: f"| `{r[0]}` | {r[1]} | `{r[2]}` | {r[3]} |"  # noqa: E731 - the meaning second: in view on a phone
    out = ["**Shared by several notebooks**", "", "| parameter | notebooks | meaning | default | allowed |",
           "| --- | --- | --- | --- | --- |"]
    out += [f"| `{r[0]}` | {', '.join(n.split('_')[0] for n in where[r])} | {r[1]} | `{r[2]}` | {r[3]} |" for r in shared]
    out.append("")
    for nb, rs in rows.items():
        own = [r for r in rs if r not in shared]
        out += [f"**`notebooks/{nb}.ipynb`**", ""]
        out += (head + [line(r) for r in own]) if own else ["Only the shared parameters above."]
        out.append("")
    return "\n".join(out)


def portability(folder: str | None = None) -> str:
    """Markdown: the newest measurement of how far the book's numbers travel between numerical
    paths (``benchmarks/portability.py`` writes ``benchmarks/results/portability-DATE.json``), per
    domain and metric, and the book's texts that differ; a line saying none is recorded otherwise."""
    import glob
    import json
    from .images.stages import BENCHMARK_RESULTS
    paths = sorted(glob.glob(os.path.join(folder or BENCHMARK_RESULTS, "portability-*.json")))
    if not paths:
        return "No measurement is recorded in benchmarks/results/ (run `make portability`).\n"
    rec = json.load(open(paths[-1]))
    out = []
    for path, comp in rec["comparisons"].items():
        env = ", ".join(f"`{k}={v}`" for k, v in rec["paths"][path].items())
        out += [f"Measured on {rec['date']} at commit {str(rec['commit'])[:10]}, profile `{rec['profile']}`, on "
                f"{rec['machine'].get('processor', 'this machine')}: the path {env} against this machine's default.", "",
                "| study | metric | largest row difference | rows that differ | largest mean difference | largest W2 difference | largest ICC difference | rank flips changed |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for study, d in comp["domains"].items():
            for m, r in d["metrics"].items():
                f = lambda v: "–" if v is None else f"{v:.3g}"  # noqa: E731
                out.append(f"| {study} | {m} | {f(r['row'])} | {r['rows_differing']} of {d['rows_matched']} | "
                           f"{f(r['mean'])} | {f(r.get('w2'))} | {f(r.get('icc'))} | {r.get('rank_flips_changed', '–')} |")
        for study, v in comp.get("verdicts", {}).items():
            out.append(f"\n{study}: {len(v['changed'])} of {v['compared']} verdicts changed"
                       + (": " + "; ".join(f"{k}: {a} became {b}" for k, (a, b) in v["changed"].items())
                          if v["changed"] else " (every verdict its pages state from the slice)"))
        b = comp["book"]
        if not b["compared"]:
            out += ["", "The slice ran each domain's study, not the book's notebooks, so no page's text was compared."]
            continue
        out += ["", f"Of the book's {b['compared']} generated texts and tables, {b['differ']} differ between the two "
                    f"paths, {len(b['differ_results'])} of them results (the others hold a timing or a folder)"
                + (": " + ", ".join(f"`{k}`" for k in b["differ_results"]) if b["differ_results"] else "") + ".", ""]
    return "\n".join(out) + f"\nFrom `benchmarks/results/{os.path.basename(paths[-1])}`.\n"


def paper_cost() -> str:
    """Markdown: the projected cost of each paper-scale image profile (``images.stages.paper_cost``)."""
    from .images.stages import paper_cost as cost
    return cost()


def write(folder: str) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, text in (("method_params.md", method_params()), ("notebook_params.md", notebook_params()),
                       ("paper_cost.md", paper_cost()), ("portability.md", portability())):
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write(text)
        paths.append(path)
    return paths
