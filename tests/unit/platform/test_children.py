"""How `up` wires the services to each other, and where the replay starts."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from finplat.backtest.service.settings import BacktestSettings
from finplat.gateway.service.settings import GatewaySettings
from finplat.platform.children import ServiceSettings, build_plan
from finplat.platform.errors import PlatformError
from finplat.platform.history import history_window, replay_start_ms
from finplat.platform.prometheus import write_config
from finplat.platform.settings import PlatformSettings
from finplat.platform.spec import ChildSpec
from finplat.price.service.settings import PriceSettings
from finplat.replay.settings import ReplaySettings
from tests.paths import REPO_ROOT

_FINPLAT = ["/fake/bin/finplat"]
_NOW_MS = 1_800_000_000_000  # 2027-01-15T08:00:00Z
_DAY_MS = 86_400_000
_OCT_2 = 1_727_827_200_000  # 2024-10-02T00:00:00Z


def _services() -> ServiceSettings:
    return ServiceSettings(
        ReplaySettings(port=19443, kline_first_day=date(2024, 10, 1)),
        PriceSettings(grpc_port=15051, metrics_port=19101),
        BacktestSettings(grpc_port=15052, metrics_port=19102),
        GatewaySettings(port=18080),
    )


def _ms(utc_text: str) -> int:
    moment = datetime.strptime(utc_text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _by_name(children: list[ChildSpec]) -> dict[str, ChildSpec]:
    return {child.name: child for child in children}


def test_replay_mode_wires_the_price_service_to_the_replay() -> None:
    plan = build_plan(PlatformSettings(), _services(), _FINPLAT, _NOW_MS)

    assert [[c.name for c in stage] for stage in plan.stages] == [
        ["replay"],
        ["price", "backtest", "gateway", "backfill", "prometheus"],
    ]
    children = _by_name(plan.children)
    assert children["replay"].argv[1:] == ["replay", "serve", "--speed", "60", "--loop"]
    price_env = children["price"].env
    assert price_env["FINPLAT_PRICE_FEED__WS_BASE_URL"] == "ws://127.0.0.1:19443"
    assert price_env["FINPLAT_PRICE_FEED__REST__BASE_URL"] == "http://127.0.0.1:19443"
    assert json.loads(price_env["FINPLAT_PRICE_FEED__STREAM_KINDS"]) == ["kline_1m"]
    assert children["backtest"].env == {
        "FINPLAT_BACKTEST_PRICE_SERVICE_ADDRESS": "127.0.0.1:15051",
        "FINPLAT_BACKTEST_CONSUMER_INSTANCE_ID": "finplat-up",
    }
    assert children["gateway"].env == {
        "FINPLAT_GATEWAY_PRICE_ADDRESS": "127.0.0.1:15051",
        "FINPLAT_GATEWAY_BACKTEST_ADDRESS": "127.0.0.1:15052",
    }
    assert plan.endpoints.gateway_url == "http://127.0.0.1:18080"
    assert plan.endpoints.price_metrics_url == "http://127.0.0.1:19101/metrics"
    assert plan.endpoints.backtest_metrics_url == "http://127.0.0.1:19102/metrics"


def test_every_port_is_checked_under_the_setting_that_moves_it() -> None:
    plan = build_plan(PlatformSettings(prometheus_port=19090), _services(), _FINPLAT, _NOW_MS)

    ports = {(p.number, p.setting) for child in plan.children for p in child.ports}

    assert ports == {
        (19443, "FINPLAT_REPLAY_PORT"),
        (15051, "FINPLAT_PRICE_GRPC_PORT"),
        (19101, "FINPLAT_PRICE_METRICS_PORT"),
        (15052, "FINPLAT_BACKTEST_GRPC_PORT"),
        (19102, "FINPLAT_BACKTEST_METRICS_PORT"),
        (18080, "FINPLAT_GATEWAY_PORT"),
        (19090, "FINPLAT_PLATFORM_PROMETHEUS_PORT"),
    }


def test_replay_starts_after_the_backfilled_history() -> None:
    plan = build_plan(PlatformSettings(), _services(), _FINPLAT, _NOW_MS)
    children = _by_name(plan.children)

    start_ms = int(children["replay"].env["FINPLAT_REPLAY_START_MS"])
    backfill = list(children["backfill"].argv)
    assert backfill[1:7] == ["price", "backfill", "--symbol", "BTCUSDT", "--symbol", "ETHUSDT"]
    assert _ms(backfill[backfill.index("--start") + 1]) == start_ms - _DAY_MS
    assert _ms(backfill[backfill.index("--end") + 1]) == start_ms


def test_replay_start_follows_the_wall_clock_within_the_cycle() -> None:
    settings = PlatformSettings(replay_speed=60, replay_cycle_days=30, history_days=1)
    replay = ReplaySettings(kline_first_day=date(2024, 10, 1))

    first = replay_start_ms(settings, replay, _NOW_MS)
    ten_seconds_later = replay_start_ms(settings, replay, _NOW_MS + 10_000)

    assert first is not None
    assert ten_seconds_later is not None
    assert _OCT_2 <= first < _OCT_2 + 30 * _DAY_MS
    assert first % 60_000 == 0
    # Ten wall seconds at 60x are ten market minutes (unless the cycle wrapped in between).
    assert ten_seconds_later - first in {600_000, 600_000 - 30 * _DAY_MS}


def test_an_explicit_replay_start_wins() -> None:
    replay = ReplaySettings(start_ms=1_730_000_000_000)

    assert replay_start_ms(PlatformSettings(), replay, _NOW_MS) == 1_730_000_000_000


def test_live_mode_has_no_replay_and_binance_endpoints() -> None:
    plan = build_plan(PlatformSettings(live=True), _services(), _FINPLAT, _NOW_MS)

    children = _by_name(plan.children)
    assert "replay" not in children
    assert children["price"].env == {}
    assert plan.endpoints.replay_url is None
    assert "stream.binance.com" in plan.endpoints.feed
    assert history_window(PlatformSettings(live=True), ReplaySettings(), _NOW_MS) == (
        _NOW_MS - _DAY_MS,
        _NOW_MS,
    )


def test_no_history_means_no_backfill_and_the_replay_at_its_data_start() -> None:
    settings = PlatformSettings(history_days=0)
    services = _services()
    services = ServiceSettings(
        ReplaySettings(kline_first_day=None), services.price, services.backtest, services.gateway
    )

    plan = build_plan(settings, services, _FINPLAT, _NOW_MS)

    children = _by_name(plan.children)
    assert "backfill" not in children
    assert children["replay"].env == {}


def test_metrics_port_zero_is_neither_checked_nor_probed() -> None:
    services = _services()
    services = ServiceSettings(
        services.replay,
        PriceSettings(grpc_port=15051, metrics_port=0),
        services.backtest,
        services.gateway,
    )

    plan = build_plan(PlatformSettings(), services, _FINPLAT, _NOW_MS)

    assert plan.endpoints.price_metrics_url is None
    assert [p.role for p in _by_name(plan.children)["price"].ports] == ["price gRPC"]


def test_prometheus_scrapes_the_services_where_this_run_puts_them(tmp_path: Path) -> None:
    settings = PlatformSettings(prometheus_port=19090, prometheus_dir=tmp_path / "prometheus")
    prometheus = _by_name(build_plan(settings, _services(), _FINPLAT, _NOW_MS).children)[
        "prometheus"
    ]
    assert prometheus.prepare is not None

    prometheus.prepare()

    etc = tmp_path / "prometheus" / "etc"
    assert f"--config.file={etc / 'prometheus.yml'}" in prometheus.argv
    assert "--web.listen-address=127.0.0.1:19090" in prometheus.argv
    targets = json.loads((etc / "targets.yml").read_text().split("\n", 1)[1])
    assert {group["labels"]["service"]: group["targets"] for group in targets} == {
        "gateway": ["127.0.0.1:18080"],
        "price": ["127.0.0.1:19101"],
        "backtest": ["127.0.0.1:19102"],
    }
    assert (etc / "alerts.yml").resolve() == REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"


def test_prometheus_port_zero_leaves_it_out() -> None:
    plan = build_plan(PlatformSettings(prometheus_port=0), _services(), _FINPLAT, _NOW_MS)

    assert "prometheus" not in _by_name(plan.children)
    assert plan.endpoints.prometheus_url is None


def test_a_missing_prometheus_configuration_is_named(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="FINPLAT_PLATFORM_PROMETHEUS_CONFIG_DIR"):
        write_config(tmp_path / "nowhere", tmp_path / "etc", {})
