"""One smoke-scale build of the book per pytest run, shared by test_book.py and test_site.py."""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 3600  # every chapter at smoke scale, 2 CPU cores
RAY_MISSING = ("Ray is not installed: these tests run a sweep or connect to Ray; install the sweep extra "
               "(pip install \"vaelab[sweep]\"), as make test does")


@dataclasses.dataclass
class BookBuild:
    returncode: int
    output: str = dataclasses.field(repr=False)  # stdout and stderr of jupyter-book
    html: Path  # <path-output>/_build/html
    seconds: float
    log: Path  # the output, saved

    def summary(self, tail: int = 40) -> str:
        """The warnings and errors of the build, then its last lines (ANSI colours stripped)."""
        lines = re.sub(r"\x1b\[[0-9;]*m", "", self.output).splitlines()
        flagged = [ln for ln in lines if re.search(r"WARNING|ERROR|Error\b|Exception|error occurred", ln)]
        return "\n".join(["warnings/errors:", *flagged[:60], f"... last {tail} lines:", *lines[-tail:],
                          f"(full log: {self.log})"])


@pytest.fixture(scope="session")
def book_build(tmp_path_factory) -> BookBuild:
    """`jupyter-book build` of the repository at smoke scale, every notebook executed afresh.

    The repository's _config.yml is copied with `execute_notebooks: force` (a stale entry in
    _build/.jupyter_cache can never stand in for a run) and `run_in_temp: true`; the output
    goes to a temp dir. MathJax is installed first (tools/ensure_mathjax.sh). Returns the
    result whether or not the build succeeded.
    """
    out = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf8"))
    config.setdefault("execute", {})["execute_notebooks"] = "force"
    # Each notebook runs in a fresh temp dir, so its out_dir (checkpoints, figures) neither
    # lands in book/ nor resumes from an earlier run's checkpoint.
    config["execute"]["run_in_temp"] = True
    # jupyter-book resolves local extensions' folders against the config file's folder:
    # make them absolute, since the copy lives in the temp dir.
    local = config.get("sphinx", {}).get("local_extensions") or {}
    for name, folder in local.items():
        local[name] = str((REPO / folder).resolve())
    config_path = out / "_config.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf8")

    # The book serves its own MathJax (_config.yml: html_static_path, mathjax_path).
    mathjax = subprocess.run(["bash", str(REPO / "tools" / "ensure_mathjax.sh")], capture_output=True, text=True)
    if mathjax.returncode != 0:
        pytest.fail(f"tools/ensure_mathjax.sh failed (the book needs its MathJax copy):\n{mathjax.stderr[-2000:]}",
                    pytrace=False)

    bindir = Path(sys.executable).parent
    env = dict(os.environ, VAELAB_SMOKE="1", VAELAB_PROGRESS="0", PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    jupyter_book = bindir / "jupyter-book"
    if not jupyter_book.is_file():
        jupyter_book = shutil.which("jupyter-book") or pytest.fail("jupyter-book not found: run `make venv`")
    cmd = [str(jupyter_book), "build", str(REPO), "--path-output", str(out),
           "--config", str(config_path), "--warningiserror", "--keep-going"]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=BUILD_TIMEOUT_S)
        returncode, output = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as err:
        partial = err.output or ""
        if isinstance(partial, bytes):
            partial = partial.decode("utf8", "replace")
        returncode, output = -1, f"{partial}\n[timed out after {BUILD_TIMEOUT_S} s]"
    seconds = time.perf_counter() - start
    log = out / "build.log"
    log.write_text(output, encoding="utf8")
    print(f"\nsmoke-scale book build: {seconds:.0f} s, exit code {returncode}, log {log}")
    return BookBuild(returncode, output, out / "_build" / "html", seconds, log)


@pytest.fixture(scope="session")
def ray_module():
    """The ray module; the test is skipped, naming the fix, where Ray is not installed."""
    try:
        import ray
    except ImportError:
        pytest.skip(RAY_MISSING)
    return ray


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs for the sweep tests (Ray is part of the set-up: `make`).

    Ray is the ``sweep`` extra, not the ``test`` one: where it is not installed (``pip install
    "vaelab[test]"``) the tests that run a sweep are skipped, saying so."""
    try:
        import ray
    except ImportError:
        pytest.skip(RAY_MISSING)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
