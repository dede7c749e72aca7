"""One table for comparing a result with the paper: paper | full scale (recorded) | this build.

A chapter lists its headline metrics with the paper's number (and where the paper gives it), the
value read from its recorded full-scale run (``vaelab.records``) and the value of the run that just
executed, and ``comparison_table`` lays them out as a pandas DataFrame with the record's provenance
(machine, date, wall time, commit) in the header. Where no record exists, ``no_record_note`` gives
the command that makes one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Metric", "provenance", "comparison_table", "no_record_note", "record_value"]


@dataclass
class Metric:
    """One row: ``name``, the paper's ``paper`` value and ``source`` ("Table 1", "Fig. 1a, read off"),
    the recorded full-scale value ``full`` and this build's value ``build`` (None: not available)."""

    name: str
    paper: float | None
    source: str
    full: float | None
    build: float | None
    digits: int = 2


def record_value(record: dict | None, *keys: str) -> float | None:
    """``record["results"][k1][k2]...`` as a float, or None when the record or a key is missing."""
    if record is None:
        return None
    value: Any = record.get("results", {})
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, (int, float)) else None


def provenance(record: dict) -> str:
    """"<CPU or GPU>, <threads> thread(s), <date>, <wall time>, commit <sha>" of a record."""
    machine = record.get("machine", {}) or {}
    device = record.get("device", {}) or {}
    gpus = device.get("gpu_names") or []
    where = ", ".join(gpus) if gpus else f"{machine.get('cpu_model', 'CPU')} ({machine.get('cores', '?')} cores)"
    threads = device.get("threads")
    wall = record.get("wall_s")
    wall_text = "?" if wall is None else (f"{wall / 3600:.1f} h" if wall >= 5400 else f"{wall / 60:.0f} min")
    date = str(record.get("started") or "?")[:10]
    commit = str((record.get("git") or {}).get("commit") or "?")[:10]
    return (f"{where}{f', {threads} thread(s)' if threads else ''}, {date}, {wall_text}, commit {commit}")


def _fmt(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not reported"
    return f"{value:,.{digits}f}"


def comparison_table(metrics: list[Metric], record: dict | None, build_scale: str):
    """DataFrame with columns metric | paper | full scale | this build; the header names where each came from."""
    import pandas as pd

    full_head = f"full scale (recorded: {provenance(record)})" if record else "full scale (no record yet)"
    rows = []
    for m in metrics:
        paper = f"{_fmt(m.paper, m.digits)} ({m.source})" if m.source else _fmt(m.paper, m.digits)
        full = _fmt(m.full, m.digits) if record else "—"
        rows.append({"metric": m.name, "paper": paper, full_head: full,
                     f"this build ({build_scale})": _fmt(m.build, m.digits)})
    return pd.DataFrame(rows)


def no_record_note(command: str) -> str:
    """The sentence a chapter prints where its full-scale run has not been recorded yet."""
    return f"No full-scale run of this chapter is recorded yet. To make one: {command}"
