"""Data root resolution, device choice, smoke switch, torchvision import on a CPU torch."""
import pytest
import torch

from vaelab.core import config
from vaelab.core.compat import import_torchvision


def test_data_root_argument_env_and_default(tmp_path, monkeypatch):
    assert config.data_root(tmp_path / "a") == tmp_path / "a"
    assert (tmp_path / "a").is_dir()
    monkeypatch.setenv("VAELAB_DATA", str(tmp_path / "env"))
    assert config.data_root() == tmp_path / "env"
    monkeypatch.delenv("VAELAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert config.data_root() == tmp_path / "cache" / "vaelab"


def test_data_root_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="VAELAB_DATA"):
        config.data_root(f)


@pytest.mark.parametrize("value,expected", [("", False), ("0", False), ("1", True)])
def test_smoke_switch(monkeypatch, value, expected):
    monkeypatch.setenv("VAELAB_SMOKE", value)
    assert config.is_smoke() is expected


def test_smoke_switch_rejects_unclear_values(monkeypatch):
    monkeypatch.setenv("VAELAB_SMOKE", "yes")
    with pytest.raises(ValueError, match="VAELAB_SMOKE"):
        config.is_smoke()


def test_device_choice():
    assert config.get_device("cpu") == torch.device("cpu")
    assert config.get_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown"):
        config.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            config.get_device("cuda")


def test_torchvision_imports_and_its_python_parts_work():
    tv = import_torchvision()
    grid = tv.utils.make_grid(torch.zeros(4, 1, 5, 5), nrow=2, padding=1)
    assert grid.shape == (3, 13, 13)
