"""vaelab installed with pip, away from any checkout (as in Colab), carries the committed records: a
chapter's loader there returns exactly what it returns in the checkout."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from vaelab.lab.records import PACKAGED_RECORDS, load_records, reference_root

REPO = Path(__file__).resolve().parents[1]


def _tree_files() -> list[str]:
    """The files a clone would hold, plus this worktree's not-yet-committed ones (what `pip install git+...`
    would build, with today's edits)."""
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         check=True, capture_output=True, text=True).stdout
    return [f for f in out.split("\0") if f and os.path.lexists(REPO / f)]


def _copy_tree(dest: Path) -> None:
    for rel in _tree_files():
        src, dst = REPO / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)


def _strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "path"} for r in records]


def test_the_checkout_reads_the_records_the_package_ships():
    """One copy: the top-level reference/ is the package's folder, so a checkout and an install agree."""
    assert (REPO / "reference").resolve() == PACKAGED_RECORDS
    assert (REPO / "reference").is_symlink(), "reference/ must stay a link to vaelab/lab/reference/ (one copy)"
    assert sorted(PACKAGED_RECORDS.glob("*/*.json")), "no records in vaelab/lab/reference/"
    env = {k: v for k, v in os.environ.items() if k != "VAELAB_REFERENCE"}
    code = "from vaelab.lab.records import reference_root; print(reference_root().resolve())"
    out = subprocess.run([sys.executable, "-c", code], cwd="/", env={**env, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == PACKAGED_RECORDS


def test_records_root_precedence_and_a_missing_root_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("VAELAB_REFERENCE", raising=False)
    assert reference_root(tmp_path) == tmp_path
    monkeypatch.setenv("VAELAB_REFERENCE", str(tmp_path / "env"))
    assert reference_root() == tmp_path / "env"
    assert reference_root(tmp_path) == tmp_path  # an explicit root wins over the variable
    with pytest.raises(FileNotFoundError, match=r"no records folder at .*/env \(\$VAELAB_REFERENCE\)"):
        load_records("00_vae_in_a_few_lines")
    monkeypatch.setenv("VAELAB_REFERENCE", "")
    assert reference_root().resolve() == PACKAGED_RECORDS
    with pytest.raises(FileNotFoundError, match="the root passed to load_records"):
        load_records("00_vae_in_a_few_lines", root=tmp_path / "missing")
    assert load_records("no_such_chapter") == []  # a chapter without records: nothing, silently fine


@pytest.mark.slow
def test_a_pip_installed_package_outside_the_checkout_finds_the_same_records(tmp_path):
    src, env_dir, elsewhere = tmp_path / "src", tmp_path / "env", tmp_path / "elsewhere"
    _copy_tree(src)
    elsewhere.mkdir()
    # A fresh environment; this one's site-packages (torch, numpy, setuptools) are visible through a
    # path line (whose folder's own .pth files, e.g. an editable vaelab, are not run).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(site, "zz_parent_env.pth").write_text("".join(f"{p}\n" for p in ours))
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              "--no-build-isolation", "--no-index", str(src)], capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr

    chapters = sorted(p.name for p in PACKAGED_RECORDS.iterdir() if p.is_dir())
    code = ("import json, vaelab\n"
            "from vaelab.lab.records import load_records, reference_root\n"
            f"chapters = {chapters!r}\n"
            "print(json.dumps({'file': vaelab.__file__, 'root': str(reference_root()),\n"
            "    'records': {c: load_records(c) for c in chapters},\n"
            "    'ch00': len(load_records('00_vae_in_a_few_lines', where={'epochs': 100}))}))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VAELAB_REFERENCE")}
    run = subprocess.run([str(python), "-I", "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert Path(got["file"]).is_relative_to(env_dir), f"imported {got['file']}, not the installed copy"
    assert Path(got["root"]).is_relative_to(env_dir) and Path(got["root"]).name == "reference"
    assert got["ch00"] == 1, "chapter 00 does not see its recorded 100-epoch run"
    for chapter in chapters:
        here = _strip(load_records(chapter, root=REPO / "reference"))
        assert here, chapter
        assert _strip(got["records"][chapter]) == here, f"{chapter}: the installed records differ"


@pytest.mark.slow
def test_without_ray_the_sweep_tests_skip_and_say_how_to_install_it():
    """`pip install "vaelab[test]"` brings no Ray (it is the sweep extra): the tests that run a sweep skip
    with the fix, and none errors or fails on the missing sweep (as one record test did)."""
    code = "import sys; sys.modules['ray'] = None; import pytest; sys.exit(pytest.main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", code, "tests/test_sweep.py", "tests/test_records.py", "-q", "-rs",
                          "-p", "no:cacheprovider"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    tail = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    skipped = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skipped and all("Ray is not installed" in line and 'pip install "vaelab[sweep]"' in line
                           for line in skipped), tail
    assert int(re.search(r"(\d+) skipped", run.stdout).group(1)) >= 13, tail  # every test that needs Ray
    summary = [line for line in run.stdout.splitlines() if re.match(r"\d+ (passed|skipped|failed)", line)][-1]
    assert not re.search(r"\d+ (failed|errors?)\b", summary), tail
