"""One format for comparing a reproduced result with the paper (chapters 00-05).

Every chapter lays out its headline numbers the same way::

    metric | paper (where, value) | full scale (recorded: machine, date, wall time, commit)
           | this build (scale) | difference | verdict

``Metric`` holds one row: the paper's number and where the paper gives it ("Table 1", "Fig. 1a,
read off"; no source: "not reported"), the value of the recorded full-scale run
(``vaelab.lab.records``) and of the execution that just ran, each with its standard error where it
has one. The difference is taken against the paper from the recorded full-scale value where one
exists, else from this build (and says which); the verdict compares it with the metric's stated
``tolerance`` and its standard error. Differences between two models on the same test images use
``paired_difference`` (the standard error of the per-image differences, not of each mean).
Where no record exists, ``no_record_note`` gives the command that makes one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

__all__ = ["Metric", "provenance", "provenance_of_many", "comparison_table", "no_record_note", "record_value",
           "paired_difference", "verdict", "VERDICTS", "ordering_verdict"]


@dataclass
class Metric:
    """One row of the comparison.

    ``name``: what is measured, with its unit; ``paper``: the paper's value (None: not reported)
    and ``source``: where the paper gives it; ``full`` / ``full_se``: the recorded full-scale value
    and its standard error; ``build`` / ``build_se``: this execution's value and its standard error;
    ``tolerance``: how far from the paper still counts as reproduced (None: no such claim);
    ``higher_is_better``: the direction, for saying which side of the paper a miss falls on.
    """

    name: str
    paper: float | None
    source: str
    full: float | None
    build: float | None
    digits: int = 2
    build_se: float | None = None
    full_se: float | None = None
    tolerance: float | None = None
    higher_is_better: bool | None = None


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of ``a - b`` for values of two models on the same items (e.g. the
    per-image log-likelihoods on one test set): the s.e. of the differences, which is what decides
    whether one model is ahead, not the two means' separate standard errors."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"paired_difference needs two 1-D sequences of the same length >= 2 "
                         f"(one value per shared test item), got shapes {a.shape} and {b.shape}")
    d = a - b
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def verdict(m: Metric) -> tuple[str, str]:
    """(difference, verdict) of a metric against the paper, from the full-scale value where
    recorded, else from this build (the text says which)."""
    if m.paper is None:
        return "—", "not reported by the paper"
    if m.full is not None:
        ours, se, where = m.full, m.full_se, "full scale"
    elif m.build is not None:
        ours, se, where = m.build, m.build_se, "this build"
    else:
        return "—", "no value"
    diff = ours - m.paper
    text = f"{diff:+,.{m.digits}f} ({where})"
    slack = 2 * se if se is not None else 0.0
    if m.tolerance is not None and abs(diff) <= m.tolerance + slack:
        return text, f"reproduced (within {m.tolerance:g})"
    if m.higher_is_better is None:
        judged = "differs" if m.tolerance is not None else "no tolerance stated"
    else:
        better = (diff > 0) == m.higher_is_better
        judged = "beyond the paper" if better else "short of the paper"
    if se is not None and abs(diff) <= slack:
        judged = "within 2 s.e. of the paper"
    if where == "this build":
        judged += " (at default scale)"
    return text, judged


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
    """"<CPU or GPU>, <n> thread(s) (singular for one), <date>, <wall time>, commit <sha>" of a record."""
    machine = record.get("machine", {}) or {}
    device = record.get("device", {}) or {}
    gpus = device.get("gpu_names") or []
    where = ", ".join(gpus) if gpus else f"{machine.get('cpu_model', 'CPU')} ({machine.get('cores', '?')} cores)"
    threads = device.get("threads")
    wall = record.get("wall_s")
    wall_text = "?" if wall is None else (f"{wall / 3600:.1f} h" if wall >= 5400 else f"{wall / 60:.0f} min")
    if (record.get("attempts") or 1) > 1:  # a resumed run records its last attempt's wall time
        wall_text += f" (the last of {record['attempts']} attempts)"
    date = str(record.get("started") or "?")[:10]
    commit = str((record.get("git") or {}).get("commit") or "?")[:10]
    return (f"{where}{f', {threads} thread' + ('' if threads == 1 else 's') if threads else ''}, {date}, {wall_text}, commit {commit}")


def _fmt(value: float | None, digits: int, se: float | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not reported"
    text = f"{value:,.{digits}f}"
    return text if se is None else f"{text} ± {se:,.{digits}f}"


def provenance_of_many(records: list[dict]) -> str:
    """"<n> runs, <machines>, <first date>..<last date>, <total wall time>, commit(s) <shas>"."""
    if len(records) == 1:
        return provenance(records[0])
    wheres = sorted({provenance(r).split(",")[0] for r in records})
    dates = sorted(str(r.get("started") or "?")[:10] for r in records)
    wall = sum(float(r.get("wall_s") or 0) for r in records)
    resumed = sum((r.get("attempts") or 1) > 1 for r in records)
    commits = sorted({str((r.get("git") or {}).get("commit") or "?")[:10] for r in records})
    span = dates[0] if dates[0] == dates[-1] else f"{dates[0]}..{dates[-1]}"
    last = f" (of {resumed} resumed run{'s' if resumed > 1 else ''}, the last attempt)" if resumed else ""
    return (f"{len(records)} runs, {'; '.join(wheres)}, {span}, {wall / 3600:.1f} h in all{last}, "
            f"commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}")


def comparison_table(metrics: list[Metric], record: dict | list[dict] | None, build_scale: str):
    """DataFrame: metric | paper | full scale | this build | difference | verdict; the headers
    name where each column came from (the record's provenance, or a summary of several
    records', and this build's scale)."""
    import pandas as pd

    if isinstance(record, list):
        record = record or None
        full_head = (f"full scale (recorded: {provenance_of_many(record)})" if record
                     else "full scale (no record yet)")
    else:
        full_head = (f"full scale (recorded: {provenance(record)})" if record
                     else "full scale (no record yet)")
    rows = []
    for m in metrics:
        if record is None:  # a full-scale value without its record is not shown or judged
            m = replace(m, full=None, full_se=None)
        paper = _fmt(m.paper, m.digits)
        if m.source:
            paper = f"{paper} ({m.source})"
        full = _fmt(m.full, m.digits, m.full_se) if record and m.full is not None else "—"
        build = "—" if m.build is None else _fmt(m.build, m.digits, m.build_se)
        diff, judged = verdict(m)
        rows.append({"metric": m.name, "paper": paper, full_head: full,
                     f"this build ({build_scale})": build, "difference": diff,
                     "verdict": judged})
    return pd.DataFrame(rows)


def no_record_note(command: str) -> str:
    """The sentence a chapter prints where its full-scale run has not been recorded yet."""
    return f"No full-scale run of this chapter is recorded yet. To make one: {command}"


# The book's vocabulary of verdicts, defined once: every comparison table and the results page use
# these words and no others (tests/test_site.py checks the built pages).
VERDICTS = {
    "reproduced": "the paper's number is met within its tolerance or 2 s.e., or its ordering holds by more "
                  "than 2 s.e.",
    "within noise": "the difference the paper claims is smaller than 2 s.e. here: neither confirmed nor refuted",
    "not reproduced": "ours misses the paper's number beyond tolerance and 2 s.e., or the ordering is reversed "
                      "by more than 2 s.e.",
    "not reported": "the paper gives no number to compare with",
    "not run yet": "no full-scale record exists yet",
}


def ordering_verdict(diff: float, se: float, expected_sign: int) -> str:
    """The verdict on a claimed ordering ("A above B": ``expected_sign=+1`` for ``diff = A - B``)
    from the measured difference and its standard error: beyond 2 s.e. on the claimed side is
    "reproduced", beyond 2 s.e. on the other side "not reproduced", else "within noise"."""
    if expected_sign not in (1, -1):
        raise ValueError(f"expected_sign must be +1 or -1, got {expected_sign!r}")
    if not (se >= 0 and math.isfinite(se) and math.isfinite(diff)):
        raise ValueError(f"diff and se must be finite and se >= 0, got diff={diff!r}, se={se!r}")
    z = expected_sign * diff
    if z > 2 * se:
        return "reproduced"
    if z < -2 * se:
        return "not reproduced"
    return "within noise"
