"""Typed wrappers around numba's ``njit`` so ``mypy --strict`` sees real signatures, caching
the compiled kernels where a change to any of this package's sources is seen."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])

_PACKAGE = Path(__file__).parent
# numba's settings module, whose attributes are set at run time from the environment.
_NUMBA_CONFIG: Any = numba.config


def _sources_digest(package: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(f"{path.relative_to(package)}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# numba checks a cached function against its own file only, and a kernel inlines the jitted
# functions it calls from other files (the sweep kernel, the simulation's `advance`): after one
# of those changed, the cache would go on serving the old machine code. Kept in a directory
# named by the digest of every source of the package, any change compiles everything afresh.
# Beside the sources as numba's own default is, or under NUMBA_CACHE_DIR when that is set.
_CACHE_DIR = str(
    Path(_NUMBA_CONFIG.CACHE_DIR or _PACKAGE / "__pycache__") / f"numba-{_sources_digest(_PACKAGE)}"
)


@contextmanager
def _cache_here() -> Iterator[None]:
    # numba picks a function's cache directory when it is decorated, from this setting.
    previous, _NUMBA_CONFIG.CACHE_DIR = _NUMBA_CONFIG.CACHE_DIR, _CACHE_DIR
    try:
        yield
    finally:
        _NUMBA_CONFIG.CACHE_DIR = previous


def njit(func: F) -> F:
    """``numba.njit(cache=True)``; nogil so threads calling kernels can run in parallel."""
    with _cache_here():
        return cast(F, numba.njit(cache=True, nogil=True)(func))


def njit_reassociating(func: F) -> F:
    """``njit`` allowing floating-point additions to be reordered, so that the compiler
    vectorises a sum. The order then depends on the compiled code and the length summed, the
    same for the same inputs: callers sum the same blocks to get the same result."""
    with _cache_here():
        return cast(F, numba.njit(cache=True, nogil=True, fastmath={"reassoc"})(func))


def njit_parallel(func: F) -> F:
    """``numba.njit(cache=True, parallel=True)`` for kernels that use ``prange``."""
    with _cache_here():
        return cast(F, numba.njit(cache=True, nogil=True, parallel=True)(func))


# Bound to numba's object itself (not a wrapper) so compiled code recognises it.
prange: Callable[..., range] = numba.prange
