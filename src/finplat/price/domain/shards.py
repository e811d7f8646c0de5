"""Which symbols one price-service instance of several ingests: the shard split.

N instances given the same symbol list and shard count split it between them, each symbol
ingested by exactly one. The split is a pure function of (symbols, count), so the instances
agree without talking to each other.

Round-robin over the sorted, de-duplicated symbols rather than hashing: it is balanced (shard
sizes differ by at most one) and the same in every process. Python's `hash()` of a string is
salted per process (PYTHONHASHSEED), so two instances would disagree; a stable hash (CRC32,
SHA-1) would agree but, with few symbols, can leave one shard with nothing and another with
all. The price of sorting: a symbol added to the list (or a shard added) moves others to
another shard, so every instance is restarted with the new settings; while old and new
settings run side by side a symbol can be ingested twice or not at all.
"""

from collections.abc import Iterable


def owned_symbols(symbols: Iterable[str], index: int, count: int) -> tuple[str, ...]:
    """The symbols shard `index` of `count` owns: position i of the sorted distinct symbols
    belongs to shard i % count.

    ValueError when `index` is not within 0..count-1, or when there are more shards than
    distinct symbols (some shard would own none: a configuration error, not an idle shard).
    """
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is not within 0..{count - 1} ({count} shards)")
    distinct = sorted(set(symbols))
    if count > len(distinct):
        raise ValueError(
            f"{count} shards for {len(distinct)} distinct symbols: every shard must own one,"
            f" so use at most {len(distinct)} shards or more symbols"
        )
    return tuple(distinct[index::count])
