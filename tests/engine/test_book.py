"""The notebooks run under papermill (smoke profile) and the book builds offline with -W.

One module-scoped build in a temporary copy of the book sources serves every test here.
"""
import functools
import glob
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
NOTEBOOKS = sorted(os.path.basename(p)[:-6] for p in glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
INDEPENDENT = ("simulation", "ltr", "lm", "analyse")  # pages that run their own study or read no run

pytestmark = pytest.mark.slow  # whole runs, fresh processes, the book: make test-fast leaves them out


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    import mathjax
    import papermill as pm
    src = tmp_path_factory.mktemp("book")
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy(os.path.join(ROOT, f), src)
    shutil.copytree(os.path.join(ROOT, "book"), src / "book",
                    ignore=shutil.ignore_patterns("executed", "_extra", "generated"))
    from mu_core import tables
    tables.write(str(src / "book" / "generated"))
    shutil.copytree(os.path.join(os.path.dirname(mathjax.__file__), "static", "mathjax", "es5"),
                    src / "book" / "_extra" / "mathjax")
    (src / "book" / "executed").mkdir()

    def execute(names):
        for nb in names:
            pm.execute_notebook(os.path.join(ROOT, "notebooks", nb + ".ipynb"), str(src / "book" / "executed" / (nb + ".ipynb")),
                                parameters={"profile": "smoke", "run_dir": str(src / "runs" / "smoke")},
                                cwd=str(src), progress_bar=False, kernel_name="python3")
    # two streams on two cores: the image study (01, 02) then its pages; the pages that read no
    # image run (INDEPENDENT), then the corrected rerun (06), which needs the image study
    chain = [nb for nb in NOTEBOOKS if nb.split("_", 1)[1] not in INDEPENDENT + ("modes",)]
    apart = [nb for nb in NOTEBOOKS if nb.split("_", 1)[1] in INDEPENDENT]
    modes = [nb for nb in NOTEBOOKS if nb.endswith("_modes")]
    studied = threading.Event()

    def images():
        try:
            execute(chain[:2])
        finally:
            studied.set()  # on failure too: the other stream then fails on its own, never waits forever
        execute(chain[2:])

    def others():
        execute(apart)
        studied.wait()
        execute(modes)
    # papermill changes the whole process's working directory while it starts a kernel, so with two
    # streams a kernel can start in the other's (or the original) directory: the kernels find the
    # book's folder by its absolute path, not by their working directory
    before = os.environ.get("MU_CORE_EXECUTED")
    os.environ["MU_CORE_EXECUTED"] = str(src / "book" / "executed")
    try:
        with ThreadPoolExecutor(2) as pool:
            for f in [pool.submit(images), pool.submit(others)]:
                f.result()
    finally:
        if before is None:
            os.environ.pop("MU_CORE_EXECUTED")
        else:
            os.environ["MU_CORE_EXECUTED"] = before
    from mu_core import page
    for nb in NOTEBOOKS:
        page.tidy(str(src / "book" / "executed" / (nb + ".ipynb")))
    proc = subprocess.run([os.path.join(BIN, "jupyter-book"), "build", str(src), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True)
    return src, proc


def test_every_notebook_ran_under_papermill_with_smoke(book):
    src, _ = book
    for nb in NOTEBOOKS:
        cells = json.load(open(src / "book" / "executed" / (nb + ".ipynb")))["cells"]
        outs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert not [o for o in outs if o.get("output_type") == "error"], nb
        tags = [c.get("metadata", {}).get("tags", []) for c in cells]
        assert ["parameters", "hide-input"] in tags and ["injected-parameters", "remove-cell"] in tags, nb


def test_book_builds_with_warnings_as_errors(book):
    src, proc = book
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (src / "_build" / "html" / "index.html").exists()


def _glued(nb_path):
    """{key: mime bundle} of every glued output of an executed notebook."""
    out = {}
    for c in json.load(open(nb_path))["cells"]:
        for o in c.get("outputs", []):
            key = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if key:  # papermill records glued bundles under this prefix; myst-nb strips it
                out[key] = {k.replace("application/papermill.record/", ""): v for k, v in o.get("data", {}).items()}
    return out


def test_glued_figures_are_images_in_the_built_book(book):
    src, proc = book
    assert proc.returncode == 0
    n_figures = 0
    for nb in NOTEBOOKS:
        glued = _glued(src / "book" / "executed" / (nb + ".ipynb"))
        md = "".join("".join(c["source"]) for c in json.load(open(src / "book" / "executed" / (nb + ".ipynb")))["cells"]
                     if c["cell_type"] == "markdown")
        figures = re.findall(r"\{glue:figure\} (\w+)", md)
        for key in figures:
            assert "image/png" in glued[key], f"{nb}: glued figure {key!r} is not an image"
        html = open(src / "_build" / "html" / "book" / "executed" / (nb + ".html")).read()
        imgs = re.findall(r"<img [^>]*src=\"([^\"]+)\"", html)
        assert len(imgs) >= len(figures), nb
        for rel in imgs:
            assert (src / "_build" / "html" / "book" / "executed" / rel).resolve().exists(), rel
        n_figures += len(figures)
    assert n_figures >= 7


def test_every_figure_links_to_the_code_that_draws_it(book):
    src, proc = book
    assert proc.returncode == 0
    html_dir = src / "_build" / "html"
    for nb in NOTEBOOKS:
        md = "".join("".join(c["source"]) for c in json.load(open(src / "book" / "executed" / (nb + ".ipynb")))["cells"]
                     if c["cell_type"] == "markdown")
        n_figures = len([k for k in re.findall(r"\{glue:figure\} (\w+)", md) if not k.endswith("_narrow")])
        html = (html_dir / "book" / "executed" / (nb + ".html")).read_text()
        drawn_by = re.findall(r'href="\.\./code\.html#mu_core\.plots\.(\w+)"', html)
        assert len(drawn_by) >= n_figures, (nb, drawn_by)
    # the code page documents each drawing function, with a link to its highlighted source
    code = (html_dir / "book" / "code.html").read_text()
    for fn in ("ab_boxplot", "w2_boxes", "components_bars", "instances_boxes", "modes_boxes", "simulation_figure"):
        assert f'id="mu_core.plots.{fn}"' in code, fn
    assert (html_dir / "_modules" / "mu_core" / "plots.html").exists()


def test_no_page_loads_anything_from_the_network(book):
    src, _ = book
    html_dir = src / "_build" / "html"
    pattern = re.compile(r"<(script|link)[^>]*(src|href)=\"(https?:)?//", re.I)
    for page in html_dir.rglob("*.html"):
        text = page.read_text(errors="ignore")
        for m in pattern.finditer(text):
            tag = text[m.start():text.index(">", m.start()) + 1]
            assert 'rel="stylesheet"' not in tag and "<script" not in tag.lower() and "preload" not in tag, (page, tag)
    for css in html_dir.rglob("*.css"):
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", css.read_text(errors="ignore")), css


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:  # installed by `make test` (its chromium target), never by a test
        pytest.fail("headless Chromium is needed: run `make chromium` (apt-get install chromium)")
    return exe


CHECK = """<!doctype html><html><body><pre id="out">pending</pre>
<iframe id="f" src="%s" width="%d" height="900"></iframe>
<script>
document.getElementById('f').addEventListener('load', function () {
  setTimeout(function () {
    var d = document.getElementById('f').contentDocument;
    var imgs = Array.from(d.querySelectorAll('img'));
    var code = Array.from(d.querySelectorAll('.cell_input')).filter(function (c) {
      return c.getClientRects().length > 0; });
    document.getElementById('out').textContent = JSON.stringify({
      math: d.querySelectorAll('mjx-container').length,
      images: imgs.length,
      shown: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
      visible: imgs.filter(function (i) { return i.getClientRects().length > 0; }).map(function (i) {
        return {narrow: !!i.closest('figure.narrow-only'), wide: !!i.closest('figure.has-narrow'),
                right: i.getBoundingClientRect().right, width: i.getBoundingClientRect().width,
                natural: [i.naturalWidth, i.naturalHeight]}; }),
      visible_code_lines: code.map(function (c) { return c.innerText.trim().split('\\n').length; }),
      text: d.body.innerText});
  }, 3000);
});
</script></body></html>"""


FIGURE_PAGES = ["02_unlearn", "03_figure1", "04_figure2", "05_beyond", "06_modes", "08_claims", "10_ltr", "09_deepunlearn", "11_lm"]


@pytest.mark.parametrize("page,needs_math,min_images", [("book/derivation.html", True, 0)] + [
    (f"book/executed/{p}.html", False, 0 if p == "08_claims" else 1) for p in FIGURE_PAGES])
def test_chromium_offline_typesets_math_and_shows_figures(book, page, needs_math, min_images):
    src, proc = book
    assert proc.returncode == 0
    result = _browse(src, page, 1200)
    if needs_math:
        assert result["math"] > 5, {k: v for k, v in result.items() if k != "text"}
    assert result["images"] >= min_images and result["shown"] == result["images"], result["images"]
    assert not any(i["narrow"] for i in result["visible"])  # a wide screen shows the wide figures
    if "executed" in page:  # a figure page: its provenance line, and no long code in view
        assert re.search(r"profile (smoke, mode reference, data real MNIST digits|ltr-smoke, mode reference, data a "
                         r"synthetic MQ2007-like collection|lm-smoke, mode reference, data synthetic facts) .*?, computed at commits? \S+.*?; torch \S+",
                         result["text"]), page
        assert all(n <= 10 for n in result["visible_code_lines"]), result["visible_code_lines"]


@pytest.mark.parametrize("page", ["book/intro.html", "book/executed/03_figure1.html", "book/executed/04_figure2.html",
                                  "book/executed/07_simulation.html"])
def test_on_a_phone_each_multi_panel_figure_shows_its_panels_one_under_another(book, page):
    """At 420 px the phone rendering replaces each multi-panel figure: it is on screen, no wider
    than the page, one panel wide (taller than wide); the wide rendering is hidden, its caption kept."""
    src, proc = book
    assert proc.returncode == 0
    result = _browse(src, page, 420)
    visible = result["visible"]
    assert any(i["narrow"] for i in visible), visible
    assert not any(i["wide"] for i in visible), visible
    for i in visible:
        assert i["right"] <= 420 and i["width"] > 200, i  # on screen, and not shrunk to a thumbnail
    two_panel = [i for i in visible if i["narrow"] and i["natural"][1] > 1.15 * i["natural"][0]]
    assert two_panel, visible  # panels stacked: the rendering is taller than wide


def _browse(src, page: str, width: int) -> dict:
    """What headless Chromium shows of ``page`` in a frame ``width`` px wide (images, math, text)."""
    exe = _chromium()
    html = src / "_build" / "html"
    (html / "check.html").write_text(CHECK % ("/" + page, width))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                              "--disable-component-update", "--no-first-run", "--virtual-time-budget=8000",
                              f"--user-data-dir={src / 'chrome-profile'}", "--dump-dom",
                              f"http://127.0.0.1:{server.server_port}/check.html"],
                             capture_output=True, text=True, timeout=120).stdout
    finally:
        server.shutdown()
    return json.loads(re.search(r'<pre id="out">(.*?)</pre>', out, re.S).group(1))


def test_a_smoke_book_states_only_its_own_runs_facts(book):
    """The executed pages of the smoke build state none of the classroom profile's (or the
    paper's) design facts as this run's: they are generated from the run and the profile."""
    src, _ = book
    for nb in NOTEBOOKS:
        html = open(src / "_build" / "html" / "book" / "executed" / (nb + ".html")).read()
        text = re.sub(r"<[^>]+>", " ", html)
        for phrase in ("eleven protocol", "eleven values", "eleven unlearning", "eleven trained", "4,000",
                       "classroom analogue", "Classroom analogue", "12 x 11", "SSD's complete forgetting",
                       "three UNSIR noise", "best spent on many training seeds"):
            assert phrase not in text, (nb, phrase)
    claims = open(src / "_build" / "html" / "book" / "executed" / "08_claims.html").read()
    assert "profile smoke" in claims and "verdicts this run measured hold" in claims
    fig2_html = open(src / "_build" / "html" / "book" / "executed" / "04_figure2.html").read()
    assert 'alt="Grid of box plots of the 2-Wasserstein distance' in fig2_html  # real alt text, not a file name
    fig2 = re.sub(r"<[^>]+>", " ", fig2_html)
    assert "between the 2 protocol-A values and the 2 protocol-B values" in re.sub(r"\s+", " ", fig2)


def test_a_rerun_notebook_shows_its_figure_and_sentences_and_the_book_drops_the_echo(tmp_path):
    """Rerun with papermill (as a reader would), a notebook shows its figure and its glued values;
    ``tidy`` (the book build) drops those echoes, since the book shows the glued copies."""
    import papermill as pm

    from mu_core import page
    out = tmp_path / "sim.ipynb"
    pm.execute_notebook(os.path.join(ROOT, "notebooks", "07_simulation.ipynb"), str(out), cwd=str(tmp_path),
                        parameters={"n_seeds": 200}, progress_bar=False, kernel_name="python3")
    outs = [o for c in json.load(open(out))["cells"] for o in c.get("outputs", [])]
    echoes = [o for o in outs if o.get("metadata", {}).get("mu_core") == "echo"]
    assert any("image/png" in o.get("data", {}) for o in echoes)  # the figure itself
    assert any("sim_frac_over" in "".join(o.get("data", {}).get("text/markdown", "")) for o in echoes)  # its sentences' values
    assert any("figure saved as" in "".join(o.get("text", "")) for o in outs)  # and where it went
    page.tidy(str(out))
    outs = [o for c in json.load(open(out))["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outs if o.get("metadata", {}).get("mu_core") == "echo"]
    assert [o for o in outs if o.get("metadata", {}).get("scrapbook")]  # the glued copies stay


def test_one_verdict_per_question_every_w2_beside_its_noise_and_every_icc_with_its_interval(book):
    """Issue 30's yardsticks, read from the tables the pages offer: a W2 verdict (a table with a
    ``clear`` column) carries its noise and the design it was drawn from, and no two pages give a
    method, setting and design different verdicts; every table with an ICC has its interval."""
    src, _ = book
    import pandas as pd
    verdicts, seen = {}, set()
    for path in sorted(glob.glob(str(src / "book" / "executed" / "tables" / "*.csv"))):
        try:
            t = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            continue
        name = os.path.basename(path)
        if "clear" in t:
            assert {"b_vs_b", "ratio", "design", "method", "dataset", "setting"} <= set(t.columns), name
            seen.add(name)
            for r in t.itertuples():
                verdicts.setdefault((r.method, r.dataset, r.setting, r.design), set()).add((bool(r.clear), name))
        if "icc" in t:
            assert {"icc_lo", "icc_hi"} <= set(t.columns), name
    assert {"fig2_verdicts.csv", "du_w2.csv", "ltr_verdicts.csv", "lm_verdicts.csv"} <= seen
    for key, found in verdicts.items():
        assert len({c for c, _ in found}) == 1, (key, found)
    for nb in ("09_deepunlearn", "10_ltr", "11_lm"):  # the ICC tables as shown: each with its interval
        html = re.sub(r"<[^>]+>", " ", open(src / "_build" / "html" / "book" / "executed" / (nb + ".html")).read())
        assert "ICC (95 % CI)" in html, nb


def test_the_landing_page_carries_three_generated_takeaways(book):
    src, _ = book
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", open(src / "_build" / "html" / "book" / "intro.html").read()))
    glued = {**_glued(src / "book" / "executed" / "08_claims.ipynb"), **_glued(src / "book" / "executed" / "05_beyond.ipynb")}
    for label, key in (("Beyond noise:", "takeaway_found"), ("Not detected:", "takeaway_not_found"), ("How many seeds:", "seeds_short")):
        sentence = glued[key]["text/plain"].strip("'\"")
        assert label in text and sentence[:60] in text, (key, sentence[:60])
    assert "method-setting pairs" in text and "training seeds with" in text
