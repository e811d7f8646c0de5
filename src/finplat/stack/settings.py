"""Settings of the native development stack (`finplat stack ...`); env prefix `FINPLAT_STACK_`.

The defaults match the addresses in `finplat.core.connections`, so services and tests find the
stack without configuration. Change a port here and there together.
"""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "finplat"


class StackSettings(BaseSettings):
    """Versions, addresses, directories and limits of Kafka, the registry, Redis and InfluxDB."""

    model_config = SettingsConfigDict(env_prefix="FINPLAT_STACK_", frozen=True, extra="forbid")

    data_dir: Path = Path("var/stack")
    """Runtime state: pid files, logs, Kafka and InfluxDB data. Relative to the CWD."""
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    """Downloads and builds, keyed by version; shared by every clone."""
    host: str = "127.0.0.1"
    """Loopback address every server binds to."""

    start_timeout_s: float = 180.0
    """How long one server may take from spawn to a passing readiness probe."""
    stop_timeout_s: float = 30.0
    """How long `down` waits after SIGTERM before it sends SIGKILL."""
    probe_timeout_s: float = 3.0
    """Timeout of one readiness probe request (`status` uses a single probe)."""

    kafka_version: str = "4.4.0"
    """Version of org.apache.kafka:kafka_2.13 resolved from Maven Central."""
    kafka_java_home: Path | None = None
    """JDK (17+) for the broker; found on JAVA_HOME, PATH or /usr/lib/jvm when unset."""
    kafka_port: int = 9092
    """Broker (PLAINTEXT) listener."""
    kafka_controller_port: int = 9093
    """KRaft controller listener."""
    kafka_sasl_ssl_port: int = 9094
    """Broker SASL_SSL listener (SCRAM-SHA-512 over TLS with a certificate of the stack's own CA,
    kafka/tls/ca.pem in the data dir), beside the PLAINTEXT one; 0: none."""
    kafka_scram_username: str = "finplat"
    """SCRAM-SHA-512 user of the SASL_SSL listener."""
    kafka_scram_password: SecretStr = SecretStr("finplat-dev-scram-password")
    """Its password, set again at every `up`, so a changed one takes effect then."""
    kafka_brokers: int = Field(default=1, ge=1, le=9)
    """KRaft nodes, each broker and controller in one JVM: 1 is the single-node default; 3 or
    more make a cluster whose topics are replicated 3 times (`finplat stack up --kafka-brokers
    3`). The cluster's nodes are kafka-1, kafka-2, ... with data of their own, so the single
    node's data stays as it was."""
    kafka_node_port_step: int = Field(default=100, ge=1)
    """Node n of a cluster listens on the three Kafka ports plus (n - 1) times this step:
    9092, 9192, 9292 for the brokers by default."""
    kafka_node_id: int = 1
    """Node id of the single node, and of the first node of a cluster (the others count up)."""
    kafka_heap_mb: int = 512
    """Maximum Java heap of each Kafka node."""
    kafka_topic: str = "price-updates"
    """Topic created once the brokers are up."""
    kafka_topic_partitions: int | None = Field(default=None, ge=1)
    """Partitions of that topic; unset: 3 on a single node, 6 on a cluster."""

    registry_version: str = "3.3.3"
    """Version of io.apicurio:apicurio-registry-app (its `all` assembly) from Maven Central."""
    registry_java_home: Path | None = None
    """JDK (21+, Apicurio 3.3 is built for it); found like kafka_java_home when unset."""
    registry_port: int = 8081
    """HTTP port of the registry APIs (Confluent-compatible API under /apis/ccompat/v7)."""
    registry_management_port: int = 8091
    """Quarkus management interface (/health); Apicurio's default 9000 collides too often."""
    registry_heap_mb: int = 384
    """Maximum Java heap of the registry."""
    registry_compatibility: str = "BACKWARD"
    """Global compatibility rule set at start; Apicurio enforces nothing without one."""

    redis_server: str = "redis-server"
    """Redis executable (Debian: apt-get install redis-server)."""
    redis_port: int = 6379
    """Redis port."""

    influxdb_version: str = "2.7.12"
    """InfluxDB 2.x OSS version built from source by resources/influxdb/build.sh."""
    influxdb_port: int = 8086
    """HTTP API port."""
    influxdb_org: str = "finplat"
    """Organisation created by onboarding."""
    influxdb_bucket: str = "market"
    """Bucket created by onboarding."""
    influxdb_username: str = "finplat"
    """Admin user created by onboarding."""
    influxdb_password: SecretStr = SecretStr("finplat-dev-password")
    """Admin password (at least 8 characters)."""
    influxdb_token: SecretStr = SecretStr("finplat-dev-token")
    """Operator token created by onboarding; services use it through FINPLAT_INFLUX_TOKEN."""
    influxdb_retention_s: int = 0
    """Retention of the bucket; 0 keeps data forever."""
    influxdb_cache_max_mb: int = 256
    """In-memory write cache cap (influxd's default is 1 GiB, too much for a laptop stack)."""

    postgres_port: int = 5432
    """PostgreSQL port on `host`; clients log in with a password (SCRAM-SHA-256)."""
    postgres_bin_dir: Path | None = None
    """Directory with initdb and postgres; unset: the newest /usr/lib/postgresql/*/bin."""
    postgres_database: str = "finplat"
    """Database created once the server is up, owned by postgres_username."""
    postgres_username: str = "finplat"
    """Superuser the cluster is created with at the first start; clients log in as it."""
    postgres_password: SecretStr = SecretStr("finplat-dev-pg-password")
    """Its password, set at the first start only; later changes need ALTER ROLE."""
