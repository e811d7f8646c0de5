"""The feed's frame handling fed anything at all: no exception escapes, and every frame it
refuses is counted exactly once, as malformed or unknown.

Which frames must be refused is known by construction, never asked of the decoder: bytes that
are no JSON object at all, and objects missing every key an accepted frame needs (`E` for an
event, `id` for a control reply, `msg` or `error` for a control error).
"""

import asyncio
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from finplat.price.adapters.binance.feed import BinanceFeed, FeedStats
from finplat.price.adapters.binance.settings import FeedSettings
from tests.unit.price.conftest import FakeClock

# Without any of these keys (and without `E` inside `data`) no frame can be accepted.
_ACCEPTING_KEYS = frozenset({"E", "id", "msg", "error"})
_EVENT_TYPES = ["trade", "aggTrade", "kline", "24hrMiniTicker", "24hrTicker", "serverShutdown"]
_TRADE = {"e": "trade", "E": 1, "s": "BTCUSDT", "T": 1, "m": True}

_keys = st.sampled_from(["e", "s", "t", "p", "q", "k", "stream", "data", "result", "code"]) | (
    st.text(max_size=3).filter(lambda key: key not in _ACCEPTING_KEYS)
)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(_EVENT_TYPES),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=3),
    max_leaves=10,
)
_objects = st.dictionaries(_keys, _json, max_size=4)


@st.composite
def _refused_objects(draw: st.DrawFn) -> bytes:
    """A JSON object, bare or in a combined-stream envelope, that lacks every accepting key."""
    body = draw(_objects)
    shape = draw(st.sampled_from(["bare", "event", "envelope"]))
    if shape == "event":
        body = {**body, "e": draw(st.sampled_from([*_EVENT_TYPES, "other"]))}
    elif shape == "envelope":
        body = {"stream": draw(st.text(max_size=12)), "data": body}
    return json.dumps(body).encode()


def _json_object(raw: bytes) -> bool:
    # The standard library's parser is more lenient than the feed's (msgspec), so whatever it
    # does not read as an object, the feed cannot either.
    try:
        return isinstance(json.loads(raw, strict=False), dict)
    except (ValueError, RecursionError):
        return False


_not_objects = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=100).map(lambda tail: b'{"stream":"btcusdt@trade","data":' + tail),
    st.binary(max_size=100).map(lambda tail: b'{"e":"trade","E":1,' + tail),
).filter(lambda raw: not _json_object(raw))

_plain_decimals = st.from_regex(r"[0-9]{1,20}(\.[0-9]{1,20})?", fullmatch=True)
_not_decimals = st.text(max_size=12).filter(lambda text: any(c not in "0123456789." for c in text))


def _feed() -> BinanceFeed:
    # Never entered: no connection is made, frames are handed to it directly.
    return BinanceFeed(FeedSettings(queue_size=100_000), clock=FakeClock())


def _handle_all(feed: BinanceFeed, frames: list[bytes]) -> list[object]:
    async def handle() -> list[object]:
        return [await feed.handle_frame(raw) for raw in frames]

    return asyncio.run(handle())


def _trade(trade_id: int, price: str, quantity: str) -> bytes:
    return json.dumps({**_TRADE, "t": trade_id, "p": price, "q": quantity}).encode()


def _counted(stats: FeedStats) -> int:
    """The counters of a trade frame's fate, of which each frame moves exactly one."""
    return (
        stats.updates + stats.duplicates + stats.dropped_updates + stats.malformed + stats.unknown
    )


@settings(max_examples=300)
@given(st.lists(_not_objects, max_size=20))
def test_bytes_that_are_no_json_object_are_each_counted_malformed(frames: list[bytes]) -> None:
    feed = _feed()

    returned = _handle_all(feed, frames)

    assert returned == [None] * len(frames)
    assert (feed.stats.frames, feed.stats.malformed) == (len(frames), len(frames))
    assert _counted(feed.stats) == len(frames)


@settings(max_examples=200)
@given(st.lists(_refused_objects(), max_size=8))
def test_objects_without_an_accepting_key_are_each_counted_refused(frames: list[bytes]) -> None:
    feed = _feed()

    returned = _handle_all(feed, frames)

    assert returned == [None] * len(frames)
    assert feed.stats.malformed + feed.stats.unknown == len(frames)
    assert _counted(feed.stats) == len(frames)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.booleans(), _plain_decimals, _not_decimals), max_size=20))
def test_trades_with_a_price_that_is_no_decimal_are_counted_malformed(
    draws: list[tuple[bool, str, str]],
) -> None:
    feed = _feed()
    frames = [
        _trade(trade_id, good, good) if valid else _trade(trade_id, bad, good)
        for trade_id, (valid, good, bad) in enumerate(draws, start=1)
    ]
    refused = sum(1 for valid, _, _ in draws if not valid)

    _handle_all(feed, frames)

    assert (feed.stats.malformed, feed.stats.updates) == (refused, len(frames) - refused)
    assert _counted(feed.stats) == len(frames)


@settings(max_examples=200)
@given(st.lists(st.one_of(_not_objects, _refused_objects()), min_size=1, max_size=10), st.data())
def test_refused_frames_among_good_ones_are_counted_once_each(
    garbage: list[bytes], data: st.DataObject
) -> None:
    feed = _feed()
    # As many good trades as refused frames, shuffled in; ids grow in the order sent, and the
    # first trade comes again at the end: a duplicate, not a refusal.
    slots: list[bytes | None] = data.draw(st.permutations([*garbage, *[None] * len(garbage)]))
    ids = iter(range(1, len(slots) + 1))
    frames = [_trade(next(ids), "1.5", "2") if raw is None else raw for raw in slots]
    frames.append(_trade(1, "1.5", "2"))

    _handle_all(feed, frames)

    assert feed.stats.malformed + feed.stats.unknown == len(garbage)
    assert (feed.stats.updates, feed.stats.duplicates) == (len(garbage), 1)
    assert _counted(feed.stats) == len(frames)


def test_an_event_time_beyond_64_bits_is_malformed_not_a_crash() -> None:
    feed = _feed()
    frame = json.dumps({**_TRADE, "E": 2**63, "t": 1, "p": "1.5", "q": "2"}).encode()

    returned = _handle_all(feed, [frame])

    assert returned == [None]
    assert (feed.stats.malformed, feed.stats.updates) == (1, 0)
