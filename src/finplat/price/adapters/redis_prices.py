"""Latest price per symbol in Redis: one hash per symbol, readable with redis-cli.

`HGETALL finplat:price:BTCUSDT` shows every PriceUpdate field (price and timestamp first among
them); the set `finplat:symbols` lists the symbols seen.
"""

from collections.abc import Iterable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from finance.market.v1 import market_pb2
from finplat.core.connections import RedisSettings
from finplat.price.adapters.errors import StoreUnavailableError

_FIELDS = ("symbol", "price", "volume", "service", "event_id", "exchange")
_INT_FIELDS = ("timestamp", "receive_timestamp", "kind")


def _to_hash(update: market_pb2.PriceUpdate) -> dict[str, str | int]:
    fields: dict[str, str | int] = {name: getattr(update, name) for name in _FIELDS}
    fields.update({name: int(getattr(update, name)) for name in _INT_FIELDS})
    return fields


def _text(value: bytes | str) -> str:
    # The client decodes responses; its stubs still allow bytes.
    return value.decode() if isinstance(value, bytes) else value


def _from_hash(raw: dict[bytes | str, bytes | str]) -> market_pb2.PriceUpdate:
    decoded = {_text(key): _text(value) for key, value in raw.items()}
    update = market_pb2.PriceUpdate()
    for name in _FIELDS:
        setattr(update, name, decoded.get(name, ""))
    for name in _INT_FIELDS:
        setattr(update, name, int(decoded.get(name, "0")))
    return update


def latest_per_symbol(
    updates: Iterable[market_pb2.PriceUpdate],
) -> dict[str, market_pb2.PriceUpdate]:
    """Only the newest update of each symbol matters to a latest-price store."""
    latest: dict[str, market_pb2.PriceUpdate] = {}
    for update in updates:
        kept = latest.get(update.symbol)
        if kept is None or update.timestamp >= kept.timestamp:
            latest[update.symbol] = update
    return latest


class RedisPriceStore:
    """Writes and reads the latest prices."""

    def __init__(self, settings: RedisSettings) -> None:
        self._redis = aioredis.Redis.from_url(
            settings.url, socket_timeout=5, socket_connect_timeout=5, decode_responses=True
        )
        self._prefix = settings.key_prefix

    def _key(self, symbol: str) -> str:
        return f"{self._prefix}:price:{symbol}"

    @property
    def _symbols_key(self) -> str:
        return f"{self._prefix}:symbols"

    async def close(self) -> None:
        """Release the connection pool."""
        await self._redis.aclose()

    async def ping(self) -> bool:
        """Whether Redis answers."""
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def write_latest(self, updates: Sequence[market_pb2.PriceUpdate]) -> None:
        """Store the newest update of each symbol in one round trip."""
        latest = latest_per_symbol(updates)
        if not latest:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for symbol, update in latest.items():
                    pipe.hset(self._key(symbol), mapping=_to_hash(update))  # type: ignore[arg-type]
                pipe.sadd(self._symbols_key, *latest)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"redis: {exc}") from exc

    async def get(self, symbol: str) -> market_pb2.PriceUpdate | None:
        """The latest update of `symbol`, or None when none was stored."""
        try:
            fields = await self._redis.hgetall(self._key(symbol))
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"redis: {exc}") from exc
        return _from_hash(fields) if fields else None

    async def list(self, symbols: Sequence[str] = ()) -> list[market_pb2.PriceUpdate]:
        """Latest updates of `symbols` (every stored symbol when empty), ordered by symbol."""
        try:
            stored = await self._redis.smembers(self._symbols_key)
            wanted = sorted(symbols or {_text(symbol) for symbol in stored})
            async with self._redis.pipeline(transaction=False) as pipe:
                for symbol in wanted:
                    pipe.hgetall(self._key(symbol))
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"redis: {exc}") from exc
        return [_from_hash(fields) for fields in results if fields]
