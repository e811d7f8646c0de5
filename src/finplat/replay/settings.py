"""Settings of the replay server (env prefix FINPLAT_REPLAY_)."""

from datetime import date
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finplat.core.paths import SHARED_BINANCE_DATA
from finplat.market.intervals import INTERVALS


class ReplaySettings(BaseSettings):
    """Where the data is, what to replay, how fast, and how Binance-like to be."""

    model_config = SettingsConfigDict(env_prefix="FINPLAT_REPLAY_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    # 0 picks a free port (tests).
    port: int = Field(default=9443, ge=0, le=65535)
    data_dir: Path = Field(
        default=SHARED_BINANCE_DATA,
        validation_alias=AliasChoices("FINPLAT_REPLAY_DATA_DIR", "FINPLAT_DATA_DIR", "data_dir"),
    )
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    # Kline files (by the date in their name) to load; the default is the Q4-2024 set plus
    # January 2025, skipping the lone 2017 day that would leave a seven-year hole.
    kline_first_day: date | None = date(2024, 10, 1)
    kline_last_day: date | None = None
    # Market time per wall second: 1 is real time, 60 a minute per second, 0 as fast as the
    # slowest client reads.
    speed: float = Field(default=1.0, ge=0)
    # Start the market clock here (epoch ms); default: when every symbol's klines have begun.
    start_ms: int | None = None
    # Start again from the beginning, shifted by the data's span, when the data runs out.
    loop: bool = False
    # Intervals of the kline streams served (coarser ones are aggregated from 1m).
    kline_intervals: tuple[str, ...] = ("1m", "5m", "15m", "30m", "1h")
    ping_interval_s: float | None = Field(default=20.0, gt=0)
    ping_timeout_s: float | None = Field(default=60.0, gt=0)
    max_streams_per_connection: int = Field(default=1024, ge=1)
    max_control_messages_per_s: int = Field(default=5, ge=1)
    # Frames waiting for one slow client; beyond it the client is disconnected (real time).
    send_queue_size: int = Field(default=10_000, ge=1)
    rest_weight_limit_1m: int = Field(default=6000, ge=1)

    @field_validator("symbols")
    @classmethod
    def _upper(cls, symbols: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(symbol.upper() for symbol in symbols)

    @field_validator("kline_intervals")
    @classmethod
    def _minute_or_coarser(cls, intervals: tuple[str, ...]) -> tuple[str, ...]:
        for code in intervals:
            if code not in INTERVALS or code == "1s":
                raise ValueError(f"kline interval {code!r} is not 1m or coarser")
        return intervals
