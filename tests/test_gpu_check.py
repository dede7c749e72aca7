"""The prepared GPU check executes every page of the book (its chapters section); checked here for its list
and its refusal of unknown chapters (the whole script runs at toy size with --quick --device cpu)."""
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def test_every_page_with_parameters_is_executed():
    pages = {p.stem for p in (REPO / "book").glob("*.ipynb")}
    assert set(gpu_check.book_chapters()) == pages - {"results", "records"}


def test_unknown_chapters_are_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gpu_check.main(["--quick", "--device", "cpu", "--out", str(tmp_path / "r.json"), "--chapters", "99_nope"])
    assert "99_nope" in capsys.readouterr().err and not (tmp_path / "r.json").exists()
