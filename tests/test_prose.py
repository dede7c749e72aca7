"""vaelab.lab.prose.glue: a run's number, formatted once, stored for the chapter's prose (myst-nb)."""
import pytest

from vaelab.lab.prose import glue


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
