# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The recorded runs
#
# Every full-scale number of the book comes from a record in `reference/` (installed with the package
# as `vaelab/lab/reference/`): one JSON file per run, written by `python -m vaelab.lab.records` from a
# finished run directory, with the run's parameters, results, command, commit, machine and wall time,
# and a checksum that `load_records` verifies before a page reads it ({doc}`operations` says how records
# are made). This page lists them by page: the provenance the chapters' tables leave out of their
# headers.

# %% tags=["remove-cell"]
# Colab: install vaelab (the package this book is built on) when it is missing.
import sys
import subprocess

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vaelab[book] @ git+https://github.com/vaelab/vaelab"], check=True)

# %% tags=["remove-input"]
import pandas as pd
from IPython.display import display

from vaelab.lab.compare import provenance
from vaelab.lab.prose import glue
from vaelab.lab.records import FORMER_PAGES, load_records, reference_root
from vaelab.lab.tables import table

study_of = {old: new for new, olds in FORMER_PAGES.items() for old in olds}
pages = sorted({study_of.get(p.name, p.name) for p in reference_root().iterdir()
                if p.is_dir()})
count = 0
for page in pages:
    records = load_records(page)  # with those its former page made (FORMER_PAGES)
    count += len(records)
    rows = [{"point": ", ".join(f"{k}={v}" for k, v in sorted(r["values"].items()))
             or r["point"],
             "made by": r["chapter"].removeprefix("book/").removesuffix(".ipynb"),
             "provenance": provenance(r)} for r in records]
    noun = "record" if len(rows) == 1 else "records"
    display(table(pd.DataFrame(rows), f"{page}: {len(rows)} {noun}",
                  left=["made by", "provenance"]))
glue("rec_count", count)
glue("rec_pages", len(pages))

# %% [markdown]
# In all, {glue:text}`rec_count` records of {glue:text}`rec_pages` pages. A point recorded before its
# chapter's study page existed keeps the name of the page that made it (the "made by" column); the
# study's loader finds it all the same.
