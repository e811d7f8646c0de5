"""Settings of `finplat up` / `finplat down`; env prefix `FINPLAT_PLATFORM_`.

Ports and addresses are not repeated here: each service's own settings class stays the one place
that says where it listens, and the supervisor reads them to wire the services together.
"""

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finplat.core.paths import REPOSITORY
from finplat.core.retry import RetryPolicy


class PlatformSettings(BaseSettings):
    """What `up` starts, how fast the replay runs, where logs and pid files go, and timeouts."""

    model_config = SettingsConfigDict(env_prefix="FINPLAT_PLATFORM_", frozen=True, extra="forbid")

    live: bool = False
    """Feed the price service from Binance's live endpoints instead of the local replay."""
    replay_speed: float = Field(default=60.0, gt=0)
    """Market time per wall second: 60 is a minute a second, so a 1m candle closes every second
    and a 1h candle every minute, while the recorded months last about two days before the
    replay loops. Faster only burns the 2 cores; real time (1) shows nothing happening."""
    replay_cycle_days: int = Field(default=30, ge=1)
    """Days of data the replay's starting point cycles through. The start follows the wall
    clock (at `replay_speed`), so a restart continues the market where a never-stopped replay
    would be, instead of repeating minutes the stores and the statistics' de-duplication have
    seen. The cycle must end before the shortest symbol's data does (the shared ETHUSDT file
    ends 2024-11-04, 34 days in); at 60x it takes 12 hours of wall time."""
    history_days: int = Field(default=1, ge=0, le=30)
    """Days of 1m candles loaded into InfluxDB at start (`finplat price backfill`), so charts
    and backtests have history at once. The replay starts this many days into its data and
    serves the days before its start as REST history; live, they are the last days. 0 skips it."""
    manage_stack: bool = True
    """Start the native stack with the services and stop it with them; off, use whatever
    stack the FINPLAT_KAFKA_/REDIS_/INFLUX_ settings point at and never touch it."""

    prometheus_port: int = Field(default=9090, ge=0, le=65535)
    """Prometheus (Debian's `prometheus` package) runs beside the services on this loopback
    port, scraping them and evaluating the alert rules. 0 leaves it out."""
    prometheus_config_dir: Path = REPOSITORY / "deploy" / "prometheus"
    """The configuration compose uses too: its prometheus.yml and alerts.yml are used as they
    are; only the target list is written for the ports of this run."""
    prometheus_dir: Path = Path("var/prometheus")
    """This run's Prometheus configuration (`etc/`) and its data (`data/`, kept two days)."""

    log_dir: Path = Path("var/log")
    """One log file per process, `<name>.log`. Relative to the working directory."""
    run_dir: Path = Path("var/run")
    """Pid files, `<name>.pid`, and the lock serialising `up` and `down`."""

    start_timeout_s: float = Field(default=120.0, gt=0)
    """How long one process may take from spawn to a passing readiness probe."""
    stop_timeout_s: float = Field(default=20.0, gt=0)
    """How long `down` waits after SIGTERM before SIGKILL; covers the price service draining
    its buffers into the stores (10 s) after its gRPC grace period (5 s)."""
    probe_timeout_s: float = Field(default=2.0, gt=0)
    """Timeout of one readiness probe request."""
    probe_interval_s: float = Field(default=0.25, gt=0)
    """Pause between readiness probes, and between checks of the children while running."""

    restart_delay_s: float = Field(default=1.0, gt=0)
    """Wait before restarting a child that exited while the platform runs (its exit code or
    signal is logged); it doubles with each further exit, up to `restart_delay_max_s`, and is
    shortened at random by up to half so children that fell together do not return together."""
    restart_delay_max_s: float = Field(default=60.0, gt=0)
    """Longest wait between restarts of a child that keeps exiting."""
    restart_reset_after_s: float = Field(default=60.0, ge=0)
    """A child that ran this long before it exited counts as healthy: its next restart waits
    `restart_delay_s` again (Kubernetes resets its crash-loop backoff likewise)."""
    restart_max: int = Field(default=5, ge=0)
    """Restarts of one child allowed within `restart_window_s`; one more exit stops the whole
    platform with an error naming the child and how it ended (systemd's StartLimitBurst).
    0 stops the platform at the first exit of any child."""
    restart_window_s: float = Field(default=300.0, gt=0)
    """The sliding window `restart_max` counts in (systemd's StartLimitIntervalSec)."""

    @model_validator(mode="after")
    def _restart_policy_is_valid(self) -> Self:
        # Fail when the settings are read, not at the first crash hours later.
        self.restart_policy()
        return self

    def restart_policy(self) -> RetryPolicy:
        """The backoff between restarts of one child."""
        return RetryPolicy(
            initial_s=self.restart_delay_s,
            max_s=self.restart_delay_max_s,
            reset_after_s=self.restart_reset_after_s,
        )
