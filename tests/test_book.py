"""The book's chapters: .py/.ipynb pairing, notebook conventions, the toc, and a smoke-scale build.

A chapter is a percent-format jupytext source book/NAME.py with its committed, output-free
twin book/NAME.ipynb (Colab, papermill, nbval). Fix a drift with `jupytext --sync book/NAME.py`.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
CHAPTERS = sorted(p.stem for p in BOOK.glob("*.py"))
NOTEBOOKS = sorted(p.stem for p in BOOK.glob("*.ipynb"))


def read_ipynb(name: str) -> nbformat.NotebookNode:
    return nbformat.read(BOOK / f"{name}.ipynb", as_version=4)


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def toc_files() -> list[str]:
    """Every `file:` of _toc.yml (chapters, parts, sections), without extension, in order."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf8"))
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(Path(node["file"]).with_suffix("")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return found


# ---------------------------------------------------------------- pairing
@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_has_paired_ipynb(name):
    assert (BOOK / f"{name}.ipynb").is_file(), f"book/{name}.py has no book/{name}.ipynb: run `jupytext --sync book/{name}.py`"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_ipynb_has_py_source(name):
    assert (BOOK / f"{name}.py").is_file(), f"book/{name}.ipynb has no percent-format source book/{name}.py"


@pytest.mark.parametrize("name", CHAPTERS)
def test_py_and_ipynb_in_sync(name):
    if not (BOOK / f"{name}.ipynb").is_file():
        pytest.fail(f"book/{name}.ipynb is missing")
    def cells(nb):
        return [(c.cell_type, c.metadata.get("tags", []), c.source) for c in nb.cells]

    from_py, from_ipynb = cells(jupytext.read(BOOK / f"{name}.py")), cells(read_ipynb(name))
    if from_py == from_ipynb:
        return
    hint = f"book/{name}.py and book/{name}.ipynb differ: run `jupytext --sync book/{name}.py`"
    if len(from_py) != len(from_ipynb):
        pytest.fail(f"{hint} ({len(from_py)} vs {len(from_ipynb)} cells)", pytrace=False)
    i = next(i for i, (a, b) in enumerate(zip(from_py, from_ipynb)) if a != b)
    pytest.fail(f"{hint}; first difference in cell {i}:\n.py:    {from_py[i]!r:.400}\n.ipynb: {from_ipynb[i]!r:.400}",
                pytrace=False)


# ---------------------------------------------------------------- notebook conventions
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_ipynb_is_output_free(name):
    for i, cell in enumerate(read_ipynb(name).cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"book/{name}.ipynb cell {i} has outputs: commit it output-free (jupytext --sync from the .py)"
            assert cell.execution_count is None, f"book/{name}.ipynb cell {i} has an execution count"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_ipynb_has_kernelspec(name):
    spec = read_ipynb(name).metadata.get("kernelspec", {})
    assert spec.get("name"), f"book/{name}.ipynb has no kernelspec (papermill needs one): add it to the .py header"
    assert spec.get("language", "python") == "python"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_vaelab_is_installed_in_colab_before_its_first_import(name):
    """A chapter's set-up cell (after its parameters cell, which imports nothing) installs vaelab in
    Colab and then calls setup: two plumbing cells in all, with the finish call. A summary page has no
    parameters: its first code cell installs vaelab."""
    cells = code_cells(read_ipynb(name))
    assert cells, f"book/{name}.ipynb has no code cell"
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    first = cells[tagged[0] + 1 if tagged else 0].source
    where = "the cell after the parameters cell" if tagged else "the first code cell"
    assert "google.colab" in first, f"book/{name}.ipynb: {where} must check for Colab (`google.colab`)"
    assert "vaelab" in first and "install" in first, f"book/{name}.ipynb: {where} must install vaelab in Colab"
    assert first.index("install") < first.index("import vaelab") if "import vaelab" in first else True
    if tagged:
        imports = [n for n in ast.walk(ast.parse(cells[tagged[0]].source)) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert not imports, f"book/{name}.ipynb: the parameters cell imports nothing (Colab installs vaelab after it)"
        assert all("vaelab" not in c.source for c in cells[:tagged[0]]), (
            f"book/{name}.ipynb: a cell before the parameters cell uses vaelab before Colab installs it")


SUMMARY_PAGES = {"results", "records"}  # read records (and paste glued numbers): no parameters, no training


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n not in SUMMARY_PAGES])
def test_parameters_cell_then_setup(name):
    cells = code_cells(read_ipynb(name))
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"book/{name}.ipynb needs exactly one code cell tagged `parameters` (found {len(tagged)})"
    i = tagged[0]
    assert re.search(r"^\s*out_dir\s*=", cells[i].source, re.M), f"book/{name}.ipynb: the parameters cell must set out_dir"
    assert i + 1 < len(cells), f"book/{name}.ipynb: nothing follows the parameters cell"
    after = cells[i + 1].source
    assert "setup(globals()" in after or "is_smoke(" in after, (
        f"book/{name}.ipynb: the code cell after `parameters` must check the parameters and shrink the run "
        "when VAELAB_SMOKE=1 (vaelab.lab.chapter.setup)")


# ---------------------------------------------------------------- toc and config
def test_toc_lists_every_chapter():
    listed = toc_files()
    assert len(listed) == len(set(listed)), f"_toc.yml lists a file twice: {listed}"
    chapters = {f"book/{name}" for name in CHAPTERS}
    assert not chapters - set(listed), f"chapters missing from _toc.yml: {sorted(chapters - set(listed))}"
    for entry in listed:
        if entry.startswith("book/") and (REPO / f"{entry}.py").is_file():
            continue
        assert (REPO / f"{entry}.md").is_file(), f"_toc.yml lists {entry}, which is neither a chapter nor a .md page"
    root = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf8"))["root"]
    assert (REPO / f"{Path(root).with_suffix('')}.md").is_file(), f"_toc.yml root {root} not found"


def test_config_fails_on_errors_and_excludes_sources():
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf8"))
    execute = config["execute"]
    assert config["only_build_toc_files"] is True
    assert execute["allow_errors"] is False and execute["raise_on_error"] is True
    assert execute["stderr_output"] in ("show", "remove"), "warn-type stderr settings fail the -W build on tqdm output"
    assert "book/*.py" in config["exclude_patterns"]
    assert config["sphinx"]["config"]["nb_execution_raise_on_error"] is True


# ---------------------------------------------------------------- the build
@pytest.mark.slow
def test_smoke_book_build(book_build):
    if book_build.returncode != 0:
        pytest.fail(f"`jupyter-book build . --warningiserror --keep-going` at smoke scale failed "
                    f"(exit {book_build.returncode}, {book_build.seconds:.0f} s)\n{book_build.summary()}",
                    pytrace=False)
    assert (book_build.html / "index.html").is_file()
    assert (book_build.html / "book" / "intro.html").is_file()
    for entry in toc_files():
        assert (book_build.html / f"{entry}.html").is_file(), f"{entry}.html was not built"
    assert (book_build.html / "book" / "00_vae_in_a_few_lines.html").is_file()
