"""The package's structure: no import circle among mu_core's modules (issue 31), function-level
imports included, since a circle that only a late import breaks is still one."""
import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def graph() -> dict:
    """{module: the mu_core modules it imports}, from the source's relative imports."""
    g = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "mu_core")):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(folder, f)
            mod = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".").removesuffix(".__init__")
            pkg = mod if f == "__init__.py" else mod.rsplit(".", 1)[0]
            deps = set()
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.ImportFrom) and node.level:
                    parts = pkg.split(".")[:len(pkg.split(".")) - (node.level - 1)]
                    target = ".".join(parts + ([node.module] if node.module else []))
                    deps |= {target} | {f"{target}.{a.name}" for a in node.names}
            g[mod] = deps
    return {m: {d for d in deps if d in g and d != m} for m, deps in g.items()}


def cycles(g: dict) -> list:
    found, done = [], set()

    def walk(n, stack):
        for d in sorted(g[n]):
            if d in stack:
                found.append(stack[stack.index(d):] + [d])
            elif d not in done:
                walk(d, stack + [d])
        done.add(n)
    for m in sorted(g):
        walk(m, [m])
    return found


def test_no_import_circle_in_mu_core():
    g = graph()
    assert "mu_core.method" in g and "mu_core.store" in g["mu_core.plan"]  # the graph is read
    assert cycles(g) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_every_domain_names_each_of_its_metrics():
    """Presentation asks the domain for its words: each metric a domain computes has a figure
    label and a table header declared beside it (domains.metric_words), none guessed by plots."""
    from mu_core import domains
    from mu_core.lm import engine as lm
    from mu_core.ltr import engine as ltr
    words = domains.metric_words()
    for metrics in (domains.engine_of("images").METRICS, ltr.METRICS, lm.METRICS):
        for m in metrics:
            label, header = words[m]
            assert label and header and label != m, m


def test_every_engine_module_provides_the_contract():
    """domains.CONTRACT, walked over every registered domain: each has an engine module (images
    too: none is the default branch of another module), with every name of the contract."""
    from mu_core import domains
    from mu_core.method import Method
    assert {"images", "ltr", "lm"} <= set(domains.ENGINES)  # a fourth domain is one more line in ENGINES, nothing here
    for d in domains.DOMAINS:
        e = domains.engine({"domain": d})
        assert e is not None and e.__name__ == domains.ENGINES[d]
        missing = [name for name in domains.CONTRACT if not hasattr(e, name)]
        assert not missing, (d, missing)
        assert all(isinstance(rec, Method) for rec in e.METHODS.values()) and set(e.METRICS) <= set(e.WORDS), d
        assert {"paper", "grid"} <= set(e.DESIGNS), d
    assert domains.engine({}) is domains.engine({"domain": "images"})  # a profile naming no domain is an image profile


def test_engine_modules_never_import_the_layers_that_call_them():
    """domains finds each engine by name (importlib), so the graph gets those edges here: an engine
    importing plan, tasks, study, profiles or domains would close a circle through them."""
    from mu_core import domains
    g = graph()
    g["mu_core.domains"] |= set(domains.ENGINES.values())
    assert cycles(g) == []
    for name in domains.ENGINES.values():
        assert not g[name] & {"mu_core.plan", "mu_core.tasks", "mu_core.study", "mu_core.profiles", "mu_core.domains"}, name


def branches_on_names(text: str, names) -> list[str]:
    """Lines of ``text`` that compare something with one of ``names`` as a literal (==, !=, in a
    literal tuple or list, startswith): a branch on a domain, method or dataset by its name."""
    alt = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    pat = re.compile(rf'''(==|!=)\s*["']({alt})["']|["']({alt})["']\s*(==|!=)|\bin\s*[\(\[][^\)\]]*["']({alt})["']'''
                     rf'''|startswith\(\s*["']({alt})''')
    return [line.strip() for line in text.splitlines() if pat.search(line) and not line.strip().startswith("#")]


def test_no_module_outside_the_domain_packages_branches_on_a_domain_method_or_dataset_name():
    """The engine, the statistics and the presentation ask a domain (domains.ENGINES) and never
    test for one by name: no `if domain == "ltr"`, no `method == "ssd"`, no `startswith("mnist")`
    outside mu_core/images, ltr, lm and the profiles (which name their domain)."""
    from mu_core import domains
    names = set(domains.DOMAINS) | set(domains.all_methods())
    for name in domains.DOMAINS:
        names |= set(domains.engine_of(name).DATASETS)
    found = {}
    for f in sorted(os.listdir(os.path.join(ROOT, "mu_core"))):
        if f.endswith(".py") and f != "profiles.py":
            hits = branches_on_names(open(os.path.join(ROOT, "mu_core", f)).read(), names)
            if hits:
                found[f] = hits
    assert found == {}


def test_the_branch_finder_finds_branches():
    names = {"ltr", "ssd", "mnist5"}
    assert len(branches_on_names('if d == "ltr":\n x = m != "ssd"\nif k in ("a", "ssd"):\nif s.startswith("mnist5")', names)) == 4
    assert branches_on_names('label = "ssd"\nd = {"ltr": 1}\n# if d == "ltr"', names) == []


LONG = {"mu_core/stats.py", "mu_core/images/deepunlearn.py"}  # one subject each (issue 31 let them stay)


def test_no_module_of_mu_core_is_over_360_lines_but_the_two_named():
    long = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "mu_core")):
        for f in files:
            path = os.path.join(folder, f)
            rel = os.path.relpath(path, ROOT)
            if f.endswith(".py") and rel not in LONG and (n := len(open(path).read().splitlines())) > 360:
                long[rel] = n
    assert long == {}
