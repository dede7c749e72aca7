"""Set-up scripts that fetch, build and verify the data sets and weights the book needs.

Each is a thin command over the package (``vaelab.data``, which does the work and which the
chapters import): ``python -m data_scripts.mnist`` is ``python -m vaelab.data.mnist``. The
scripts import the package, never the other way round.
"""
