"""Fetch, verify and cache the data set: `python -m data_scripts.mnist` (see `vaelab.data.mnist`)."""
from vaelab.data.mnist import main

if __name__ == "__main__":
    raise SystemExit(main())
