"""The README is an entry point whose every command works: each one is checked here against the code."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from vaelab.lab.chapter import spec_of

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def commands():
    out = []
    for block in blocks("bash"):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(shlex.split(line))
    return out


def test_short_and_pointing_to_the_book():
    assert len(README.splitlines()) <= 200
    for page in ("book/operations.md", "book/measurements.md"):
        assert page in README and (REPO / page).is_file()


def test_every_chapter_has_one_line_with_a_working_link():
    links = re.findall(r"\]\((book/[\w.]+)\)", README)
    chapters = {p.stem for p in (REPO / "book").glob("*.py")}
    lessons = {c for c in chapters if not re.match(r"\d\db_", c)}
    assert {Path(link).stem for link in links} >= lessons
    for link in links:
        assert (REPO / link).is_file(), link


def test_make_targets_exist():
    makefile = (REPO / "Makefile").read_text()
    for cmd in commands():
        if cmd[0] == "make":
            assert re.search(rf"^{cmd[1]}:", makefile, flags=re.M), cmd


def _params_of(notebook: str) -> set[str]:
    return set(spec_of(Path(notebook).stem).params)


def test_papermill_commands_name_real_parameters():
    found = [c for c in commands() if c[0] == "papermill"]
    assert found
    for cmd in found:
        assert (REPO / cmd[1]).is_file()
        names = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-p"]
        assert set(names) <= _params_of(cmd[1]), (cmd, names)


def test_sweep_and_record_commands_parse():
    sweep = [c for c in commands() if c[:3] == ["python", "-m", "vaelab.lab.sweep"]]
    assert sweep
    for cmd in sweep:
        nb = cmd[3]
        assert (REPO / nb).is_file()
        grid = cmd[cmd.index("--grid") + 1:]
        grid = grid[: next((i for i, a in enumerate(grid) if a.startswith("-")), len(grid))]
        params = _params_of(nb)
        for item in grid:
            name, values = item.split("=", 1)
            assert name in params
            spec = spec_of(Path(nb).stem).params[name]
            for v in values.split(","):
                spec.check(name, v)
        fixed = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-p"]
        assert set(fixed) <= params
    for cmd in (c for c in commands() if c[:2] == ["python", "-m"]):
        out = subprocess.run([sys.executable, "-m", cmd[2], "--help"], capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 0, (cmd, out.stderr[-500:])


def test_pip_install_names_this_package():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for cmd in commands():
        if cmd[:2] == ["pip", "install"]:
            assert cmd[2].startswith(project["name"])


@pytest.mark.slow
def test_the_python_example_runs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (code,) = blocks("python")
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    history = ns["history"]
    assert len(history.epochs["loss"]) == 2 and history.epochs["loss"][-1] < history.epochs["loss"][0]
