"""vaelab.lab.prose.glue: a run's number, formatted once, stored for the chapter's prose (myst-nb)."""
import pytest

from vaelab.lab.prose import command_text, count_text, glue, range_text


def test_glue_formats_and_stores_under_myst_nbs_key(monkeypatch):
    import myst_nb

    stored = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: stored.update(
        {name: (value, display)}))
    assert glue("ch01_runtime_min", 6.4321, ".1f") is None  # no output when it ends a cell
    glue("ch01_active", 17)
    assert stored == {"ch01_runtime_min": ("6.4", False), "ch01_active": ("17", False)}


@pytest.mark.parametrize("name", ["", "ch01 runtime", "a-b", "x:.1f"])
def test_glue_refuses_names_the_prose_cannot_cite(name):
    with pytest.raises(ValueError, match="glue name"):
        glue(name, 1.0)


def test_counts_and_ranges_read_as_prose():
    assert count_text(0, 5) == "none of the five" and count_text(3, 3) == "all three"
    assert count_text(2, 2) == "both" and count_text(2, 6) == "two of the six"
    assert count_text(4, 12) == "four of the 12"
    assert range_text(0.071, 0.069, ".2f") == "0.07"          # not "0.07 to 0.07"
    assert range_text(0.05, 0.07, ".2f") == "0.05 to 0.07"


def test_a_long_command_breaks_only_before_an_option():
    command = "papermill book/x.ipynb out.ipynb " + " ".join(f"-p name{i} {i}" for i in range(12))
    text = command_text(command, width=40)
    lines = text.split(" \\\n    ")
    assert " ".join(lines) == command and len(lines) > 3
    assert all(line.startswith(("papermill", "-p ")) for line in lines)
    assert all(len(line) <= 40 + len("-p name11 11") for line in lines)
