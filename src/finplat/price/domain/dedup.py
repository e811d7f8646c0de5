"""De-duplication of exchange events with bounded memory.

Every event belongs to a sequence (one symbol, kind and sub-stream, e.g. BTCUSDT trades or
BTCUSDT 1m klines) and carries a number that grows along it: the trade id, the aggregate
trade id, or the event time for klines and tickers. Per sequence we keep the high-water mark
and the last `window` numbers seen:

* above the mark: new;
* remembered: a duplicate (the overlap of two connections during a rollover, a re-sent frame);
* below the mark but not remembered: out of order. It is passed on (it is data we have not
  seen) and counted. A duplicate older than the window is indistinguishable from this case,
  which is why the window must cover the overlap of two connections (seconds of events).

Memory is bounded by `max_keys` sequences (least recently used evicted) times `window`
numbers each.
"""

import enum
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass, field


class Verdict(enum.Enum):
    """What the de-duplicator thinks of one event."""

    NEW = "new"
    OUT_OF_ORDER = "out_of_order"
    DUPLICATE = "duplicate"


@dataclass(slots=True)
class DedupStats:
    """Counts since creation."""

    new: int = 0
    out_of_order: int = 0
    duplicates: int = 0
    evicted_keys: int = 0


@dataclass(slots=True)
class _Sequence:
    high_water: int
    recent: set[int] = field(default_factory=set)
    order: deque[int] = field(default_factory=deque)


class Deduplicator:
    """Classifies (sequence key, number) pairs as new, out of order or duplicate."""

    def __init__(self, window: int = 4096, max_keys: int = 10_000) -> None:
        if window < 1 or max_keys < 1:
            raise ValueError("window and max_keys must be at least 1")
        self._window = window
        self._max_keys = max_keys
        self._sequences: OrderedDict[Hashable, _Sequence] = OrderedDict()
        self.stats = DedupStats()

    def check(self, key: Hashable, number: int) -> Verdict:
        """Classify one event and remember it unless it is a duplicate."""
        sequence = self._sequences.get(key)
        if sequence is None:
            sequence = self._add_key(key, number)
            verdict = Verdict.NEW
        else:
            self._sequences.move_to_end(key)
            if number > sequence.high_water:
                sequence.high_water = number
                verdict = Verdict.NEW
            elif number in sequence.recent:
                self.stats.duplicates += 1
                return Verdict.DUPLICATE
            else:
                verdict = Verdict.OUT_OF_ORDER
        self._remember(sequence, number)
        if verdict is Verdict.NEW:
            self.stats.new += 1
        else:
            self.stats.out_of_order += 1
        return verdict

    def _add_key(self, key: Hashable, number: int) -> _Sequence:
        if len(self._sequences) >= self._max_keys:
            self._sequences.popitem(last=False)
            self.stats.evicted_keys += 1
        sequence = _Sequence(high_water=number)
        self._sequences[key] = sequence
        return sequence

    def _remember(self, sequence: _Sequence, number: int) -> None:
        sequence.recent.add(number)
        sequence.order.append(number)
        if len(sequence.order) > self._window:
            sequence.recent.discard(sequence.order.popleft())
