"""One format for comparing a reproduced result with the paper (chapters 00-05).

Every chapter lays out its headline numbers the same way::

    metric | paper (value, where) | full scale | this build | difference | verdict

``Metric`` holds one row: the paper's number and where the paper gives it ("Table 1"; None: not
reported), the value of the recorded full-scale run (``vaelab.lab.records``) and of the execution
that just ran, each with its standard error where it has one. Only the recorded value is judged,
against the paper's number, its ``tolerance`` and 2 s.e.; the verdicts are the words of
``VERDICTS``, defined once for every table and the results page. Differences between two models on
the same test images use ``paired_difference`` (the standard error of the per-image differences,
not of each mean) and claimed orderings ``ordering_verdict``. The records' provenance goes in a
caption or footnote (``provenance``); where no record exists, ``no_record_note`` gives the command
that makes one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

__all__ = ["Metric", "provenance", "provenance_of_many", "comparison_table", "no_record_note", "record_value",
           "paired_difference", "verdict", "VERDICTS", "SYMBOLS", "marked", "ordering_verdict"]


@dataclass
class Metric:
    """One row of the comparison.

    ``name``: what is measured, with its unit; ``paper``: the paper's value (None: not reported)
    and ``source``: where the paper gives it; ``full`` / ``full_se``: the recorded full-scale value
    and its standard error; ``build`` / ``build_se``: this execution's value and its standard error;
    ``tolerance``: how far from the paper still counts as reproduced besides 2 s.e. (None: 0).
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
    """(difference, verdict) of a metric against the paper, in the words of ``VERDICTS``.

    Judged on the recorded full-scale value only: "reproduced" where it lies within the metric's
    ``tolerance`` plus 2 s.e. of the paper's number (2 s.e. where no tolerance is stated), "not
    reproduced" beyond that; "not run yet" where only this build has a value (its difference is
    shown, marked, and not judged); "not reported" where the paper gives no number."""
    if m.paper is None:
        return "—", "not reported"
    if m.full is None:
        if m.build is None:
            return "—", "not run yet"
        return f"{m.build - m.paper:+,.{m.digits}f} (this build)", "not run yet"
    diff = m.full - m.paper
    slack = 2 * m.full_se if m.full_se is not None else 0.0
    within = abs(diff) <= (m.tolerance or 0.0) + slack
    return f"{diff:+,.{m.digits}f}", "reproduced" if within else "not reproduced"


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


def comparison_table(metrics: list[Metric], record: dict | list[dict] | None):
    """DataFrame: metric | paper | full scale | this build | difference | verdict (``verdict``'s
    words). A full-scale value counts only with its record (``record``: one, several, or None);
    the record's provenance belongs in the table's caption or a footnote
    (``provenance``/``provenance_of_many``), not in its headers."""
    import pandas as pd

    recorded = bool(record)
    rows = []
    for m in metrics:
        if not recorded:  # a full-scale value without its record is not shown or judged
            m = replace(m, full=None, full_se=None)
        paper = "—" if m.paper is None else _fmt(m.paper, m.digits)
        if m.paper is not None and m.source:
            paper = f"{paper} ({m.source})"
        full = "—" if m.full is None else _fmt(m.full, m.digits, m.full_se)
        build = "—" if m.build is None else _fmt(m.build, m.digits, m.build_se)
        diff, judged = verdict(m)
        rows.append({"metric": m.name, "paper": paper, "full scale": full, "this build": build,
                     "difference": diff, "verdict": judged})
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


# One symbol per verdict, for a verdict column read at a glance (the results page).
SYMBOLS = {"reproduced": "✓", "within noise": "≈", "not reproduced": "✗", "not reported": "–",
           "not run yet": "…"}


def marked(verdict: str) -> str:
    """A verdict with its symbol in front ("✓ reproduced"); a word outside ``VERDICTS`` is refused."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {list(VERDICTS)}, got {verdict!r}")
    return f"{SYMBOLS[verdict]} {verdict}"


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
