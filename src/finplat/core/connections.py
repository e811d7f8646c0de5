"""Where the infrastructure is: one settings class per external system, shared by every service.

Each reads its own env prefix, so one variable points every service, the stack commands and
the tests at the same server. The defaults are the native stack's addresses on loopback.
"""

from pathlib import Path
from typing import Literal, Self

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
_SSL_PROTOCOLS = ("SSL", "SASL_SSL")


class KafkaSettings(BaseSettings):
    """One Kafka cluster and its Schema Registry; env prefix `FINPLAT_KAFKA_`."""

    model_config = SettingsConfigDict(env_prefix="FINPLAT_KAFKA_", frozen=True, extra="forbid")

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated broker addresses."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How every client talks to the brokers (librdkafka's `security.protocol`)."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    """SASL mechanism of the SASL_ protocols (the native stack's listener takes SCRAM-SHA-512)."""
    sasl_username: str | None = None
    """SASL user; required by, and only allowed with, the SASL_ protocols."""
    sasl_password: SecretStr | None = None
    """Password of `sasl_username`."""
    ssl_ca_location: Path | None = None
    """PEM CA bundle that signed the brokers' certificates (SSL, SASL_SSL); unset, the system's
    (the native stack's CA: `ca.pem` in its data dir's kafka/tls/, printed by `stack up`)."""
    ssl_certificate_location: Path | None = None
    """PEM client certificate, for brokers that require mutual TLS; with `ssl_key_location`."""
    ssl_key_location: Path | None = None
    """PEM private key of `ssl_certificate_location`."""
    ssl_key_password: SecretStr | None = None
    """Password of an encrypted `ssl_key_location`."""
    schema_registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    """Confluent-compatible API root of the Schema Registry."""
    schema_registry_timeout_s: float = 10.0
    """Timeout of each registry request (the client library's default is to wait forever)."""
    schema_registry_basic_auth_user_info: SecretStr | None = None
    """`user:password` for the registry's HTTP basic auth (Confluent's `basic.auth.user.info`)."""
    schema_registry_ssl_ca_location: Path | None = None
    """PEM CA bundle that signed an https registry's certificate; unset, certifi's bundle."""
    topic: str = "price-updates"
    """Topic of the PriceUpdate stream."""
    topic_partitions: int = 3
    """Partitions of the topic when the platform creates it."""
    dead_letter_topic: str = "price-updates-dlq"
    """Where messages that cannot be decoded go, with the reason in a header."""
    flush_timeout_s: float = 10.0
    """How long shutdown waits for outstanding deliveries."""

    @model_validator(mode="after")
    def _security_fits_the_protocol(self) -> Self:
        # librdkafka ignores credentials its protocol does not use: a forgotten
        # FINPLAT_KAFKA_SECURITY_PROTOCOL would otherwise send them nowhere, silently.
        credentials = (self.sasl_username, self.sasl_password)
        if self.security_protocol in _SASL_PROTOCOLS:
            if None in credentials:
                raise ValueError(f"{self.security_protocol} needs sasl_username and sasl_password")
        elif credentials != (None, None):
            raise ValueError(
                f"sasl_* settings need security_protocol {' or '.join(_SASL_PROTOCOLS)}"
            )
        ssl_files = (self.ssl_ca_location, self.ssl_certificate_location, self.ssl_key_location)
        if self.security_protocol not in _SSL_PROTOCOLS and ssl_files != (None, None, None):
            raise ValueError(f"ssl_* settings need security_protocol {' or '.join(_SSL_PROTOCOLS)}")
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError("set both ssl_certificate_location and ssl_key_location, or neither")
        if self.ssl_key_password is not None and self.ssl_key_location is None:
            raise ValueError("ssl_key_password needs ssl_key_location")
        user_info = self.schema_registry_basic_auth_user_info
        if user_info is not None and ":" not in user_info.get_secret_value():
            raise ValueError("schema_registry_basic_auth_user_info must read user:password")
        return self

    def client_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka's connection settings (brokers, protocol, credentials), for every client.

        The secrets are in clear, as librdkafka needs them: never log the result.
        """
        optional = {
            "sasl.mechanism": (
                self.sasl_mechanism if self.security_protocol in _SASL_PROTOCOLS else None
            ),
            "sasl.username": self.sasl_username,
            "sasl.password": _revealed(self.sasl_password),
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": _revealed(self.ssl_key_password),
        }
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            **{key: str(value) for key, value in optional.items() if value is not None},
        }


def _revealed(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


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
