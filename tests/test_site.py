"""The built site as a browser sees it: headless Chromium against a local HTTP server.

Reuses the smoke-scale build of tests/conftest.py. MathJax comes from a CDN and cannot render
offline, so the math is checked as markup; every other host is unreachable on purpose.
"""
from __future__ import annotations

import html.parser
import json
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TITLE = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf8"))["title"]
COLAB = "https://colab.research.google.com/github/vaelab/vaelab/blob/main/{page}.ipynb"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline: CDN requests fail at once
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def toc_chapters() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf8"))
    return [str(Path(c["file"]).with_suffix("")) for c in toc.get("chapters", [])]


CHAPTERS = toc_chapters()


def executed_in_build(page: str) -> bool:
    """False for a chapter whose notebook metadata says `mystnb: execution_mode: off` (celeba: CelebA + GPU)."""
    meta = json.loads((REPO / f"{page}.ipynb").read_text(encoding="utf8")).get("metadata", {})
    return meta.get("mystnb", {}).get("execution_mode") != "off"


EXECUTED = [c for c in CHAPTERS if executed_in_build(c)]
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


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("headless Chromium not found: run `make test` (it installs Chromium) or apt-get install chromium")
    return exe


@pytest.fixture(scope="session")
def site(book_build) -> Path:
    if book_build.returncode != 0 or not (book_build.html / "index.html").is_file():
        pytest.fail("the smoke-scale book build failed: see test_book.py::test_smoke_book_build", pytrace=False)
    return book_build.html


@pytest.fixture(scope="session")
def server(site):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(site)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base, timeout=2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"http.server did not come up on {base}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_chromium(chromium: str, profile: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """One headless Chromium run with a fresh profile directory."""
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish in {timeout} s: {' '.join(cmd)}")


@pytest.fixture(scope="session")
def dom(chromium, server, tmp_path_factory):
    """page (e.g. "book/intro") -> (url, parsed DOM), each page loaded once."""
    cache = {}

    def load(page: str):
        if page not in cache:
            url = f"{server}{page}.html"
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200, f"{url}: HTTP {response.status}"
            proc = run_chromium(chromium, tmp_path_factory.mktemp("chromium"), "--dump-dom", url)
            assert proc.returncode == 0 and "<html" in proc.stdout, f"chromium --dump-dom {url} failed:\n{proc.stderr[-2000:]}"
            cache[page] = (url, proc.stdout, Page(proc.stdout))
        return cache[page]

    return load


def local_file(site: Path, server: str, page_url: str, ref: str) -> Path | None:
    """The file in the build that a relative reference of a page points to (None if external)."""
    url = urljoin(page_url, ref)
    if not url.startswith(server):
        return None
    return site / unquote(urlsplit(url).path.lstrip("/"))


# ---------------------------------------------------------------- tests
def test_index_redirects_to_intro(site):
    assert "book/intro.html" in (site / "index.html").read_text(encoding="utf8")


@pytest.mark.parametrize("page", ["book/intro", *CHAPTERS])
def test_page_loads(dom, page):
    url, text, parsed = dom(page)
    assert parsed.title.strip(), f"{url} has no <title>"
    assert "404" not in parsed.title and "Error response" not in text, f"{url} is an error page"
    assert TITLE in text, f"{url} does not show the book title"


@pytest.mark.parametrize("page", ["book/intro", *CHAPTERS])
def test_local_assets_and_links_exist(dom, site, server, page):
    url, _, parsed = dom(page)
    missing = []
    for ref in parsed.assets + parsed.imgs + [h for h in parsed.links if not h.startswith("#")]:
        path = local_file(site, server, url, ref)
        if path is not None and not path.is_file():
            missing.append(ref)
    assert not missing, f"{url} refers to files missing from the build: {missing}"


@pytest.mark.parametrize("page", NOT_EXECUTED)
def test_unexecuted_chapter_says_so_and_has_no_outputs(dom, page):
    url, text, parsed = dom(page)
    assert "does not execute this chapter" in text, f"{url} must tell the reader that it is shown without outputs"
    assert not [src for src in parsed.imgs if "_images/" in src], f"{url} is not executed but shows figures"


@pytest.mark.parametrize("page", EXECUTED)
def test_chapter_figures_are_pngs(dom, site, server, page):
    url, _, parsed = dom(page)
    figures = [src for src in parsed.imgs if "_images/" in src]
    assert figures, f"{url} shows no figure (<img> from a notebook output)"
    for src in figures:
        path = local_file(site, server, url, src)
        assert path is not None and path.is_file(), f"{url}: figure {src} is not in the build"
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE, f"{url}: figure {src} is not a PNG"
        width, height = struct.unpack(">II", data[16:24])
        assert width > 0 and height > 0 and len(data) > 1000, f"{url}: figure {src} is empty ({width}x{height}, {len(data)} bytes)"


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_colab_button(dom, page):
    url, _, parsed = dom(page)
    expected = COLAB.format(page=page)
    assert (REPO / f"{page}.ipynb").is_file(), f"the Colab link needs the committed {page}.ipynb"
    colab = [h for h in parsed.links if "colab.research.google.com" in h]
    assert expected in colab, f"{url}: no Colab launch link to {expected} (found {colab})"


@pytest.mark.parametrize("page", ["book/intro", *CHAPTERS])
def test_math_markup(dom, page):
    url, text, parsed = dom(page)
    assert parsed.math, f"{url} has no math markup (class=\"math\")"
    assert "\\[" in text or "\\(" in text, f"{url}: math elements hold no TeX delimiters"
    assert any("mathjax" in s.lower() for s in parsed.scripts), f"{url} does not load MathJax"


def test_screenshot(chromium, server, tmp_path):
    from PIL import Image

    page = CHAPTERS[0] if CHAPTERS else "book/intro"
    shot = tmp_path / "page.png"
    proc = run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars", f"{server}{page}.html")
    assert proc.returncode == 0 and shot.is_file(), f"chromium --screenshot failed:\n{proc.stderr[-2000:]}"
    assert shot.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(shot) as img:
        assert img.size == (1280, 2000), f"screenshot is {img.size}"
        grey = img.convert("L")
        histogram = grey.histogram()
        dark = sum(histogram[:200]) / (img.size[0] * img.size[1])
        distinct = sum(1 for n in histogram if n)
    assert dark > 0.01 and distinct > 16, f"screenshot looks blank ({dark:.1%} non-white pixels, {distinct} grey levels)"

