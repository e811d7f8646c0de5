"""Settings validate their input; the replay settings read FINPLAT_REPLAY_ variables."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from finplat.price.adapters.binance.settings import FeedSettings
from finplat.price.service.settings import PriceSettings
from finplat.replay.settings import ReplaySettings


def test_feed_settings_normalise_symbols_and_check_kinds() -> None:
    settings = FeedSettings(symbols=("btcusdt",), stream_kinds=("aggTrade", "kline_15m"))

    assert settings.symbols == ("BTCUSDT",)


@pytest.mark.parametrize(
    "bad",
    [
        {"stream_kinds": ("depth",)},
        {"max_streams_per_connection": 2000},
        {"control_messages_per_s": 6},
        {"unknown_field": 1},
        {"symbols": ()},
    ],
)
def test_feed_settings_refuse_what_binance_would(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FeedSettings.model_validate(bad)


def test_feed_settings_are_frozen() -> None:
    settings = FeedSettings()

    with pytest.raises(ValidationError):
        settings.symbols = ("X",)


def test_replay_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FINPLAT_REPLAY_SPEED", "60")
    monkeypatch.setenv("FINPLAT_REPLAY_SYMBOLS", '["btcusdt"]')
    monkeypatch.setenv("FINPLAT_DATA_DIR", str(tmp_path))

    settings = ReplaySettings()

    assert (settings.speed, settings.symbols, settings.data_dir) == (60.0, ("BTCUSDT",), tmp_path)


def test_replay_settings_refuse_sub_minute_streams() -> None:
    with pytest.raises(ValidationError, match="1m or coarser"):
        ReplaySettings(kline_intervals=("1s",))


def test_one_rest_retry_variable_keeps_the_other_rest_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FINPLAT_PRICE_FEED__REST__RETRY__MAX_ATTEMPTS", "9")

    retry = PriceSettings().feed.rest.retry

    assert (retry.max_attempts, retry.initial_s, retry.max_s) == (9, 0.5, 30.0)


def test_the_shard_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPLAT_PRICE_FEED__SYMBOLS", '["SOLUSDT", "BTCUSDT", "ETHUSDT"]')
    monkeypatch.setenv("FINPLAT_PRICE_FEED__SHARD_INDEX", "1")
    monkeypatch.setenv("FINPLAT_PRICE_FEED__SHARD_COUNT", "2")

    feed = PriceSettings().feed

    assert (feed.shard_index, feed.shard_count, feed.owned) == (1, 2, ("ETHUSDT",))
