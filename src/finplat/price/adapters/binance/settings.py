"""Settings of the Binance side, embedded by the service's `PriceSettings` composition root."""

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finplat.binance.streams import MAX_STREAMS_PER_CONNECTION, validate_kind
from finplat.core.retry import RetryPolicy
from finplat.price.domain.shards import owned_symbols


class RestRetryPolicy(RetryPolicy):
    """REST retries: shorter waits than the feed's reconnects, a request is waited on.

    Its own class, not a factory default, so that setting one field from the environment
    (FINPLAT_PRICE_FEED__REST__RETRY__MAX_S) keeps the others at these values.
    """

    initial_s: float = Field(default=0.5, gt=0)
    max_s: float = Field(default=30.0, gt=0)


class RestSettings(BaseModel):
    """The REST client: where, how long to wait, how much of the weight budget to use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = "https://api.binance.com"
    timeout_s: float = Field(default=10.0, gt=0)
    # Binance spot REQUEST_WEIGHT limit per minute and per IP (exchangeInfo `rateLimits`).
    weight_limit_1m: int = Field(default=6000, ge=1)
    # Pause until the next minute once the used weight reaches this share of the limit.
    weight_headroom: float = Field(default=0.8, gt=0, le=1)
    klines_page_limit: int = Field(default=1000, ge=1, le=1000)
    retry: RestRetryPolicy = Field(default_factory=RestRetryPolicy)


class FeedSettings(BaseModel):
    """What to stream from where, and how to behave within Binance's connection rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ws_base_url: str = "wss://stream.binance.com:9443"
    rest: RestSettings = Field(default_factory=RestSettings)
    # Every symbol followed. Instances sharing the ingest (`shard_count`) are each given the
    # whole list and stream their share (`owned`); GetPrice and GetCandles answer for all of
    # it from the shared stores.
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    # This instance's shard, 0 to shard_count - 1: it streams, backfills, stores and publishes
    # only the symbols its shard owns (sorted symbols dealt round-robin, see
    # price/domain/shards.py). Instead of shards, each instance can be given its own
    # FINPLAT_PRICE_FEED__SYMBOLS, keeping the default 0 of 1 (its API then knows only those).
    shard_index: int = Field(default=0, ge=0)
    # Instances splitting `symbols`, all with the same list and count; each must own a symbol.
    shard_count: int = Field(default=1, ge=1)
    # Stream kinds per symbol: trade, aggTrade, miniTicker, ticker, kline_<interval>.
    stream_kinds: tuple[str, ...] = ("trade", "kline_1m")
    # Put on PriceUpdate.service.
    service_name: str = "price-service"
    max_streams_per_connection: int = Field(default=MAX_STREAMS_PER_CONNECTION, ge=1, le=1024)
    # Streams named in the connection URL; the rest of a group is sent as SUBSCRIBE messages
    # (keeps URLs short when a connection carries hundreds of streams).
    streams_in_url: int = Field(default=100, ge=1)
    subscribe_batch_size: int = Field(default=100, ge=1)
    # Binance allows 5 incoming control messages per second per connection; stay under it.
    control_messages_per_s: int = Field(default=4, ge=1, le=5)
    # Binance allows 300 new connections per 5 minutes per IP.
    max_connections_per_window: int = Field(default=300, ge=1)
    connection_window_s: float = Field(default=300.0, gt=0)
    # Binance closes a connection at 24 h; roll over before, opening the new one first.
    rollover_after_s: float = Field(default=23.5 * 3600, gt=0)
    open_timeout_s: float = Field(default=10.0, gt=0)
    subscribe_timeout_s: float = Field(default=10.0, gt=0)
    # Our own keepalive pings (Binance's pings are answered by the websockets library).
    ping_interval_s: float | None = Field(default=20.0, gt=0)
    ping_timeout_s: float | None = Field(default=20.0, gt=0)
    # No frame for this long means a stalled connection: reconnect. None disables.
    stall_timeout_s: float | None = Field(default=60.0, gt=0)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    # Bounded hand-over queue to the consumer (the sinks); price updates beyond are dropped.
    queue_size: int = Field(default=10_000, ge=1)
    dedup_window: int = Field(default=4096, ge=1)
    dedup_max_keys: int = Field(default=10_000, ge=1)
    # Fetch klines missed while disconnected (or while the service was down) over REST.
    backfill_gaps: bool = True
    # Most candles one gap backfills, the newest: after days away the older part stays missing
    # (`finplat price backfill` fetches it) rather than spend the REST weight budget for hours.
    backfill_max_candles: int = Field(default=10_000, ge=1)
    max_frame_bytes: int = Field(default=1 << 20, ge=1024)

    @field_validator("symbols")
    @classmethod
    def _upper_symbols(cls, symbols: tuple[str, ...]) -> tuple[str, ...]:
        if not symbols:
            raise ValueError("at least one symbol")
        return tuple(symbol.upper() for symbol in symbols)

    @field_validator("stream_kinds")
    @classmethod
    def _known_kinds(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        if not kinds:
            raise ValueError("at least one stream kind")
        return tuple(validate_kind(kind) for kind in kinds)

    @model_validator(mode="after")
    def _valid_shard(self) -> Self:
        if self.shard_index >= self.shard_count:
            raise ValueError(
                f"FINPLAT_PRICE_FEED__SHARD_INDEX ({self.shard_index}) must be below"
                f" FINPLAT_PRICE_FEED__SHARD_COUNT ({self.shard_count}): shards count from 0"
            )
        # Raises for more shards than symbols: refused at start rather than run an idle shard.
        owned_symbols(self.symbols, self.shard_index, self.shard_count)
        return self

    @property
    def owned(self) -> tuple[str, ...]:
        """The symbols this instance ingests: its shard's share of `symbols`, sorted."""
        return owned_symbols(self.symbols, self.shard_index, self.shard_count)
