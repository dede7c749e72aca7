"""Fetch, verify and cache the data set: `python -m data_scripts.fashion_mnist` (see `vaelab.data.fashion_mnist`)."""
from vaelab.data.fashion_mnist import main

if __name__ == "__main__":
    raise SystemExit(main())
