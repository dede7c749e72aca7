"""Small committed records of finished sweep points, and the loader chapters use (README, "Sweeps and recorded runs").

    python -m vaelab.lab.records runs/full/00 [--to reference] [--allow-dirty] [--partial]

turns each finished point of a sweep (``python -m vaelab.lab.sweep ... --out runs/full/00``) into
``reference/<chapter>/<point>.json`` (and the ``--gather`` run into ``gather.json``), holding:
the chapter and its papermill parameters, the git commit it ran at, the versions (vaelab,
torch, Python, papermill, Ray), the CPUs/threads/GPUs it was given, the machine (CPU model,
cores), start and finish dates, wall time, and the chapter's ``results.json``. The provenance
(commit, versions, machine) is the attempt's that finished the point (``done.json`` names its
sweep and number), never a later attempt's that was refused.

Each record carries ``checksum``: the SHA-256 of its other contents (``record_checksum``), so a
number edited by hand no longer matches; ``load_records`` (what chapters call) and the record
test refuse such a file, naming it and the fix (remake it with this command).

Nothing is written when a point ran on a tree with uncommitted changes or untracked files, at
a commit that is not in this repository's history, across several commits (resumed after a
change), or has not finished: the error says which point and which files. ``--allow-dirty``
writes them anyway and flags them in the record (``git.dirty``, ``git.in_history``,
``git.commits``); ``--partial`` skips unfinished points. A point already recorded under another
name (the same grid values, the grid written in another order) is refused too, and so is a point
whose committed record holds a run that finished later (``--replace-newer`` writes it anyway).

In a chapter::

    from vaelab.lab.records import load_records, record_command
    records = load_records("00_vae_in_a_few_lines", where={"epochs": 100})
    if not records:
        print("no recorded run yet; make one with:", record_command("00_vae_in_a_few_lines",
              {"seed": range(3)}, {"epochs": 100}))
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from vaelab.lab.sweep import (ATTEMPT_FILE, ATTEMPTS_FILE, DONE_FILE, GATHER_FILES, POINT_FILE, SWEEP_FILE,
                              parse_value, read_attempts, read_json, write_json_atomic)

__all__ = ["RecordError", "SCHEMA", "PACKAGED_RECORDS", "reference_root", "chapter_name", "build_record",
           "make_records", "load_records", "record_checksum", "seal_record", "verify_record", "record_command", "main",
           "FORMER_PAGES", "record_folders"]

SCHEMA = 1
CHECKSUM = "checksum"  # the key of a record's checksum: "sha256:<hex digest>"
# The committed records, shipped as package data (pyproject.toml: [tool.setuptools.package-data]).
PACKAGED_RECORDS = Path(__file__).resolve().parent / "reference"
# A study page's points that were recorded before the study existed, by the page that ran them then. They
# stay in that page's folder, whose name their ``chapter`` field gives (so their provenance stays true),
# and the study's records include them: ``load_records`` reads both folders, ``make_records`` refuses
# to record the same point again in the study's.
FORMER_PAGES = {"01b_collapse_study": ("01_vae_collapse",),  # chapter 01 ran the lambda sweep's points itself
                "03b_vampprior_study": ("03_vampprior",)}  # chapter 03 ran the one-level pair itself


class RecordError(Exception):
    """A sweep that cannot be recorded as it is (unfinished, dirty tree, unknown commit)."""


def _git(cwd: str | os.PathLike, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=60)


def _toplevel(path: str | os.PathLike) -> Path | None:
    try:
        out = _git(path, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 else None


def reference_root(root: str | os.PathLike | None = None) -> Path:
    """Where records are read from, the first of:

    1. ``root``, when given;
    2. ``$VAELAB_REFERENCE``, when set and not empty;
    3. ``reference/`` of the checkout this package was imported from (a clone, or an editable install);
    4. the records installed with the package (``vaelab/lab/reference/``, package data), so a chapter
       run where the package was installed with pip and no checkout is near (Colab) reads the same
       records as the site.

    In a checkout 3 and 4 are one folder: the records live in ``vaelab/lab/reference/`` and the
    top-level ``reference`` is a link to it. The folder is not checked here: :func:`load_records`
    refuses one that does not exist.
    """
    if root is not None:
        return Path(root)
    if os.environ.get("VAELAB_REFERENCE"):
        return Path(os.environ["VAELAB_REFERENCE"])
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "book").is_dir() and (checkout / "reference").is_dir():
        return checkout / "reference"
    return PACKAGED_RECORDS


def chapter_name(chapter: str | os.PathLike) -> str:
    """``book/00_vae_in_a_few_lines.ipynb`` (or ``.py``, or the bare name) -> ``00_vae_in_a_few_lines``."""
    return Path(str(chapter)).stem if str(chapter).endswith((".ipynb", ".py")) else Path(str(chapter)).name


def record_checksum(record: dict) -> str:
    """``"sha256:<hex>"`` of the record's contents (every key but ``checksum`` and the ``path`` that
    ``load_records`` adds), serialised canonically: key-sorted compact JSON, so the digest depends on
    the values alone, not on the file's layout."""
    body = {k: v for k, v in record.items() if k not in (CHECKSUM, "path")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode("utf8")).hexdigest()


def seal_record(record: dict) -> dict:
    """The record with its ``checksum`` (what ``make_records`` writes)."""
    return {**{k: v for k, v in record.items() if k != "path"}, CHECKSUM: record_checksum(record)}


def verify_record(record: Any, path: str | os.PathLike) -> dict:
    """``record`` if it is a record whose ``checksum`` matches its contents, else ``RecordError``
    naming ``path`` and the fix (a record is made by ``python -m vaelab.lab.records``, never edited)."""
    fix = (f"remake the record with `python -m vaelab.lab.records <the sweep's --out>`"
           + (f" (it came from: {record.get('sweep_command')})" if isinstance(record, dict)
              and record.get("sweep_command") else "")
           + f", or restore the committed file with `git checkout -- {path}`")
    if not isinstance(record, dict) or "results" not in record:
        raise RecordError(f"{path} is not a record (a JSON object with results): {fix}")
    stored = record.get(CHECKSUM)
    if stored is None:
        raise RecordError(f"{path} has no checksum, so nothing ties its numbers to the run that made them: {fix}")
    if stored != record_checksum(record):
        raise RecordError(f"{path}: its contents do not match its checksum ({stored[:19]}...): a number in it was "
                          f"edited after the record was made, or the file is damaged: {fix}")
    return record


def record_folders(chapter: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Path]:
    """The folders that hold ``chapter``'s records: its own, then those of ``FORMER_PAGES``."""
    name = chapter_name(chapter)
    return [reference_root(root) / n for n in (name, *FORMER_PAGES.get(name, ()))]


def _papermill_command(chapter: str, parameters: dict) -> str:
    """The papermill command that runs this point alone (``-r`` for strings papermill would re-type)."""
    parts = ["papermill", chapter, f"{chapter_name(chapter)}.out.ipynb"]
    for name, value in parameters.items():
        if isinstance(value, str) and parse_value(value) != value:
            parts += ["-r", name, value]
        elif isinstance(value, (bool, int, float, str)) or value is None:
            parts += ["-p", name, repr(value) if isinstance(value, float) else str(value)]
        else:
            parts += ["-y", json.dumps({name: value})]
    return shlex.join(parts)


def build_record(run_dir: str | os.PathLike, *, gather: bool = False, repo: str | os.PathLike | None = None) -> dict:
    """The record of one finished run directory (a point, or ``--out`` itself for the gather run).

    Raises :class:`RecordError` when it has not finished. ``repo``: the repository whose history
    must hold the run's commit (default: the one around the working directory).
    """
    run_dir = Path(run_dir)
    files = GATHER_FILES if gather else {"done": DONE_FILE, "attempt": ATTEMPT_FILE, "attempts": ATTEMPTS_FILE}
    done = read_json(run_dir / files["done"])
    results = read_json(run_dir / "results.json")
    if done is None:
        raise RecordError(f"{run_dir}: not finished (no {files['done']})")
    if results is None:
        raise RecordError(f"{run_dir}: finished but wrote no readable results.json")
    attempt = finishing_attempt(run_dir, done, files)
    sweep = read_json((run_dir if gather else run_dir.parent) / SWEEP_FILE, {})
    point = {} if gather else read_json(run_dir / POINT_FILE, {})
    chapter = point.get("chapter") or sweep.get("chapter")
    env = attempt.get("environment", {})
    git = dict(attempt.get("git") or {})
    commit = git.get("commit")
    in_history = False
    if commit:
        check = _git(repo or Path.cwd(), "merge-base", "--is-ancestor", commit, "HEAD")
        in_history = check.returncode == 0
    parameters = {k: v for k, v in done.get("parameters", point.get("parameters", {})).items() if k != "out_dir"}
    record = {
        "schema": SCHEMA,
        "chapter": chapter,
        "point": "gather" if gather else point.get("name", run_dir.name),
        "values": {} if gather else point.get("values", {}),
        "parameters": parameters,
        "papermill": _papermill_command(chapter or "?", {**parameters, "out_dir": f"runs/{run_dir.name}"}),
        "sweep_command": _sweep_command(point, sweep, done),
        "git": {"commit": commit, "dirty": git.get("dirty", []), "untracked": git.get("untracked", []),
                "in_history": in_history, "commits": done.get("commits", [commit] if commit else [])},
        "versions": {"python": env.get("python"), **env.get("versions", {})},
        "device": {k: env.get(k) for k in ("cpus", "threads", "gpu_ids", "gpu_names", "cuda_visible_devices")
                   if k in env},
        "machine": env.get("machine", {}),
        "started": done.get("first_started", done.get("started")),
        "finished": done.get("finished"),
        "wall_s": done.get("wall_s"),
        "attempts": done.get("attempts"),
        "results": results,
    }
    if done.get("attempts", 1) > 1:
        record["note"] = (f"resumed: {done['attempts']} attempts; wall_s is the last attempt's, "
                          "started is the first attempt's start")
    return record


def finishing_attempt(run_dir: Path, done: dict, files: dict) -> dict:
    """The attempt that finished the point: the one of ``done.json``'s sweep id and attempt number,
    from ``attempts.jsonl`` (one line per attempt) or ``attempt.json`` (the latest). A later attempt
    (a sweep refused while this one ran) never lends its commit or environment to the record.
    ``done.json`` files written before sweeps had ids name no attempt: ``attempt.json`` is theirs.
    Raises ``RecordError`` when the finishing attempt is in neither file."""
    latest = read_json(run_dir / files["attempt"], {})
    if "sweep_id" not in done:
        return latest
    want = (done.get("sweep_id"), done.get("attempts"))
    candidates = [*read_attempts(run_dir / files["attempts"]), latest]
    for attempt in reversed(candidates):
        if isinstance(attempt, dict) and (attempt.get("sweep_id"), attempt.get("attempt")) == want:
            return attempt
    raise RecordError(f"{run_dir}: the attempt that finished it (sweep {want[0]}, attempt {want[1]}) is in neither "
                      f"{files['attempts']} nor {files['attempt']}, so its commit and environment are unknown: "
                      "rerun the point (delete its done.json and run the sweep again)")


def _problems(record: dict) -> list[str]:
    git = record["git"]
    found = []
    if not git["commit"]:
        found.append("ran outside a git repository (no commit)")
    else:
        if git["dirty"]:
            found.append(f"ran with uncommitted changes to {', '.join(git['dirty'])}")
        if git["untracked"]:
            found.append(f"ran with untracked files {', '.join(git['untracked'])}")
        if not git["in_history"]:
            found.append(f"ran at commit {git['commit'][:12]}, which is not in this repository's history (HEAD)")
        if len(git["commits"]) > 1:
            found.append(f"resumed across commits {', '.join(c[:12] for c in git['commits'])}")
    return found


def make_records(runs_dir: str | os.PathLike, to: str | os.PathLike | None = None, *, allow_dirty: bool = False,
                 partial: bool = False, replace_newer: bool = False, stream=None) -> list[Path]:
    """Write one record per finished point of the sweep in ``runs_dir``; returns the files written.

    Checks every point first and writes nothing when one is refused (see the module doc), also when a
    point's record in the target holds a run that finished later than the sweep's (an older sweep folder
    recorded again would silently undo a rerun); ``replace_newer`` writes it all the same.
    """
    stream = stream or sys.stdout
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise RecordError(f"{runs_dir} is not a directory (the --out of a sweep)")
    repo = _toplevel(Path.cwd()) or Path.cwd()
    point_dirs = sorted(p.parent for p in runs_dir.glob(f"*/{POINT_FILE}"))
    if not point_dirs:
        raise RecordError(f"{runs_dir} holds no run directories (*/{POINT_FILE}): is it the --out of a sweep?")
    records, unfinished, refused = [], [], []
    for d in point_dirs:
        try:
            records.append(build_record(d, repo=repo))
        except RecordError as e:
            unfinished.append(str(e))
    if (runs_dir / GATHER_FILES["done"]).is_file():
        records.append(build_record(runs_dir, gather=True, repo=repo))
    for rec in records:
        problems = _problems(rec)
        if problems:
            refused.append(f"{rec['point']}: {'; '.join(problems)}")
    errors = []
    if unfinished and not partial:
        errors.append("not finished (rerun the sweep, or --partial to record the others):\n  " + "\n  ".join(unfinished))
    if refused and not allow_dirty:
        errors.append("not reproducible from a commit (commit first and rerun, or --allow-dirty to record "
                      "them flagged):\n  " + "\n  ".join(refused))
    if errors:
        raise RecordError("\n".join(errors))
    chapters = {rec["chapter"] for rec in records}
    if len(chapters) != 1:
        raise RecordError(f"{runs_dir} mixes chapters: {sorted(map(str, chapters))}")
    target = (Path(to) if to is not None else (repo / "reference")) / chapter_name(chapters.pop())
    target.mkdir(parents=True, exist_ok=True)
    former = [target.parent / name for name in FORMER_PAGES.get(target.name, ())]
    twins = [f"{rec['point']}: already recorded as {twin.name}" for rec in records
             if (twin := recorded_elsewhere(target, rec)) is not None]
    twins += [f"{rec['point']}: already recorded as {twin} by the page that ran it before the study existed"
              for rec in records for folder in former if (twin := recorded_elsewhere(folder, rec, any_name=True))]
    if twins:
        raise RecordError("the same grid values under another name (the grid was written in another order): "
                          "remove the old record or sweep with the grid in its order:\n  " + "\n  ".join(twins))
    newer = [f"{rec['point']}: {target.name}/{rec['point']}.json holds a run finished {old['finished']} "
             f"(commit {str(old['git']['commit'])[:12]}), this one finished {rec['finished']} "
             f"(commit {str(rec['git']['commit'])[:12]})"
             for rec in records if (old := read_json(target / f"{rec['point']}.json", None))
             and _finished_later(old, rec)]
    if newer and not replace_newer:
        raise RecordError("the committed record is of a later run: move this sweep's older point out of "
                          f"{runs_dir}, or pass --replace-newer to put the older run back:\n  " + "\n  ".join(newer))
    written = []
    for rec in records:
        path = target / f"{rec['point']}.json"
        write_json_atomic(path, seal_record(rec))
        written.append(path)
        print(f"{path}  ({rec['wall_s']} s, commit {str(rec['git']['commit'])[:12]})", file=stream)
    for text in unfinished:
        print(f"skipped {text}", file=stream)
    return written


def _finished_later(a: dict, b: dict) -> bool:
    """Whether record ``a``'s run finished after record ``b``'s (False where either lacks the date)."""
    try:
        return datetime.fromisoformat(a["finished"]) > datetime.fromisoformat(b["finished"])
    except (KeyError, TypeError, ValueError):
        return False


def recorded_elsewhere(target: Path, rec: dict, any_name: bool = False) -> Path | None:
    """The record in ``target`` with ``rec``'s grid values under another file name (the same point,
    swept with its grid in another order: ``a=1,b=2`` and ``b=2,a=1``), or under any name with
    ``any_name`` (a former page's folder), else None. Two files for one point would let a chapter
    read either."""
    if rec["point"] == "gather":
        return None
    for path in sorted(Path(target).glob("*.json")):
        old = read_json(path, {})
        if ((any_name or path.stem != rec["point"]) and isinstance(old, dict) and old.get("point") != "gather"
                and old.get("values") == rec["values"]):
            return path
    return None


def load_records(chapter: str | os.PathLike, where: dict | None = None, root: str | os.PathLike | None = None) -> list[dict]:
    """The records of ``chapter`` (name or path), sorted by point, with those a former page made of its
    points (``FORMER_PAGES``); ``where`` keeps those whose parameters (or grid values) equal the given
    ones. An empty list when there are none.

    Every file is checked first (``verify_record``): one that is not valid JSON, not a record, or
    whose contents do not match its checksum raises ``RecordError`` naming it, never skipped.
    The records root (:func:`reference_root`) must exist: a misspelt ``root`` or
    ``$VAELAB_REFERENCE``, or a package installed without its records, is refused rather than
    read as "nothing recorded"."""
    base = reference_root(root)
    if not base.is_dir():
        if root is not None:
            where_from = "the root passed to load_records"
        elif os.environ.get("VAELAB_REFERENCE"):
            where_from = "$VAELAB_REFERENCE"
        else:
            where_from = "the records that ship with vaelab"
        raise FileNotFoundError(
            f"no records folder at {base} ({where_from}). Point $VAELAB_REFERENCE (or root=) at a folder of "
            "records such as reference/ of a vaelab checkout, or unset it to use the records installed with "
            "the package; if those are missing, reinstall vaelab (its wheel carries vaelab/lab/reference/).")
    paths = [path for folder in record_folders(chapter, root) for path in folder.glob("*.json")]
    records = []
    for path in sorted(paths, key=lambda p: p.name):
        try:
            rec = json.loads(path.read_text(encoding="utf8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RecordError(f"{path} cannot be read as JSON ({err}): restore it with `git checkout -- {path}` "
                              "or remake it with `python -m vaelab.lab.records <the sweep's --out>`") from None
        verify_record(rec, path)
        rec["path"] = str(path)
        params = {**rec.get("parameters", {}), **rec.get("values", {})}
        if all(k in params and params[k] == v and isinstance(params[k], bool) == isinstance(v, bool)
               for k, v in (where or {}).items()):
            records.append(rec)
    return records


def _grid_item(name: str, values: Any) -> str:
    if isinstance(values, range):
        step = f":{values.step}" if values.step != 1 else ""
        return f"{name}={values.start}:{values.stop}{step}"
    if not isinstance(values, (list, tuple)):
        values = [values]
    return f"{name}=" + ",".join(repr(v) if isinstance(v, float) else str(v) for v in values)


def _sweep_command(point: dict, sweep: dict, done: dict) -> str | None:
    """The command of the sweep that ran this point: the point's own (``point.json``), else
    ``sweep.json``'s when that file is still a sweep of this point (a later sweep into the same
    ``--out`` rewrites it): the same sweep id, or, in files written before sweeps had ids, a grid
    that holds this point. Else None."""
    command = point.get("command")
    if command is None and sweep.get("command"):
        if "sweep_id" in sweep:
            same = sweep["sweep_id"] == done.get("sweep_id")
        else:
            same = point.get("name") in {p.get("name") for p in sweep.get("points", [])}
        command = sweep["command"] if same else None
    return shlex.join(command) if command else None


def record_command(chapter: str | os.PathLike, grid: dict, parameters: dict | None = None, *, out: str | None = None,
                   gather: bool = False, gpus_per_point: float | None = None, address: str | None = None) -> str:
    """The shell command that makes the records of ``chapter`` when none exist: the sweep, then the records.

    ``grid``: name -> values (a list, or a ``range`` for integers); ``parameters``: the fixed ones.
    """
    name = chapter_name(chapter)
    notebook = str(chapter) if str(chapter).endswith(".ipynb") else f"book/{name}.ipynb"
    out = out or f"runs/full/{name}"
    if not grid:
        raise ValueError("record_command needs a grid of at least one parameter")
    parts = ["python", "-m", "vaelab.lab.sweep", notebook, "--grid", *(_grid_item(k, v) for k, v in grid.items())]
    for k, v in (parameters or {}).items():
        parts += ["-p", k, repr(v) if isinstance(v, float) else str(v)]
    parts += ["--out", out]
    if gather:
        parts.append("--gather")
    if gpus_per_point:
        parts += ["--gpus-per-point", str(gpus_per_point)]
    if address:
        parts += ["--address", address]
    return f"{shlex.join(parts)} && python -m vaelab.lab.records {shlex.quote(out)}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaelab.lab.records",
                                description="Write reference/<chapter>/<point>.json for each finished point of a sweep.")
    p.add_argument("runs_dir", help="the --out of a finished `python -m vaelab.lab.sweep`")
    p.add_argument("--to", default=None, help="records root (default: reference/ of the git checkout here)")
    p.add_argument("--allow-dirty", action="store_true",
                   help="record points that ran with uncommitted changes or at an unknown commit, flagged")
    p.add_argument("--partial", action="store_true", help="record the finished points, skip the others")
    p.add_argument("--replace-newer", action="store_true",
                   help="write a point even where its record holds a run that finished later")
    args = p.parse_args(argv)
    try:
        make_records(args.runs_dir, args.to, allow_dirty=args.allow_dirty, partial=args.partial,
                     replace_newer=args.replace_newer)
    except RecordError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from vaelab.lab.records import main as _main

    sys.exit(_main())
