"""Print the floor of every requirement pyproject.toml declares, one `name==version` a line.

The dependencies and the book, test and sweep extras: each `name>=X` (with or without an upper
bound) becomes `name==X`. tools/check_env.sh floor installs exactly these, so the floor the
project states is the floor it tests (tests/test_setup.py checks the list).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

EXTRAS = ("book", "test", "sweep")


def floor_pins(pyproject: str | Path) -> list[str]:
    project = tomllib.loads(Path(pyproject).read_text(encoding="utf8"))["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for req in reqs:
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req).group(0)
        if name.lower() == project["name"].lower():
            continue  # an extra that names another extra of this package
        floor = re.search(r">=\s*([0-9][^,;\s]*)", req)
        if floor is None:
            raise SystemExit(f"pyproject.toml: {req!r} states no floor (name>=version): give it one")
        if pins.setdefault(name, floor.group(1)) != floor.group(1):
            raise SystemExit(f"pyproject.toml: {name} has two floors, {pins[name]} and {floor.group(1)}")
    return [f"{name}=={version}" for name, version in pins.items()]


if __name__ == "__main__":
    print("\n".join(floor_pins(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "pyproject.toml")))
