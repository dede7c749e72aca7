"""The toy chapter here is executed by tests/test_sweep.py and tests/test_records.py, not by nbval."""
collect_ignore_glob = ["*.ipynb"]
