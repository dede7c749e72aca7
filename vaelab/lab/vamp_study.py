"""The VampPrior paper's Table 1 against the study's records (chapter 03 and its study page 03b).

``recorded_results(records)`` gathers the study's records (``load_records("03b_vampprior_study")``, which
include the two that chapter 03 made of the one-level pair before the study existed) by model;
``table1`` and ``orderings`` lay out the paper's log-likelihoods and its orderings beside the recorded
values and, in the lesson, beside the values of the execution that just ran. Verdicts use the book's
vocabulary (``vaelab.lab.compare.VERDICTS``): a recorded value within two of its standard errors of the
paper's is "reproduced"; an ordering is judged by ``ordering_verdict``; a model without a record is "not
run yet". The records keep no per-image values, so a recorded difference combines the two means'
standard errors (a conservative test); the lesson's own differences are paired image by image.
"""
from __future__ import annotations

import math

from vaelab.experiments.vamp_runs import MODELS, ORDERINGS, PAPER_LL, paper_difference
from vaelab.lab.compare import ordering_verdict, paired_difference

__all__ = ["recorded_results", "pm", "value_verdict", "table1", "orderings"]


def recorded_results(records: list[dict]) -> dict[str, dict]:
    """Model label -> the results of its record (``tables_1_2``: its Table 1 row; the study's records
    also hold ``active_units``, ``best_epoch`` and, for a learned VampPrior, ``pseudo_inputs``)."""
    return {MODELS[r["results"]["run"]]: r["results"] for r in records}


def pm(value: float | None, se: float | None, sign: str = "") -> str:
    """'value ± s.e.' with two decimals (``sign="+"`` writes the sign of a difference), or a dash."""
    return "—" if value is None else f"{value:{sign}.2f} ± {se:.2f}"


def value_verdict(paper: float | None, row: dict | None) -> str:
    """The verdict on a recorded log-likelihood ``row`` (``test_ll``, ``test_ll_se``) against the paper's."""
    if paper is None:
        return "not reported"
    if row is None:
        return "not run yet"
    return "reproduced" if abs(row["test_ll"] - paper) <= 2 * row["test_ll_se"] else "not reproduced"


def _row(results: dict | None) -> dict | None:
    return None if results is None else results["tables_1_2"][0]


def table1(recorded: dict[str, dict], build: dict[str, dict] | None = None) -> list[dict]:
    """One row per model of the paper's tables: the paper's value and where it stands, the recorded value
    ± s.e. and its verdict, and (``build``: label -> this execution's row) this build's value ± s.e."""
    out = []
    for name, (paper, where) in PAPER_LL.items():
        rec = _row(recorded.get(name))
        row = {"model": name, "paper": "—" if paper is None else f"{paper:.2f} ({where})",
               "full scale": pm(*((rec["test_ll"], rec["test_ll_se"]) if rec else (None, None))),
               "verdict": value_verdict(paper, rec)}
        if build is not None:
            row["this build"] = pm(build[name]["test_ll"], build[name]["test_ll_se"])
        out.append(row)
    return out


def orderings(recorded: dict[str, dict], build: dict[str, dict] | None = None) -> list[dict]:
    """One row per ordering the paper claims (A above B): the paper's difference and where the paper gives
    it, the recorded one ± s.e. (unpaired) and its verdict, and with ``build`` (rows holding the per-image ``ll_images``) this
    build's paired difference and its verdict at this scale (also as numbers: ``d``, ``se``)."""
    out = []
    for a, b, where, label in ORDERINGS:
        ra, rb = _row(recorded.get(a)), _row(recorded.get(b))
        full_d = full_se = None
        if ra and rb:
            full_d, full_se = ra["test_ll"] - rb["test_ll"], math.hypot(ra["test_ll_se"], rb["test_ll_se"])
        row = {"difference": label, "paper": f"{paper_difference(a, b):+.2f}", "where": where,
               "full scale": pm(full_d, full_se, "+"),
               "verdict": "not run yet" if full_d is None else ordering_verdict(full_d, full_se, 1)}
        if build is not None:
            d, se = paired_difference(build[a]["ll_images"], build[b]["ll_images"])
            row.update({"this build": pm(d, se, "+"), "at this scale": ordering_verdict(d, se, 1),
                        "a": a, "b": b, "d": d, "se": se})
        out.append(row)
    return out
