"""python -m vaelab.lab.records: a finished sweep of the toy chapter, run in a throwaway git repository,
becomes reference/<chapter>/<point>.json with every field; dirty trees and unfinished points are refused."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from vaelab.lab import records, sweep
from vaelab.lab.records import (RecordError, load_records, make_records, record_checksum, record_command, seal_record,
                                verify_record)

TOY = Path(__file__).resolve().parent / "sweep_toy" / "toy_chapter.ipynb"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@example.org", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repository holding book/toy_chapter.ipynb, one commit, runs/ and reference/ ignored."""
    root = tmp_path_factory.mktemp("repo")
    (root / "book").mkdir()
    shutil.copy(TOY, root / "book" / "toy_chapter.ipynb")
    (root / "book" / "notes.md").write_text("notes\n")
    (root / ".gitignore").write_text("runs/\nreference/\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "toy chapter")
    return root


def run_sweep(repo: Path, *args: str) -> int:
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        return sweep.main(["book/toy_chapter.ipynb", *args])
    finally:
        os.chdir(cwd)


def test_records_of_a_clean_sweep_have_every_field(repo, local_ray, monkeypatch, capsys):
    assert run_sweep(repo, "--grid", "seed=0,1", "-p", "steps", "2", "--out", "runs/s", "--gather") == 0
    monkeypatch.chdir(repo)
    assert records.main(["runs/s"]) == 0  # default --to: reference/ of the checkout here
    written = sorted(p.name for p in (repo / "reference" / "toy_chapter").iterdir())
    assert written == ["gather.json", "seed=0.json", "seed=1.json"]

    head = git(repo, "rev-parse", "HEAD")
    rec = json.loads((repo / "reference" / "toy_chapter" / "seed=1.json").read_text())
    assert rec["schema"] == records.SCHEMA
    assert rec["chapter"] == "book/toy_chapter.ipynb" and rec["point"] == "seed=1" and rec["values"] == {"seed": 1}
    assert rec["parameters"] == {"seed": 1, "steps": 2}  # out_dir, machine-specific, is left out
    assert rec["papermill"].startswith("papermill book/toy_chapter.ipynb ") and "-p seed 1 -p steps 2" in rec["papermill"]
    assert rec["sweep_command"].startswith("python -m vaelab.lab.sweep book/toy_chapter.ipynb --grid seed=0,1")
    assert rec["git"]["commit"] == head and rec["git"]["dirty"] == [] and rec["git"]["in_history"]
    git(repo, "merge-base", "--is-ancestor", rec["git"]["commit"], "HEAD")  # raises unless in history
    assert rec["versions"]["python"] == platform.python_version()
    assert all(rec["versions"][k] for k in ("vaelab", "torch", "papermill", "ray"))
    assert rec["device"]["cpus"] == 1 and rec["device"]["threads"] == 1 and rec["device"]["gpu_ids"] == []
    assert rec["machine"]["cores"] == os.cpu_count() and rec["machine"]["cpu_model"]
    started, finished = (dt.datetime.fromisoformat(rec[k]) for k in ("started", "finished"))
    assert started <= finished and rec["wall_s"] > 0 and rec["attempts"] == 1
    assert rec["results"] == json.loads((repo / "runs" / "s" / "seed=1" / "results.json").read_text())
    assert rec["checksum"] == record_checksum(rec) and rec["checksum"].startswith("sha256:")
    gather = json.loads((repo / "reference" / "toy_chapter" / "gather.json").read_text())
    assert gather["point"] == "gather" and set(gather["results"]["points"]) == {"seed=0", "seed=1"}

    # The loader the chapters call.
    loaded = load_records("book/toy_chapter.ipynb", root=repo / "reference")
    assert [r["point"] for r in loaded] == ["gather", "seed=0", "seed=1"]
    assert [r["point"] for r in load_records("toy_chapter", where={"seed": 1}, root=repo / "reference")] == ["seed=1"]
    assert load_records("toy_chapter", where={"steps": 3}, root=repo / "reference") == []
    assert load_records("no_such_chapter", root=repo / "reference") == []


def test_a_point_recorded_under_another_name_is_refused(repo, local_ray, monkeypatch, tmp_path):
    """The same grid values swept with the grid in another order get another point name: a second
    file for them would let a chapter read either, so nothing is written."""
    twin = {"point": "old-name", "values": {"seed": 0}, "results": {}}
    assert records.recorded_elsewhere(tmp_path, {"point": "seed=0", "values": {"seed": 0}}) is None
    (tmp_path / "old-name.json").write_text(json.dumps(twin))
    found = records.recorded_elsewhere(tmp_path, {"point": "seed=0", "values": {"seed": 0}})
    assert found == tmp_path / "old-name.json"
    assert records.recorded_elsewhere(tmp_path, {"point": "seed=1", "values": {"seed": 1}}) is None
    assert records.recorded_elsewhere(tmp_path, {"point": "old-name", "values": {"seed": 0}}) is None  # itself
    pair = {"point": "b=2,a=1", "values": {"b": 2, "a": 1}, "results": {}}
    (tmp_path / "b=2,a=1.json").write_text(json.dumps(pair))
    assert records.recorded_elsewhere(tmp_path, {"point": "a=1,b=2", "values": {"a": 1, "b": 2}}).name == "b=2,a=1.json"

    # Through make_records, on the finished sweep of the first test (run here when this test runs alone):
    # refused, nothing written.
    if not (repo / "runs" / "s" / "seed=0" / sweep.DONE_FILE).is_file():
        assert run_sweep(repo, "--grid", "seed=0,1", "-p", "steps", "2", "--out", "runs/s", "--gather") == 0
    monkeypatch.chdir(repo)
    target = tmp_path / "ref" / "toy_chapter"
    target.mkdir(parents=True)
    (target / "seed0-other-order.json").write_text(json.dumps({**twin, "point": "seed0-other-order"}))
    with pytest.raises(RecordError, match=r"seed=0: already recorded as seed0-other-order\.json"):
        make_records("runs/s", tmp_path / "ref")
    assert sorted(p.name for p in target.iterdir()) == ["seed0-other-order.json"]


def test_a_point_recorded_by_a_former_page_is_refused(repo, local_ray, monkeypatch, tmp_path):
    """A study's point that the page it left recorded before the study existed (records.FORMER_PAGES):
    recording it again in the study's folder would give the study two records of it."""
    monkeypatch.setitem(records.FORMER_PAGES, "toy_chapter", ("toy_lesson",))
    if not (repo / "runs" / "s" / "seed=0" / sweep.DONE_FILE).is_file():
        assert run_sweep(repo, "--grid", "seed=0,1", "-p", "steps", "2", "--out", "runs/s", "--gather") == 0
    monkeypatch.chdir(repo)
    former = tmp_path / "ref" / "toy_lesson"
    former.mkdir(parents=True)
    (former / "seed=0.json").write_text(json.dumps(seal_record({"point": "seed=0", "values": {"seed": 0},
                                                                 "results": {}})))
    with pytest.raises(RecordError, match=r"seed=0: already recorded as .*toy_lesson.seed=0\.json by the page"):
        make_records("runs/s", tmp_path / "ref")
    assert not (tmp_path / "ref" / "toy_chapter").exists() or not list((tmp_path / "ref" / "toy_chapter").iterdir())


def test_record_command_is_the_sweep_then_the_records():
    cmd = record_command("book/00_vae_in_a_few_lines.ipynb", {"seed": range(3), "lr": [1e-3, 3e-4]}, {"epochs": 100})
    assert cmd == ("python -m vaelab.lab.sweep book/00_vae_in_a_few_lines.ipynb --grid seed=0:3 lr=0.001,0.0003 "
                   "-p epochs 100 --out runs/full/00_vae_in_a_few_lines && python -m vaelab.lab.records "
                   "runs/full/00_vae_in_a_few_lines")
    cmd = record_command("04_geco_rewo", {"method": ["geco", "rewo"]}, gather=True, gpus_per_point=0.25)
    assert "book/04_geco_rewo.ipynb --grid method=geco,rewo --out runs/full/04_geco_rewo --gather" in cmd
    assert "--gpus-per-point 0.25" in cmd
    args = sweep._parser().parse_args(cmd.split(" && ")[0].split()[3:])  # the sweep part parses
    assert args.grid == ["method=geco,rewo"] and args.gather


def test_dirty_tree_and_unfinished_points_are_refused_then_flagged(repo, local_ray, tmp_path, capsys, monkeypatch):
    (repo / "book" / "notes.md").write_text("changed, not committed\n")
    try:
        assert run_sweep(repo, "--grid", "fail=False,True", "-p", "steps", "2", "--out", "runs/dirty") == 1
    finally:
        git(repo, "checkout", "--", "book/notes.md")
    monkeypatch.chdir(repo)
    capsys.readouterr()
    assert records.main(["runs/dirty", "--to", str(tmp_path / "ref")]) == 1
    err = capsys.readouterr().err
    assert "fail=True: not finished" in err
    assert "fail=False: ran with uncommitted changes to book/notes.md" in err
    assert not (tmp_path / "ref").exists()  # nothing written
    with pytest.raises(RecordError, match="uncommitted changes"):
        make_records("runs/dirty", tmp_path / "ref", partial=True)
    written = make_records("runs/dirty", tmp_path / "ref", partial=True, allow_dirty=True)
    assert [p.name for p in written] == ["fail=False.json"]
    rec = json.loads(written[0].read_text())
    assert rec["git"]["dirty"] == ["book/notes.md"] and rec["git"]["in_history"]


def test_a_later_sweep_into_the_same_out_keeps_each_points_own_command(repo, local_ray, monkeypatch, capsys,
                                                                       tmp_path):
    """sweep.json belongs to the last sweep into --out; each record names the sweep that ran its point."""
    assert run_sweep(repo, "--grid", "seed=0", "-p", "steps", "2", "--out", "runs/two") == 0
    assert run_sweep(repo, "--grid", "seed=5", "-p", "steps", "2", "--out", "runs/two") == 0
    monkeypatch.chdir(repo)
    assert records.main(["runs/two", "--to", str(tmp_path)]) == 0
    first = json.loads((tmp_path / "toy_chapter" / "seed=0.json").read_text())
    later = json.loads((tmp_path / "toy_chapter" / "seed=5.json").read_text())
    assert "--grid seed=0 " in first["sweep_command"] and "--grid seed=5 " in later["sweep_command"]
    # a point written before points kept their command: sweep.json's only while it is the same sweep's
    point = repo / "runs" / "two" / "seed=0" / "point.json"
    point.write_text(json.dumps({k: v for k, v in json.loads(point.read_text()).items() if k != "command"}))
    assert records.build_record(repo / "runs" / "two" / "seed=0", repo=repo)["sweep_command"] is None
    # ... and in a sweep.json written before sweeps had ids: only where its grid holds the point
    sweep_file = repo / "runs" / "two" / "sweep.json"
    old = {k: v for k, v in json.loads(sweep_file.read_text()).items() if k != "sweep_id"}
    sweep_file.write_text(json.dumps(old))
    assert records.build_record(repo / "runs" / "two" / "seed=0", repo=repo)["sweep_command"] is None
    point = repo / "runs" / "two" / "seed=5" / "point.json"
    point.write_text(json.dumps({k: v for k, v in json.loads(point.read_text()).items() if k != "command"}))
    assert "--grid seed=5 " in records.build_record(repo / "runs" / "two" / "seed=5", repo=repo)["sweep_command"]


# --------------------------------------------------------------------------------------------------
# Records tied to their run (issue 29)


def _record(tmp_path: Path, name: str = "seed=0") -> Path:
    rec = {"schema": 1, "chapter": "book/toy_chapter.ipynb", "point": name, "values": {"seed": 0},
           "parameters": {"seed": 0, "steps": 2}, "results": {"test_elbo": -98.22, "x": [1.0, 2.5]},
           "sweep_command": "python -m vaelab.lab.sweep book/toy_chapter.ipynb --grid seed=0 --out runs/s",
           "git": {"commit": "0" * 40, "dirty": []}, "wall_s": 12.5}
    path = tmp_path / "toy_chapter" / f"{name}.json"
    sweep.write_json_atomic(path, seal_record(rec))
    return path


def test_an_edited_number_in_a_record_is_refused_with_the_file_and_the_fix(tmp_path):
    """Before: changing a recorded test_elbo from -98.22 to -91.5 passed every test and reached the pages."""
    path = _record(tmp_path)
    assert [r["results"]["test_elbo"] for r in load_records("toy_chapter", root=tmp_path)] == [-98.22]
    path.write_text(path.read_text().replace("-98.22", "-91.5"))
    fix = r"remake the record with `python -m vaelab.lab.records <the sweep's --out>` \(it came from: python -m"
    with pytest.raises(RecordError, match=rf"(?s){path}: its contents do not match its checksum.*edited.*{fix}"):
        load_records("toy_chapter", root=tmp_path)
    with pytest.raises(RecordError, match=rf"{path}: its contents do not match"):
        verify_record(json.loads(path.read_text()), path)
    # the layout is not the content: the same values written another way still verify
    path.write_text(json.dumps(json.loads(path.read_text().replace("-91.5", "-98.22"))))
    assert load_records("toy_chapter", root=tmp_path)[0]["results"]["test_elbo"] == -98.22


def test_a_record_without_checksum_or_not_json_is_refused_never_skipped(tmp_path):
    path = _record(tmp_path)
    unsealed = {k: v for k, v in json.loads(path.read_text()).items() if k != "checksum"}
    path.write_text(json.dumps(unsealed))
    with pytest.raises(RecordError, match=rf"{path} has no checksum.*python -m vaelab\.lab\.records"):
        load_records("toy_chapter", root=tmp_path)
    path.write_text('{"results": ')  # cut short
    with pytest.raises(RecordError, match=rf"{path} cannot be read as JSON"):
        load_records("toy_chapter", root=tmp_path)


def _finished_point(run_dir: Path, attempts: list[dict], done: dict) -> None:
    run_dir.mkdir(parents=True)
    sweep.write_json_atomic(run_dir / "point.json", {"chapter": "book/toy_chapter.ipynb", "name": run_dir.name,
                                                     "values": {"seed": 0}, "parameters": {"seed": 0}})
    (run_dir / "attempts.jsonl").write_text("".join(json.dumps(a) + "\n" for a in attempts))
    sweep.write_json_atomic(run_dir / "attempt.json", attempts[-1])
    sweep.write_json_atomic(run_dir / "done.json", done)
    sweep.write_json_atomic(run_dir / "results.json", {"x": 1.0})


def test_provenance_is_the_finishing_attempts_never_a_refused_later_one(repo, tmp_path):
    """Before: a second sweep, refused while the first ran the point, rewrote attempt.json, and the record
    of the point (trained from a dirty tree) said the tree was clean."""
    head = git(repo, "rev-parse", "HEAD")
    finishing = {"sweep_id": "A", "attempt": 1, "git": {"commit": head, "dirty": ["book/notes.md"], "untracked": []},
                 "environment": {"python": "3.11.0", "versions": {"torch": "2.1"}, "cpus": 2}}
    refused = {"sweep_id": "B", "attempt": 2, "git": {"commit": head, "dirty": [], "untracked": []},
               "environment": {"python": "3.12.0", "versions": {"torch": "2.9"}, "cpus": 1}}
    run_dir = tmp_path / "out" / "seed=0"
    _finished_point(run_dir, [finishing, refused], {"sweep_id": "A", "attempts": 1, "finished": "x", "wall_s": 1.0,
                                                   "parameters": {"seed": 0, "out_dir": str(run_dir)}})
    rec = records.build_record(run_dir, repo=repo)
    assert rec["git"]["dirty"] == ["book/notes.md"]
    assert rec["versions"] == {"python": "3.11.0", "torch": "2.1"} and rec["device"]["cpus"] == 2
    with pytest.raises(RecordError, match="uncommitted changes to book/notes.md"):
        make_records(tmp_path / "out", tmp_path / "ref")
    # done.json names an attempt that no file holds: refused, not filled in from another attempt
    other = tmp_path / "out2" / "seed=0"
    _finished_point(other, [refused], {"sweep_id": "A", "attempts": 1, "parameters": {"seed": 0}})
    with pytest.raises(RecordError, match=r"the attempt that finished it \(sweep A, attempt 1\) is in neither"):
        records.build_record(other, repo=repo)


def test_a_study_reads_the_points_its_former_page_recorded(tmp_path, monkeypatch):
    """A study page's points recorded by the page that ran them before the study existed stay in that
    page's folder (their ``chapter`` field names it) and load as the study's (``FORMER_PAGES``)."""
    monkeypatch.setattr(records, "FORMER_PAGES", {"toy_study": ("toy_chapter",)})
    for folder, point, chapter in (("toy_chapter", "run=a", "book/toy_chapter.ipynb"),
                                   ("toy_study", "run=b", "book/toy_study.ipynb")):
        (tmp_path / folder).mkdir()
        rec = {"chapter": chapter, "point": point, "values": {"run": point[4:]},
               "parameters": {"run": point[4:], "steps": 2}, "results": {"x": 1}}
        (tmp_path / folder / f"{point}.json").write_text(json.dumps(seal_record(rec)))
    loaded = load_records("toy_study", where={"steps": 2}, root=tmp_path)
    assert [(r["point"], r["chapter"]) for r in loaded] == [("run=a", "book/toy_chapter.ipynb"),
                                                          ("run=b", "book/toy_study.ipynb")]
    assert [r["point"] for r in load_records("toy_chapter", root=tmp_path)] == ["run=a"]
    # the same point swept again by the study is found in the former page's folder
    again = {"point": "run=a", "values": {"run": "a"}}
    assert records.recorded_elsewhere(tmp_path / "toy_chapter", again, any_name=True).name == "run=a.json"
    assert records.recorded_elsewhere(tmp_path / "toy_chapter", again) is None


def test_an_older_run_does_not_overwrite_the_record_of_a_later_one(repo, tmp_path, monkeypatch):
    """Before: recording an old sweep folder again put its point's older run back over the committed
    record of a rerun (what the rerun added was lost without a word)."""
    monkeypatch.chdir(repo)
    head = git(repo, "rev-parse", "HEAD")
    attempt = {"sweep_id": "A", "attempt": 1, "git": {"commit": head, "dirty": [], "untracked": []},
               "environment": {"python": "3.11.0", "versions": {"torch": "2.1"}, "cpus": 1}}

    def point(folder, finished, x):
        run_dir = tmp_path / folder / "seed=0"
        _finished_point(run_dir, [attempt], {"sweep_id": "A", "attempts": 1, "finished": finished, "wall_s": 1.0,
                                             "parameters": {"seed": 0, "out_dir": str(run_dir)}})
        sweep.write_json_atomic(run_dir / "results.json", {"x": x})
        return tmp_path / folder

    old = point("old", "2026-12-06T14:00:00+00:00", 1.0)
    new = point("new", "2026-12-06T16:00:00+02:00", 2.0)  # 14:00 UTC and a minute later: still the later run
    new_path = tmp_path / "new" / "seed=0" / "done.json"
    sweep.write_json_atomic(new_path, {**json.loads(new_path.read_text()), "finished": "2026-12-06T16:01:00+02:00"})
    ref = tmp_path / "ref"
    [path] = make_records(new, ref)
    assert json.loads(path.read_text())["results"] == {"x": 2.0}
    assert make_records(new, ref) == [path]  # the same run again: written, nothing changes
    with pytest.raises(RecordError, match=r"(?s)--replace-newer.*seed=0: toy_chapter/seed=0\.json holds a run "
                                          r"finished 2026-12-06T16:01:00\+02:00"):
        make_records(old, ref)
    assert json.loads(path.read_text())["results"] == {"x": 2.0}  # untouched
    make_records(old, ref, replace_newer=True)
    assert json.loads(path.read_text())["results"] == {"x": 1.0}
    make_records(new, ref)  # a later run replaces an older record without being asked
    assert json.loads(path.read_text())["results"] == {"x": 2.0}
