"""docs/ARCHITECTURE.md names modules that exist, and the import contracts cover every package."""

import re
import tomllib

from tests.paths import REPO_ROOT, SRC_DIR

ARCHITECTURE = REPO_ROOT / "docs" / "ARCHITECTURE.md"
PACKAGE_ROOT = SRC_DIR / "finplat"
# A path inside the package as the page writes it: `price/domain/dedup.py`, `backtest/domain/`.
_PATH = re.compile(r"`([a-z_]+(?:/[a-z_<>]+)*(?:\.py|/))`")


def test_every_module_the_page_names_exists() -> None:
    # Only paths that start at a package: `domain/` alone is the pattern, not a place.
    named = {
        m
        for m in _PATH.findall(ARCHITECTURE.read_text())
        if "<" not in m and (PACKAGE_ROOT / m.split("/")[0]).is_dir() and "/" in m.rstrip("/")
    }

    missing = sorted(m for m in named if not (PACKAGE_ROOT / m).exists())

    assert len(named) > 20  # the parser found the table, not nothing
    assert missing == []


def test_every_top_level_package_has_a_layer() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if "containers" not in c and c["type"] == "layers")
    layered = {
        name.strip().removeprefix("finplat.")
        for layer in layers["layers"]
        for name in re.split(r"[|:]", layer)
    }
    packages = {
        p.parent.name if p.name == "__init__.py" else p.stem
        for p in [*PACKAGE_ROOT.glob("*/__init__.py"), *PACKAGE_ROOT.glob("*.py")]
        if p.name != "__init__.py" or p.parent != PACKAGE_ROOT
    }

    assert packages == layered
