"""What the set-up installs works: minepy (built from patched source where needed), pinned torch."""
import re
from pathlib import Path

import numpy as np


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
