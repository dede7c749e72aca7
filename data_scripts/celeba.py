"""Fetch, verify and cache the data set: `python -m data_scripts.celeba` (see `vaelab.datasets.celeba`)."""
from vaelab.datasets.celeba import main

if __name__ == "__main__":
    raise SystemExit(main())
