"""What `finplat up` runs: one command line, environment, ports and probe per child process.

The services' own settings classes say where each listens; this module only wires them to each
other (the price service to the replay, the gateway and the backtest service to the price
service) through the environment of the children, so nothing is configured twice.
"""

import functools
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from finplat.backtest.service.settings import BacktestSettings
from finplat.gateway.service.settings import GatewaySettings
from finplat.platform import probes
from finplat.platform.history import history_window, replay_start_ms, utc_text
from finplat.platform.prometheus import prometheus_child
from finplat.platform.settings import PlatformSettings
from finplat.platform.spec import ChildSpec
from finplat.price.service.settings import PriceSettings
from finplat.replay.settings import ReplaySettings
from finplat.stack.component import Port

# Wildcard binds are reached over loopback.
_CONNECT_HOSTS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True)
class Endpoints:
    """Where users find the running platform (all None-able parts depend on settings)."""

    gateway_url: str
    price_grpc: str
    backtest_grpc: str
    price_metrics_url: str | None
    backtest_metrics_url: str | None
    replay_url: str | None
    prometheus_url: str | None
    feed: str


@dataclass(frozen=True)
class Plan:
    """Children in start stages: each stage is spawned at once, then waited for in order."""

    stages: Sequence[Sequence[ChildSpec]]
    endpoints: Endpoints

    @property
    def children(self) -> list[ChildSpec]:
        """Every child, in start order."""
        return [child for stage in self.stages for child in stage]


@dataclass(frozen=True)
class ServiceSettings:
    """The settings of every service the platform runs, read from the environment once."""

    replay: ReplaySettings
    price: PriceSettings
    backtest: BacktestSettings
    gateway: GatewaySettings

    @classmethod
    def from_env(cls) -> "ServiceSettings":
        """Each service's settings as that service itself would read them."""
        return cls(ReplaySettings(), PriceSettings(), BacktestSettings(), GatewaySettings())


def finplat_command() -> list[str]:
    """The `finplat` console script of this interpreter (so `ps` shows readable commands)."""
    script = Path(sys.executable).parent / "finplat"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from finplat.cli import main; main()"]


def _connect(host: str, port: int) -> str:
    return f"{_CONNECT_HOSTS.get(host, host)}:{port}"


@dataclass(frozen=True)
class _Addresses:
    price: str
    backtest: str
    gateway_url: str
    price_metrics: str | None
    backtest_metrics: str | None
    replay_url: str | None


def _metrics_url(host: str, port: int) -> str | None:
    return f"http://{_connect(host, port)}/metrics" if port else None


def _addresses(platform: PlatformSettings, services: ServiceSettings) -> _Addresses:
    price, backtest, gateway, replay = (
        services.price,
        services.backtest,
        services.gateway,
        services.replay,
    )
    return _Addresses(
        _connect(price.grpc_host, price.grpc_port),
        _connect(backtest.grpc_host, backtest.grpc_port),
        f"http://{_connect(gateway.host, gateway.port)}",
        _metrics_url(price.grpc_host, price.metrics_port),
        _metrics_url(backtest.grpc_host, backtest.metrics_port),
        None if platform.live else f"http://{_connect(replay.host, replay.port)}",
    )


def build_plan(
    platform: PlatformSettings, services: ServiceSettings, finplat: Sequence[str], now_ms: int
) -> Plan:
    """The children of one `up`, wired to each other."""
    at = _addresses(platform, services)
    window = history_window(platform, services.replay, now_ms)
    stages: list[list[ChildSpec]] = []
    feed_env: dict[str, str] = {}
    if at.replay_url is None:
        feed = f"live Binance ({services.price.feed.ws_base_url})"
    else:
        feed_env = {
            "FINPLAT_PRICE_FEED__WS_BASE_URL": at.replay_url.replace("http://", "ws://", 1),
            "FINPLAT_PRICE_FEED__REST__BASE_URL": at.replay_url,
        }
        start_ms = replay_start_ms(platform, services.replay, now_ms)
        stages.append([_replay(platform, services.replay, at.replay_url, finplat, start_ms)])
        start = "the start of its data" if start_ms is None else utc_text(start_ms)
        feed = (
            f"replay of {services.replay.data_dir} at {platform.replay_speed:g}x "
            f"from {start} UTC, looping"
        )
    stage = _services(platform, services, at, finplat, feed_env)
    if window is not None:
        symbols = [arg for symbol in services.price.feed.symbols for arg in ("--symbol", symbol)]
        times = ["--start", utc_text(window[0]), "--end", utc_text(window[1])]
        argv = [*finplat, "price", "backfill", *symbols, "--interval", "1m", *times]
        stage.append(ChildSpec("backfill", argv, feed_env))
    prometheus_url = None
    if platform.prometheus_port:
        stage.append(prometheus_child(platform, _scrape_targets(services)))
        prometheus_url = f"http://127.0.0.1:{platform.prometheus_port}"
    stages.append(stage)
    endpoints = Endpoints(
        at.gateway_url,
        at.price,
        at.backtest,
        at.price_metrics,
        at.backtest_metrics,
        at.replay_url,
        prometheus_url,
        feed,
    )
    return Plan(stages, endpoints)


def _scrape_targets(services: ServiceSettings) -> dict[str, str]:
    # The `service` labels of deploy/prometheus/targets.yml, which the alerts and the
    # dashboard group by.
    price, backtest, gateway = services.price, services.backtest, services.gateway
    targets = {"gateway": _connect(gateway.host, gateway.port)}
    if price.metrics_port:
        targets["price"] = _connect(price.grpc_host, price.metrics_port)
    if backtest.metrics_port:
        targets["backtest"] = _connect(backtest.grpc_host, backtest.metrics_port)
    return targets


def _replay(
    platform: PlatformSettings,
    replay: ReplaySettings,
    url: str,
    finplat: Sequence[str],
    start_ms: int | None,
) -> ChildSpec:
    return ChildSpec(
        "replay",
        [*finplat, "replay", "serve", "--speed", f"{platform.replay_speed:g}", "--loop"],
        {} if start_ms is None else {"FINPLAT_REPLAY_START_MS": str(start_ms)},
        [Port(replay.port, "replay WebSocket and REST", "FINPLAT_REPLAY_PORT")],
        functools.partial(probes.http_ok, f"{url}/api/v3/ping", platform.probe_timeout_s),
    )


def _services(
    platform: PlatformSettings,
    services: ServiceSettings,
    at: _Addresses,
    finplat: Sequence[str],
    feed_env: Mapping[str, str],
) -> list[ChildSpec]:
    price, backtest, timeout = services.price, services.backtest, platform.probe_timeout_s
    price_ports = [Port(price.grpc_port, "price gRPC", "FINPLAT_PRICE_GRPC_PORT")]
    if price.metrics_port:
        price_ports.append(Port(price.metrics_port, "price metrics", "FINPLAT_PRICE_METRICS_PORT"))
    backtest_ports = [Port(backtest.grpc_port, "backtest gRPC", "FINPLAT_BACKTEST_GRPC_PORT")]
    if backtest.metrics_port:
        backtest_ports.append(
            Port(backtest.metrics_port, "backtest metrics", "FINPLAT_BACKTEST_METRICS_PORT")
        )
    if not platform.live:
        # The recorded trades are one day of 2017, with their 2017 times: mixed into the 2024
        # klines they would make BTCUSDT jump between $60k and $4k. Replay klines only.
        kinds = [kind for kind in price.feed.stream_kinds if "rade" not in kind] or ["kline_1m"]
        feed_env = {**feed_env, "FINPLAT_PRICE_FEED__STREAM_KINDS": json.dumps(kinds)}
    return [
        ChildSpec(
            "price",
            [*finplat, "price", "serve"],
            feed_env,
            price_ports,
            functools.partial(_serving, at.price, at.price_metrics, timeout),
        ),
        ChildSpec(
            "backtest",
            [*finplat, "backtest", "serve"],
            {
                "FINPLAT_BACKTEST_PRICE_SERVICE_ADDRESS": at.price,
                # One instance per run: static membership lets a restarted backtest service
                # take its partitions back at once (see BacktestSettings).
                "FINPLAT_BACKTEST_CONSUMER_INSTANCE_ID": services.backtest.consumer_instance_id
                or "finplat-up",
            },
            backtest_ports,
            functools.partial(_serving, at.backtest, at.backtest_metrics, timeout),
        ),
        ChildSpec(
            "gateway",
            [*finplat, "gateway", "serve"],
            {
                "FINPLAT_GATEWAY_PRICE_ADDRESS": at.price,
                "FINPLAT_GATEWAY_BACKTEST_ADDRESS": at.backtest,
            },
            [Port(services.gateway.port, "gateway HTTP", "FINPLAT_GATEWAY_PORT")],
            # 200 only once every upstream reports SERVING.
            functools.partial(probes.http_ok, f"{at.gateway_url}/health", timeout),
        ),
    ]


def _serving(address: str, metrics_url: str | None, timeout_s: float) -> None:
    # A service's metrics endpoint may open after its gRPC server (the price service's once
    # its feed is connected); ready means both answer, so every printed URL works.
    probes.grpc_serving(address, timeout_s)
    if metrics_url is not None:
        probes.http_ok(metrics_url, timeout_s)
