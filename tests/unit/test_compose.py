"""compose.yaml matches the native stack and our settings (no Docker engine runs here, so its
structure is checked instead of `docker compose config`)."""

from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from finplat.backtest.service.settings import BacktestSettings
from finplat.core.connections import InfluxSettings, KafkaSettings, RedisSettings
from finplat.gateway.service.settings import GatewaySettings
from finplat.price.service.settings import PriceSettings
from finplat.replay.settings import ReplaySettings
from tests.paths import REPO_ROOT

INFRASTRUCTURE = {"kafka", "schema-registry", "redis", "influxdb"}
SERVICES = {"replay", "price-service", "backtest-service", "gateway"}
SETTINGS: dict[str, type[BaseSettings]] = {
    "FINPLAT_KAFKA_": KafkaSettings,
    "FINPLAT_REDIS_": RedisSettings,
    "FINPLAT_INFLUX_": InfluxSettings,
    "FINPLAT_PRICE_": PriceSettings,
    "FINPLAT_BACKTEST_": BacktestSettings,
    "FINPLAT_GATEWAY_": GatewaySettings,
    "FINPLAT_REPLAY_": ReplaySettings,
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    return loaded


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def _published(service: dict[str, Any]) -> set[int]:
    return {int(str(port).split(":")[0]) for port in service.get("ports", [])}


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    services = _services(compose)

    assert services.keys() >= INFRASTRUCTURE | SERVICES
    for name in INFRASTRUCTURE | SERVICES:
        assert services[name]["healthcheck"]["test"], name


def _field_exists(model: type[BaseModel], path: list[str]) -> bool:
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    if len(path) == 1:
        return True
    nested = field.annotation
    if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
        return False
    return _field_exists(nested, path[1:])


def test_every_finplat_variable_names_a_setting(compose: dict[str, Any]) -> None:
    names = [
        name
        for service in _services(compose).values()
        for name in service.get("environment", {})
        if name.startswith("FINPLAT_")
    ]

    assert len(names) > 10
    for name in names:
        if name == "FINPLAT_DATA_DIR":  # the documented alias of the replay's data_dir
            continue
        prefix = next(p for p in SETTINGS if name.startswith(p))
        path = name.removeprefix(prefix).lower().split("__")
        assert _field_exists(SETTINGS[prefix], path), name


def test_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        for dependency, rule in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully"
                if dependency == "kafka-topics"
                else "service_healthy"
            )
            assert rule["condition"] == expected, f"{name} -> {dependency}"


def test_ports_are_those_of_our_settings(compose: dict[str, Any]) -> None:
    services = _services(compose)
    kafka_port = int(KafkaSettings().bootstrap_servers.rsplit(":", 1)[1])
    registry_port = urlparse(KafkaSettings().schema_registry_url).port
    redis_port = urlparse(RedisSettings().url).port
    influx_port = urlparse(InfluxSettings().url).port

    assert kafka_port in _published(services["kafka"])
    assert registry_port in _published(services["schema-registry"])
    assert redis_port in _published(services["redis"])
    assert influx_port in _published(services["influxdb"])


def test_influxdb_is_set_up_as_our_settings_expect(compose: dict[str, Any]) -> None:
    environment = _services(compose)["influxdb"]["environment"]
    settings = InfluxSettings()

    assert environment["DOCKER_INFLUXDB_INIT_ORG"] == settings.org
    assert environment["DOCKER_INFLUXDB_INIT_BUCKET"] == settings.bucket
    assert environment["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == settings.token.get_secret_value()


def test_topic_is_created_as_our_settings_expect(compose: dict[str, Any]) -> None:
    command = _services(compose)["kafka-topics"]["command"]
    settings = KafkaSettings()

    assert f"--topic={settings.topic}" in command
    assert f"--partitions={settings.topic_partitions}" in command
