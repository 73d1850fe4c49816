"""Every code name the book and the README cite (`module.name` in backticks) exists in mu_core."""
import glob
import importlib
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("mu_core", "mu_core.images", "mu_core.ltr", "mu_core.lm")  # where a cited `module.name` may live
MODULES = {os.path.basename(p)[:-3] for pkg in PACKAGES
           for p in glob.glob(os.path.join(ROOT, *pkg.split("."), "*.py"))} - {"__init__", "__main__"} | {"images", "ltr", "lm"}


def module(name):
    for pkg in PACKAGES:
        try:
            return importlib.import_module(f"{pkg}.{name}")
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(name)


def cited():
    out = set()
    pages = glob.glob(os.path.join(ROOT, "book", "*.md")) + [os.path.join(ROOT, "README.md")]
    for page in pages + glob.glob(os.path.join(ROOT, "benchmarks", "*.md")) + glob.glob(os.path.join(ROOT, "benchmarks", "*.py")):
        for name in re.findall(r"`(?:mu_core\.)?([a-z_]+\.[A-Za-z_][A-Za-z_0-9.]*)`", open(page).read()):
            if name.split(".")[0] in MODULES:
                out.add((os.path.relpath(page, ROOT), name))
    return sorted(out)


def test_the_name_check_reads_every_page_that_cites_code():
    """The check below is only as good as what ``cited`` finds: names known to be cited on the
    README, a book chapter and the benchmarks' README must be among them."""
    found = cited()
    for page, name in (("README.md", "study.run"), ("README.md", "plan.VOLATILE"), ("README.md", "data.DATA_VERSION"),
                       ("book/methods.md", "metrics.logistic_fit"), ("benchmarks/README.md", "images.stages.gpu_rate"),
                       ("benchmarks/gpu.py", "images.engine.training_images")):
        assert (page, name) in found, (page, name)


def test_every_cited_code_name_exists():
    missing = []
    for page, name in cited():
        module_name, *attrs = name.split(".")
        if attrs == ["py"]:  # a file
            if not any(os.path.exists(os.path.join(ROOT, *pkg.split("."), name)) for pkg in PACKAGES):
                missing.append(f"{page}: {name}")
            continue
        obj = module(module_name)
        for a in attrs:
            if not hasattr(obj, a) and hasattr(obj, "__path__"):  # a package's module (`images.stages`)
                try:
                    importlib.import_module(f"{obj.__name__}.{a}")
                except ModuleNotFoundError:
                    pass
            if not hasattr(obj, a):
                missing.append(f"{page}: {name}")
                break
            obj = getattr(obj, a)
    assert not missing, missing


def test_the_notebook_module_repeats_the_executor_list_exactly():
    """notebook avoids importing torch, so it repeats one short tuple: the two must agree."""
    from mu_core import notebook, study
    assert notebook.EXECUTORS == study.EXECUTORS


@pytest.mark.slow
def test_the_simulation_notebook_needs_no_torch():
    import subprocess
    import sys
    code = ("import sys; from mu_core import notebook, plots, simulation; "
            "simulation.simulate(1, 1, 0.5, 50, 5, 5, 100); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_method_parameter_table_titles_each_domain_by_its_own_name():
    """Every non-image domain was titled 'Learning to rank' (issue 31): the language-model
    section of book/methods.md was mislabelled."""
    import re
    from mu_core import domains, tables
    titles = re.findall(r"^\*\*(.*?)\*\*$", tables.method_params(), flags=re.M)
    assert titles == [domains.titles()[d] for d in domains.DOMAINS]
