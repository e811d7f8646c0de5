"""A bounded window of recently seen event keys, so a redelivered update is counted once.

Keys carry a sequence number so the window can be persisted incrementally: each batch stores
the keys it added and deletes those that fell out, instead of rewriting the whole window.
"""

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

# Unit separator: cannot occur in a symbol and keeps the three parts of a key apart.
_SEPARATOR = "\x1f"


def event_key(symbol: str, kind: int, event_id: str) -> str:
    """The de-duplication key of an update: unique per (symbol, kind, event_id)."""
    return f"{symbol}{_SEPARATOR}{kind}{_SEPARATOR}{event_id}"


@dataclass(frozen=True, slots=True)
class DedupChanges:
    """What changed since the last `take_changes`: the keys added, numbered from `first_seq`
    on, and the oldest sequence number still kept."""

    first_seq: int
    added: list[str]
    keep_from_seq: int


class DedupWindow:
    """The last `capacity` distinct keys, oldest forgotten first (bounded memory)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        # OrderedDict: popping the oldest key is O(1), unlike repeatedly deleting a dict's first.
        self._keys: OrderedDict[str, int] = OrderedDict()
        self._next_seq = 0
        # Keys added since the last `take_changes`, whose sequence numbers run up to the next.
        self._added: list[str] = []

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def add(self, key: str) -> bool:
        """Remember `key`; False when it was already in the window (a duplicate)."""
        # Once per update of the stream: one lookup, which finds the key or stores it.
        keys = self._keys
        seq = self._next_seq
        if keys.setdefault(key, seq) != seq:  # a key already kept has an older number
            return False
        self._next_seq = seq + 1
        self._added.append(key)
        if len(keys) > self._capacity:
            keys.popitem(last=False)
        return True

    def oldest_seq(self) -> int:
        """Sequence number of the oldest remembered key (the next one when empty)."""
        for seq in self._keys.values():
            return seq
        return self._next_seq

    def take_changes(self) -> DedupChanges:
        """Keys added since the last call, and from which sequence on keys are still kept."""
        # The list itself is handed over (a batch's keys, one per update), not copied.
        added, self._added = self._added, []
        return DedupChanges(self._next_seq - len(added), added, self.oldest_seq())

    def restore(self, entries: Iterable[tuple[int, str]]) -> None:
        """Replace the window with the newest `capacity` of persisted (sequence, key) pairs; no
        pending changes.

        The window is exactly the newest `capacity` keys by sequence number, so the entries
        may hold older ones too: a key that fell out and was added again is kept at its newest
        number."""
        keys = self._keys
        keys.clear()
        self._added.clear()
        self._next_seq = 0
        for seq, key in sorted(entries):
            keys.pop(key, None)
            keys[key] = seq
            self._next_seq = seq + 1
        while len(keys) > self._capacity:
            keys.popitem(last=False)
