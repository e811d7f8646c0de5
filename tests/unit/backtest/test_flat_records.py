"""The consumer's batch on flat records: what it counts, stores and dead-letters is what it did
on PriceUpdates, and the statistics are those recomputed by hand from the counted updates.

The registry is `FakeRegistry`, an in-memory schema lookup, and the store a fake that keeps
what it was given: these tests cover the per-message path, not Kafka, the registry or SQLite.
"""

from collections.abc import Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from finance.market.v1 import market_pb2
from finplat.backtest.adapters.consumer_state import PartitionChanges, SavedPartition
from finplat.backtest.service.processor import Decoder
from finplat.kafka.price_record import PriceRecordDeserializer
from finplat.kafka.serde import PriceUpdateDeserializer
from tests.unit.backtest.service_support import (
    FakeDeadLetters,
    FakeRegistry,
    encode,
    owning_processor,
    record,
    update,
)
from tests.unit.backtest.test_rejection_properties import cases

DECIMALS = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,10})?", fullmatch=True)
updates = st.builds(
    update,
    event_id=st.text(alphabet="0123", max_size=2),
    symbol=st.sampled_from(["BTCUSDT", "ETHUSDT"]),
    price=DECIMALS.filter(lambda text: Decimal(text) > 0),
    volume=st.just("") | DECIMALS,
    timestamp=st.integers(0, 50),
    kind=st.sampled_from([market_pb2.EVENT_KIND_TRADE, market_pb2.EVENT_KIND_KLINE]),
)


class KeptStore:
    """Keeps each saved batch; every partition it is asked for starts with nothing saved."""

    def __init__(self) -> None:
        self.saved: list[dict[int, PartitionChanges]] = []

    def claim(self, partitions: Collection[int]) -> dict[int, SavedPartition]:
        return {partition: SavedPartition(None, [], None) for partition in partitions}

    def load(self, partitions: Collection[int]) -> dict[int, SavedPartition]:
        return self.claim(partitions)

    def release(self, partitions: Collection[int]) -> None:
        del partitions

    def save(self, changes: Mapping[int, PartitionChanges]) -> None:
        self.saved.append(dict(changes))

    def others(self, owned: Collection[int]) -> dict[int, dict[str, Any]]:
        return {}


def _run(decoder: Callable[[FakeRegistry], Decoder], batches: Sequence[Sequence[bytes]]) -> Any:
    letters, store = FakeDeadLetters(), KeptStore()
    processor = owning_processor(store, letters, capacity=5, decoder=decoder)
    offset, outcomes = 0, []
    for batch in batches:
        outcomes.append(processor.process([record(offset + i, v) for i, v in enumerate(batch)]))
        offset += len(batch)
    # Why a body could not be read is told in each decoder's words (fastavro's EOFError, ...).
    lettered = [(r.offset, reason.split(": not a PriceUpdate")[0]) for r, reason in letters.sent]
    return outcomes, store.saved, lettered, processor.snapshot()


@settings(max_examples=150, deadline=None)
@given(st.lists(cases, min_size=1, max_size=3))
def test_flat_records_count_store_and_dead_letter_as_price_updates_do(
    batches: list[list[tuple[bytes, str | None]]],
) -> None:
    values = [[value for value, _ in batch] for batch in batches]

    flat = _run(PriceRecordDeserializer, values)

    assert flat == _run(PriceUpdateDeserializer, values)


@settings(max_examples=200, deadline=None)
@given(st.lists(updates, max_size=30))
def test_statistics_are_those_recomputed_from_the_counted_updates(
    sent: list[market_pb2.PriceUpdate],
) -> None:
    _, saved, lettered, snapshot = _run(PriceRecordDeserializer, [[encode(u) for u in sent]])

    # By hand: an update is counted unless its (symbol, kind, event_id) was counted among the
    # last five keys (the window's capacity); the last price is the one of the latest event
    # time, the later arrival on a tie; min and max keep the first string of their value.
    counted: list[market_pb2.PriceUpdate] = []
    window: list[tuple[str, int, str]] = []
    for item in sent:
        key = (item.symbol, item.kind, item.event_id)
        if item.event_id and key in window:
            continue
        if item.event_id:
            window = [*window, key][-5:]
        counted.append(item)
    expected = {}
    for symbol in sorted({item.symbol for item in counted}):
        mine = [item for item in counted if item.symbol == symbol]
        volume = sum((Decimal(item.volume or "0") for item in mine), Decimal(0))
        last = max(enumerate(mine), key=lambda pair: (pair[1].timestamp, pair[0]))[1]
        expected[symbol] = (
            len(mine),
            min(item.timestamp for item in mine),
            last.timestamp,
            last.price,
            min(mine, key=lambda item: Decimal(item.price)).price,
            max(mine, key=lambda item: Decimal(item.price)).price,
            format(volume, "f"),
        )
    assert lettered == []
    assert {s.symbol: (s.count, s.first_event_ms, s.last_event_ms, s.last_price, s.min_price,
                       s.max_price, s.volume) for s in snapshot.symbols} == expected  # fmt: skip
    assert snapshot.duplicates == len(sent) - len(counted)
    # An empty batch touches no partition and saves nothing.
    stored = saved[-1][0].stats["symbols"] if sent else {}
    assert stored == {name: [*row] for name, row in expected.items()}
    assert len(saved) == (1 if sent else 0)
