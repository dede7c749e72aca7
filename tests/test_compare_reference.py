"""The comparison table and the committed full-scale records (reference/)."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vaelab.lab.compare import (Metric, comparison_table, no_record_note, paired_difference, provenance,
                            provenance_of_many, record_value, verdict)
from vaelab.lab.records import chapter_name, load_records, verify_record

REPO = Path(__file__).resolve().parents[1]
RECORD = {"results": {"test_elbo": -98.2, "nested": {"x": 3}}, "wall_s": 2460.0, "started": "2026-12-02T05:00:00",
          "git": {"commit": "0123456789abcdef"}, "machine": {"cpu_model": "Xeon", "cores": 2},
          "device": {"threads": 1}}

# The full scale each chapter documents (its parameters cell and README): a record must be one of these.
FULL_SCALE = {
    "00_vae_in_a_few_lines": {"epochs": 100},
    "01_vae_collapse": {"epochs": 100, "train_size": 60_000, "valid_size": 0},  # 01b's, made by 01
    "01b_collapse_study": {"epochs": 100, "train_size": 60_000, "valid_size": 0},
    "03_vampprior": {"epochs": 2000, "warmup_epochs": 100, "train_size": 50_000, "n_pseudo": 500,
                     "ll_images": 10_000, "patience": 50},
    "02b_hebae_study": {"full": True},
    "03b_vampprior_study": {"epochs": 2000, "warmup_epochs": 100, "train_size": 50_000, "n_pseudo": 500,
                            "ll_images": 10_000, "patience": 50},
    "04b_pendulum_study": {"iterations": 50_000, "width": 256, "depth": 4},
}


def test_record_value_and_provenance():
    assert record_value(RECORD, "test_elbo") == -98.2 and record_value(RECORD, "nested", "x") == 3.0
    assert record_value(RECORD, "missing") is None and record_value(None, "test_elbo") is None
    assert provenance(RECORD) == "Xeon (2 cores), 1 thread, 2026-12-02, 41 min, commit 0123456789"
    # a resumed run's record holds its last attempt's wall time, and says so
    resumed = {**RECORD, "attempts": 2}
    assert provenance(resumed).endswith("41 min (the last of 2 attempts), commit 0123456789")
    both = provenance_of_many([RECORD, resumed])
    assert "1.4 h in all (of 1 resumed run, the last attempt)" in both
    assert "resumed" not in provenance_of_many([RECORD, RECORD])


def test_comparison_table_shows_the_records_numbers():
    metrics = [Metric("test ELBO", -97.0, "Table 1", record_value(RECORD, "test_elbo"), -103.8),
               Metric("KL", None, "not in the text", None, 20.0)]
    frame = comparison_table(metrics, RECORD)
    assert frame.columns.tolist() == ["metric", "paper", "full scale", "this build", "difference", "verdict"]
    assert frame["full scale"].tolist() == ["-98.20", "—"]
    assert frame["paper"].tolist() == ["-97.00 (Table 1)", "—"]
    assert frame["this build"].tolist() == ["-103.80", "20.00"]
    assert frame["difference"].tolist() == ["-1.20", "—"]
    assert frame["verdict"].tolist() == ["not reproduced", "not reported"]
    empty = comparison_table(metrics, None)
    # without its record a full-scale value is neither shown nor judged; the build's difference is shown
    assert empty["full scale"].tolist() == ["—", "—"]
    assert empty["difference"].tolist() == ["-6.80 (this build)", "—"]
    assert empty["verdict"].tolist() == ["not run yet", "not reported"]
    assert "python -m vaelab.lab.sweep" in no_record_note("python -m vaelab.lab.sweep x")


def _records():
    for path in sorted((REPO / "reference").glob("*/*.json")):
        yield path, json.loads(path.read_text())


@pytest.mark.parametrize("path,record", list(_records()) or [pytest.param(None, None, id="no-records")])
def test_every_record_is_a_documented_full_scale_run_at_a_commit_of_this_history(path, record):
    if path is None:
        assert not (REPO / "reference").exists() or not list((REPO / "reference").glob("*/*.json"))
        return
    verify_record(record, path)  # its checksum: no number edited since python -m vaelab.lab.records made it
    chapter = path.parent.name
    assert chapter_name(record["chapter"]) == chapter
    documented = FULL_SCALE[chapter]
    params = record["parameters"]
    assert all(params.get(k) == v for k, v in documented.items()), (path, params)
    commit = record["git"]["commit"]
    ok = subprocess.run(["git", "merge-base", "--is-ancestor", commit, "HEAD"], cwd=REPO).returncode == 0
    assert ok, f"{path}: commit {commit} is not in this repository's history"
    assert not record["git"]["dirty"] and record["results"]
    assert load_records(chapter, where=documented), "the chapter's loader finds the record"


def test_verdict_against_the_paper():
    from vaelab.lab.compare import VERDICTS

    close = Metric("LL", -82.38, "Table 1", -82.9, -90.0, tolerance=1.0)
    assert verdict(close) == ("-0.52", "reproduced")
    far = Metric("LL", -82.38, "Table 1", -85.0, None, tolerance=1.0)
    assert verdict(far) == ("-2.62", "not reproduced")
    # this build alone is not judged: its difference is shown and marked
    build_only = Metric("error (rad)", 0.054, "Table 1", None, 0.01, digits=3)
    assert verdict(build_only) == ("-0.044 (this build)", "not run yet")
    # a miss inside the tolerance plus two standard errors still counts as reproduced, not beyond
    assert verdict(Metric("LL", -82.38, "Table 1", -84.0, None, full_se=0.5, tolerance=1.0))[1] == "reproduced"
    assert verdict(Metric("LL", -82.38, "Table 1", -84.0, None, full_se=0.3, tolerance=1.0))[1] == "not reproduced"
    # no tolerance stated: 2 s.e. of the paper's number
    assert verdict(Metric("LL", -82.38, "Table 1", -83.0, None, full_se=0.5))[1] == "reproduced"
    assert verdict(Metric("LL", -82.38, "Table 1", -83.0, None))[1] == "not reproduced"
    assert verdict(Metric("x", None, "", 1.0, 2.0)) == ("—", "not reported")
    assert verdict(Metric("x", 1.0, "Table 2", None, None)) == ("—", "not run yet")
    for m in (close, far, build_only):
        assert verdict(m)[1] in VERDICTS


def test_paired_difference_uses_the_differences_spread():
    rng = np.random.default_rng(0)
    base = rng.normal(-90, 20, size=500)  # a large per-image spread shared by both models
    a, b = base + 0.3 + rng.normal(0, 0.1, 500), base
    mean, se = paired_difference(a, b)
    d = a - b
    assert mean == pytest.approx(d.mean()) and se == pytest.approx(d.std(ddof=1) / np.sqrt(500))
    unpaired = np.hypot(a.std(ddof=1), b.std(ddof=1)) / np.sqrt(500)
    assert se < unpaired / 50  # pairing removes the shared spread
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0, 2.0], [1.0])


def test_several_records_are_summarised_for_the_caption():
    other = {**RECORD, "started": "2026-12-03T01:00:00", "wall_s": 1800.0, "git": {"commit": "fedcba9876543210"}}
    assert provenance_of_many([RECORD, other]) == ("2 runs, Xeon (2 cores), 2026-12-02..2026-12-03, 1.2 h in all, "
                                                   "commits 0123456789, fedcba9876")
    frame = comparison_table([Metric("error", 0.054, "Table 1", 0.07, 0.5, digits=3)], [RECORD, other])
    assert frame["full scale"].tolist() == ["0.070"] and frame["verdict"].tolist() == ["not reproduced"]
    empty = comparison_table([Metric("error", 0.054, "Table 1", 0.07, 0.5)], [])
    assert empty["full scale"].tolist() == ["—"] and empty["verdict"].tolist() == ["not run yet"]


def test_chapter_01_reads_the_study_runs_that_it_made_itself():
    """Chapter 01's full-scale runs are points of its study page (01b); the eight recorded before the
    study existed were made by chapter 01 and keep its name, and the chapter's loader finds them."""
    from vaelab.lab.chapter import spec_of
    from vaelab.lab.chapters.ch01b_collapse_study import RUNS

    spec = spec_of("01_vae_collapse")
    assert spec.study == "01b_collapse_study" and spec.full == spec_of(spec.study).full
    found = load_records(spec.study, where=dict(spec.full))
    if not (REPO / "reference" / "01_vae_collapse").is_dir():
        pytest.skip("no records of chapter 01 in this checkout")
    assert sorted(r["results"]["run"] for r in found) == sorted(RUNS)
    assert {chapter_name(r["chapter"]) for r in found} <= {"01_vae_collapse", "01b_collapse_study"}
