"""The consumer's per-message path on arbitrary batches: every bad message is dead-lettered,
counted exactly once under its reason, and leaves nothing in the stored statistics.

The registry is `FakeRegistry`, an in-memory schema lookup: these tests cover decoding and
checking bytes, not the Schema Registry.
"""

import re
import struct
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from finplat.backtest.adapters.consumer_state import ConsumerStateStore
from finplat.backtest.service.metrics import BacktestCollector, BacktestSources, CountingResults
from tests.unit.backtest.service_support import (
    SCHEMA_ID,
    TOPIC,
    FakeDeadLetters,
    encode,
    owning_processor,
    record,
    update,
)
from tests.unit.backtest.test_metrics_endpoint import (
    FakeConsumer,
    FakeResults,
    FakeStatsView,
    Snapshots,
)

# What a Binance symbol looks like, written here independently of the code under test.
BINANCE_SYMBOL = re.compile(r"[A-Z0-9]{1,32}")
UPPER_OR_DIGIT = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
KNOWN_ID = b"\x00" + struct.pack(">I", SCHEMA_ID)
# Expected fate of a generated message: "good" (counted or a duplicate), the reason it is
# rejected for, or None for garbage that may, by chance, decode to anything.
Case = tuple[bytes, str | None]

good = st.builds(
    lambda event_id, symbol: (encode(update(event_id, symbol=symbol)), "good"),
    st.text(alphabet="0123456789", min_size=1, max_size=3),
    st.sampled_from(["BTCUSDT", "ETHUSDT", "1INCHUSDT"]),
)
bad_symbols = st.one_of(
    st.just(""),
    st.text(alphabet=UPPER_OR_DIGIT, min_size=33, max_size=10_000),
    # At least one character that is not an upper-case ASCII letter or digit.
    st.tuples(
        st.text(alphabet=UPPER_OR_DIGIT, max_size=8),
        st.characters(codec="utf-8").filter(lambda c: c not in UPPER_OR_DIGIT),
        st.text(st.characters(codec="utf-8"), max_size=8),
    ).map("".join),
)
bad_symbol = bad_symbols.map(lambda s: (encode(update("s", symbol=s)), "invalid_symbol"))
bad_price = st.sampled_from(["NaN", "-1", "0", "1e5", " 1", "Infinity", "\u0661"]).map(
    lambda p: (encode(update("p", price=p)), "invalid_price")
)
not_framed = st.binary(min_size=1, max_size=200).filter(lambda b: b[0] != 0)
unknown_id = st.tuples(
    st.integers(0, 2**32 - 1).filter(lambda i: i != SCHEMA_ID), st.binary(max_size=100)
).map(lambda t: b"\x00" + struct.pack(">I", t[0]) + t[1])
undecodable = st.one_of(not_framed, unknown_id).map(lambda b: (b, "undecodable"))
garbage = st.binary(max_size=200).map(lambda b: (KNOWN_ID + b, None))
cases = st.lists(
    st.one_of(good, bad_symbol, bad_price, undecodable, garbage), min_size=1, max_size=20
)


def _rejected_metric(stats: Snapshots) -> Counter[str]:
    sources = BacktestSources(
        FakeStatsView(stats), CountingResults(FakeResults()), FakeConsumer(True, True)
    )
    (family,) = [
        m for m in BacktestCollector(sources).collect()
        if m.name == "finplat_backtest_rejected_messages"
    ]  # fmt: skip
    return Counter({s.labels["reason"]: int(s.value) for s in family.samples})


@settings(max_examples=150, deadline=None)
@given(cases)
def test_every_rejection_is_dead_lettered_counted_once_and_never_stored(batch: list[Case]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "consumer.sqlite3"
        letters = FakeDeadLetters()
        store = ConsumerStateStore(path, "test-group", TOPIC)
        processor = owning_processor(store, letters, capacity=1000)
        before = _rejected_metric(processor)

        outcome = processor.process([record(i, value) for i, (value, _) in enumerate(batch)])

        saved = store.load([0])[0]
        delta = _rejected_metric(processor) - before
        decode_errors = processor.snapshot().decode_errors
        store.close()
    lettered = {r.offset: reason.split(":")[0] for r, reason in letters.sent}
    expected = {i: fate for i, (_, fate) in enumerate(batch) if fate not in (None, "good")}
    # Known bad messages are dead-lettered with their reason; good ones never are.
    assert {i: lettered.get(i) for i in expected} == expected
    assert not {i for i, (_, fate) in enumerate(batch) if fate == "good"} & set(lettered)
    # Counted exactly once: the metric grew by one per dead letter, under the letter's reason.
    assert delta == Counter(lettered.values())
    assert len(letters.sent) == outcome.dead_lettered == decode_errors
    assert outcome.counted + outcome.duplicates + outcome.dead_lettered == len(batch)
    # Nothing of a rejected message reached the stored statistics or the de-duplication keys.
    assert saved.stats is not None
    assert sum(row[0] for row in saved.stats["symbols"].values()) == outcome.counted
    assert all(BINANCE_SYMBOL.fullmatch(symbol) for symbol in saved.stats["symbols"])
    assert all(BINANCE_SYMBOL.fullmatch(key.split("\x1f")[0]) for _, key in saved.seen)
    assert saved.stats["rejected"] == dict(delta)
