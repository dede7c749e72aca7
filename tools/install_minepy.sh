#!/usr/bin/env bash
# Install minepy (MIC/TIC, Reshef et al. 2011) into the Python given as $1 (default: python).
# minepy 1.2.6 ships a C file generated for old Python/numpy and a setup.py that imports
# pkg_resources; on Python 3.11 / numpy 2 it does not build as published. This script
# does nothing when minepy already imports; otherwise it tries the plain install and,
# only when that fails, patches the sdist (sysconfig.get_platform, NPY_ARRAY_OWNDATA,
# regenerate mine.c with Cython 3) and builds it without build isolation.
set -euo pipefail
PY=${1:-python}
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac  # absolute: we cd below
if "$PY" -c "import minepy" 2>/dev/null; then exit 0; fi
if "$PY" -m pip install -q --no-deps --only-binary :all: minepy==1.2.6 2>/dev/null; then exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip install -q "Cython>=3" "setuptools<81" wheel numpy
"$PY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: -d "$work" minepy==1.2.6
tar -xzf "$work"/minepy-1.2.6.tar.gz -C "$work"
src="$work/minepy-1.2.6"
sed -i 's/from pkg_resources import get_platform/from sysconfig import get_platform/' "$src/setup.py"
sed -i 's/np\.NPY_OWNDATA/np.NPY_ARRAY_OWNDATA/g' "$src/minepy/mine.pyx"
rm -f "$src/minepy/mine.c"
(cd "$src" && "$PY" -m cython -3 minepy/mine.pyx)
"$PY" -m pip install -q --no-build-isolation --no-deps "$src"
"$PY" -c "from minepy import MINE; m = MINE(alpha=0.6, c=15); import numpy as np; x = np.linspace(0, 1, 200); m.compute_score(x, x); assert abs(m.mic() - 1) < 1e-9, m.mic()"
echo "minepy built from patched source"
