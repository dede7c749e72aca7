"""The built site as a reader sees it: headless Chromium against a local HTTP server.

Reuses the smoke-scale build of tests/conftest.py. MathJax is the book's own copy
(tools/ensure_mathjax.sh, served from _static/mathjax), so the pages render their math
offline; every other host is unreachable on purpose. Each page is loaded once, with a probe
script that waits for MathJax's first typesetting, measures every table against the text
column and then leaves a marker in the DOM; the checks below read that rendered DOM:

- TeX outside math (``$``, ``\\frac``, ``^{`` ... in text a reader sees as text);
- headings broken across lines (one that ends mid-sentence or with an open bracket, or whose
  next paragraph continues it in lower case);
- MathJax errors (``mjx-merror``), math that MathJax left unrendered, and any uncaught
  JavaScript error (a MathJax component that failed to load);
- tables wider than the text column;
- code-cell lines over 88 characters.

Each check is a function of the DOM, shown to fail on a small snippet with the defect in the
unit tests at the end (no book build needed); the same 88-character rule is applied to the
chapters' sources.
"""
from __future__ import annotations

import functools
import html.parser
import http.server
import json
import re
import shutil
import struct
import subprocess
import threading
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml
from bs4 import BeautifulSoup, NavigableString

REPO = Path(__file__).resolve().parents[1]
TITLE = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf8"))["title"]
COLAB = "https://colab.research.google.com/github/vaelab/vaelab/blob/main/{page}.ipynb"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline: CDN requests fail at once
]
WINDOW = "--window-size=1280,1000"  # the reader's desktop: the text column is about 700-800 px
VIRTUAL_TIME_MS = 30_000  # Chromium waits this long in virtual time (fetches pause it) before dumping
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CODE_LINE_LIMIT = 88


def toc_chapters() -> list[str]:
    """The pages of _toc.yml in order (top-level `chapters` or inside `parts`, each followed by its
    `sections`, such as a chapter's study page), without extension."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf8"))
    entries = list(toc.get("chapters", []))
    for part in toc.get("parts", []):
        entries += part.get("chapters", [])

    def walk(entry):
        yield str(Path(entry["file"]).with_suffix(""))
        for sub in entry.get("sections", []):
            yield from walk(sub)

    return [page for entry in entries for page in walk(entry)]


CHAPTERS = [c for c in toc_chapters() if (REPO / f"{c}.ipynb").is_file()]  # notebooks
MARKDOWN_PAGES = [c for c in toc_chapters() if (REPO / f"{c}.md").is_file()]  # the appendix
PAGES = ["book/intro", *CHAPTERS, *MARKDOWN_PAGES]
# pages with formulas (an appendix page without any has nothing for MathJax to render)
MATH_PAGES = ["book/intro", *(p for p in CHAPTERS if "$" in (REPO / f"{p}.py").read_text()),
              *(p for p in MARKDOWN_PAGES if "$" in (REPO / f"{p}.md").read_text())]


def executed_in_build(page: str) -> bool:
    """False for a chapter whose notebook metadata says `mystnb: execution_mode: off` (celeba: CelebA + GPU)."""
    meta = json.loads((REPO / f"{page}.ipynb").read_text(encoding="utf8")).get("metadata", {})
    return meta.get("mystnb", {}).get("execution_mode") != "off"


EXECUTED = [c for c in CHAPTERS if executed_in_build(c)]
TABLE_PAGES = {"book/results", "book/records"}  # notebooks of tables read from the records: no figure, no summary
NOT_EXECUTED = [c for c in CHAPTERS if not executed_in_build(c)]


class Page(html.parser.HTMLParser):
    """The bits of a DOM these tests look at."""

    def __init__(self, dom: str):
        super().__init__()
        self.title, self._in_title = "", False
        self.imgs, self.links, self.assets, self.math = [], [], [], []
        self.scripts = []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "title":
            self._in_title = True
        elif tag == "img" and a.get("src"):
            self.imgs.append(a["src"])
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "link" and a.get("href"):
            self.assets.append(a["href"])
        elif tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
            self.assets.append(a["src"])
        if "math" in (a.get("class") or "").split():
            self.math.append(tag)

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


# ---------------------------------------------------------------- the probe and the server
PROBE_ID = "vaelab-probe"
# Runs at the end of <body>: waits for MathJax's first typesetting (MathJax.startup.promise),
# then records every table's width against the text column (data-vaelab-width/-column) and
# writes the outcome into <pre id="vaelab-probe">, which the checks read from the dumped DOM.
PROBE_JS = """
(function () {
  var t0 = Date.now();
  function column() {
    var el = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
    var style = getComputedStyle(el);
    return el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  }
  function finish(state) {
    var width = column();
    document.querySelectorAll('table').forEach(function (t) {
      t.setAttribute('data-vaelab-width', Math.round(t.getBoundingClientRect().width));
      t.setAttribute('data-vaelab-column', Math.round(width));
    });
    document.querySelectorAll('.cell_output pre, div.output pre').forEach(function (p) {
      if (p.clientWidth > 0 && p.scrollWidth > p.clientWidth + 2) {
        p.setAttribute('data-vaelab-overflow', p.scrollWidth - p.clientWidth);
      }
    });
    var pre = document.createElement('pre');
    pre.id = '%(id)s';
    pre.setAttribute('hidden', '');
    pre.textContent = JSON.stringify({mathjax: state, column: Math.round(width),
                                     height: document.documentElement.scrollHeight});
    document.body.appendChild(pre);
  }
  (function wait() {
    var mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) {
      mj.startup.promise.then(function () { finish('typeset'); },
                              function (err) { finish('failed: ' + err); });
      return;
    }
    if (Date.now() - t0 > 15000) { finish(document.querySelector('.math') ? 'not loaded' : 'no math'); return; }
    setTimeout(wait, 50);
  })();
})();
""" % {"id": PROBE_ID}


class SiteServer(http.server.ThreadingHTTPServer):
    """Serves a folder on 127.0.0.1; `page.html?probe` gets the probe; remembers every 404."""

    daemon_threads = True

    def __init__(self, root: Path):
        self.root = Path(root)
        self.missing: list[str] = []
        handler = functools.partial(_Handler, directory=str(self.root))
        super().__init__(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}/"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        parts = urlsplit(self.path)
        path = self.server.root / unquote(parts.path.lstrip("/"))
        if "probe" in parts.query and path.suffix == ".html" and path.is_file():
            text = path.read_text(encoding="utf8")
            script = f"<script>{PROBE_JS}</script>"
            text = text.replace("</body>", script + "</body>") if "</body>" in text else text + script
            body = text.encode("utf8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def send_error(self, code, message=None, explain=None):
        path = urlsplit(self.path).path
        if code == 404 and path != "/favicon.ico":  # the browser asks for that on its own
            self.server.missing.append(path)
        super().send_error(code, message, explain)

    def log_message(self, *args):  # quiet
        pass


def run_chromium(chromium: str, profile: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """One headless Chromium run with a fresh profile directory."""
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish in {timeout} s: {' '.join(cmd)}")


def render(chromium: str, url: str, profile: Path, console: list[str] | None = None) -> str:
    """The DOM of `url` after MathJax and the probe ran (1280 px wide window); the page's
    uncaught JavaScript errors are appended to `console` when given."""
    sep = "&" if "?" in url else "?"
    proc = run_chromium(chromium, profile, WINDOW, f"--virtual-time-budget={VIRTUAL_TIME_MS}",
                        "--enable-logging=stderr", "--v=0", "--dump-dom", f"{url}{sep}probe")
    assert proc.returncode == 0 and "<html" in proc.stdout, f"chromium --dump-dom {url} failed:\n{proc.stderr[-2000:]}"
    if console is not None:
        console += [m.group(1) for m in re.finditer(r'CONSOLE[^"]*"(Uncaught[^"]*)"', proc.stderr)]
    return proc.stdout


# An error of the theme's own scripts, not of the book: sphinx-book-theme and sphinx-thebe
# both declare THEBE_JS_URL (jupyter-book 1.x). Every other uncaught error fails the test.
KNOWN_JS_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)


# ---------------------------------------------------------------- the checks (functions of a DOM)
TEX = re.compile(r"\$|\\[A-Za-z]+|\\[()\[\]]|\^\{|_\{")
# Not prose: code, program output, math and what MathJax made of it, navigation scripts.
NOT_PROSE = {"script", "style", "code", "pre", "kbd", "samp", "tt", "textarea", "svg", "math",
             "mjx-container", "mjx-assistive-mml", "head", "noscript", "template"}
NOT_PROSE_CLASSES = {"math", "MathJax", "highlight", "cell_output", "output"}
# A heading that ends with one of these words stops mid-sentence.
DANGLING = {"a", "an", "and", "as", "at", "between", "but", "by", "for", "from", "in", "into", "nor",
            "of", "on", "or", "over", "per", "than", "the", "to", "versus", "via", "vs", "with"}


def _soup(dom: str) -> BeautifulSoup:
    return BeautifulSoup(dom, "html.parser")


def _content(soup: BeautifulSoup):
    """The page's text column (sphinx-book-theme: article.bd-article), else the body."""
    return soup.select_one("article.bd-article") or soup.body or soup


def _is_prose(node) -> bool:
    for parent in node.parents:
        if parent.name in NOT_PROSE or NOT_PROSE_CLASSES & set(parent.get("class") or []):
            return False
    return True


def _text(node) -> str:
    return re.sub(r"\s+", " ", node).strip()


def tex_outside_math(dom: str) -> list[str]:
    """Text a reader sees as prose that holds TeX: `$`, a backslash command, `^{`, `_{`, `\\(`."""
    soup = _soup(dom)
    found = []
    for node in (soup.body or soup).find_all(string=True):
        if type(node) is NavigableString and TEX.search(node) and _is_prose(node):  # not comments
            where = node.find_parent(["p", "li", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "dd", "dt", "div"])
            found.append(f"raw TeX {TEX.search(node).group()!r} in text: {_text(where.get_text() if where else node)[:160]!r}")
    return found


def _heading_text(heading) -> str:
    """A heading's words: section number and permalink dropped, each formula replaced by 'x'."""
    h = BeautifulSoup(str(heading), "html.parser")
    for el in h.select("a.headerlink, span.section-number"):
        el.decompose()
    for el in h.select(".math, mjx-container"):
        el.replace_with("x")
    return _text(h.get_text())


def broken_headings(dom: str) -> list[str]:
    """Headings that break off: an open bracket, a last word like 'and'/'of'/'for', a trailing
    comma or colon, or a next paragraph that starts in lower case (the heading's second line)."""
    soup = _soup(dom)
    found = []
    for heading in _content(soup).find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        text = _heading_text(heading)
        if not text:
            continue
        words = re.findall(r"[A-Za-z]+", text)
        reasons = []
        if text.count("(") != text.count(")") or text.count("[") != text.count("]"):
            reasons.append("unbalanced brackets")
        if words and re.search(r"[A-Za-z]$", text) and words[-1].lower() in DANGLING:
            reasons.append(f"ends with {words[-1]!r}")
        if text[-1] in ",;:(-\u2013":
            reasons.append(f"ends with {text[-1]!r}")
        nxt = heading.find_next_sibling()
        if nxt is not None and nxt.name == "p":
            first = nxt.contents[0] if nxt.contents else None
            if isinstance(first, NavigableString) and re.match(r"\s*[a-z]", first):
                reasons.append(f"the next paragraph continues it: {_text(first)[:60]!r}")
        if reasons:
            found.append(f"<{heading.name}> {text[:120]!r}: {'; '.join(reasons)}")
    return found


def probe_result(dom: str) -> dict | None:
    el = _soup(dom).find(id=PROBE_ID)
    return json.loads(el.get_text()) if el is not None else None


def mathjax_errors(dom: str) -> list[str]:
    """MathJax's error output (mjx-merror, data-mjx-error), and math it did not render."""
    soup = _soup(dom)
    found = [f"MathJax error: {el.get('data-mjx-error') or _text(el.get_text())!r}"
             for el in soup.find_all(["mjx-merror", "merror"])]
    found += [f"MathJax error: {el['data-mjx-error']!r}" for el in soup.find_all(attrs={"data-mjx-error": True})
              if el.name not in ("mjx-merror", "merror")]
    probe = probe_result(dom)
    if probe is not None and probe["mathjax"] not in ("typeset", "no math"):
        found.append(f"MathJax did not typeset the page: {probe['mathjax']}")
    if probe is not None and probe["mathjax"] == "typeset":
        for el in soup.select(".math"):
            if el.find("mjx-container") is None and el.name != "mjx-container":
                found.append(f"math left as TeX: {_text(el.get_text())[:100]!r}")
    return found


def wide_tables(dom: str) -> list[str]:
    """Tables wider than the text column, as the probe measured them in the browser."""
    found = []
    for table in _soup(dom).find_all("table", attrs={"data-vaelab-width": True}):
        width, column = int(table["data-vaelab-width"]), int(table["data-vaelab-column"])
        if width > column + 2:
            head = _text(table.get_text(" "))[:80]
            found.append(f"table {width} px wide in a {column} px column: {head!r}")
    return found


def long_code_lines(dom: str, limit: int = CODE_LINE_LIMIT, exempt: tuple[str, ...] = (),
                    papermill_cells: bool = True) -> list[str]:
    """Lines of code cells (the cell inputs a reader sees) longer than `limit` characters.

    Not counted: cells whose first lines hold one of the strings `exempt`, and, unless
    `papermill_cells`, the `parameters` cell and the code cell after it."""
    found = []
    skip_next = False
    for cell in _soup(dom).select("div.cell"):
        pre = cell.select_one(".cell_input pre")
        if pre is None:
            continue
        text = pre.get_text()
        is_parameters = "tag_parameters" in (cell.get("class") or [])
        skip = (not papermill_cells and (is_parameters or skip_next)) or _in_head(text, exempt)
        skip_next = is_parameters
        if skip:
            continue
        for line in text.splitlines():
            if len(line) > limit:
                found.append(f"{len(line)} characters: {line[:100]!r}")
    return found


def _in_head(source: str, keys) -> bool:
    head = "\n".join(source.splitlines()[:3])
    return any(key in head for key in keys)


def wide_outputs(dom: str) -> list[str]:
    """Program output (a cell's printed text) wider than its box, so the reader must scroll it
    sideways: the probe marks each such <pre> with how many pixels stick out."""
    found = []
    for pre in _soup(dom).find_all("pre", attrs={"data-vaelab-overflow": True}):
        line = max(pre.get_text().splitlines() or [""], key=len)
        found.append(f"output {pre['data-vaelab-overflow']} px wider than the column: {line[:100]!r}")
    return found


def uncaptioned_figures(dom: str) -> list[str]:
    """Figures of the text column without a numbered caption ({glue:figure} or {figure} with a
    caption: <figure> with <figcaption> and its "Fig. N" number)."""
    found = []
    for img in _content(_soup(dom)).find_all("img"):
        figure = img.find_parent("figure")
        caption = figure.find("figcaption") if figure is not None else None
        if caption is None or caption.select_one("span.caption-number") is None:
            found.append(f"figure without a numbered caption: {img.get('src', '?')[-60:]}")
    return found


def _verdict_words() -> set[str]:
    from vaelab.lab.compare import VERDICTS
    return set(VERDICTS)


def _verdict_symbols() -> str:
    from vaelab.lab.compare import SYMBOLS  # a verdict may carry its symbol (the results page)
    return "".join(SYMBOLS.values())


def foreign_verdicts(dom: str) -> list[str]:
    """Cells of a table's "verdict" column that are not one of vaelab.lab.compare.VERDICTS."""
    words = _verdict_words()
    found = []
    for table in _content(_soup(dom)).find_all("table"):
        head = [_text(th.get_text()).lower() for th in table.select("thead th")] or \
               [_text(c.get_text()).lower() for c in (table.find("tr") or table).find_all(["th", "td"])]
        if "verdict" not in head:
            continue
        col = head.index("verdict")
        for tr in table.select("tbody tr") or table.find_all("tr")[1:]:
            cells = tr.find_all(["td", "th"])
            if len(cells) == len(head):
                text = _text(cells[col].get_text()).lstrip(_verdict_symbols() + " ")
                if text not in words:
                    found.append(f"verdict {text!r} is not one of {sorted(words)}")
    return found


# Prose that a template wrote: a range that collapses, a count of all, a plural by bracket, a
# singular count with a plural noun, a doubled "not reported", a pointer at a cell or a picture by
# place (figures have numbers; hidden cells cannot be pointed at).
TEMPLATES = {
    "a range that collapses": re.compile(r"(?<![\d.,\-\u2212])(\d[\d.,]*) to \1(?![\d.]|,\d)"),
    "a count of all in figures": re.compile(r"(?<![\d.,])(\d+) of the \1(?![\d.]|,\d)"),
    "a plural by bracket": re.compile(r"[a-z]\(s\)"),
    "one with a plural noun": re.compile(r"(?:(?<=\s)|^)1 (?:[A-Za-z]+ )?(?:seeds|runs|images|epochs|units|points|records|models)\b"),
    "a doubled 'not reported'": re.compile(r"not reported \(not reported"),
    "a pointer by place": re.compile(r"\b(?:the (?:next|following|previous|hidden) cell|the cell (?:below|above)|"
                                     r"the (?:picture|figure|plot) (?:below|above))\b", re.I),
}


def template_prose(dom: str) -> list[str]:
    """Prose and table cells with the marks of a template (TEMPLATES)."""
    soup = _content(_soup(dom))
    found = []
    for block in soup.find_all(["p", "li", "td", "th", "figcaption", "caption"]):
        in_table = block.name in ("td", "th", "caption")  # a table a cell prints is read as text too
        if block.find(["p", "li"]) or not (_is_prose(block) or in_table and block.find_parent(["pre", "code"]) is None):
            continue
        text = _text(block.get_text())
        for what, pattern in TEMPLATES.items():
            m = pattern.search(text)
            if m:
                found.append(f"{what} ({m.group()!r}): {text[:140]!r}")
    return found


def parameter_headings(dom: str) -> list[str]:
    """Headings that name a parameter (a snake_case word or code), e.g. "(k = sweep_dim)"."""
    found = []
    for heading in _content(_soup(dom)).find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        text = _heading_text(heading)
        m = re.search(r"\b[a-z]+_[a-z0-9_]+\b", text)
        if m:
            found.append(f"<{heading.name}> {text[:120]!r} names a parameter: {m.group()!r}")
    return found


def missing_summary(dom: str) -> list[str]:
    """A chapter page without a "Summary" section (h2) among its last sections."""
    heads = [_heading_text(h) for h in _content(_soup(dom)).find_all("h2")]
    if not any(h.split(". ", 1)[-1].startswith("Summary") for h in heads[-3:]):
        return [f"no Summary section among the last ones: {heads[-3:]}"]
    return []


CHECKS = {f.__name__: f for f in (tex_outside_math, broken_headings, mathjax_errors, wide_tables, long_code_lines,
                                  wide_outputs, uncaptioned_figures, foreign_verdicts, template_prose,
                                  parameter_headings, missing_summary)}
CHAPTER_ONLY = {"missing_summary"}  # the checks that apply to chapter pages only (not intro, appendix, results)


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("headless Chromium not found: run `make test` (it installs Chromium) or apt-get install chromium")
    return exe


@pytest.fixture(scope="session")
def mathjax_copy() -> Path:
    """The book's MathJax (tools/ensure_mathjax.sh; `make book` and `make test` run it)."""
    proc = subprocess.run(["bash", str(REPO / "tools" / "ensure_mathjax.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"tools/ensure_mathjax.sh failed:\n{proc.stderr[-2000:]}", pytrace=False)
    return REPO / "_mathjax" / "mathjax"


@pytest.fixture(scope="session")
def site(book_build) -> Path:
    if book_build.returncode != 0 or not (book_build.html / "index.html").is_file():
        pytest.fail("the smoke-scale book build failed: see test_book.py::test_smoke_book_build", pytrace=False)
    return book_build.html


@pytest.fixture(scope="session")
def server(site):
    srv = SiteServer(site)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="session")
def dom(chromium, server, tmp_path_factory):
    """page (e.g. "book/intro") -> (url, rendered DOM, parsed DOM, paths that 404ed), each page
    loaded once; load.console[page] holds the page's uncaught JavaScript errors."""
    cache = {}

    def load(page: str):
        if page not in cache:
            url = f"{server.base}{page}.html"
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200, f"{url}: HTTP {response.status}"
            before = len(server.missing)
            load.console[page] = []
            text = render(chromium, url, tmp_path_factory.mktemp("chromium"), load.console[page])
            cache[page] = (url, text, Page(text), server.missing[before:])
        return cache[page]

    load.console = {}

    return load


def local_file(site: Path, base: str, page_url: str, ref: str) -> Path | None:
    """The file in the build that a relative reference of a page points to (None if external)."""
    url = urljoin(page_url, ref)
    if not url.startswith(base):
        return None
    return site / unquote(urlsplit(url).path.lstrip("/"))


# ---------------------------------------------------------------- the built site
def test_index_redirects_to_intro(site):
    assert "book/intro.html" in (site / "index.html").read_text(encoding="utf8")


@pytest.mark.parametrize("page", PAGES)
def test_page_loads(dom, page):
    url, text, parsed, _ = dom(page)
    assert parsed.title.strip(), f"{url} has no <title>"
    assert "404" not in parsed.title and "Error response" not in text, f"{url} is an error page"
    assert TITLE in text, f"{url} does not show the book title"


@pytest.mark.parametrize("page", PAGES)
def test_local_assets_and_links_exist(dom, site, server, page):
    url, _, parsed, requested_missing = dom(page)
    missing = []
    for ref in parsed.assets + parsed.imgs + [h for h in parsed.links if not h.startswith("#")]:
        path = local_file(site, server.base, url, ref)
        if path is not None and not path.is_file():
            missing.append(ref)
    assert not missing, f"{url} refers to files missing from the build: {missing}"
    assert not requested_missing, f"{url}: the browser asked for files missing from the build: {requested_missing}"


@pytest.mark.parametrize("page", NOT_EXECUTED)
def test_unexecuted_chapter_says_so_and_has_no_outputs(dom, page):
    url, text, parsed, _ = dom(page)
    assert "does not execute this chapter" in text, f"{url} must tell the reader that it is shown without outputs"
    assert not [src for src in parsed.imgs if "_images/" in src], f"{url} is not executed but shows figures"


DRAWING = [c for c in EXECUTED if re.search(r"glue_figure\(|plt\.|show_images\(", (REPO / f"{c}.py").read_text())]


@pytest.mark.parametrize("page", DRAWING)  # every executed page that draws (01b and the tables pages draw none)
def test_chapter_figures_are_pngs(dom, site, server, page):
    url, _, parsed, _ = dom(page)
    figures = [src for src in parsed.imgs if "_images/" in src]
    assert figures, f"{url} shows no figure (<img> from a notebook output)"
    for src in figures:
        path = local_file(site, server.base, url, src)
        assert path is not None and path.is_file(), f"{url}: figure {src} is not in the build"
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE, f"{url}: figure {src} is not a PNG"
        width, height = struct.unpack(">II", data[16:24])
        assert width > 0 and height > 0 and len(data) > 1000, f"{url}: figure {src} is empty ({width}x{height}, {len(data)} bytes)"


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_colab_button(dom, page):
    url, _, parsed, _ = dom(page)
    expected = COLAB.format(page=page)
    assert (REPO / f"{page}.ipynb").is_file(), f"the Colab link needs the committed {page}.ipynb"
    colab = [h for h in parsed.links if "colab.research.google.com" in h]
    assert expected in colab, f"{url}: no Colab launch link to {expected} (found {colab})"


@pytest.mark.parametrize("page", MATH_PAGES)
def test_math_rendered_by_the_books_mathjax(dom, site, page):
    url, text, parsed, _ = dom(page)
    assert parsed.math, f"{url} has no math markup (class=\"math\")"
    source = (site / f"{page}.html").read_text(encoding="utf8")
    assert "\\[" in source or "\\(" in source, f"{url}: math elements hold no TeX delimiters"
    local = [s for s in parsed.scripts if s.split("?")[0].endswith("_static/mathjax/tex-chtml.js")]
    assert local, f"{url} does not load the book's MathJax (_static/mathjax/tex-chtml.js): {parsed.scripts}"
    assert "<mjx-container" in text, f"{url}: MathJax rendered nothing (probe: {probe_result(text)})"


@pytest.mark.parametrize("page", PAGES)
def test_no_javascript_errors(dom, page):
    """MathJax's components and the theme load without an uncaught error (a MathJax component
    loaded twice, as a page <script> and by MathJax's loader, shows up here)."""
    url, _, _, _ = dom(page)
    errors = [e for e in dom.console[page] if not any(known in e for known in KNOWN_JS_ERRORS)]
    assert not errors, f"{url}: uncaught JavaScript errors:\n" + "\n".join(errors[:10])


PAGE_CHECKS = [(page, check) for page in PAGES for check in CHECKS
               if check not in CHAPTER_ONLY or (page in CHAPTERS and page not in TABLE_PAGES)]


@pytest.mark.parametrize("page,check", PAGE_CHECKS)
def test_page_as_the_reader_sees_it(dom, page, check):
    url, text, _, _ = dom(page)
    if check == "long_code_lines":  # papermill's cells exempt, as in the test on the sources
        problems = long_code_lines(text, papermill_cells=False)
    else:
        problems = CHECKS[check](text)
    assert not problems, f"{url}: {check} found {len(problems)}:\n" + "\n".join(problems[:30])


def test_screenshot(chromium, server, tmp_path):
    from PIL import Image

    page = CHAPTERS[0] if CHAPTERS else "book/intro"
    shot = tmp_path / "page.png"
    proc = run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000",
                        "--hide-scrollbars", f"--virtual-time-budget={VIRTUAL_TIME_MS}", f"{server.base}{page}.html")
    assert proc.returncode == 0 and shot.is_file(), f"chromium --screenshot failed:\n{proc.stderr[-2000:]}"
    assert shot.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(shot) as img:
        assert img.size == (1280, 2000), f"screenshot is {img.size}"
        grey = img.convert("L")
        histogram = grey.histogram()
        dark = sum(histogram[:200]) / (img.size[0] * img.size[1])
        distinct = sum(1 for n in histogram if n)
    assert dark > 0.01 and distinct > 16, f"screenshot looks blank ({dark:.1%} non-white pixels, {distinct} grey levels)"


# ---------------------------------------------------------------- the chapters' sources
def chapter_code_cells(name: str):
    """(index among code cells, tags, source) of every code cell of book/NAME.py."""
    import jupytext

    nb = jupytext.read(REPO / "book" / f"{name}.py")
    cells = [c for c in nb.cells if c.cell_type == "code"]
    return [(i, c.metadata.get("tags", []), c.source) for i, c in enumerate(cells)]


SOURCE_CHAPTERS = sorted(p.stem for p in (REPO / "book").glob("*.py"))


@pytest.mark.parametrize("name", SOURCE_CHAPTERS)
def test_chapter_code_lines_fit_the_page(name):
    """Every code-cell line at most 88 characters, as the reader sees it in the page (the
    `parameters` cell and the smoke-scale cell after it are papermill's, and exempt)."""
    cells = chapter_code_cells(name)
    params = [i for i, tags, _ in cells if "parameters" in tags]
    exempt = {params[0], params[0] + 1} if params else set()
    long_lines = []
    for i, _, source in cells:
        lines = source.splitlines()
        if i in exempt:
            continue
        long_lines += [f"code cell {i}, line {n}: {len(line)} characters: {line[:70]!r}..."
                       for n, line in enumerate(lines, start=1) if len(line) > CODE_LINE_LIMIT]
    assert not long_lines, (f"book/{name}.py: {len(long_lines)} code lines over {CODE_LINE_LIMIT} characters "
                            "(wrap them):\n" + "\n".join(long_lines))


GLUE_ROLE = re.compile(r"\{glue(?::text)?\}`([A-Za-z0-9_]+)(?::[^`]*)?`")
GLUE_CALL = re.compile(r"\bglue\(\s*[\"']([A-Za-z0-9_]+)[\"']")
# glue(f"ch03_k1_{key}", ...) in a loop: the names it glues start with the literal prefix
GLUE_FCALL = re.compile(r"\bglue\(\s*f[\"']([A-Za-z0-9_]+)\{")


def is_glued(name: str, glued: set[str]) -> bool:
    """``name`` is among the glued names, or starts with the prefix of an f-string glue ("ch03_k1_*")."""
    return name in glued or any(g.endswith("*") and name.startswith(g[:-1]) for g in glued)


SETUP_CALL = re.compile(r"\bsetup\(\s*globals\(\),\s*[\"']([^\"']+)[\"']")


def glued_names(code: str) -> set[str]:
    """The names a chapter's code glues: its glue("name", ...) calls, and the run time and machine
    that ``Chapter.finish`` glues as <prefix>_runtime_min and <prefix>_machine."""
    names = set(GLUE_CALL.findall(code)) | {prefix + "*" for prefix in GLUE_FCALL.findall(code)}
    setup = SETUP_CALL.search(code)
    if setup and ".finish(" in code:
        prefix = "ch" + setup.group(1).split("_", 1)[0]
        names |= {f"{prefix}_runtime_min", f"{prefix}_machine"}
    return names


def glue_problems(markdown: str, code: str) -> list[str]:
    """Names the prose cites with {glue:text}`name` that no code cell glues (the number would be
    missing from the page; the book build also fails on it)."""
    cited = set(GLUE_ROLE.findall(markdown))
    glued = glued_names(code)
    return [f"{{glue:text}}`{n}` is cited but no cell calls glue({n!r}, ...)"
            for n in sorted(cited) if not is_glued(n, glued)]


@pytest.mark.parametrize("name", SOURCE_CHAPTERS)
def test_every_number_the_prose_cites_is_glued_by_the_chapter(name):
    import jupytext

    nb = jupytext.read(REPO / "book" / f"{name}.py")
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    problems = glue_problems(markdown, code)
    assert not problems, f"book/{name}.py: " + "; ".join(problems)


CROSS_GLUE = re.compile(r"\{glue(?::text)?\}`([A-Za-z0-9_./-]+\.ipynb)::([A-Za-z0-9_]+)(?::[^`]*)?`")


def cross_glue_problems(markdown: str, glued_by: dict[str, set[str]]) -> list[str]:
    """Numbers a page pastes from another document (`{glue:text}`doc.ipynb::key:s``, e.g. the
    intro's run times) that the named chapter does not glue, or a chapter that does not exist.
    A key needs the `:s` format after it: without one, myst-nb reads the key as the format."""
    problems = []
    for doc, key in CROSS_GLUE.findall(markdown):
        name = Path(doc).stem
        if name not in glued_by:
            problems.append(f"{{glue:text}}`{doc}::{key}` names no chapter in book/")
        elif not is_glued(key, glued_by[name]):
            problems.append(f"{{glue:text}}`{doc}::{key}`: book/{name}.py never calls glue({key!r}, ...)")
    problems += [f"{{glue:text}}`{m}`: a key from another document needs a format after it (`:s`)"
                 for m in re.findall(r"\{glue(?::text)?\}`([^`:]+::[A-Za-z0-9_]+)`", markdown)]
    return problems


@pytest.mark.parametrize("page", ["intro.md", "results.py"])
def test_pages_paste_only_numbers_the_chapters_glue(page):
    """The intro's run times and the results page's "this build" column."""
    import jupytext

    glued_by = {}
    for name in SOURCE_CHAPTERS:
        nb = jupytext.read(REPO / "book" / f"{name}.py")
        glued_by[name] = glued_names("\n".join(c.source for c in nb.cells
                                                if c.cell_type == "code"))
    if page.endswith(".py"):
        markdown = "\n".join(c.source for c in jupytext.read(REPO / "book" / page).cells
                              if c.cell_type == "markdown")
    else:
        markdown = (REPO / "book" / page).read_text(encoding="utf8")
    assert CROSS_GLUE.search(markdown), f"book/{page} pastes nothing: the check would be empty"
    problems = cross_glue_problems(markdown, glued_by)
    assert not problems, f"book/{page}: " + "; ".join(problems)


def test_cross_glue_check_finds_a_missing_number():
    glued_by = {"04_geco_rewo": {"ch04_runtime_min"}}
    good = "{glue:text}`04_geco_rewo.ipynb::ch04_runtime_min:s` min"
    assert cross_glue_problems(good, glued_by) == []
    assert len(cross_glue_problems("{glue:text}`04_geco_rewo.ipynb::ch04_other:s`", glued_by)) == 1
    assert len(cross_glue_problems("{glue:text}`05_none.ipynb::ch05_x:s`", glued_by)) == 1
    assert len(cross_glue_problems("{glue:text}`04_geco_rewo.ipynb::ch04_runtime_min`", glued_by)) == 1


FORCED_BAR = re.compile(r"\bprogress\s*=\s*(?!None\b)[^,)\s]|\btqdm\b")


@pytest.mark.parametrize("name", SOURCE_CHAPTERS)
def test_no_chapter_forces_a_progress_bar(name):
    """Progress bars follow VAELAB_PROGRESS (the book build sets 0, so built pages show none;
    interactive runs keep them): a chapter passes no `progress=` of its own and uses no tqdm."""
    lines = [f"code cell {i}: {line.strip()}" for i, _, source in chapter_code_cells(name)
             for line in source.splitlines() if FORCED_BAR.search(line)]
    assert not lines, f"book/{name}.py forces progress bars:\n" + "\n".join(lines)


def test_forced_bar_check():
    assert FORCED_BAR.search("hist = fit(net, train, progress=not smoke)")
    assert FORCED_BAR.search("for x in tqdm(range(3)):")
    assert not FORCED_BAR.search("hist = fit(net, train, progress=None, seed=0)")
    assert not FORCED_BAR.search("hist = fit(net, train, seed=0)")


def test_glue_check_finds_a_missing_number():
    prose = "The run took {glue:text}`ch01_minutes` min and kept {glue:text}`ch01_active:d` units."
    assert glue_problems(prose, "glue('ch01_minutes', m, '.1f')\nglue(\"ch01_active\", n)") == []
    missing = glue_problems(prose, "glue('ch01_minutes', m, '.1f')")
    assert missing == ["{glue:text}`ch01_active` is cited but no cell calls glue('ch01_active', ...)"]


# ---------------------------------------------------------------- the checks on small snippets
def page_html(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body><article class='bd-article'>{body}</article></body></html>"


GOOD_PROSE = page_html(
    "<section><h2>2. Theorem 1, derived step by step</h2>"
    "<p>For Gaussians of equal mean, <span class='math notranslate nohighlight'>\\(\\mathrm{KL} = \\frac12"
    "(\\operatorname{tr}\\Sigma - k - \\log\\det\\Sigma)\\)</span> for every image.</p>"
    "<div class='math notranslate nohighlight'>\\[ J_1 = \\sum_{i=1}^N x_i \\]</div>"
    "<p>Prices in <code>$HOME/\\frac</code> are code, and so is</p><pre>x = a_{1} ^{2} \\log</pre>"
    "<div class='cell_output'><pre>lambda $ 3</pre></div></section>")

SNIPPETS = {  # check -> (DOM with the defect, the same DOM without it)
    "tex_outside_math": (
        page_html("<p>With <ul><li>+ \\log\\det S_1 - \\log\\det S_0\\right)$. With $S_0=\\sigma_i^2\\Sigma$</li></ul></p>"),
        GOOD_PROSE),
    "broken_headings": (
        page_html("<section><h3><span class='section-number'></span>6.6 Fig. 4: samples, reconstructions, "
                  "interpolations (<span class='math'>\\(k\\)</span> = <code>sample_dim</code>; "
                  "<span class='math'>\\(\\lambda = 1\\)</span> for VAE and<a class='headerlink' href='#x'>#</a></h3>"
                  "<p>HEBAE, 10 for the WAE, as the official code) and a sample-quality number</p></section>"),
        page_html("<section><h3>6.6 Fig. 4: samples, reconstructions, interpolations and a sample-quality number"
                  "<a class='headerlink' href='#x'>#</a></h3><p>With <span class='math'>\\(k\\)</span> = "
                  "<code>sample_dim</code>; the VAE and HEBAE at 1, the WAE at 10.</p></section>")),
    "mathjax_errors": (
        page_html("<p><span class='math'><mjx-container class='MathJax'><mjx-merror "
                  "data-mjx-error='Undefined control sequence \\foo'><mjx-mtext>\\foo</mjx-mtext></mjx-merror>"
                  "</mjx-container></span></p><pre id='vaelab-probe'>{\"mathjax\": \"typeset\"}</pre>"),
        page_html("<p><span class='math'><mjx-container class='MathJax'><mjx-mi>x</mjx-mi></mjx-container></span></p>"
                  "<pre id='vaelab-probe'>{\"mathjax\": \"typeset\"}</pre>")),
    "wide_tables": (
        page_html("<table data-vaelab-width='1540' data-vaelab-column='760'><tr><td>60 columns</td></tr></table>"),
        page_html("<table data-vaelab-width='700' data-vaelab-column='760'><tr><td>fits</td></tr></table>")),
    "long_code_lines": (
        page_html("<div class='cell docutils container'><div class='cell_input'><div class='highlight'><pre>"
                  "fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))  # a line of code that runs past the "
                  "text column of the page</pre></div></div></div>"),
        page_html("<div class='cell docutils container'><div class='cell_input'><div class='highlight'><pre>"
                  "fig, axes = plt.subplots(1, 4)\n</pre></div></div><div class='cell_output'><pre>"
                  + "an output line may be long " * 8 + "</pre></div></div>")),
    "wide_outputs": (
        page_html("<div class='cell_output'><pre data-vaelab-overflow='3500'>{'a': 1, 'b': 2, ...}</pre></div>"),
        page_html("<div class='cell_output'><pre>fits</pre></div>")),
    "uncaptioned_figures": (
        page_html("<div class='cell_output'><img src='_images/a.png'></div>"
                  "<figure><img src='_images/b.png'><figcaption><p>No number</p></figcaption></figure>"),
        page_html("<figure class='align-default' id='fig-x'><img src='_images/a.png'><figcaption><p>"
                  "<span class='caption-number'>Fig. 1 </span><span class='caption-text'>Loss curves.</span>"
                  "</p></figcaption></figure>")),
    "foreign_verdicts": (
        page_html("<table><thead><tr><th>metric</th><th>verdict</th></tr></thead><tbody>"
                  "<tr><td>ELBO</td><td>beyond the paper</td></tr></tbody></table>"),
        page_html("<table><thead><tr><th>metric</th><th>verdict</th></tr></thead><tbody>"
                  "<tr><td>ELBO</td><td>✓ reproduced</td></tr><tr><td>MIC</td><td>not run yet</td></tr>"
                  "</tbody></table><table><tr><th>model</th><th>note</th></tr><tr><td>a</td><td>beyond</td></tr></table>")),
    "template_prose": (
        page_html("<p>The errors range from 0.07 to 0.07 over 4 of the 4 seeds, 6 seed(s) and 1 REWO seeds.</p>"
                  "<p>The next cell checks every parameter.</p><div class='cell_output'><table>"
                  "<caption>chapter 00: 1 records</caption><tr><td>x</td></tr></table></div>"),
        page_html("<p>The errors range from 0.07 to 0.09 over all four seeds, one seed of six; "
                  "Fig. 2 shows the 1,000 runs.</p>")),
    "parameter_headings": (
        page_html("<section><h3>6.7 Fig. 1a at k = sweep_dim<a class='headerlink' href='#x'>#</a></h3></section>"
                  "<section><h3>Samples at <code>sample_dim</code></h3></section>"),
        page_html("<section><h3>6.7 Fig. 1a at two latent sizes<a class='headerlink' href='#x'>#</a></h3></section>")),
    "missing_summary": (
        page_html("<section><h2>1. Setup</h2></section><section><h2>7. The record of this run</h2></section>"),
        page_html("<section><h2>1. Setup</h2></section><section><h2>8. Summary</h2></section>"
                  "<section><h2>9. Exercises</h2></section>")),
}


@pytest.mark.parametrize("check", CHECKS)
def test_check_finds_its_defect_in_a_snippet(check):
    bad, good = SNIPPETS[check]
    assert CHECKS[check](bad), f"{check} misses the defect in:\n{bad}"
    assert not CHECKS[check](good), f"{check} flags a page without the defect: {CHECKS[check](good)}"


def test_other_checks_pass_the_clean_prose():
    for name, check in CHECKS.items():
        if name in CHAPTER_ONLY:
            continue
        assert not check(GOOD_PROSE), f"{name}: {check(GOOD_PROSE)}"


def test_long_code_lines_exemptions():
    def cell(source, tags=""):
        return (f"<div class='cell {tags} docutils container'><div class='cell_input'><pre>{source}</pre>"
                "</div></div>")

    long = "x = 1  # " + "a comment that goes on " * 5
    dom = page_html(cell("epochs = 6  # " + "the default scale " * 6, "tag_parameters")
                    + cell("smoke = 1  # " + "the smoke scale " * 6) + cell("train(model)\n" + long)
                    + cell("fig = plot()\n" + long))
    assert len(long_code_lines(dom)) == 4
    assert len(long_code_lines(dom, papermill_cells=False)) == 2
    assert len(long_code_lines(dom, exempt=("train(model)",), papermill_cells=False)) == 1
    assert long_code_lines(dom, limit=200) == []


def test_broken_heading_rules():
    def heading(h, after="<p>Text.</p>"):
        return broken_headings(page_html(f"<section><h2>{h}</h2>{after}</section>"))

    assert heading("Samples and pictures ($k$ = 10, $\\lambda = 1$ for VAE and")
    assert heading("The ELBO with a weight of")
    assert heading("The ELBO,")
    assert heading("The ELBO", after="<p>with a weight, continued from the heading</p>")
    assert not heading("7. Beside the paper")
    assert not heading("Codes on <span class='math'>\\([0, 2\\pi)\\)</span>")  # brackets inside math do not count
    assert not heading("A VAE in a few lines", after="<p><code>vaelab</code> trains it</p>")


def test_probe_in_chromium_finds_a_mathjax_error_and_a_wide_table(chromium, mathjax_copy, tmp_path):
    """End to end, without the book: the book's MathJax with the book's settings, in headless
    Chromium, through the probe; a clean twin page passes every check."""
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf8"))["sphinx"]["config"]
    mj_config = json.dumps(config.get("mathjax3_config", {}))
    head = (f"<script>window.MathJax = {mj_config};</script>"
            f"<script defer src='mathjax/tex-chtml.js'></script>")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "mathjax").symlink_to(mathjax_copy, target_is_directory=True)
    bad = page_html("<p>A macro that does not exist: <span class='math'>\\(\\foo x\\)</span>.</p>"
                    "<table style='width: 2000px'><tr><td>wide</td></tr></table>", head)
    good = page_html("<p>Fine: <span class='math'>\\(\\frac12 \\operatorname{tr}\\Sigma + \\boldsymbol x\\)</span>.</p>"
                     "<table><tr><td>narrow</td></tr></table>", head)
    (tmp_path / "site" / "bad.html").write_text(bad, encoding="utf8")
    (tmp_path / "site" / "good.html").write_text(good, encoding="utf8")
    srv = SiteServer(tmp_path / "site")
    console = []
    try:
        bad_dom = render(chromium, srv.base + "bad.html", tmp_path / "p1")
        good_dom = render(chromium, srv.base + "good.html", tmp_path / "p2", console)
    finally:
        srv.close()
    assert not console, f"JavaScript errors on the clean page: {console}"
    assert probe_result(bad_dom) and probe_result(bad_dom)["mathjax"] == "typeset", probe_result(bad_dom)
    errors = mathjax_errors(bad_dom)
    assert errors and "foo" in errors[0], errors
    assert wide_tables(bad_dom), "the 2000 px table was not measured as too wide"
    assert "<mjx-container" in good_dom
    for name, check in CHECKS.items():
        if name not in CHAPTER_ONLY:  # the snippet is no chapter
            assert not check(good_dom), f"{name} on the clean page: {check(good_dom)}"
    assert not srv.missing, f"MathJax asked for files the copy does not have: {srv.missing}"


def test_render_reports_uncaught_javascript_errors(chromium, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "js.html").write_text(
        page_html("<p>text</p><script>throw new Error('a component failed to load');</script>"), encoding="utf8")
    srv = SiteServer(tmp_path / "site")
    console = []
    try:
        render(chromium, srv.base + "js.html", tmp_path / "p", console)
    finally:
        srv.close()
    assert any("a component failed to load" in e for e in console), console


@pytest.mark.parametrize("what,bad,good", [
    ("a range that collapses", "from 0.07 to 0.07 rad", "a traversal from -3 to 3"),
    ("a count of all in figures", "4 of the 4 seeds", "all but 2 of the 2,561,064 weights"),
    ("a plural by bracket", "6 seed(s)", "six seeds"),
    ("one with a plural noun", "1 REWO and 1 GECO seeds", "1,000 runs, 11 epochs, the K=1 models, k+1 images"),
    ("a doubled 'not reported'", "not reported (not reported)", "not reported (Fig. 2, curves)"),
    ("a pointer by place", "The next cell checks every parameter", "Fig. 3 shows the curves"),
])
def test_each_template_pattern(what, bad, good):
    assert TEMPLATES[what].search(bad), f"{what}: misses {bad!r}"
    assert not TEMPLATES[what].search(good), f"{what}: flags {good!r}"
