"""The package's structure: no import circle among mu_core's modules (issue 31), function-level
imports included, since a circle that only a late import breaks is still one."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    assert set(domains.ENGINES) == {"images", "ltr", "lm"}
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
