"""Typed wrappers around numba's ``njit`` so ``mypy --strict`` sees real signatures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])


def njit(func: F) -> F:
    """``numba.njit(cache=True)``; nogil so threads calling kernels can run in parallel."""
    return cast(F, numba.njit(cache=True, nogil=True)(func))


def njit_reassociating(func: F) -> F:
    """``njit`` allowing floating-point additions to be reordered, so that the compiler
    vectorises a sum. The order then depends on the compiled code and the length summed, the
    same for the same inputs: callers sum the same blocks to get the same result."""
    return cast(F, numba.njit(cache=True, nogil=True, fastmath={"reassoc"})(func))


def njit_parallel(func: F) -> F:
    """``numba.njit(cache=True, parallel=True)`` for kernels that use ``prange``."""
    return cast(F, numba.njit(cache=True, nogil=True, parallel=True)(func))


# Bound to numba's object itself (not a wrapper) so compiled code recognises it.
prange: Callable[..., range] = numba.prange
