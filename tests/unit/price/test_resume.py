"""Resuming a stream: the position found in the Kafka read, the replay, and its merge with the
live stream, without a gap or a duplicate."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finance.market.v1 import market_pb2
from finplat.price.service.resume import (
    RESUME_SKEW_MS,
    InvalidPositionError,
    PositionOutOfRangeError,
    Resume,
    positions_of,
)

NOW = 1_700_000_000_000
BTC, ETH = "BTCUSDT", "ETHUSDT"


def _update(
    symbol: str, n: int, received: int, timestamp: int | None = None
) -> market_pb2.PriceUpdate:
    return market_pb2.PriceUpdate(
        symbol=symbol,
        price=f"{n}.0",
        timestamp=NOW - 60_000 if timestamp is None else timestamp,  # old times, as a replay's
        kind=market_pb2.EVENT_KIND_TRADE,
        event_id=str(n),
        receive_timestamp=received,
    )


def _ids(updates: list[market_pb2.PriceUpdate]) -> list[tuple[str, str]]:
    return [(u.symbol, u.event_id) for u in updates]


def _read(resume: Resume, updates: list[market_pb2.PriceUpdate], partition: int = 0) -> None:
    for update in updates:
        if update.symbol in resume.symbols and update.receive_timestamp >= resume.since_ms:
            resume.add(update, partition)


def test_replay_is_what_followed_the_position_among_updates_of_one_millisecond() -> None:
    # Ten trades received in the same millisecond, with the same exchange time: only their
    # order tells them apart.
    topic = [_update(BTC, n, NOW) for n in range(10)]
    resume = Resume({BTC: topic[4]}, {}, limit=100)

    _read(resume, topic)

    assert _ids(resume.finish(())) == _ids(topic[5:])


def test_a_position_kafka_never_got_replays_what_was_received_after_it() -> None:
    # The instance that sent the position died before producing it; an owner started later
    # published the last two.
    topic = [_update(BTC, n, NOW + n) for n in range(5)]
    lost = _update(BTC, 99, NOW + 2)

    resume = Resume({BTC: lost}, {}, limit=100)
    _read(resume, topic)

    assert _ids(resume.finish(())) == _ids(topic[3:])


def test_the_order_read_decides_even_against_receive_times() -> None:
    # `ahead` came before the position in the partition, stamped by an owner whose clock ran
    # ahead (the symbol changed owners): the order read, not the receive time, says what the
    # client had.
    ahead, position, after = _update(BTC, 1, NOW + 50), _update(BTC, 2, NOW), _update(BTC, 3, NOW)
    resume = Resume({BTC: position}, {}, limit=100)

    _read(resume, [ahead, position, after])

    assert _ids(resume.finish(())) == _ids([after])


def test_updates_of_several_symbols_keep_the_order_they_were_read_in() -> None:
    topic = [_update(BTC if n % 2 else ETH, n, NOW + n) for n in range(8)]
    resume = Resume({BTC: topic[1], ETH: topic[4]}, {}, limit=100)

    _read(resume, topic)

    assert _ids(resume.finish(())) == _ids([topic[3], topic[5], topic[6], topic[7]])


def test_live_updates_already_read_or_before_the_read_are_dropped_until_a_new_one() -> None:
    topic = [_update(BTC, n, NOW + n) for n in range(4)]
    resume = Resume({BTC: topic[1]}, {}, limit=100)
    _read(resume, topic)
    resume.finish(())
    older = _update(BTC, 50, resume.since_ms - 1)
    new = [_update(BTC, n, NOW + n) for n in range(4, 6)]

    passed = [u for u in [older, *topic, *new, topic[2]] if resume.live(u)]

    # Once a new update passed, every later one does: the hub's order is the partition's.
    assert _ids(passed) == _ids([*new, topic[2]])
    assert resume.done


def test_symbols_without_a_position_stream_live_from_the_start() -> None:
    resume = Resume({BTC: _update(BTC, 1, NOW)}, {}, limit=100)

    assert resume.live(_update(ETH, 1, NOW))
    assert not resume.done


def test_the_read_waits_for_the_hubs_last_update_or_one_after_it() -> None:
    topic = [_update(BTC, n, NOW + n) for n in range(6)]
    resume = Resume({BTC: topic[1]}, {BTC: topic[3]}, limit=100)

    _read(resume, topic[:3])
    assert not resume.settled()
    _read(resume, topic[3:4])
    assert resume.settled()

    # The awaited update never produced (the Kafka sink dropped it): a later one stands in.
    dropped = Resume({BTC: topic[1]}, {BTC: _update(BTC, 99, NOW + 3)}, limit=100)
    _read(dropped, topic[:4])
    assert not dropped.settled()
    _read(dropped, topic[4:5])
    assert dropped.settled()


def test_a_hub_update_older_than_the_position_is_not_awaited() -> None:
    position, before = _update(BTC, 5, NOW + 5), _update(BTC, 4, NOW + 4)

    assert Resume({BTC: position}, {BTC: before}, limit=100).settled()


def test_a_replay_beyond_the_limit_is_out_of_range() -> None:
    topic = [_update(BTC, n, NOW + n) for n in range(10)]
    resume = Resume({BTC: topic[0]}, {}, limit=5)

    with pytest.raises(PositionOutOfRangeError, match="more than 5 updates to replay"):
        _read(resume, topic)


def test_a_position_deleted_by_retention_is_out_of_range() -> None:
    topic = [_update(BTC, n, NOW + n) for n in range(3)]
    gone = _update(BTC, 99, NOW - 1)

    deleted = Resume({BTC: gone}, {}, limit=100)
    _read(deleted, topic, partition=2)
    with pytest.raises(PositionOutOfRangeError, match="older than what Kafka still holds"):
        deleted.finish({2})

    # Found in the read: whatever was deleted came before it.
    found = Resume({BTC: topic[0]}, {}, limit=100)
    _read(found, topic, partition=2)
    assert _ids(found.finish({2})) == _ids(topic[1:])

    # Its partition kept everything: another partition's loss is not this symbol's.
    elsewhere = Resume({BTC: gone}, {}, limit=100)
    _read(elsewhere, topic, partition=1)
    assert _ids(elsewhere.finish({2})) == _ids(topic)


@st.composite
def _history(draw: st.DrawFn) -> tuple[list[market_pb2.PriceUpdate], int, int, int, bool]:
    """One symbol's updates, the index of the client's last, how far the hub had published at
    subscription, how far Kafka has them when the read starts, and whether this instance
    ingests the symbol (its hub ahead of Kafka) or reads it from Kafka (behind)."""
    steps = draw(st.lists(st.sampled_from([0, 0, 1, RESUME_SKEW_MS]), min_size=2, max_size=25))
    received, updates = NOW, []
    for n, step in enumerate(steps):
        received += step
        updates.append(_update(BTC, n, received, timestamp=NOW - 1_000))
    position = draw(st.integers(0, len(updates) - 1))
    ingested = draw(st.booleans())
    if ingested:
        # The hub published up to at least the position (Kafka got it from this hub); Kafka
        # ends anywhere at the read's start, and the read goes on to the hub's last.
        hub = draw(st.integers(position + 1, len(updates)))
        kafka = draw(st.integers(0, len(updates)))
    else:
        kafka = draw(st.integers(position + 1, len(updates)))
        hub = draw(st.integers(0, kafka))
    return updates, position, hub, kafka, ingested


@given(_history())
def test_replay_then_live_is_every_update_after_the_position_once(
    history: tuple[list[market_pb2.PriceUpdate], int, int, int, bool],
) -> None:
    updates, position, hub, kafka, ingested = history
    awaited = {BTC: updates[hub - 1]} if ingested and hub else {}
    resume = Resume({BTC: updates[position]}, awaited, limit=1_000)

    # Kafka's times are produce times, never before the receive time: the read from
    # `since_ms` has every update received from then on.
    end = kafka
    _read(resume, updates[:end])
    while not resume.settled():
        end += 1
        _read(resume, updates[end - 1 : end])
    sent = resume.finish(()) + [u for u in updates[hub:] if resume.live(u)]

    assert _ids(sent) == _ids(updates[position + 1 :])


def test_positions_are_checked_against_the_request_and_the_clock() -> None:
    good = _update("btcusdt", 1, NOW)

    positions = positions_of([good], frozenset({BTC}), NOW)

    assert positions[BTC].symbol == BTC
    assert positions[BTC].event_id == "1"
    with pytest.raises(InvalidPositionError, match="ETHUSDT is not among the symbols asked"):
        positions_of([_update(ETH, 1, NOW)], frozenset({BTC}), NOW)
    with pytest.raises(InvalidPositionError, match="more than one entry for BTCUSDT"):
        positions_of([good, good], frozenset(), NOW)
    with pytest.raises(InvalidPositionError, match="has no receive_timestamp"):
        positions_of([_update(BTC, 1, 0)], frozenset(), NOW)
    with pytest.raises(PositionOutOfRangeError, match="in the future"):
        positions_of([_update(BTC, 1, NOW + RESUME_SKEW_MS + 1)], frozenset(), NOW)
    assert positions_of([_update(BTC, 1, NOW + RESUME_SKEW_MS)], frozenset(), NOW)
