"""Fetch, verify and cache the data set: `python -m data_scripts.pendulum` (see `vaelab.data.pendulum`)."""
from vaelab.data.pendulum import main

if __name__ == "__main__":
    raise SystemExit(main())
