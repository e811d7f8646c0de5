"""Where the infrastructure is: one settings class per external system, shared by every service.

Each reads its own env prefix, so one variable points every service, the stack commands and
the tests at the same server. The defaults are the native stack's addresses on loopback.
"""

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """One Kafka cluster and its Schema Registry; env prefix `FINPLAT_KAFKA_`."""

    model_config = SettingsConfigDict(env_prefix="FINPLAT_KAFKA_", frozen=True, extra="forbid")

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated broker addresses."""
    schema_registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    """Confluent-compatible API root of the Schema Registry."""
    schema_registry_timeout_s: float = 10.0
    """Timeout of each registry request (the client library's default is to wait forever)."""
    topic: str = "price-updates"
    """Topic of the PriceUpdate stream."""
    topic_partitions: int = 3
    """Partitions of the topic when the platform creates it."""
    dead_letter_topic: str = "price-updates-dlq"
    """Where messages that cannot be decoded go, with the reason in a header."""
    flush_timeout_s: float = 10.0
    """How long shutdown waits for outstanding deliveries."""


class RedisSettings(BaseSettings):
    """The Redis that holds the latest prices; env prefix `FINPLAT_REDIS_`."""

    model_config = SettingsConfigDict(env_prefix="FINPLAT_REDIS_", frozen=True, extra="forbid")

    url: str = "redis://127.0.0.1:6379/0"
    """Redis URL, database included."""
    key_prefix: str = "finplat"
    """Prefix of every key the platform writes."""


class InfluxSettings(BaseSettings):
    """The InfluxDB 2 that holds ticks and candles; env prefix `FINPLAT_INFLUX_`."""

    model_config = SettingsConfigDict(env_prefix="FINPLAT_INFLUX_", frozen=True, extra="forbid")

    url: str = "http://127.0.0.1:8086"
    """InfluxDB HTTP API."""
    org: str = "finplat"
    """Organisation that owns the bucket."""
    bucket: str = "market"
    """Bucket of ticks and candles."""
    token: SecretStr = SecretStr("finplat-dev-token")
    """API token; the native stack creates this one, change it anywhere else."""
    timeout_s: float = 10.0
    """Timeout of each HTTP request."""
