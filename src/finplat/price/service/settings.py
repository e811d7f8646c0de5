"""Settings of the price service, built once by its composition root."""

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from finplat.core.grpc_security import ServerSecurity
from finplat.core.retry import RetryPolicy
from finplat.price.adapters.binance.settings import FeedSettings


class SinkSettings(BaseModel):
    """Bounds and batching of the Redis and InfluxDB sinks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    buffer_capacity: int = Field(default=200_000, ge=1)
    """Items each sink holds while its store is away; beyond, the oldest are dropped."""
    redis_batch_size: int = Field(default=1_000, ge=1)
    """Updates per Redis round trip (only the newest per symbol is written)."""
    influx_batch_size: int = Field(default=5_000, ge=1)
    """Points per InfluxDB write."""
    kafka_batch_size: int = Field(default=5_000, ge=1)
    """Updates handed to librdkafka per turn of the Kafka sink."""
    linger_ms: int = Field(default=20, ge=0)
    """How long a partial batch gathers before it is written: at a few thousand updates/s,
    writing as soon as anything is buffered costs a store round trip per update or two."""
    drain_timeout_s: float = Field(default=10.0, gt=0)
    """How long shutdown keeps writing what is buffered (every store at once, Kafka's
    acknowledgements included)."""
    retry_initial_s: float = Field(default=0.2, gt=0)
    """First wait after a store failure."""
    retry_max_s: float = Field(default=5.0, gt=0)
    """Longest wait between attempts while a store is away."""

    def retry(self) -> RetryPolicy:
        """The backoff of a sink's writer."""
        return RetryPolicy(initial_s=self.retry_initial_s, max_s=self.retry_max_s)


class PriceSettings(BaseSettings, ServerSecurity):
    """Env prefix `FINPLAT_PRICE_`; nested fields with `__`, e.g. `FINPLAT_PRICE_FEED__SYMBOLS`.

    The gRPC server's TLS and token settings (`FINPLAT_PRICE_API_TOKEN`, ...) come from
    `ServerSecurity`."""

    model_config = SettingsConfigDict(
        env_prefix="FINPLAT_PRICE_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    grpc_host: str = "127.0.0.1"
    """Address the gRPC server binds."""
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    """Port of the gRPC server (0 picks a free one)."""
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    """Port of the Prometheus endpoint (`/metrics`); 0 disables it."""
    feed: FeedSettings = Field(default_factory=FeedSettings)
    """The Binance feed: endpoints (real exchange or replay), symbols, streams."""
    sinks: SinkSettings = Field(default_factory=SinkSettings)
    """Bounds and batching of the stores."""
    stream_queue_capacity: int = Field(default=10_000, ge=1)
    """Updates a StreamPrices subscriber may fall behind before it is cut off."""
    stream_max_batch: int = Field(default=500, ge=1)
    """Most updates in one StreamPrices message."""
    stream_resume_timeout_s: float = Field(default=10.0, gt=0)
    """Longest a resumed StreamPrices (`resume_after`) may take to read what the client missed
    from Kafka before it fails with UNAVAILABLE. A replay holds at most
    `stream_queue_capacity` updates: a position further back gets OUT_OF_RANGE."""
    trade_candle_clock_rate: float = Field(default=1.0, gt=0)
    """How fast the exchange clock runs between trades, for closing trade-built candles: 1 live,
    the replay speed when replaying history."""
    trade_candle_lateness_ms: int = Field(default=2_000, ge=0)
    """How long after its end a trade-built candle waits for late trades before it closes."""
    shutdown_grace_s: float = Field(default=5.0, ge=0)
    """Time in-flight RPCs get to finish at shutdown."""

    @property
    def grpc_address(self) -> str:
        """host:port of the gRPC server."""
        return f"{self.grpc_host}:{self.grpc_port}"
