"""python -m vaelab.lab.sweep on a toy chapter (tests/sweep_toy/toy_chapter.ipynb): grid parsing, bad input
refused before any job starts, a smoke sweep on a local Ray, a failing point, kill and resume."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vaelab.lab import sweep
from vaelab.lab.sweep import SweepError, expand_grid, parse_grid_item, parse_value, point_name

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "tests" / "sweep_toy" / "toy_chapter.ipynb"


def toy_x(seed: int, steps: int) -> float:
    """What the toy chapter computes (its checkpointed 'training')."""
    x = float(seed)
    for step in range(1, steps + 1):
        x = 0.5 * x + random.Random(1000 * seed + step).random()
    return x


@pytest.fixture
def no_ray(monkeypatch):
    """Fails the test if the sweep tries to start Ray (i.e. a job)."""
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(sweep, "_start_ray", refuse)


# --------------------------------------------------------------------------------------------------
# Parsing


def test_values_are_parsed_as_papermill_cli_does():
    from papermill.cli import _resolve_type

    for text in ["0", "-3", "1e-3", "3e-4", "0.5", "True", "False", "None", "true", "abc", "1,2", "", "nan", "1_000"]:
        assert parse_value(text) == _resolve_type(text) or (text == "nan" and parse_value(text) != parse_value(text))
        assert type(parse_value(text)) is type(_resolve_type(text)), text


def test_grid_items_lists_ranges_and_point_names():
    assert parse_grid_item("seed=0:3") == ("seed", [0, 1, 2])
    assert parse_grid_item("seed=0:6:2") == ("seed", [0, 2, 4])
    assert parse_grid_item("lr=1e-3,3e-4") == ("lr", [0.001, 0.0003])
    assert parse_grid_item("method=vae,wae") == ("method", ["vae", "wae"])
    assert parse_grid_item("warm=True,False") == ("warm", [True, False])
    points = expand_grid({"seed": [0, 1], "lr": [0.001, 0.0003]})
    assert points == [{"seed": 0, "lr": 0.001}, {"seed": 0, "lr": 0.0003}, {"seed": 1, "lr": 0.001},
                      {"seed": 1, "lr": 0.0003}]
    assert point_name(points[1]) == "seed=0,lr=0.0003"
    assert point_name({"lam": 1e-5, "path": "a/b"}) == "lam=1e-05,path=a_b"


@pytest.mark.parametrize("item, message", [
    ("seed0:3", "malformed"), ("seed=", "empty value"), ("seed=1,,2", "empty value"), ("=1,2", "malformed"),
    ("seed=3:1", "empty range"), ("seed=1:2:0", "step"), ("seed=1,1", "repeats"), ("seed=1:x", None)])
def test_malformed_grid_items_are_refused(item, message):
    if message is None:  # not a range: a list with one string value
        assert parse_grid_item(item) == ("seed", ["1:x"])
        return
    with pytest.raises(SweepError, match=message):
        parse_grid_item(item)


# --------------------------------------------------------------------------------------------------
# Bad input: a clear error, nothing started, nothing written


@pytest.mark.parametrize("args, message", [
    (["--grid", "sed=0:2"], "unknown parameter sed in --grid: toy_chapter.ipynb has seed, steps"),
    (["--grid", "seed=0:2", "-p", "epochs", "3"], "unknown parameter epochs in -p"),
    (["--grid", "seed=0:2", "-p", "seed", "3"], "seed given both in --grid and -p"),
    (["--grid", "seed=0:2", "-p", "out_dir", "x"], "out_dir cannot be set with -p"),
    ([], "the grid is empty"),
    (["--grid", "seed=2:2"], "empty range"),
    (["--grid", "seed:0:2"], "malformed"),
])
def test_bad_input_is_refused_before_any_job(tmp_path, capsys, no_ray, args, message):
    out = tmp_path / "out"
    assert sweep.main([str(TOY), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not list(out.glob("*/point.json")) if out.exists() else True


def test_missing_notebook_and_unwritable_out_are_refused(tmp_path, capsys, no_ray):
    assert sweep.main([str(tmp_path / "nope.ipynb"), "--grid", "seed=0:2", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    regular_file = tmp_path / "file"
    regular_file.write_text("not a directory")
    assert sweep.main([str(TOY), "--grid", "seed=0:2", "--out", str(regular_file / "out")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "cannot be created" in err
    assert sweep.main([str(TOY), "--grid", "seed=0:2", "--out", str(regular_file)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


def test_write_json_atomic_leaves_no_temp_file(tmp_path):
    sweep.write_json_atomic(tmp_path / "a.json", {"x": 1})
    sweep.write_json_atomic(tmp_path / "a.json", {"x": 2})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


# --------------------------------------------------------------------------------------------------
# Sweeps on a local Ray (num_cpus=2)


def test_smoke_sweep_two_points_gather_resume_and_refusal(tmp_path, capsys, monkeypatch, local_ray):
    out = tmp_path / "sweep"
    args = [str(TOY), "--grid", "seed=0,1", "-p", "steps", "3", "-p", "label", "smoke", "--out", str(out),
            "--gather", "--progress-every", "1"]
    assert sweep.main(args) == 0
    text = capsys.readouterr().out
    for seed in (0, 1):
        run = out / f"seed={seed}"
        results = json.loads((run / "results.json").read_text())
        assert results["x"] == pytest.approx(toy_x(seed, 3)) and results["label"] == "smoke"
        assert results["omp_threads"] == "1"  # one CPU per point -> one thread
        point = json.loads((run / "point.json").read_text())
        assert point["parameters"] == {"seed": seed, "steps": 3, "label": "smoke", "out_dir": str(run)}
        assert point["chapter"] == "tests/sweep_toy/toy_chapter.ipynb"
        done = json.loads((run / "done.json").read_text())
        assert done["wall_s"] > 0 and done["finished"] and done["attempts"] == 1
        assert (run / "toy_chapter.ipynb").is_file() and "step 3/3" in (run / "log.txt").read_text()
        assert status_of(text, f"seed={seed}") == "done"
    gathered = json.loads((out / "results.json").read_text())  # the gather run: out_dir = --out
    assert gathered["points"] == {"seed=0": pytest.approx(toy_x(0, 3)), "seed=1": pytest.approx(toy_x(1, 3))}
    assert (out / "gather_done.json").is_file() and "3 done, 0 skipped, 0 failed" in text

    # The same command again: nothing runs, Ray is not even needed.
    monkeypatch.setattr(sweep, "_start_ray", lambda *a, **k: pytest.fail("Ray was started"))
    assert sweep.main(args) == 0
    text = capsys.readouterr().out
    assert [status_of(text, n) for n in ("seed=0", "seed=1", "(gather)")] == ["skipped"] * 3

    # Other settings in the same --out: refused before any job, naming the differing parameter.
    assert sweep.main([*args[:-2], "-p", "sleep", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "seed=0: sleep (stored: not set, now 0.1)" in err and "seed=1:" in err
    assert sweep.main([a if a != "smoke" else "other" for a in args]) == 2
    assert "label (stored 'smoke', now 'other')" in capsys.readouterr().err


def test_a_failing_point_is_reported_and_the_others_finish(tmp_path, capsys, local_ray):
    out = tmp_path / "sweep"
    code = sweep.main([str(TOY), "--grid", "fail=True,False", "seed=3", "--out", str(out), "--gather"])
    text = capsys.readouterr().out
    assert code == 1
    failed = out / "fail=True,seed=3"
    assert not (failed / "done.json").exists()
    assert "RuntimeError: toy failure requested" in (failed / "log.txt").read_text()
    assert status_of(text, "fail=True,seed=3") == "failed"
    row = next(line for line in text.splitlines() if re.match(r"fail=True,seed=3\s+failed", line))
    assert str(failed / "log.txt") in row and "RuntimeError" in row
    assert json.loads((out / "fail=False,seed=3" / "results.json").read_text())["x"] == pytest.approx(toy_x(3, 4))
    assert re.search(r"^\(gather\)\s+skipped\s+-\s+1 points failed$", text, re.M)
    assert "1 done, 1 skipped, 1 failed" in text


def status_of(text: str, name: str) -> str | None:
    """The status column of ``name`` in the sweep's closing table."""
    rows = re.findall(rf"^{re.escape(name)}\s+(done|failed|skipped)\b", text, re.M)
    return rows[-1] if rows else None


def test_more_gpus_per_point_than_the_local_ray_has_is_refused(tmp_path, capsys, local_ray):
    assert sweep.main([str(TOY), "--grid", "seed=0", "--out", str(tmp_path), "--gpus-per-point", "0.5"]) == 2
    assert "error: --gpus-per-point 0.5, but the cluster has 0 GPUs" in capsys.readouterr().out
    assert not (tmp_path / "seed=0" / "attempt.json").exists()


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_uninterrupted_results(tmp_path, capsys, local_ray):
    """The sweep (its own Ray, one point at a time) is SIGKILLed with point 0 done and point 1
    half-way; the same command finishes it: point 0 skipped, point 1 resumed from its checkpoint.

    (Killing the driver alone also ends its Ray and the kernels, but only within a few seconds:
    the worker notices its raylet is gone, the kernel that its parent is gone. Here every process
    is killed at once so that the checkpoint is exactly where the kill found it.)"""
    import psutil

    grid = ["--grid", "seed=0:3", "-p", "steps", "6", "-p", "sleep", "0.4"]
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "vaelab.lab.sweep", str(TOY), *grid, "--out", str(out), "--num-cpus", "1",
                             "--progress-every", "1"], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            ckpt = sweep.read_json(out / "seed=1" / "checkpoint.json", {})
            if (out / "seed=0" / "done.json").is_file() and ckpt.get("step", 0) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the sweep ended before it could be killed:\n" + proc.stdout.read()
        # Everything at once, as a crash would: the driver, Ray's processes (some in their own
        # process group) and the running kernel (in its own session).
        seen = _descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        for child in seen:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    gone, alive = psutil.wait_procs(seen, timeout=15)
    assert not alive, f"left running after the kill: {[p.pid for p in alive]}"
    assert not (out / "seed=1" / "done.json").exists() and not (out / "seed=2" / "done.json").exists()
    step_at_kill = json.loads((out / "seed=1" / "checkpoint.json").read_text())["step"]
    assert 2 <= step_at_kill < 6

    assert sweep.main([str(TOY), *grid, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert [status_of(text, f"seed={i}") for i in range(3)] == ["skipped", "done", "done"]
    assert json.loads((out / "seed=1" / "results.json").read_text())["resumed_from"] >= step_at_kill
    assert json.loads((out / "seed=1" / "done.json").read_text())["attempts"] == 2

    reference = tmp_path / "uninterrupted"
    assert sweep.main([str(TOY), *grid, "--out", str(reference)]) == 0
    for seed in range(3):
        resumed, straight = (json.loads((d / f"seed={seed}" / "results.json").read_text()) for d in (out, reference))
        resumed.pop("resumed_from"), straight.pop("resumed_from")
        assert resumed == straight
        assert straight["x"] == pytest.approx(toy_x(seed, 6))


def test_the_set_up_installs_ray_pinned():
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (REPO / "constraints.txt").read_text(), re.M))
    assert "ray" in pins
    assert 'sweep = [\n    "ray>=' in (REPO / "pyproject.toml").read_text()
    assert "-e '.[book,test,sweep]'" in (REPO / "Makefile").read_text()


def test_gather_execution_sets_the_chapters_gather_switch(tmp_path):
    """A chapter that declares ``gather`` gets gather=True in the --gather execution (and only there)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("seed = 0\ngather = False\nout_dir = None")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    plan = sweep.make_plan(path, ["seed=0,1"], out=tmp_path / "out", gather=True)
    assert plan.gather_parameters == {"gather": True}
    assert all("gather" not in p.parameters for p in plan.points)  # the points train
    assert sweep.make_plan(path, ["seed=0"], out=tmp_path / "o2", gather=False).gather_parameters == {}
    kept = sweep.make_plan(path, ["seed=0"], out=tmp_path / "o3", gather=True,
                           gather_parameters=[("gather", "False")])
    assert kept.gather_parameters == {"gather": False}  # an explicit --gather-param wins
    assert sweep.make_plan(TOY, ["seed=0"], out=tmp_path / "o4", gather=True).gather_parameters == {}


def test_an_attempt_records_the_commit_it_runs_not_the_sweeps_start(tmp_path):
    """A point that starts after the tree moved to another commit records the new commit (the
    sweep's own git state, read when it started, would name code the point never ran)."""
    run_dir = tmp_path / "seed=0"
    spec = {"notebook": str(TOY), "run_dir": str(run_dir), "output": str(run_dir / "toy_chapter.ipynb"),
            "parameters": {"seed": 0, "steps": 1, "out_dir": str(run_dir)}, "files": sweep.POINT_FILES,
            "cwd": str(REPO), "sweep_id": "x", "git": {"commit": "0" * 40, "dirty": [], "untracked": []},
            "cpus": 1, "kernel_name": None}
    sweep.execute_point(spec)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    attempt = json.loads((run_dir / "attempt.json").read_text())
    assert attempt["git"]["commit"] == head != "0" * 40


# --------------------------------------------------------------------------------------------------
# Nothing written before the sweep may run (issue 29)


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


def _started_point(out: Path, seed: int = 0) -> Path:
    """A run directory as a running sweep leaves it: point.json, an attempt, a log."""
    run = out / f"seed={seed}"
    run.mkdir(parents=True)
    sweep.write_json_atomic(run / "point.json", {"chapter": "tests/sweep_toy/toy_chapter.ipynb", "name": run.name,
                                                 "values": {"seed": seed},
                                                 "parameters": {"seed": seed, "out_dir": str(run)}})
    attempt = {"sweep_id": "first", "attempt": 1, "git": {"commit": "0" * 40, "dirty": ["x"], "untracked": []}}
    (run / "attempts.jsonl").write_text(json.dumps(attempt) + "\n")
    sweep.write_json_atomic(run / "attempt.json", attempt)
    (run / "log.txt").write_text("=== attempt 1 started\n")
    sweep.write_json_atomic(out / "sweep.json", {"sweep_id": "first", "command": ["first"]})
    return run


def test_a_sweep_refused_by_the_lock_leaves_every_file_untouched(tmp_path, capsys, no_ray):
    """Before: the second sweep into one --out was refused only by the chapter's lock, after it had
    rewritten the point's attempt.json, so the record named the wrong attempt's commit and tree."""
    from vaelab.training.runs import RunLock
    out = tmp_path / "out"
    _started_point(out)
    with RunLock(out, sweep.SWEEP_LOCK):  # the first sweep's driver, still running
        before = _snapshot(out)
        assert sweep.main([str(TOY), "--grid", "seed=0", "--out", str(out)]) == 2
        after = _snapshot(out)
    err = capsys.readouterr().err
    assert f"--out {out} is in use by another sweep (pid {os.getpid()} on " in err and "nothing was written" in err
    assert after == before


def test_a_point_whose_directory_a_chapter_still_trains_in_is_not_touched(tmp_path):
    from vaelab.training.runs import RunLock
    run = _started_point(tmp_path / "out")
    spec = {"notebook": str(TOY), "run_dir": str(run), "output": str(run / "toy_chapter.ipynb"),
            "parameters": {"seed": 0, "out_dir": str(run)}, "files": sweep.POINT_FILES, "cwd": str(REPO),
            "sweep_id": "second", "git": None, "cpus": 1, "kernel_name": None}
    with RunLock(run):  # a kernel of the first sweep, still in fit
        before = _snapshot(run)
        result = sweep.execute_point(spec)
        after = _snapshot(run)
    assert result["status"] == "failed" and f"{run} is in use by another run (pid {os.getpid()}" in result["error"]
    assert after == before


@pytest.mark.parametrize("address", ["bogus", "127.0.0.1", "host:0", "host:70000", "http://host:6379"])
def test_a_malformed_ray_address_is_refused_before_anything(tmp_path, capsys, no_ray, address):
    out = tmp_path / "out"
    assert sweep.main([str(TOY), "--grid", "seed=0", "--out", str(out), "--address", address]) == 2
    err = capsys.readouterr().err
    assert f"--address {address!r} is not a Ray address" in err and "ray start --head" in err
    assert not out.exists()


@pytest.fixture
def no_ray_yet(monkeypatch, ray_module):
    """This process as a fresh driver's: Ray not initialised (the module's local_ray may be), ray.init refused."""
    ray = ray_module
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init was called"))


def test_an_address_where_nothing_listens_is_refused_at_once(tmp_path, capsys, monkeypatch, no_ray_yet):
    """Before: --address 127.0.0.1:1 hung for minutes in Ray's reconnect loop."""
    monkeypatch.setattr(sweep, "_connect_in_subprocess", lambda *a: pytest.fail("got past the TCP check"))
    out = tmp_path / "out"
    start = time.monotonic()
    assert sweep.main([str(TOY), "--grid", "seed=0", "--out", str(out), "--address", "127.0.0.1:1"]) == 2
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert "--address 127.0.0.1:1: nothing answers at 127.0.0.1:1" in err and "`ray start --head`" in err
    assert not list(out.rglob("*.json"))  # neither sweep.json nor any point.json


def test_auto_without_a_cluster_names_the_address_and_how_to_start_one(tmp_path, capsys, monkeypatch, no_ray_yet):
    seen = []

    def no_cluster(address, timeout):  # what Ray says where no cluster runs (simulated: this machine may have one)
        seen.append(address)
        return ("ConnectionError: Could not find any running Ray instance. Please specify the one to connect to "
                "by setting `--address` flag or `RAY_ADDRESS` environment variable.")
    monkeypatch.setattr(sweep, "_connect_in_subprocess", no_cluster)
    out = tmp_path / "out"
    assert sweep.main([str(TOY), "--grid", "seed=0", "--out", str(out), "--address", "auto"]) == 2
    err = capsys.readouterr().err
    assert seen == ["auto"]
    assert "--address auto: Ray could not connect (ConnectionError: Could not find any running Ray" in err
    assert "start one with `ray start --head`" in err
    assert not list(out.rglob("*.json"))


def test_an_address_with_ray_already_initialised_here_is_refused_not_ignored(tmp_path, capsys, monkeypatch,
                                                                              ray_module):
    ray = ray_module
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    out = tmp_path / "out"
    assert sweep.main([str(TOY), "--grid", "seed=0", "--out", str(out), "--address", "auto"]) == 2
    assert "--address auto: Ray is already initialised in this process" in capsys.readouterr().err
    assert not list(out.rglob("*.json"))


@pytest.fixture
def listener():
    """A TCP port that accepts connections but speaks no Ray."""
    import socket
    server = socket.create_server(("0.0.0.0", 0))
    yield server.getsockname()[1]
    server.close()


def test_a_port_that_is_no_ray_cluster_is_given_up_within_the_timeout(listener, ray_module):
    """Ray retries such an address for minutes; the trial connection is killed after the timeout."""
    start = time.monotonic()
    with pytest.raises(SweepError, match=rf"--address 127\.0\.0\.1:{listener}: Ray could not connect \(.*\): "
                       r"start one with `ray start --head`"):  # here: "no Ray cluster answered within 3 s"
        sweep.connect_ray(f"127.0.0.1:{listener}", timeout=3)
    assert time.monotonic() - start < 20


def test_ray_init_failing_after_the_trial_names_the_address(listener, monkeypatch, ray_module):
    ray = ray_module
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(sweep, "_connect_in_subprocess", lambda *a: None)

    def refuse(**kwargs):
        raise ConnectionError("Version mismatch: the cluster runs Ray 2.9")
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(SweepError, match=rf"--address 127\.0\.0\.1:{listener}: Ray could not connect "
                       r"\(ConnectionError: Version mismatch.*\): start one"):
        sweep.connect_ray(f"127.0.0.1:{listener}")


def test_without_ray_the_sweep_says_how_to_install_it(monkeypatch):
    """Before: a bare ImportError from deep inside the driver."""
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(sweep.SweepError, match=r'pip install "vaelab\[sweep\]"'):
        sweep._ray()
