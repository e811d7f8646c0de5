"""Compare a freshly generated tree with the checked-in one."""

from pathlib import Path

from finplat.contract.errors import StaleArtefactError


def tree_files(root: Path) -> dict[str, bytes]:
    """Every file below `root` by relative path, skipping bytecode caches."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def ensure_same(expected: dict[str, bytes], actual: dict[str, bytes], what: str, fix: str) -> None:
    """Raise naming each differing file and the command that regenerates them."""
    differing = sorted(
        name for name in expected.keys() | actual.keys() if expected.get(name) != actual.get(name)
    )
    if differing:
        listed = ", ".join(differing)
        raise StaleArtefactError(f"{what} is stale ({listed}); run `{fix}` and commit the result")
