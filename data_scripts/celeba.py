"""Fetch, verify and cache the data set: `python -m data_scripts.celeba` (see `vaelab.data.celeba`)."""
from vaelab.data.celeba import main

if __name__ == "__main__":
    raise SystemExit(main())
