"""What the set-up installs works: minepy (built from patched source where needed, leaving the environment's
setuptools as it was), pinned torch."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def test_minepy_mic_of_a_function_is_one_and_of_noise_is_small():
    from minepy import MINE

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 500)
    mine = MINE(alpha=0.6, c=15)
    mine.compute_score(x, np.sin(6 * np.pi * x))  # a noiseless, non-monotone function
    assert mine.mic() > 0.99
    mine.compute_score(x, rng.uniform(0, 1, 500))
    assert mine.mic() < 0.2
    assert 0 < mine.tic() < 50


def test_constraints_pin_cpu_safe_torch_and_pyproject_stays_loose():
    root = Path(__file__).resolve().parents[1]
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (root / "constraints.txt").read_text(), re.M))
    assert pins["torch"] == "2.13.0" and pins["torchvision"] == "0.28.0"
    deps = (root / "pyproject.toml").read_text()
    assert '"torch>=' in deps and "torch==" not in deps


FAKE_PYTHON = r'''#!{python}
"""A stand-in interpreter for tools/install_minepy.sh: logs each call, plays each step's part."""
import json, os, sys, tarfile, io
from pathlib import Path

me = Path(sys.argv[0])
role = "build" if "build-env" in str(me) else "target"
args = sys.argv[1:]
with open({log!r}, "a") as f:
    f.write(json.dumps([role, args]) + "\n")
if args[:1] == ["-c"]:
    code = args[1]
    if code == "import minepy":
        sys.exit(1)  # not installed yet
    if "numpy.__version__" in code:
        print("2.0.0")
    sys.exit(0)
if args[:2] == ["-m", "venv"]:
    bin_dir = Path(args[2]) / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(me.read_text())
    (bin_dir / "python").chmod(0o755)
    sys.exit(0)
if args[:2] == ["-m", "pip"]:
    if "--only-binary" in args:
        sys.exit(1)  # no wheel of minepy for this Python
    if "download" in args:
        with tarfile.open(Path(args[args.index("-d") + 1]) / "minepy-1.2.6.tar.gz", "w:gz") as tar:
            for name, text in [("setup.py", "from pkg_resources import get_platform\n"),
                               ("minepy/mine.pyx", "np.NPY_OWNDATA\n"), ("minepy/mine.c", "/* old */\n")]:
                data = text.encode()
                info = tarfile.TarInfo(f"minepy-1.2.6/{{name}}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    if "wheel" in args[2:3]:
        dist = Path(args[args.index("-w") + 1])
        dist.mkdir(parents=True, exist_ok=True)
        (dist / "minepy-1.2.6-cp311-cp311-linux_x86_64.whl").write_text("")
    sys.exit(0)
sys.exit(0)  # -m cython
'''


def test_install_minepy_installs_nothing_but_minepy_into_the_target(tmp_path):
    """The build's own needs (setuptools < 81, Cython, wheel, numpy) go into a throwaway build environment;
    the target gets only minepy's wheel, with --no-deps, so its setuptools stays as it was."""
    log = tmp_path / "calls.jsonl"
    fake = tmp_path / "target" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(FAKE_PYTHON.format(python=sys.executable, log=str(log)))
    fake.chmod(0o755)
    script = Path(__file__).resolve().parents[1] / "tools" / "install_minepy.sh"
    run = subprocess.run(["bash", str(script), str(fake)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    target_installs = [args for role, args in calls if role == "target" and args[:3] == ["-m", "pip", "install"]]
    assert len(target_installs) == 2, target_installs
    assert target_installs[0][-1] == "minepy==1.2.6" and "--only-binary" in target_installs[0]
    assert "--no-deps" in target_installs[1] and target_installs[1][-1].endswith("minepy-1.2.6-cp311-cp311-linux_x86_64.whl")
    assert not any(re.search(r"setuptools|cython|^wheel$|numpy", a, re.I) for call in target_installs for a in call)
    build_installs = [args for role, args in calls if role == "build" and args[:3] == ["-m", "pip", "install"]]
    assert build_installs and {"setuptools<81", "numpy==2.0.0"} <= set(build_installs[0])  # the target's numpy
    assert ["build", ["-m", "cython", "-3", "minepy/mine.pyx"]] in calls


def _floor_pins():
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("floor_pins", root / "tools" / "floor_pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.floor_pins


def test_make_floor_installs_the_floors_pyproject_declares_and_the_readme_states(tmp_path):
    root = Path(__file__).resolve().parents[1]
    floor_pins = _floor_pins()
    pins = dict(p.split("==") for p in floor_pins(root / "pyproject.toml"))
    # Below these the book does not work: torch.get_autocast_dtype (2.4), FlopCounterMode on transposed
    # convolutions (about 2.3), numpy 2 pulled in beside a torch built for numpy 1.
    assert tuple(map(int, pins["torch"].split(".")[:2])) >= (2, 4)
    assert {"torch", "torchvision", "numpy", "pandas", "scipy", "ray", "pytest", "papermill"} <= set(pins)
    section = (root / "README.md").read_text().split("## Using vaelab elsewhere", 1)[1].split("\n## ", 1)[0]
    for name in ("torch", "torchvision", "numpy", "pandas"):
        assert f"{name} {pins[name]}" in section, f"README's 'Using vaelab elsewhere' does not state {name} {pins[name]}"
    assert "make floor" in section and "make newest" in section
    makefile = (root / "Makefile").read_text()
    assert "bash tools/check_env.sh floor" in makefile and "bash tools/check_env.sh newest" in makefile
    # A requirement without a floor cannot be tested at its floor: refused with the fix.
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[project]\nname = "x"\ndependencies = ["torch"]\n'
                   '[project.optional-dependencies]\nbook = []\ntest = []\nsweep = []\n')
    with pytest.raises(SystemExit, match="'torch' states no floor"):
        floor_pins(bad)
