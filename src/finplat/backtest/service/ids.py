"""Identifiers of stored runs: ULID-like, so they sort by creation time and need no counter.

26 Crockford base32 characters: 48 bits of epoch milliseconds, then 80 random bits. Two runs
created in the same millisecond differ by their random part (a collision needs ~2^40 runs).
"""

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LENGTH = 26
_RANDOM_BITS = 80
_MAX_MS = (1 << 48) - 1


def new_id(now_ms: int | None = None, randomness: bytes | None = None) -> str:
    """A fresh identifier; `now_ms` and `randomness` (10 bytes) are for tests."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if not 0 <= ms <= _MAX_MS:
        raise ValueError(f"time {ms} ms does not fit 48 bits")
    noise = os.urandom(_RANDOM_BITS // 8) if randomness is None else randomness
    if len(noise) != _RANDOM_BITS // 8:
        raise ValueError("randomness must be 10 bytes")
    value = (ms << _RANDOM_BITS) | int.from_bytes(noise, "big")
    chars = []
    for _ in range(_LENGTH):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_id(text: str) -> bool:
    """Whether `text` has the shape of an identifier (upper-case Crockford base32, 26 long)."""
    return len(text) == _LENGTH and all(char in _CROCKFORD for char in text)
