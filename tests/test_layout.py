"""The package's layout: layers that import only downwards, module maps that are whole, a light ``import vaelab``."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "vaelab"
# lowest first: a subpackage may import only those before it (and itself)
LAYERS = ["core", "data", "objectives", "models", "training", "evaluation", "experiments", "lab"]


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                out.add("(relative)")
            elif node.module and node.module.startswith("vaelab"):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("vaelab"))
    return out


def test_every_module_lives_in_a_layer():
    top = sorted(p.name for p in PKG.glob("*.py") if p.name != "__init__.py")
    assert top == [], f"modules outside the layers: {top}"
    subs = sorted(p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert subs == sorted(LAYERS)


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_downwards(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    bad = []
    for path in sorted((PKG / layer).glob("*.py")):
        for mod in _imports(path):
            if mod == "(relative)":
                bad.append(f"{path.name}: a relative import (write vaelab.<layer>.<module>)")
                continue
            parts = mod.split(".")
            if len(parts) == 1 or parts[1] not in allowed:
                bad.append(f"{path.name} imports {mod}")
    assert not bad, f"vaelab.{layer} may import only {sorted(allowed)}: " + "; ".join(bad)


@pytest.mark.parametrize("layer", LAYERS)
def test_module_map_is_whole(layer):
    """Each subpackage's docstring lists exactly its modules (a map that cannot go stale)."""
    doc = ast.get_docstring(ast.parse((PKG / layer / "__init__.py").read_text()))
    listed = set(re.findall(r"^\* ``(\w+)``", doc, flags=re.M))
    present = {p.stem for p in (PKG / layer).glob("*.py") if p.stem != "__init__"}
    assert listed == present, f"vaelab.{layer}'s docstring lists {sorted(listed)}, the folder holds {sorted(present)}"


def test_top_level_map_names_every_layer():
    doc = ast.get_docstring(ast.parse((PKG / "__init__.py").read_text()))
    layers = doc.split("Subpackages", 1)[1].split("\n\n", 2)[1]
    assert set(re.findall(r"^\* ``(\w+)``:", layers, flags=re.M)) == set(LAYERS)


def test_import_vaelab_is_light():
    """The library a Colab reader installs imports none of the lab's heavy dependencies."""
    code = ("import sys, vaelab, vaelab.core, vaelab.data, vaelab.models, vaelab.objectives, "
            "vaelab.training, vaelab.evaluation, vaelab.experiments\n"
            "print(','.join(sorted(m for m in ('ray', 'papermill', 'myst_nb', 'pandas', 'vaelab.lab') "
            "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import vaelab pulled in: {out.stdout.strip()}"
