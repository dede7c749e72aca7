"""Prepare the FID Inception weights: `python -m data_scripts.fid_inception` (see
`vaelab.evaluation.fid_weights.prepare`)."""
from vaelab.evaluation.fid_weights import main

if __name__ == "__main__":
    raise SystemExit(main())
