"""Run a chapter's parameter grid: one papermill execution per point, each a Ray task (README, "Sweeps and recorded runs").

    python -m vaelab.lab.sweep book/00_vae_in_a_few_lines.ipynb --grid seed=0:3 lr=1e-3,3e-4 \\
        -p epochs 100 --out runs/full/00 [--gather] [--address auto] [--gpus-per-point 0.25]

Each point gets its own run directory under ``--out`` (named after its grid values, e.g.
``seed=0,lr=0.001``) and is executed with the fixed parameters, its grid values and
``out_dir`` = that directory. A run directory holds:

* ``point.json``: the chapter and the point's full parameters, written before the point first starts;
* ``attempt.json`` / ``attempts.jsonl``: the current attempt and one line per attempt (start date,
  CPUs and GPUs given, threads, versions, machine, git commit);
* ``log.txt``: what the execution printed (stdout and stderr of every cell, tracebacks), appended per attempt;
* ``<chapter>.ipynb``: the executed notebook; whatever the chapter writes to ``out_dir``
  (``checkpoint.pt``, ``results.json``, ``progress.json``);
* ``done.json``: written atomically when the execution succeeded (wall time, finish date).

Running the same command again skips the points with ``done.json`` and re-runs the others (a
chapter resumes from its own checkpoint in the directory). A run directory whose ``point.json``
holds other settings is refused before any job starts. ``--gather`` runs the chapter once more,
after every point finished, with the fixed parameters and ``out_dir`` = ``--out``, where
``sweep.json`` lists the points and their directories; a chapter with a ``gather`` parameter gets
``gather=True`` there (it then trains nothing and reads the points' run directories).

Nothing is written before the sweep may run: the driver first locks ``--out`` (``.sweep.lock``:
a second sweep into the same ``--out`` is refused, naming the holder, and changes no file), then
connects to Ray (``--address`` is checked for its form at once, and a cluster must answer within
``RAY_CONNECT_TIMEOUT_S`` seconds, else the error names the address and how to start a cluster),
then writes ``sweep.json`` and the points' ``point.json``. A point whose run directory another
process is training in (its ``.lock``) is reported failed without touching its files.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from vaelab.core.files import atomic_write_json
from vaelab.training.runs import RunLock, RunLockedError

__all__ = ["SweepError", "Point", "Plan", "parse_value", "parse_grid_item", "expand_grid", "point_name",
           "write_json_atomic", "read_json", "read_attempts", "make_plan", "execute_point", "check_address",
           "connect_ray", "run_sweep", "main"]

POINT_FILE, DONE_FILE, ATTEMPT_FILE, ATTEMPTS_FILE, LOG_FILE = (
    "point.json", "done.json", "attempt.json", "attempts.jsonl", "log.txt")
SWEEP_FILE = "sweep.json"
SWEEP_LOCK = ".sweep.lock"  # the driver's lock in --out (the chapters' fit locks .lock)
RAY_CONNECT_TIMEOUT_S = 60.0  # a cluster given by --address must answer within this many seconds
START_CLUSTER = ("start one with `ray start --head` (it prints the address to pass), or leave --address out to "
                 "start Ray for this sweep")
GATHER_FILES = {"done": "gather_done.json", "attempt": "gather_attempt.json",
                "attempts": "gather_attempts.jsonl", "log": "gather_log.txt"}
POINT_FILES = {"done": DONE_FILE, "attempt": ATTEMPT_FILE, "attempts": ATTEMPTS_FILE, "log": LOG_FILE}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class SweepError(Exception):
    """Bad input or a refused run directory: reported before any job starts."""


# --------------------------------------------------------------------------------------------------
# Parsing


def parse_value(text: str) -> Any:
    """A command-line value as ``papermill -p`` reads it: True/False/None, int, float, else the string."""
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_grid_item(item: str) -> tuple[str, list]:
    """``name=v1,v2,...`` or the integer range ``name=a:b`` (b exclusive; ``a:b:step`` too)."""
    name, sep, spec = item.partition("=")
    name = name.strip()
    if not sep or not _NAME.match(name):
        raise SweepError(f"grid item {item!r} is malformed: write name=v1,v2,... or name=a:b (integers, b exclusive)")
    if re.fullmatch(r"\s*-?\d+\s*:\s*-?\d+\s*(:\s*-?\d+\s*)?", spec):
        bounds = [int(x) for x in spec.split(":")]
        if len(bounds) == 3 and bounds[2] == 0:
            raise SweepError(f"grid item {item!r}: the step of a range cannot be 0")
        values = list(range(*bounds))
        if not values:
            raise SweepError(f"grid item {item!r} is an empty range (a:b runs from a to b-1)")
        return name, values
    if ":" in spec and "," not in spec and re.fullmatch(r"[-\d\s:.]+", spec):
        raise SweepError(f"grid item {item!r} is malformed: a range is name=a:b with integers a < b")
    pieces = spec.split(",")
    if any(not p.strip() for p in pieces):
        raise SweepError(f"grid item {item!r} is malformed: empty value (write name=v1,v2,... without empty entries)")
    values = [parse_value(p.strip()) for p in pieces]
    if len({json.dumps(v) for v in values}) != len(values):
        raise SweepError(f"grid item {item!r} repeats a value")
    return name, values


def _format_value(value: Any) -> str:
    """A value as it appears in a run directory's name (floats by repr: 0.001, 0.0003, 1e-05)."""
    text = repr(value) if isinstance(value, float) else str(value)
    text = re.sub(r"[/\\\x00-\x1f]", "_", text)
    return text if text not in ("", ".", "..") else f"_{text}_"


def point_name(values: dict) -> str:
    """The readable name of a grid point, also its run directory: ``seed=0,lr=0.001``."""
    return ",".join(f"{k}={_format_value(v)}" for k, v in values.items())


def expand_grid(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, the first name varying slowest."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


# --------------------------------------------------------------------------------------------------
# Small file helpers


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """``vaelab.training.runs.atomic_write_json``: unique temp file in the same directory, fsync, ``os.replace``."""
    return atomic_write_json(path, obj)


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def git_state(path: str | os.PathLike) -> dict:
    """The commit checked out where ``path`` lives, and which tracked files differ from it."""
    cwd = Path(path).resolve()
    cwd = cwd if cwd.is_dir() else cwd.parent

    def git(*args):
        return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=60)

    try:
        head = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "error": "git not available"}
    if head.returncode != 0:
        return {"commit": None, "error": head.stderr.strip() or "not a git repository"}
    status = git("status", "--porcelain", "--untracked-files=normal").stdout.splitlines()
    dirty = sorted(line[3:] for line in status if not line.startswith("??"))
    untracked = sorted(line[3:] for line in status if line.startswith("??"))
    root = git("rev-parse", "--show-toplevel").stdout.strip()
    return {"commit": head.stdout.strip(), "dirty": dirty, "untracked": untracked, "root": root}


def _chapter_id(notebook: Path) -> str:
    """The chapter as stored in point.json: its path inside its git repository, else absolute."""
    notebook = notebook.resolve()
    for parent in notebook.parents:
        if (parent / ".git").exists():
            return notebook.relative_to(parent).as_posix()
    return str(notebook)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment(cpus: float | None = None, gpu_ids: Iterable | None = None) -> dict:
    """Where a point runs: versions, machine, the CPUs/GPUs Ray gave it and the threads it uses."""
    env = {
        "python": platform.python_version(),
        "versions": {d: _version(d) for d in ("vaelab", "torch", "papermill", "ray")},
        "machine": {"cpu_model": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform()},
        "cpus": cpus,
        "threads": int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS", "").isdigit() else None,
        "gpu_ids": [str(g) for g in gpu_ids or []],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    if env["gpu_ids"]:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader",
                                  "-i", ",".join(env["gpu_ids"])], capture_output=True, text=True, timeout=30)
            env["gpu_names"] = [line.strip() for line in out.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            env["gpu_names"] = []
    return env


# --------------------------------------------------------------------------------------------------
# The plan: everything checked before any job starts


@dataclass
class Point:
    name: str
    values: dict  # the grid values
    parameters: dict  # fixed + grid values + out_dir
    run_dir: Path
    status: str = "todo"  # todo | skipped (done before)


@dataclass
class Plan:
    notebook: Path
    chapter: str
    out: Path
    grid: dict
    fixed: dict
    points: list[Point]
    gather: bool = False
    gather_parameters: dict = field(default_factory=dict)
    command: list[str] = field(default_factory=list)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SweepError(f"--out {str(out)!r} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SweepError(f"--out {str(out)!r} cannot be created: {e.strerror or e}") from None
    if not out.is_dir():
        raise SweepError(f"--out {str(out)!r} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as e:
        raise SweepError(f"--out {str(out)!r} is not writable: {e.strerror or e}") from None


def _differences(stored: dict, now: dict) -> list[str]:
    diffs = []
    for name in sorted(set(stored) | set(now)):
        if name == "out_dir":
            continue
        if name not in now:
            diffs.append(f"{name} (stored {stored[name]!r}, now not set)")
        elif name not in stored:
            diffs.append(f"{name} (stored: not set, now {now[name]!r})")
        elif stored[name] != now[name] or type(stored[name]) is not type(now[name]):
            diffs.append(f"{name} (stored {stored[name]!r}, now {now[name]!r})")
    return diffs


def make_plan(notebook: str | os.PathLike, grid_items: list[str], fixed: dict | list | None = None,
              out: str | os.PathLike = "runs/sweep", *, gather: bool = False, gather_parameters: dict | list | None = None,
              command: list[str] | None = None) -> Plan:
    """Check the whole sweep (notebook, names, grid, ``--out``, existing run directories) and list its points.

    ``fixed`` and ``gather_parameters`` are dicts or lists of (name, text) pairs as given to ``-p``.
    Raises :class:`SweepError` with a message naming what is wrong; starts nothing.
    """
    nb = Path(notebook)
    if not nb.is_file():
        raise SweepError(f"notebook {str(nb)!r} does not exist")
    if nb.suffix != ".ipynb":
        hint = f": run {nb.with_suffix('.ipynb')}" if nb.with_suffix(".ipynb").is_file() else ""
        raise SweepError(f"{str(nb)!r} is not a notebook (.ipynb){hint}")
    import papermill

    try:
        known = papermill.inspect_notebook(str(nb))
    except Exception as e:  # a broken notebook file
        raise SweepError(f"cannot read the parameters of {str(nb)!r}: {type(e).__name__}: {e}") from None
    if not known:
        raise SweepError(f"{str(nb)!r} has no cell tagged 'parameters': nothing to sweep")
    if "out_dir" not in known:
        raise SweepError(f"{str(nb)!r} has no parameter out_dir: the sweep gives each point its own out_dir")

    def as_dict(pairs, what):
        if pairs is None:
            return {}
        if isinstance(pairs, dict):
            return dict(pairs)
        result = {}
        for name, text in pairs:
            if name in result:
                raise SweepError(f"{what} {name} is given twice")
            result[name] = parse_value(text) if isinstance(text, str) else text
        return result

    fixed = as_dict(fixed, "-p")
    gather_parameters = as_dict(gather_parameters, "--gather-param")
    if gather and "gather" in known and "gather" not in gather_parameters:
        gather_parameters["gather"] = True  # the chapter's own switch: train nothing, read the points
    if not grid_items:
        raise SweepError("the grid is empty: give at least one --grid item such as seed=0:3 or lr=1e-3,3e-4")
    grid: dict[str, list] = {}
    for item in grid_items:
        name, values = parse_grid_item(item)
        if name in grid:
            raise SweepError(f"grid parameter {name} is given twice")
        grid[name] = values
    given = {"--grid": list(grid), "-p": list(fixed), "--gather-param": list(gather_parameters)}
    for flag, names in given.items():
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SweepError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in {flag}: "
                             f"{nb.name} has {', '.join(known)}")
        if "out_dir" in names:
            raise SweepError(f"out_dir cannot be set with {flag}: the sweep sets it (use --out)")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise SweepError(f"{', '.join(both)} given both in --grid and -p")

    out = Path(out).resolve()
    _check_out(out)
    points, names = [], set()
    for values in expand_grid(grid):
        name = point_name(values)
        if name in names:
            raise SweepError(f"two grid points share the directory name {name!r}")
        names.add(name)
        run_dir = out / name
        points.append(Point(name, values, {**fixed, **values, "out_dir": str(run_dir)}, run_dir))

    chapter = _chapter_id(nb)
    refused = []
    for p in points:
        stored = read_json(p.run_dir / POINT_FILE)
        if stored is None:
            if p.run_dir.is_dir() and any(p.run_dir.iterdir()):
                refused.append(f"{p.run_dir}: exists without a readable {POINT_FILE} (not a sweep's run directory)")
            continue
        diffs = _differences(stored.get("parameters", {}), p.parameters)
        if stored.get("chapter") != chapter:
            diffs.insert(0, f"chapter (stored {stored.get('chapter')!r}, now {chapter!r})")
        if diffs:
            refused.append(f"{p.run_dir}: " + "; ".join(diffs))
        elif (p.run_dir / DONE_FILE).is_file():
            p.status = "skipped"
    if refused:
        raise SweepError("run directories hold other settings (use another --out, or delete them):\n  "
                         + "\n  ".join(refused))
    return Plan(nb.resolve(), chapter, out, grid, fixed, points, gather, gather_parameters, list(command or []))


# --------------------------------------------------------------------------------------------------
# One execution (the body of the Ray task)


def execute_point(spec: dict) -> dict:
    """Execute one point (or the gather run) with papermill; never raises for a failing notebook.

    ``spec``: notebook, run_dir, output (executed notebook), parameters, files (done/attempt/
    attempts/log names), cwd, sweep_id, git, cpus, kernel_name. Sets ``OMP_NUM_THREADS`` (read by
    torch in the kernel) and ``MKL_NUM_THREADS`` to the CPUs the task was given.
    """
    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    files = spec["files"]
    cpus, gpu_ids = spec.get("cpus"), []
    try:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            cpus = ctx.get_assigned_resources().get("CPU", cpus)
            gpu_ids = ctx.get_accelerator_ids().get("GPU", [])
    except Exception:
        pass
    threads = max(1, int(round(cpus or 1)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    log_path = run_dir / files["log"]
    holder = RunLock(run_dir).held_by()  # a chapter still training here: its files stay as they are
    if holder is not None:
        return {"log": str(log_path), "status": "failed", "wall_s": None,
                "error": f"{run_dir} is in use by another run ({holder}); nothing was changed: wait for it to end"}
    (run_dir / files["done"]).unlink(missing_ok=True)
    previous = read_attempts(run_dir / files["attempts"])
    started = time.time()
    attempt = {"sweep_id": spec.get("sweep_id"), "attempt": len(previous) + 1, "started": _now(),
               # the code this attempt runs: read now, not at the sweep's start (the tree may
               # have moved to another commit while earlier points ran)
               "pid": os.getpid(), "parameters": spec["parameters"],
               "git": git_state(spec["notebook"]) if spec.get("git") is not None else None,
               "environment": environment(cpus, gpu_ids)}
    with open(run_dir / files["attempts"], "a", encoding="utf8") as f:
        f.write(json.dumps(attempt, sort_keys=True) + "\n")
    write_json_atomic(run_dir / files["attempt"], attempt)
    result = {"log": str(log_path), "attempt": attempt["attempt"]}
    with open(log_path, "a", encoding="utf8", buffering=1) as log:
        log.write(f"=== attempt {attempt['attempt']} started {attempt['started']}: {spec['notebook']} with "
                  f"{json.dumps(spec['parameters'], sort_keys=True)}; {threads} threads, GPUs {gpu_ids or 'none'}\n")
        try:
            import papermill

            papermill.execute_notebook(
                spec["notebook"], spec["output"], parameters=spec["parameters"],
                kernel_name=spec.get("kernel_name", "python3"), progress_bar=False, log_output=False,
                stdout_file=log, stderr_file=log, cwd=spec.get("cwd") if Path(spec.get("cwd") or "/").is_dir() else None)
        except Exception as e:
            wall = time.time() - started
            log.write(f"{e}\n" if type(e).__name__ == "PapermillExecutionError" else traceback.format_exc())
            log.write(f"=== attempt {attempt['attempt']} FAILED after {wall:.1f} s\n")
            error = f"{e.ename}: {e.evalue}" if hasattr(e, "ename") else f"{type(e).__name__}: {e}"
            lines = error.strip().splitlines() or [type(e).__name__]
            return {**result, "status": "failed", "wall_s": wall, "error": lines[-1][:300]}
        wall = time.time() - started
        log.write(f"=== attempt {attempt['attempt']} done after {wall:.1f} s\n")
    first = previous[0].get("started", attempt["started"]) if previous else attempt["started"]
    done = {"finished": _now(), "started": attempt["started"], "first_started": first, "wall_s": round(wall, 3),
            "attempts": attempt["attempt"], "sweep_id": spec.get("sweep_id"),
            "commits": sorted({a["git"]["commit"] for a in [*previous, attempt]
                               if (a.get("git") or {}).get("commit")}),
            "parameters": spec["parameters"]}
    write_json_atomic(run_dir / files["done"], done)
    return {**result, "status": "done", "wall_s": wall}


def read_attempts(path: Path) -> list[dict]:
    """The lines of attempts.jsonl; a line cut short by a kill is left out."""
    try:
        lines = path.read_text(encoding="utf8").splitlines()
    except FileNotFoundError:
        return []
    attempts = []
    for line in lines:
        try:
            attempts.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return [a for a in attempts if isinstance(a, dict)]


# --------------------------------------------------------------------------------------------------
# The driver


def _progress_of(run_dir: Path, files: dict, sweep_id: str) -> str | None:
    """'running' detail of a point: None when it has not started in this sweep."""
    attempt = read_json(run_dir / files["attempt"], {})
    if attempt.get("sweep_id") != sweep_id:
        return None
    prog = read_json(run_dir / "progress.json")
    if isinstance(prog, dict) and "epoch" in prog:
        return f"epoch {prog['epoch']}" + (f"/{prog['epochs']}" if "epochs" in prog else "")
    try:
        with open(run_dir / files["log"], "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 2048))
            lines = [ln.strip() for ln in f.read().decode("utf8", "replace").replace("\r", "\n").splitlines()]
        last = next((ln for ln in reversed(lines) if ln and not ln.startswith("=== attempt")), "")
        return last[:60]
    except OSError:
        return ""


def _fmt_wall(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def format_table(rows: list[dict]) -> str:
    """rows: name, status, wall_s, note (the log of a failed point, or why)."""
    head = ("point", "status", "wall", "log / note")
    body = [(r["name"], r["status"], _fmt_wall(r.get("wall_s")), r.get("note", "")) for r in rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(3)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3] for row in [head, *body]]
    return "\n".join(line.rstrip() for line in lines)


_HOST_PORT = re.compile(r"(?:ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})\Z")


def check_address(address: str | None) -> None:
    """Refuse an ``--address`` that is not a Ray address (no network): ``auto``, ``local``, ``HOST:PORT`` or
    ``ray://HOST:PORT`` (port 1-65535). ``SweepError`` names the address and the forms."""
    if address is None or address in ("auto", "local"):
        return
    match = _HOST_PORT.match(address)
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise SweepError(f"--address {address!r} is not a Ray address: pass auto (a cluster started on this "
                         "machine), HOST:PORT or ray://HOST:PORT as `ray start --head` prints it, or leave "
                         "--address out to start Ray for this sweep")


def _connect_in_subprocess(address: str, timeout: float) -> str | None:
    """Connect to ``address`` from a throwaway Python process (killed after ``timeout`` s: Ray retries a dead
    address for minutes); None when it connected, else why not."""
    code = ("import sys, ray\n"
            "try:\n"
            "    ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False)\n"
            "except Exception as e:\n"
            "    print(f'{type(e).__name__}: {e}'.strip().splitlines()[0][:300], file=sys.stderr); sys.exit(3)\n"
            "ray.shutdown()\n")
    try:
        out = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no Ray cluster answered within {timeout:g} s"
    if out.returncode == 0:
        return None
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else f"exit status {out.returncode}"


def connect_ray(address: str, timeout: float = RAY_CONNECT_TIMEOUT_S, quiet: bool = True) -> None:
    """Connect this driver to the Ray cluster at ``address`` (``check_address``'s forms), bounded in time.

    ``HOST:PORT``: a TCP connection first (refused or unreachable: at once); then a trial connection from
    a subprocess that is killed after ``timeout`` s; then ``ray.init``. Every failure is a ``SweepError``
    naming the address and how to start a cluster (``START_CLUSTER``)."""
    ray = _ray()

    check_address(address)
    match = _HOST_PORT.match(address)
    if match is not None:
        host, port = match.group(1).strip("[]"), int(match.group(2))
        try:
            socket.create_connection((host, port), timeout=min(timeout, 10.0)).close()
        except OSError as err:
            why = err.strerror or type(err).__name__
            raise SweepError(f"--address {address}: nothing answers at {host}:{port} ({why}), so no Ray cluster "
                             f"runs there: {START_CLUSTER}") from None
    problem = _connect_in_subprocess(address, timeout)
    if problem is not None:
        raise SweepError(f"--address {address}: Ray could not connect ({problem}): {START_CLUSTER}")
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet)
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0][:300]
        raise SweepError(f"--address {address}: Ray could not connect ({type(err).__name__}: {first}): "
                         f"{START_CLUSTER}") from None


def _ray():
    """The ray module, or a ``SweepError`` that says how to install it (the ``sweep`` extra)."""
    try:
        import ray
    except ImportError:
        raise SweepError('a sweep runs its points on Ray, which is not installed: pip install "vaelab[sweep]" '
                         "(make test and make book install it)") from None
    return ray


def _start_ray(address: str | None, num_cpus: int | None, quiet: bool = True) -> bool:
    """Connect to ``address`` (``connect_ray``) or start a local Ray; returns whether this call initialised Ray."""
    ray = _ray()

    if ray.is_initialized():  # a caller's Ray in this process (tests, a notebook): used as it is
        if address and address != "local":
            raise SweepError(f"--address {address}: Ray is already initialised in this process, so the address "
                             "cannot be honoured: call ray.shutdown() first, or leave --address out")
        return False
    if address and address != "local":
        connect_ray(address, quiet=quiet)
    else:  # "local": a new Ray on this machine, even where RAY_ADDRESS or a `ray start` cluster exists
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=not quiet)
    return True


def _gather_up_to_date(plan: Plan, gather_params: dict) -> bool:
    """The gather run finished with these parameters after every point finished."""
    gather_done = plan.out / GATHER_FILES["done"]
    if read_json(gather_done, {}).get("parameters") != gather_params:
        return False
    done_files = [p.run_dir / DONE_FILE for p in plan.points]
    return all(f.is_file() and f.stat().st_mtime <= gather_done.stat().st_mtime for f in done_files)


def run_sweep(plan: Plan, *, address: str | None = None, num_cpus: int | None = None, cpus_per_point: float = 1,
              gpus_per_point: float = 0, retries: int = 0, progress_every: float = 30.0, kernel_name: str = "python3",
              stream=None) -> tuple[int, list[dict]]:
    """Run the plan's points as Ray tasks (then the gather run); returns (exit status, table rows).

    Raises ``SweepError`` before writing anything when another sweep holds ``--out`` or the Ray cluster
    of ``address`` cannot be reached (module docstring)."""
    stream = stream or sys.stdout

    def say(text=""):
        print(text, file=stream, flush=True)

    lock = RunLock(plan.out, SWEEP_LOCK)
    try:  # before anything is written: a second sweep into this --out changes no file
        lock.acquire()
    except RunLockedError:
        raise SweepError(f"--out {plan.out} is in use by another sweep ({lock.holder()}): wait for it to finish, "
                         "or use another --out; nothing was written") from None
    try:
        return _run_locked(plan, say, address=address, num_cpus=num_cpus, cpus_per_point=cpus_per_point,
                           gpus_per_point=gpus_per_point, retries=retries, progress_every=progress_every,
                           kernel_name=kernel_name)
    finally:
        lock.release()


def _run_locked(plan: Plan, say, *, address, num_cpus, cpus_per_point, gpus_per_point, retries, progress_every,
                kernel_name) -> tuple[int, list[dict]]:
    """``run_sweep``'s body, with ``--out`` locked: Ray first (connected, resources checked), then the files."""
    ray = _ray()

    sweep_id = uuid.uuid4().hex
    rows = {p.name: {"name": p.name, "status": "skipped", "note": "done before"} for p in plan.points
            if p.status == "skipped"}
    for p in plan.points:
        if p.name in rows:
            rows[p.name]["wall_s"] = read_json(p.run_dir / DONE_FILE, {}).get("wall_s")
    todo = [p for p in plan.points if p.status == "todo"]
    gather_params = {**plan.fixed, **plan.gather_parameters, "out_dir": str(plan.out)}
    need_ray = bool(todo) or (plan.gather and not _gather_up_to_date(plan, gather_params))
    started_ray = _start_ray(address, num_cpus) if need_ray else False
    try:
        if need_ray:
            have = ray.cluster_resources()
            short = [f"{n} {want:g}, but the cluster has {have.get(k, 0):g} {k}s"
                     for n, k, want in (("--cpus-per-point", "CPU", cpus_per_point),
                                        ("--gpus-per-point", "GPU", gpus_per_point))
                     if want > have.get(k, 0)]
            if short:  # such a task would wait forever (an autoscaling cluster may add nodes later)
                say(f"{'warning' if address else 'error'}: {'; '.join(short)}")
                if not address:
                    return 2, list(rows.values())
        git = git_state(plan.notebook)
        write_json_atomic(plan.out / SWEEP_FILE, {
            "chapter": plan.chapter, "notebook": str(plan.notebook), "grid": plan.grid, "fixed": plan.fixed,
            "gather_parameters": plan.gather_parameters, "command": plan.command, "sweep_id": sweep_id,
            "created": _now(),
            "points": [{"name": p.name, "dir": p.name, "values": p.values} for p in plan.points]})
        base = {"notebook": str(plan.notebook), "cwd": os.getcwd(), "sweep_id": sweep_id, "git": git,
                "cpus": cpus_per_point, "kernel_name": kernel_name}
        for p in todo:
            p.run_dir.mkdir(parents=True, exist_ok=True)
            # the command is the point's own: a later sweep into the same --out rewrites sweep.json
            write_json_atomic(p.run_dir / POINT_FILE, {"chapter": plan.chapter, "notebook": str(plan.notebook),
                                                       "name": p.name, "values": p.values,
                                                       "parameters": p.parameters, "command": plan.command,
                                                       "created": _now()})
        say(f"sweep {plan.chapter}: {len(plan.points)} points, {len(todo)} to run, {len(rows)} done before "
            f"-> {plan.out}")
        task = ray.remote(execute_point).options(num_cpus=cpus_per_point, num_gpus=gpus_per_point,
                                                 max_retries=retries, retry_exceptions=False)

        def run_all(jobs: list[tuple[str, Path, dict]]):
            refs = {task.remote(spec): (name, run_dir, spec["files"]) for name, run_dir, spec in jobs}
            last_report, last_line = 0.0, ""
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=min(progress_every, 5.0))
                for ref in ready:
                    name, run_dir, files = refs.pop(ref)
                    try:
                        res = ray.get(ref)
                    except Exception as e:  # the worker died (killed, out of memory, node lost)
                        res = {"status": "failed", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}",
                               "log": str(run_dir / files["log"]), "wall_s": None}
                    row = {"name": name, "status": res["status"], "wall_s": res.get("wall_s")}
                    if res["status"] == "failed":
                        row["note"] = f"{res['log']}  ({res.get('error', '')})"
                        say(f"FAILED {name} after {_fmt_wall(res.get('wall_s'))}: {res.get('error', '')}; log: {res['log']}")
                    else:
                        say(f"done {name} in {_fmt_wall(res.get('wall_s'))}")
                    rows[name] = row
                now = time.monotonic()
                if refs and now - last_report >= progress_every:
                    running = {n: _progress_of(d, f, sweep_id) for n, d, f in refs.values()}
                    running = {n: s for n, s in running.items() if s is not None}
                    status = [r["status"] for r in rows.values()]
                    line = (f"{status.count('done') + status.count('skipped')}/{len(plan.points)} done, "
                            f"{len(running)} running, {status.count('failed')} failed, "
                            f"{len(refs) - len(running)} waiting")
                    detail = " | ".join(f"{n}: {s}" if s else n for n, s in running.items())
                    if line + detail != last_line or now - last_report >= 10 * progress_every:
                        say(f"[{_dt.datetime.now():%H:%M:%S}] {line}" + (f" | {detail}" if detail else ""))
                        last_line = line + detail
                    last_report = now

        run_all([(p.name, p.run_dir, {**base, "run_dir": str(p.run_dir), "files": POINT_FILES,
                                      "output": str(p.run_dir / plan.notebook.name), "parameters": p.parameters})
                 for p in todo])
        failed = sorted(n for n, r in rows.items() if r["status"] == "failed")
        if plan.gather:
            if failed:
                rows["(gather)"] = {"name": "(gather)", "status": "skipped", "note": f"{len(failed)} points failed"}
            elif _gather_up_to_date(plan, gather_params):
                rows["(gather)"] = {"name": "(gather)", "status": "skipped", "note": "done before",
                                    "wall_s": read_json(plan.out / GATHER_FILES["done"], {}).get("wall_s")}
            else:
                say("gather: every point finished, running the chapter once more in --out")
                run_all([("(gather)", plan.out, {**base, "run_dir": str(plan.out), "files": GATHER_FILES,
                                                  "output": str(plan.out / plan.notebook.name),
                                                  "parameters": gather_params})])
    except KeyboardInterrupt:
        say("\ninterrupted: run the same command again to resume (finished points are skipped)")
        return 130, list(rows.values())
    finally:
        if started_ray:
            ray.shutdown()
    order = [p.name for p in plan.points] + ["(gather)"]
    table = [rows[n] for n in order if n in rows]
    failed = [r for r in table if r["status"] == "failed"]
    say("")
    say(format_table(table))
    counts = {s: sum(r["status"] == s for r in table) for s in ("done", "skipped", "failed")}
    say(f"\n{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed")
    return (1 if failed else 0), table


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vaelab.lab.sweep", description=(
            "Run a chapter's parameter grid: each point is a papermill execution in its own run directory "
            "under --out, scheduled by Ray. Rerun the same command to resume."))
    p.add_argument("notebook", help="the chapter, e.g. book/00_vae_in_a_few_lines.ipynb")
    p.add_argument("--grid", nargs="+", default=[], metavar="NAME=VALUES",
                   help="name=v1,v2,... or name=a:b (integers a..b-1); the points are all combinations")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a fixed parameter, as papermill -p (ints, floats, True/False/None, else a string)")
    p.add_argument("--out", required=True, help="the sweep's directory; one run directory per point inside")
    p.add_argument("--gather", action="store_true",
                   help="after every point finished, run the chapter once more with the fixed parameters and out_dir=--out")
    p.add_argument("-g", "--gather-param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a parameter for the gather run only")
    p.add_argument("--address", default=None, help="a running Ray cluster (e.g. auto); default: start Ray here")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all cores)")
    p.add_argument("--cpus-per-point", type=float, default=1, help="CPUs (= threads) per point (default 1)")
    p.add_argument("--gpus-per-point", type=float, default=0,
                   help="GPUs per point; fractions pack several small models onto one GPU (default 0)")
    p.add_argument("--retries", type=int, default=0, help="Ray retries of a point whose worker died (default 0)")
    p.add_argument("--progress-every", type=float, default=30, help="seconds between progress lines (default 30)")
    p.add_argument("--kernel", default="python3", help="the Jupyter kernel (default python3)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.cpus_per_point <= 0 or args.gpus_per_point < 0:
        print("error: --cpus-per-point must be > 0 and --gpus-per-point >= 0", file=sys.stderr)
        return 2
    try:
        check_address(args.address)
        plan = make_plan(args.notebook, args.grid, args.parameter, args.out, gather=args.gather,
                         gather_parameters=args.gather_param,
                         command=["python", "-m", "vaelab.lab.sweep", *argv])
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        code, _ = run_sweep(plan, address=args.address, num_cpus=args.num_cpus, cpus_per_point=args.cpus_per_point,
                            gpus_per_point=args.gpus_per_point, retries=args.retries,
                            progress_every=args.progress_every, kernel_name=args.kernel)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    from vaelab.lab.sweep import main as _main  # Ray ships functions by module name, not from __main__

    sys.exit(_main())
