"""Resuming StreamPrices after the last update of each symbol a client received.

Every instance serves a symbol's updates in one order. Its owner publishes them in feed order,
to its own subscribers and onto the symbol's Kafka partition (key = symbol) in that order; the
other instances read them from that partition. So the last update a client got of a symbol is
a point in an order all instances share, wherever the client got it, and the update's identity
(`identity`) finds that point again in the partition: what follows it there is what the client
missed. Times alone could not: updates share milliseconds, kinds interleave out of time order,
and a replay of history carries old times.

A resumed stream is the replay, then the live stream:

1. Subscribe to the hub first, so that nothing published from then on can be missed.
2. Read the resumed symbols' updates from Kafka (`Resume.add`, in partition order) from a
   little before the earliest position's receive time (Kafka times are when the owner
   produced an update, never before it received it), to the topic's end; and, for a symbol
   this instance ingests itself, further until its last update published to the hub before
   the subscription is there too (`Resume.settled`): the hub gets an own update before Kafka.
3. Send the replay (`Resume.finish`): each symbol's updates after its position.
4. Send the hub's updates, less those already read from Kafka or older than the read
   (`Resume.live`), until each resumed symbol's first new one; from then on everything.

Pure: the Kafka reading is the adapter's, the gRPC statuses the API's.
"""

import heapq
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from finance.market.v1 import market_pb2
from finplat.market.symbols import is_symbol
from finplat.price.errors import PriceError

RESUME_SKEW_MS = 5_000
"""How far apart two instances' clocks (and one clock's steps) may be: the Kafka read starts
this much before the earliest position's receive time, and a position this much in the future
is still taken."""

Identity = tuple[str, int, str, int, int]
"""What tells one published update from every other: (symbol, kind, event_id, timestamp,
receive_timestamp). The event id is unique per symbol and kind; the receive time separates an
event ingested twice (a kline sent again after a reconnect), which subscribers get twice."""


def identity(update: market_pb2.PriceUpdate) -> Identity:
    """The identity of `update`."""
    return (
        update.symbol,
        update.kind,
        update.event_id,
        update.timestamp,
        update.receive_timestamp,
    )


class InvalidPositionError(PriceError):
    """A resume position the request cannot have (INVALID_ARGUMENT)."""


class PositionOutOfRangeError(PriceError):
    """A resume position this service cannot resume from (OUT_OF_RANGE): in the future, older
    than what Kafka holds, or too far back to replay."""


def positions_of(
    entries: Sequence[market_pb2.PriceUpdate], symbols: Collection[str], now_ms: int
) -> dict[str, market_pb2.PriceUpdate]:
    """The request's positions by symbol, checked against its `symbols` (upper case, none for
    every symbol) and the clock."""
    positions: dict[str, market_pb2.PriceUpdate] = {}
    for entry in entries:
        symbol = entry.symbol.strip().upper()
        if not is_symbol(symbol):
            raise InvalidPositionError(f"resume_after: {entry.symbol!r} is not a symbol")
        if symbols and symbol not in symbols:
            raise InvalidPositionError(f"resume_after: {symbol} is not among the symbols asked")
        if symbol in positions:
            raise InvalidPositionError(f"resume_after: more than one entry for {symbol}")
        if entry.receive_timestamp <= 0:
            raise InvalidPositionError(
                f"resume_after: the {symbol} entry has no receive_timestamp; pass back the"
                " last update received, as received"
            )
        if entry.receive_timestamp > now_ms + RESUME_SKEW_MS:
            raise PositionOutOfRangeError(
                f"resume_after: the {symbol} entry was received at {entry.receive_timestamp},"
                f" {entry.receive_timestamp - now_ms} ms in the future"
            )
        position = market_pb2.PriceUpdate()
        position.CopyFrom(entry)
        position.symbol = symbol
        positions[symbol] = position
    return positions


@dataclass
class _Symbol:
    """One resumed symbol's progress through the Kafka read."""

    position: Identity
    receive_ms: int
    awaited: Identity | None
    """The last update of the symbol the hub published before the subscription, when this
    instance ingests the symbol: the read goes on until Kafka has it."""
    found: bool = False
    reached: bool = False
    """Whether the read has the awaited update, or one after it; from the start when the
    awaited update came before the position, whose followers are all the replay wants."""
    seen: set[Identity] = field(default_factory=set)
    """Every update of the symbol read: the live stream drops these."""
    after: list[tuple[int, market_pb2.PriceUpdate]] = field(default_factory=list)
    """(read order, update): once `found`, the updates after the position; before, those
    received after it, the replay if the position never shows."""
    partitions: set[int] = field(default_factory=set)


class Resume:
    """One resumed stream: fed the Kafka read, then asked what to send."""

    def __init__(
        self,
        positions: Mapping[str, market_pb2.PriceUpdate],
        awaited: Mapping[str, market_pb2.PriceUpdate],
        limit: int,
    ) -> None:
        """`positions` from `positions_of`; `awaited`, for symbols this instance ingests, the
        hub's last update of each before the subscription; `limit`, the most updates a replay
        may hold (beyond, the position is too far back)."""
        self._symbols = {
            symbol: _Symbol(
                identity(position),
                position.receive_timestamp,
                identity(awaited[symbol]) if symbol in awaited else None,
                reached=symbol in awaited
                and awaited[symbol].receive_timestamp < position.receive_timestamp,
            )
            for symbol, position in positions.items()
        }
        self._awaited_receive_ms = {
            symbol: update.receive_timestamp for symbol, update in awaited.items()
        }
        self._limit = limit
        self._held = 0
        self._read = 0
        self.symbols = frozenset(positions)
        """The symbols whose updates the read is fed."""
        self.since_ms = min(p.receive_timestamp for p in positions.values()) - RESUME_SKEW_MS
        """Where the Kafka read starts: the earliest position's receive time, less the skew."""
        # Symbols whose live updates are still checked against the read.
        self._filtering = dict(self._symbols)

    def add(self, update: market_pb2.PriceUpdate, partition: int) -> None:
        """One update of a resumed symbol, read from Kafka; in partition order."""
        state = self._symbols[update.symbol]
        key = identity(update)
        state.seen.add(key)
        state.partitions.add(partition)
        if state.awaited is not None and not state.reached:
            # A later update stands in for the awaited one, which the Kafka sink may drop.
            awaited_ms = self._awaited_receive_ms[update.symbol]
            state.reached = key == state.awaited or update.receive_timestamp > awaited_ms
        self._read += 1
        if not state.found:
            if key == state.position:
                state.found = True
                self._held -= len(state.after)
                state.after.clear()  # received after the position but published before it
                return
            if update.receive_timestamp <= state.receive_ms:
                return
        if self._held >= self._limit:
            raise PositionOutOfRangeError(
                f"resume_after: more than {self._limit} updates to replay; start afresh"
            )
        state.after.append((self._read, update))
        self._held += 1

    def settled(self) -> bool:
        """Whether Kafka has given every awaited update (or one after it)."""
        return all(s.reached for s in self._symbols.values() if s.awaited is not None)

    def finish(self, truncated: Collection[int]) -> list[market_pb2.PriceUpdate]:
        """The replay, in read order, once the read is done. `truncated`: partitions where the
        read wanted updates Kafka no longer holds; a position not found there may have been
        deleted with them, and the replay could miss what followed it."""
        for symbol, state in self._symbols.items():
            lost = state.partitions & set(truncated) if state.partitions else truncated
            if not state.found and lost:
                raise PositionOutOfRangeError(
                    f"resume_after: the {symbol} entry is older than what Kafka still holds"
                )
        merged = heapq.merge(*(state.after for state in self._symbols.values()))
        return [update for _, update in merged]

    def live(self, update: market_pb2.PriceUpdate) -> bool:
        """Whether the hub's `update` goes to the client. Until a resumed symbol's first new
        update, the hub may repeat what the replay sent (this instance ingests the symbol, or
        its Kafka reader is behind the read) or what the client had (updates received before
        the read's start)."""
        state = self._filtering.get(update.symbol)
        if state is None:
            return True
        if update.receive_timestamp < self.since_ms or identity(update) in state.seen:
            return False
        # The hub's order is the partition's: everything after this one is new too.
        del self._filtering[update.symbol]
        return True

    @property
    def done(self) -> bool:
        """Whether every resumed symbol has gone live, and `live` passes everything."""
        return not self._filtering
