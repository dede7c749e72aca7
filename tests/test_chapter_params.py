"""Every chapter checks all its parameters right after its parameters and smoke cells, before any data.

The chapters are not run whole (too slow): the cells up to the parameter check are taken from the
percent source with jupytext and executed in a fresh namespace, with a bad value injected after the
parameters cell as papermill does (``-p train_size 1e3`` arrives as 1000.0, ``-p lam '[1,2]'`` as a
string). Data loaders and the training loop are replaced by functions that fail the test, so a check
that came after them, or a cell that loads data before the check, shows up here.
"""
from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import pytest

import vaelab
import vaelab.data
import vaelab.training.train
from vaelab.data import celeba
from vaelab.lab.chapter import spec_of
from vaelab.lab.checks import ParameterError

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
# The results page and the records appendix train nothing and take no parameters: they read the
# records (the results page also pastes the chapters' glued numbers). Every other page is a chapter
# with a parameters cell.
SUMMARY_PAGES = {"results", "records"}
CHAPTERS = sorted(p.stem for p in BOOK.glob("*.py") if p.stem not in SUMMARY_PAGES)
LOADERS = ("load_dataset(", "fit(", "make_fake_celeba(", "celeba.prepare(", "celeba.load(", "train_classifier(",
           "np.load(", "torch.load(")


def split_cells(name: str) -> tuple[list[str], str, list[str]]:
    """(cells before the parameters cell, parameters cell, the cells that check the parameters) of a
    chapter's code: the set-up cell (``setup(globals(), ...)``), or, in a page not yet moved to it, the
    smoke cell and the check cell."""
    cells = [c for c in jupytext.read(BOOK / f"{name}.py").cells if c.cell_type == "code"]
    i = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    after = [cells[i + 1].source] if uses_setup(cells[i + 1].source) else [cells[i + 1].source, cells[i + 2].source]
    return [c.source for c in cells[:i]], cells[i].source, after


def uses_setup(source: str) -> bool:
    return "setup(globals()" in source


def parameter_names(source: str) -> list[str]:
    """Every name the parameters cell assigns (``a, b = 1, 2`` gives both)."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                elts = target.elts if isinstance(target, ast.Tuple) else [target]
                names += [e.id for e in elts if isinstance(e, ast.Name)]
    return names


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """Data loaders and training fail the test; the working directory is a temp dir."""
    def forbidden(what):
        def fail(*args, **kwargs):
            raise AssertionError(f"{what} was called before the parameter check")
        return fail

    for module, attr in ((vaelab, "load_dataset"), (vaelab.data, "load_dataset"), (vaelab, "fit"),
                         (vaelab.training.train, "fit"), (celeba, "prepare"), (celeba, "load"), (celeba, "make_fake_celeba")):
        monkeypatch.setattr(module, attr, forbidden(f"{module.__name__}.{attr}"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_until_checks(name: str, params: dict | None = None, *, smoke: bool = False, monkeypatch) -> dict:
    """Execute a chapter's cells up to and including its checks, papermill-style; return the namespace."""
    if smoke:
        monkeypatch.setenv("VAELAB_SMOKE", "1")
    else:
        monkeypatch.delenv("VAELAB_SMOKE", raising=False)
    before, parameters, checks = split_cells(name)
    injected = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in (params or {}).items())
    ns: dict = {"__name__": "__main__"}
    for i, source in enumerate([*before, parameters, injected, *checks]):
        exec(compile(source, f"<book/{name}.py, cell {i}>", "exec"), ns)
    return ns


# ----------------------------------------------------------------------------- structure
@pytest.mark.parametrize("name", CHAPTERS)
def test_parameters_are_checked_right_after_the_parameters_cell(name):
    before, parameters, checks = split_cells(name)
    if uses_setup(checks[0]):
        spec = spec_of(name)
        assert list(spec.params) == parameter_names(parameters), (
            f"book/{name}.py: the parameters cell and vaelab/lab/chapters' spec name different parameters")
    else:
        smoke_cell, check = checks
        assert "is_smoke(" in smoke_cell
        checked = {node.args[0].value for node in ast.walk(ast.parse(check))
                   if isinstance(node, ast.Call) and getattr(node.func, "id", "").startswith("check_")
                   and node.args and isinstance(node.args[0], ast.Constant)}
        missing = [p for p in parameter_names(parameters) if p not in checked]
        assert not missing, f"book/{name}.py: the check cell does not check {missing}"
    for source in (*before, parameters, *checks):
        found = [loader for loader in LOADERS if loader in source]
        assert not found, f"book/{name}.py loads data or trains ({found}) before its parameters are checked"


@pytest.mark.parametrize("name", CHAPTERS)
def test_defaults_pass_their_own_checks(name, no_work, monkeypatch, capsys):
    ns = run_until_checks(name, monkeypatch=monkeypatch)
    _, parameters, _ = split_cells(name)
    defaults: dict = {}
    exec(parameters, defaults)
    for key in parameter_names(parameters):  # same values, same types, except tuples become lists
        value = ns[key]
        assert value == defaults[key] or list(value) == list(defaults[key]), key
    assert "replaces" not in capsys.readouterr().out  # no smoke: nothing replaced


@pytest.mark.parametrize("name", CHAPTERS)
def test_smoke_scale_prints_its_replacements_and_passes_the_checks(name, no_work, monkeypatch, capsys):
    ns = run_until_checks(name, smoke=True, monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert "smoke scale replaces:" in out
    assert " -> " in out and ("epochs " in out or "iterations " in out)
    assert ns["out_dir"].endswith("/smoke") and f"-> {ns['out_dir']!r}" in out.replace("\n  ", " ")
    assert ns["epochs"] <= 2 if "epochs" in ns else ns["iterations"] <= 100


@pytest.mark.parametrize("name", ["01b_collapse_study", "02b_hebae_study", "04b_pendulum_study"])
def test_a_smoke_gather_reads_the_sweeps_directory_as_given(name, no_work, monkeypatch, tmp_path):
    """A smoke sweep's gather step must find the points below --out, not below --out/smoke."""
    ns = run_until_checks(name, {"gather": True, "out_dir": str(tmp_path)}, smoke=True, monkeypatch=monkeypatch)
    assert ns["out_dir"] == str(tmp_path)
    ns = run_until_checks(name, {"gather": False, "out_dir": str(tmp_path)}, smoke=True, monkeypatch=monkeypatch)
    assert ns["out_dir"] == f"{tmp_path}/smoke"


def test_smoke_lines_name_old_and_new_values(no_work, monkeypatch, capsys):
    run_until_checks("00_vae_in_a_few_lines", {"epochs": 7}, smoke=True, monkeypatch=monkeypatch)
    out = capsys.readouterr().out.replace("\n  ", " ")
    assert "epochs 7 -> 1" in out and "train_size 50000 -> 2000" in out and "resume True -> False" in out


# ----------------------------------------------------------------------------- bad values
BAD = [
    # the failures reported in "Runs you can trust"
    ("01_vae_collapse", {"wae_lam": "one"}, "wae_lam must be a number >= 0, got 'one': pass -p wae_lam 1.0"),
    ("01_vae_collapse", {"wae_lam": -1.0}, "wae_lam must be a number >= 0, got -1.0"),
    ("03_vampprior", {"n_pseudo": 0}, "n_pseudo must be an integer in [1, 10000]"),
    ("03_vampprior", {"n_pseudo": 20_000}, "n_pseudo must be an integer in [1, 10000]"),
    ("03_vampprior", {"ll_samples": 0}, "ll_samples must be an integer >= 1, got 0: pass -p ll_samples 5000"),
    ("03_vampprior", {"ll_samples": "many"}, "ll_samples must be an integer >= 1, got 'many'"),
    ("01_vae_collapse", {"lam_min": 0.0}, "lam_min must be a number > 0 (the KL weights are log-spaced), got 0.0"),
    ("01_vae_collapse", {"lam_max": -5.0}, "lam_max must be a number > 0"),
    ("02_hebae", {"lam_min": -0.01}, "lam_min must be a number > 0"),
    ("00_vae_in_a_few_lines", {"train_size": 1e3 + 0.5},
     "train_size must be an integer in [1, 50000] (MNIST's 60,000 training images less 10,000 for validation), "
     "got 1000.5 (not a whole number): pass -p train_size 1000"),
    ("01_vae_collapse", {"train_size": 55_000}, "train_size must be an integer in [1, 50000]"),
    ("00_vae_in_a_few_lines", {"latent_dim": 0}, "latent_dim must be an integer >= 1, got 0: pass -p latent_dim 20"),
    ("01_vae_collapse", {"latent_dim": 0}, "latent_dim must be an integer >= 1, got 0"),
    ("03_vampprior", {"latent_dim": 0}, "latent_dim must be an integer >= 1, got 0"),
    ("celeba", {"latent_dim": 0}, "latent_dim must be an integer >= 1, got 0"),
    ("04_geco_rewo", {"zeta_samples": 0}, "zeta_samples must be an integer >= 1"),
    ("celeba", {"lam": "[1,x]"}, "lam must be a number or a list of numbers > 0, got '[1,x]'"),
    ("celeba", {"lam": "[1, -2]"}, "lam must be a number or a list of numbers > 0, got '[1, -2]' (item 1 is -2)"),
    # types papermill passes as strings
    ("00_vae_in_a_few_lines", {"resume": "maybe"}, "resume must be True or False, got 'maybe'"),
    ("04_geco_rewo", {"resume": "no"}, "resume must be True or False"),
    ("celeba", {"channels_last": "yes"}, "channels_last must be True or False"),
    ("00_vae_in_a_few_lines", {"device": "gpu"}, "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'"),
    ("02_hebae", {"out_dir": ""}, "out_dir must be a path (a non-empty string), got '': pass -p out_dir runs/02_hebae"),
    # ranges and the chapters' own constraints
    ("01_vae_collapse", {"lam_min": 10.0, "lam_max": 1.0}, "lam_min must be <= lam_max"),
    ("01_vae_collapse", {"eval_size": 1}, "eval_size must be an integer in [2, 10000]"),
    ("02_hebae", {"n_lams": 6}, "must hold lambda = 1"),
    ("02_hebae", {"latent_dims": "[2, 0]"}, "latent_dims must be a list of integers >= 1, got '[2, 0]' (item 1 is 0)"),
    ("02_hebae", {"form": "fast"}, "form must be one of 'exact', 'code', got 'fast': pass -p form exact"),
    ("02_hebae", {"batch_size": 16}, "batch_size must be an integer in [21, 10000] (HEBAE's batch covariance"),
    ("02_hebae", {"fid_samples": 20_000}, "fid_samples must be an integer in [2, 10000]"),
    ("03_vampprior", {"k_grid": "(1, 0)"}, "k_grid must be a list of integers >= 1"),
    ("03_vampprior", {"warmup_epochs": 0}, "warmup_epochs must be an integer >= 1"),
    ("03b_vampprior_study", {"run": "vae"}, "run must be one of 'vae_standard', 'vae_vamp'"),
    ("04_geco_rewo", {"alpha": 1.0}, "alpha must be a number in [0, 1), got 1.0: pass -p alpha 0.99"),
    ("04_geco_rewo", {"kappa": 0}, "kappa must be a number > 0"),
    ("04_geco_rewo", {"graph_k": 1000}, "graph_k must be an integer in [1, 999]"),
    ("04_geco_rewo", {"pend_train_size": 20_000}, "pend_train_size must be None or an integer in [1, 12000]"),
    ("04_geco_rewo", {"fm_width": 1}, "fm_width must be an integer >= 2"),
    ("celeba", {"model": "gan"}, "model must be one of 'hebae', 'vae', 'wae' or a list of them, got 'gan'"),
    ("celeba", {"precision": "fp16"}, "precision must be one of 'fp32', 'bf16', got 'fp16'"),
    ("celeba", {"batch_size": 32}, "batch_size must be more than latent_dim=64 for HEBAE"),
    ("celeba", {"lr_divisors": "{30: 0}"}, "lr_divisors must be a dict of integers >= 1 to numbers > 0"),
]


@pytest.mark.parametrize("name, params, expected", BAD, ids=[f"{n}-{'-'.join(p)}" for n, p, _ in BAD])
def test_bad_parameter_stops_at_the_check_with_a_clear_message(name, params, expected, no_work, monkeypatch):
    with pytest.raises(ParameterError) as info:
        run_until_checks(name, params, monkeypatch=monkeypatch)
    text = str(info.value)
    assert expected in text
    assert any(key in text for key in params), f"the message does not name {list(params)}: {text}"
    assert ": pass " in text or ": choose " in text  # the fix


# ----------------------------------------------------------------------------- values converted
GOOD = [
    ("00_vae_in_a_few_lines", {"train_size": 1e3}, {"train_size": 1000}),
    ("01_vae_collapse", {"train_size": 1e3, "valid_size": 0.0}, {"train_size": 1000, "valid_size": 0}),
    ("02_hebae", {"train_size": 1e3}, {"train_size": 1000}),
    ("03_vampprior", {"train_size": 1e3, "n_pseudo": "50"}, {"train_size": 1000, "n_pseudo": 50}),
    ("04_geco_rewo", {"pend_train_size": 1e3, "fm_train_size": 2e3}, {"pend_train_size": 1000, "fm_train_size": 2000}),
    ("00_vae_in_a_few_lines", {"resume": "false"}, {"resume": False}),
    ("03_vampprior", {"resume": "FALSE"}, {"resume": False}),
    ("celeba", {"lam": "[1,2]"}, {"lams": [1.0, 2.0]}),
    ("celeba", {"lam": 0.5, "model": "vae"}, {"lams": [0.5], "models": ["vae"]}),
    ("celeba", {"model": '["wae", "vae"]', "lr_divisors": {"30": "2"}}, {"models": ["wae", "vae"],
                                                                          "lr_divisors": {30: 2.0}}),
    ("celeba", {"resume": "false", "torch_compile": "True"}, {"resume": False, "torch_compile": True}),
    ("02_hebae", {"latent_dims": "[2, 5]", "form": "CODE"}, {"latent_dims": [2, 5], "form": "code"}),
    ("03_vampprior", {"k_grid": "[1, 10]"}, {"k_grid": (1, 10)}),
    ("04_geco_rewo", {"alpha": "0.9", "epochs": "3"}, {"alpha": 0.9, "epochs": 3}),
]


@pytest.mark.parametrize("name, params, expected", GOOD, ids=[f"{n}-{'-'.join(p)}" for n, p, _ in GOOD])
def test_papermill_spellings_are_converted(name, params, expected, no_work, monkeypatch):
    ns = run_until_checks(name, params, monkeypatch=monkeypatch)
    for key, value in expected.items():
        assert ns[key] == value and type(ns[key]) is type(value), (key, ns[key])


# ----------------------------------------------------------------------------- unknown names, smoke after checks
SETUP_CHAPTERS = [n for n in CHAPTERS if uses_setup(split_cells(n)[2][0])]


@pytest.mark.parametrize("name", SETUP_CHAPTERS)
def test_a_misspelt_parameter_is_refused_with_the_known_names(name, no_work, monkeypatch):
    first = parameter_names(split_cells(name)[1])[0]
    with pytest.raises(ParameterError) as info:
        run_until_checks(name, {first + "z": 3}, monkeypatch=monkeypatch)
    text = str(info.value)
    assert f"{first}z (did you mean {first}?)" in text and "its parameters are" in text and first in text


@pytest.mark.parametrize("name", SETUP_CHAPTERS)
def test_smoke_scale_checks_first_and_refuses_an_empty_out_dir(name, no_work, monkeypatch):
    with pytest.raises(ParameterError, match="out_dir must be a path"):
        run_until_checks(name, {"out_dir": ""}, smoke=True, monkeypatch=monkeypatch)
    key = "epochs" if "epochs" in spec_of(name).params else "iterations"
    with pytest.raises(ParameterError, match=f"{key} must be an integer"):
        run_until_checks(name, {key: -1}, smoke=True, monkeypatch=monkeypatch)


def test_smoke_scale_never_widens_what_was_asked(no_work, monkeypatch, capsys):
    ns = run_until_checks("00_vae_in_a_few_lines", {"train_size": 500}, smoke=True, monkeypatch=monkeypatch)
    assert ns["train_size"] == 500 and ns["epochs"] == 1


def test_a_device_check_runs_on_the_resolved_device_before_the_chapter_starts(monkeypatch):
    """Spec.check_device (CelebA: bf16 on this GPU) gets the checked values and the torch device."""
    import torch

    import vaelab.lab.chapter as chapter
    from vaelab.lab.chapter import P, Spec
    from vaelab.lab.checks import ParameterError

    seen = []

    def refuse(values, device):
        seen.append((values["precision"], device))
        raise ParameterError("precision='bf16' is not supported here: use precision='fp32'")

    spec = Spec(name="toy", params={"precision": P("choice", choices=("fp32", "bf16")), "device": P("device")},
                check_device=refuse)
    monkeypatch.setattr(chapter, "spec_of", lambda name: spec)
    with pytest.raises(ParameterError, match="use precision='fp32'"):
        chapter.setup({"precision": "bf16", "device": "cpu"}, "toy")
    assert seen == [("bf16", torch.device("cpu"))]
    from vaelab.lab.chapters.celeba import SPEC
    assert SPEC.check_device is not None  # CelebA checks its precision on the device it will run on
