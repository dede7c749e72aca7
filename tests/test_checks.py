"""vaelab.lab.checks: papermill's values converted or refused with a message naming the parameter and the fix."""
import re

import numpy as np
import pytest

import vaelab.lab.checks
from vaelab.lab.checks import (ParameterError, check_bool, check_choice, check_choice_list, check_device,
                           check_float, check_int, check_number_dict, check_number_list, check_path,
                           replace_params)


def message(fn, *args, **kw) -> str:
    with pytest.raises(ParameterError) as info:
        fn(*args, **kw)
    assert isinstance(info.value, ValueError)
    return str(info.value)


# ----------------------------------------------------------------------------- check_int
@pytest.mark.parametrize("value, expected", [(20, 20), (1000.0, 1000), (1e3, 1000), ("20", 20), (" 1e3 ", 1000),
                                             (np.int64(7), 7), (np.float32(8.0), 8), ("1_000", 1000)])
def test_check_int_converts_papermill_values(value, expected):
    out = check_int("n", value, min=1)
    assert out == expected and type(out) is int


def test_check_int_message_names_parameter_value_and_fix():
    assert message(check_int, "latent_dim", 0, min=1, example=20) == (
        "latent_dim must be an integer >= 1, got 0: pass -p latent_dim 20")
    assert message(check_int, "train_size", 70_000, min=1, max=50_000, example=10_000) == (
        "train_size must be an integer in [1, 50000], got 70000: pass -p train_size 10000")
    assert message(check_int, "k", 7, max=5) == "k must be an integer <= 5, got 7: pass -p k 5"


def test_check_int_refuses_non_integral_numbers_and_suggests_the_nearest():
    text = message(check_int, "train_size", 1e3 + 0.5, min=1, max=50_000, example=10_000)
    assert text == "train_size must be an integer in [1, 50000], got 1000.5 (not a whole number): pass -p train_size 1000"
    # the nearest integer out of range: the example instead
    assert message(check_int, "n", 0.4, min=1, example=3).endswith("(not a whole number): pass -p n 3")
    assert "got '2.5' (not a whole number)" in message(check_int, "n", "2.5", min=1)


@pytest.mark.parametrize("value", [True, False, "ten", None, [1], float("nan"), float("inf"), "", {"a": 1}])
def test_check_int_refuses_other_types(value):
    text = message(check_int, "epochs", value, min=1, example=10)
    assert text.startswith("epochs must be an integer >= 1, got ") and text.endswith(": pass -p epochs 10")
    assert repr(value) in text


def test_check_int_none_ok_and_note():
    assert check_int("pend_train_size", None, min=1, none_ok=True) is None
    assert check_int("pend_train_size", "None", min=1, none_ok=True) is None
    assert check_int("pend_train_size", 640.0, min=1, none_ok=True) == 640
    assert message(check_int, "pend_train_size", 0, min=1, max=12_000, none_ok=True, example=12_000,
                   note="of 12,000") == ("pend_train_size must be None or an integer in [1, 12000] (of 12,000), "
                                         "got 0: pass -p pend_train_size 12000")
    with pytest.raises(ParameterError, match="got None"):
        check_int("epochs", None, min=1)


def test_check_int_default_example_is_a_valid_value():
    assert message(check_int, "n", -3, min=2).endswith("pass -p n 2")
    assert message(check_int, "seed", "x").endswith("pass -p seed 0")
    assert check_int("n", 2, min=2) == 2 and check_int("seed", 0) == 0


# ----------------------------------------------------------------------------- check_float
@pytest.mark.parametrize("value, expected", [(1, 1.0), (0.5, 0.5), ("1e-3", 1e-3), (np.float32(0.25), 0.25)])
def test_check_float_converts(value, expected):
    out = check_float("lr", value, min=0, min_open=True)
    assert out == expected and type(out) is float


def test_check_float_ranges_and_messages():
    assert message(check_float, "lam_min", 0, min=0, min_open=True, example=0.01) == (
        "lam_min must be a number > 0, got 0: pass -p lam_min 0.01")
    assert message(check_float, "lam_min", -1.0, min=0, min_open=True, example=0.01,
                   note="log-spaced") == "lam_min must be a number > 0 (log-spaced), got -1.0: pass -p lam_min 0.01"
    assert message(check_float, "alpha", 1.0, min=0, max=1, max_open=True, example=0.99) == (
        "alpha must be a number in [0, 1), got 1.0: pass -p alpha 0.99")
    assert check_float("alpha", 0, min=0, max=1, max_open=True) == 0.0
    assert check_float("wae_lam", 0, min=0) == 0.0
    for bad in (True, "fast", float("nan"), float("inf"), None, [1.0]):
        assert message(check_float, "lr", bad, min=0, min_open=True, example=1e-3).endswith(
            f"got {bad!r}: pass -p lr 0.001")


def test_check_float_default_examples_are_valid():
    for kw in ({"min": 0, "min_open": True}, {"min": 0, "max": 1, "max_open": True}, {"max": 2, "max_open": True},
               {}, {"min": 3}):
        example = float(message(check_float, "x", "bad", **kw).rsplit(" ", 1)[1])
        assert check_float("x", example, **kw) == example


# ----------------------------------------------------------------------------- check_bool
@pytest.mark.parametrize("value, expected", [(True, True), (False, False), ("false", False), ("FALSE", False),
                                             ("True", True), ("1", True), ("0", False), (1, True), (0, False),
                                             (" true ", True), (np.bool_(True), True)])
def test_check_bool_converts(value, expected):
    assert check_bool("resume", value) is expected


@pytest.mark.parametrize("value", ["yes", "no", "", 2, -1, None, 0.5, "f", [True]])
def test_check_bool_refuses_everything_else(value):
    assert message(check_bool, "resume", value) == (
        f"resume must be True or False, got {value!r}: pass -p resume True or -p resume False")


# ----------------------------------------------------------------------------- check_choice
def test_check_choice():
    assert check_choice("form", "code", ("exact", "code")) == "code"
    assert check_choice("precision", "BF16", ("fp32", "bf16")) == "bf16"
    assert message(check_choice, "form", "fast", ("exact", "code")) == (
        "form must be one of 'exact', 'code', got 'fast': pass -p form exact")
    assert "got 1" in message(check_choice, "form", 1, ("exact", "code"))


# ----------------------------------------------------------------------------- lists
@pytest.mark.parametrize("value, expected", [([1, 2], [1.0, 2.0]), ((0.5,), [0.5]), ("[1,2]", [1.0, 2.0]),
                                             ("(0.1, 10)", [0.1, 10.0]), ("[1e-1, 1]", [0.1, 1.0]),
                                             (np.array([1.0, 3.0]), [1.0, 3.0]), (["1", 2.5], [1.0, 2.5])])
def test_check_number_list_parses_lists_and_literals(value, expected):
    out = check_number_list("lam", value, min=0, min_open=True)
    assert out == expected and all(type(v) is float for v in out)


def test_check_number_list_scalars_and_integers():
    assert check_number_list("lam", 1.0, scalar=True) == [1.0]
    assert check_number_list("lam", "0.5", scalar=True) == [0.5]
    assert check_number_list("k_grid", "[1, 10.0, 1e2]", integer=True, min=1) == [1, 10, 100]
    text = message(check_number_list, "lam", 1.0, example=[0.1, 1.0])
    assert text == 'lam must be a list of numbers, got 1.0: pass -y "lam: [0.1, 1.0]"'


def test_check_number_list_never_iterates_a_string():
    # the celeba bug: -p lam '[1,2]' arrived as a string and was iterated character by character
    assert check_number_list("lam", "[1,2]", min=0, min_open=True, scalar=True) == [1.0, 2.0]
    text = message(check_number_list, "lam", "1,2,x", min=0, min_open=True, scalar=True,
                   example=[0.1, 1.0, 10.0])
    assert text.startswith("lam must be a number or a list of numbers > 0, got '1,2,x'")
    assert text.endswith(': pass -y "lam: [0.1, 1.0, 10.0]"')


def test_check_number_list_messages_name_the_bad_item():
    assert message(check_number_list, "lam", "[1, -2]", min=0, min_open=True, example=[1.0]) == (
        "lam must be a list of numbers > 0, got '[1, -2]' (item 1 is -2): pass -y \"lam: [1.0]\"")
    assert "(item 0 is 1.5)" in message(check_number_list, "k_grid", [1.5], integer=True, min=1)
    assert "(0 item(s))" in message(check_number_list, "lam", [], min=0)
    assert "at least 2 of them" in message(check_number_list, "lam", [1], min_len=2)
    assert "(item 0 is True)" in message(check_number_list, "lam", [True])
    # literal_eval, never eval
    assert "got '__import__(\"os\")'" in message(check_number_list, "lam", '__import__("os")')


def test_check_choice_list():
    assert check_choice_list("model", "vae", ("hebae", "vae", "wae")) == ["vae"]
    assert check_choice_list("model", ["wae", "VAE"], ("hebae", "vae", "wae")) == ["wae", "vae"]
    assert check_choice_list("model", '["hebae", "wae"]', ("hebae", "vae", "wae")) == ["hebae", "wae"]
    text = message(check_choice_list, "model", ["vae", "gan"], ("hebae", "vae", "wae"))
    assert text == ("model must be one of 'hebae', 'vae', 'wae' or a list of them, got ['vae', 'gan'] "
                    "(item 1 is 'gan'): pass -y \"model: ['hebae', 'vae', 'wae']\"")
    assert "(a name is repeated)" in message(check_choice_list, "model", ["vae", "vae"], ("vae", "wae"))
    assert "got []" in message(check_choice_list, "model", [], ("vae",))


def test_check_number_dict():
    assert check_number_dict("lr_divisors", {30: 2, 50: 5}, key_min=1, value_min=0, value_min_open=True) == {
        30: 2.0, 50: 5.0}
    assert check_number_dict("lr_divisors", '{"30": 2}', key_min=1) == {30: 2.0}  # JSON's keys are strings
    assert check_number_dict("lr_divisors", "{30: 2, 50: 5}") == {30: 2.0, 50: 5.0}
    assert message(check_number_dict, "lr_divisors", {0: 2}, key_min=1, value_min=0, value_min_open=True,
                   example={30: 2}) == ("lr_divisors must be a dict of integers >= 1 to numbers > 0, got {0: 2} "
                                        "(key 0): pass -y \"lr_divisors: {30: 2}\"")
    assert "(value -1 of key 30)" in message(check_number_dict, "lr_divisors", {30: -1}, value_min=0)
    assert "got [30, 2]" in message(check_number_dict, "lr_divisors", [30, 2])


# ----------------------------------------------------------------------------- paths and devices
def test_check_path_and_device(tmp_path):
    assert check_path("out_dir", "runs/x") == "runs/x"
    assert check_path("out_dir", tmp_path) == str(tmp_path)
    assert check_path("data_root", None, none_ok=True) is None
    assert check_path("data_root", "None", none_ok=True) is None
    assert message(check_path, "out_dir", "", example="runs/01") == (
        "out_dir must be a path (a non-empty string), got '': pass -p out_dir runs/01")
    assert "None or a path" in message(check_path, "data_root", 3, none_ok=True)
    for ok in ("auto", "cpu", "cuda", "cuda:1", "mps", "CPU"):
        assert check_device("device", ok) == ok.lower()
    assert message(check_device, "device", "gpu") == (
        "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu': pass -p device auto")
    assert "got None" in message(check_device, "device", None)


# ----------------------------------------------------------------------------- smoke replacements
def test_replace_params_sets_and_prints_old_and_new(capsys):
    ns = {"epochs": 10, "train_size": 50_000, "out_dir": "runs/00", "resume": True, "lr": 1e-3}
    changed = replace_params(ns, epochs=1, train_size=2_000, out_dir="runs/00/smoke", resume=False, lr=1e-3)
    assert ns == {"epochs": 1, "train_size": 2_000, "out_dir": "runs/00/smoke", "resume": False, "lr": 1e-3}
    assert changed == {"epochs": (10, 1), "train_size": (50_000, 2_000), "out_dir": ("runs/00", "runs/00/smoke"),
                       "resume": (True, False)}
    out = capsys.readouterr().out
    assert out == ("smoke scale replaces: epochs 10 -> 1, train_size 50000 -> 2000,\n"
                   "  out_dir 'runs/00' -> 'runs/00/smoke', resume True -> False\n")  # 100 characters a line


def test_replace_params_is_compact_and_refuses_unknown_names(capsys):
    ns = {"lam": [0.1, 1.0, 10.0], "path": "x" * 80, "epochs": 3}
    replace_params(ns, "tiny", lam=[1.0], path="y" * 80, epochs=3)
    out = capsys.readouterr().out
    assert out.startswith("tiny replaces: lam [0.1, 1.0, 10.0] -> [1.0],\n  path 'xxx")
    assert "..." in out and "epochs" not in out  # unchanged values are not listed
    assert all(len(line) <= 100 for line in out.splitlines())
    with pytest.raises(KeyError, match="epoch"):
        replace_params(ns, epoch=1)
    assert replace_params(ns, epochs=3) == {} and capsys.readouterr().out == ""
    replace_params(ns, quiet=True, epochs=4)
    assert ns["epochs"] == 4 and capsys.readouterr().out == ""


def test_documented_in_the_lab():
    assert "``checks``" in vaelab.lab.__doc__
    for name in vaelab.lab.checks.__all__:
        assert getattr(vaelab.lab.checks, name).__doc__, f"{name} has no docstring"


def test_messages_follow_one_pattern():
    pattern = re.compile(r"^(\w+) must be .+, got .+: pass -[py] .+$")
    for fn, args in ((check_int, ("a", "x")), (check_float, ("b", "x")), (check_choice, ("c", "x", ("y",))),
                     (check_number_list, ("d", "x")), (check_path, ("e", 1)), (check_device, ("f", "x")),
                     (check_number_dict, ("g", "x")), (check_choice_list, ("h", 1, ("y",)))):
        text = message(fn, *args)
        assert pattern.match(text) and pattern.match(text).group(1) == args[0], text
