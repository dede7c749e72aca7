"""The book's lab: chapter parameters, glue, comparison with the papers, plots, records and sweeps.

Nothing in the library (the other subpackages) imports it. It needs the ``book`` extra (pandas, myst-nb
through jupyter-book) and, for ``sweep``, the ``sweep`` extra (Ray, papermill).

Modules:

* ``chapter``: a chapter's plumbing behind two calls, ``setup`` and ``Chapter.finish``; the
  chapters' parameter specs are in the subpackage ``chapters``, one module per page
* ``checks``: a chapter's parameters checked before any work, the smoke cell's replacements printed
* ``prose``: glue: numbers into the page's prose
* ``hebae_study``: HEBAE's MNIST claims measured on the study's runs, and its figures (chapter 02)
* ``compare``: tables against the papers' numbers and the records
* ``tables``: tables set for the page (caption, alignment)
* ``plots``: figures at the column's width
* ``results``: a run's results.json
* ``records``: committed records of finished sweep points, and their loader
* ``sweep``: a chapter's parameter grid as Ray tasks
* ``speed``: peak rates for the benchmarks
* ``vamp_study``: the VampPrior paper's Table 1 against the study's records (chapter 03)
"""
