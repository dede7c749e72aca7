#!/usr/bin/env bash
# Install minepy (MIC/TIC, Reshef et al. 2011) into the Python given as $1 (default: python).
# minepy 1.2.6 ships a C file generated for old Python/numpy and a setup.py that imports
# pkg_resources; on Python 3.11 / numpy 2 it does not build as published. This script
# does nothing when minepy already imports; otherwise it tries the plain install and,
# only when that fails, patches the sdist (sysconfig.get_platform, NPY_ARRAY_OWNDATA,
# regenerate mine.c with Cython 3) and builds a wheel of it in a throwaway build environment
# (setuptools < 81, Cython 3, the target's own numpy version), then installs that wheel alone.
# The target environment keeps its setuptools and gets no Cython: nothing but minepy is
# installed into it (tests/test_setup.py).
set -euo pipefail
PY=${1:-python}
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac  # absolute: we cd below
if "$PY" -c "import minepy" 2>/dev/null; then exit 0; fi
if "$PY" -m pip install -q --no-deps --only-binary :all: minepy==1.2.6 2>/dev/null; then exit 0; fi
numpy_version=$("$PY" -c "import numpy; print(numpy.__version__)" 2>/dev/null) || {
  echo "install_minepy.sh: numpy does not import in $PY: install numpy first (minepy is built against it)" >&2
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m venv "$work/build-env"
BPY="$work/build-env/bin/python"
"$BPY" -m pip install -q "Cython>=3" "setuptools<81" wheel "numpy==$numpy_version"
"$BPY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: -d "$work" minepy==1.2.6
tar -xzf "$work"/minepy-1.2.6.tar.gz -C "$work"
src="$work/minepy-1.2.6"
sed -i 's/from pkg_resources import get_platform/from sysconfig import get_platform/' "$src/setup.py"
sed -i 's/np\.NPY_OWNDATA/np.NPY_ARRAY_OWNDATA/g' "$src/minepy/mine.pyx"
rm -f "$src/minepy/mine.c"
(cd "$src" && "$BPY" -m cython -3 minepy/mine.pyx)
"$BPY" -m pip wheel -q --no-build-isolation --no-deps -w "$work/dist" "$src"
"$PY" -m pip install -q --no-deps "$work"/dist/minepy-1.2.6-*.whl
"$PY" -c "from minepy import MINE; m = MINE(alpha=0.6, c=15); import numpy as np; x = np.linspace(0, 1, 200); m.compute_score(x, x); assert abs(m.mic() - 1) < 1e-9, m.mic()"
echo "minepy built from patched source"
