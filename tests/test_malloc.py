"""vaelab.core.malloc: the glibc thresholds are raised once per process, and not against the environment's choice."""
import platform
import subprocess
import sys

import pytest

CODE = "import vaelab.core.malloc as m; print(m.keep_freed_memory(), m.keep_freed_memory())"


def run(env_extra):
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "VAELAB_KEEP"))}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_thresholds_raised_once_unless_opted_out():
    assert run({}) == ["True", "True"]
    assert run({"VAELAB_KEEP_FREED_MEMORY": "0"}) == ["False", "False"]
    assert run({"MALLOC_TRIM_THRESHOLD_": "1000000"}) == ["False", "False"]
