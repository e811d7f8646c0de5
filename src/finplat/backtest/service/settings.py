"""Settings of the backtest service, read once from `FINPLAT_BACKTEST_*` by the composition root."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from finplat.core.grpc_security import ChannelSecurity, ServerSecurity


class BacktestSettings(BaseSettings, ServerSecurity, ChannelSecurity):
    """Where the service listens, what it reads and stores, and its limits.

    The gRPC server's TLS and token come from `ServerSecurity`; `tls_ca_file` and
    `tls_server_name` (from `ChannelSecurity`) are how it dials the price service."""

    model_config = SettingsConfigDict(env_prefix="FINPLAT_BACKTEST_", frozen=True, extra="forbid")

    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=50052, ge=0, le=65535)
    # Port of the Prometheus endpoint (`/metrics`, on grpc_host); 0 disables it.
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    # Time in-flight calls get to finish on SIGTERM before the server stops.
    shutdown_grace_s: float = Field(default=5.0, ge=0)

    # Stored backtests and sweeps; relative paths are relative to the working directory.
    results_path: Path = Path("var/backtest/results.sqlite3")
    # PostgreSQL instead of the results_path file, for stored backtests, sweeps (with their
    # whole tables), walk-forwards and operations: one database that several instances of the
    # service share. `postgresql://USER:PASSWORD@HOST:5432/DATABASE` (psycopg 3 connects;
    # libpq's parameters go in the query, `?sslmode=require`). Unset: the SQLite file.
    # Each sweep or walk-forward operation runs on one instance, which holds its lease (see
    # operation_lease_s); any instance answers for it (get, list, wait, watch, cancel).
    database_url: SecretStr | None = None
    # Statistics, de-duplication window and next offset of each partition the consumer reads
    # (the source of truth). With database_url set they live in that database instead, where
    # every instance of the group finds the state of the partitions it is given.
    consumer_state_path: Path = Path("var/backtest/consumer.sqlite3")
    # The consumer group: instances with the same id share the topic's partitions (and, to
    # count them together, a database_url).
    consumer_group_id: str = "finplat-backtest"
    # Kafka static membership (`group.instance.id`, KIP-345): a restarted service with the same
    # id gets its partitions back at once. Without it, a killed member holds them until the
    # group's session timeout (45 s) passes. Give each running instance its own, stable id.
    # It also names the instance's operation leases: restarted, it takes back its operations
    # at once (without it, another instance takes them over when their leases expire).
    consumer_instance_id: str | None = None
    consumer_enabled: bool = True
    # Largest batch taken from librdkafka at once; a batch is persisted in one transaction.
    poll_max_messages: int = Field(default=2000, ge=1, le=100_000)
    # How long one poll waits; also bounds how long a stop request waits for the poll thread.
    poll_timeout_s: float = Field(default=0.25, gt=0, le=5)
    # Event keys remembered for de-duplication, per partition; older keys are forgotten first.
    dedup_capacity: int = Field(default=100_000, ge=1)
    # How long a batch waits for its dead letters to be acknowledged before it is retried.
    dead_letter_timeout_s: float = Field(default=10.0, gt=0)
    stats_log_interval_s: float = Field(default=30.0, gt=0)

    price_service_address: str = "127.0.0.1:50051"
    # Bearer token sent to the price service, when that one asks for a token.
    price_service_api_token: SecretStr | None = None
    # Deadline of each GetCandles call.
    price_service_timeout_s: float = Field(default=30.0, gt=0)
    # Candles per GetCandles call; the price service answers at most 5000.
    candles_per_request: int = Field(default=5000, ge=1, le=5000)

    # Directories of the operator's own strategy files (`*.py`, each spec at top level), a
    # JSON list: '["strategies"]'. Trusted code, imported at start-up: see `finplat.strategy`.
    # Strategies of installed packages come from the `finplat.strategies` entry points.
    strategy_dirs: tuple[Path, ...] = ()

    # Backtests and sweeps run at once (2 cores: more would only queue inside numba).
    max_concurrent_runs: int = Field(default=2, ge=1)
    # Threads of a sweep here: RunSweep's, and the operations' with the local executor.
    sweep_workers: int = Field(default=2, ge=1)
    # Where sweep and walk-forward operations compute their chunks: `local`, `sweep_workers`
    # threads of this process; `ray`, one task per chunk on the Ray cluster at `ray_address`
    # (each node needs finplat and the operator's strategy packages; strategy files travel
    # with the sweep). The results are the same either way.
    sweep_executor: Literal["local", "ray"] = "local"
    # The Ray cluster: `auto` (the one `ray start` runs on this machine), `HOST:6379` (its
    # head's GCS, from a node of the cluster) or `ray://HOST:10001` (Ray Client, from anywhere;
    # e.g. a KubeRay cluster's head service).
    ray_address: str = "auto"
    # Combinations a sweep's grid may have. Up to a million: ranked on a bounded heap (a grid
    # above 10,000 must ask for its best `top_n`), at the executor's speed (a Ray cluster's).
    max_sweep_combinations: int = Field(default=10_000, ge=1, le=1_000_000)
    # How long an operation's lease lasts unrenewed; its instance renews it every third of
    # that, in the same round taking over the operations whose lease expired and acting on
    # cancels asked of other instances. With database_url, the longest a killed instance's
    # operations wait before another instance resumes them from their stored chunks, and a
    # cancel asked of another instance takes up to a third of it. The instances' clocks must
    # agree to well within it.
    operation_lease_s: float = Field(default=30.0, ge=1)
    # Bars one backtest may ask for (a year of 1m bars is 525,600).
    max_bars: int = Field(default=5_000_000, ge=2)
    # Points kept of an equity curve in a stored backtest.
    max_equity_points: int = Field(default=2000, ge=10)

    @property
    def grpc_address(self) -> str:
        """`host:port` the gRPC server binds."""
        return f"{self.grpc_host}:{self.grpc_port}"
