"""compose.yaml and the Dockerfile match the native stack, our settings and how operators run
containers (no Docker engine runs here, so their structure is checked instead of
`docker compose config` and `docker build`)."""

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
MONITORING = {"prometheus", "grafana"}
SERVICES = {"replay", "price-service", "backtest-service", "gateway"}
JOBS = {"kafka-topics"}
RAY = {"ray-head", "ray-worker"}  # the `ray` profile's cluster, for sweeps
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
    return {int(str(port).split(":")[-2]) for port in service.get("ports", [])}


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


def test_every_published_port_binds_loopback_only(compose: dict[str, Any]) -> None:
    ports = [
        (name, str(port))
        for name, service in _services(compose).items()
        for port in service.get("ports", [])
    ]

    assert len(ports) == 13
    for name, port in ports:
        # "HOST:PUBLISHED:TARGET"; without HOST, Docker binds every interface.
        parts = port.split(":")
        assert len(parts) == 3, f"{name}: {port}"
        assert parts[0] == "127.0.0.1", f"{name}: {port}"


def test_every_service_has_the_restart_policy_operators_expect(compose: dict[str, Any]) -> None:
    restart = {name: service.get("restart") for name, service in _services(compose).items()}

    assert restart.keys() == INFRASTRUCTURE | MONITORING | SERVICES | JOBS | RAY
    for name in INFRASTRUCTURE | MONITORING | RAY:
        assert restart[name] == "unless-stopped", name
    for name in SERVICES:
        assert restart[name] == "on-failure", name
    assert restart["kafka-topics"] == "on-failure:3"


def _dockerfile_final_stage() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the stage the image runs, continuation lines joined."""
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = [
        (keyword.upper(), arguments.strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
        for keyword, _, arguments in [line.strip().partition(" ")]
    ]
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _users() -> list[str]:
    return [arguments for keyword, arguments in _dockerfile_final_stage() if keyword == "USER"]


def test_the_image_runs_as_a_user_that_is_not_root() -> None:
    users = _users()

    assert users, "the final stage sets no USER: it runs as root"
    user, _, group = users[-1].partition(":")
    assert user not in {"root", "0"}
    assert group not in {"root", "0"}


def test_the_image_user_owns_what_our_services_write(compose: dict[str, Any]) -> None:
    runs = " ".join(a for keyword, a in _dockerfile_final_stage() if keyword == "RUN")
    writable = [
        volume.split(":")[1]
        for service in _services(compose).values()
        if "build" in service
        for volume in service.get("volumes", [])
        if not volume.endswith(":ro")
    ]

    assert writable == ["/var/lib/finplat"]
    assert _users()[-1] == "10001:10001"
    assert "groupadd --system --gid 10001 finplat" in runs
    assert "useradd --system --uid 10001 --gid finplat" in runs
    assert "chown finplat:finplat /var/lib/finplat" in runs


def test_the_ray_profile_is_a_cluster_the_backtest_service_can_be_pointed_at(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    head, worker = services["ray-head"], services["ray-worker"]
    environment = services["backtest-service"]["environment"]

    # Only with `--profile ray`; our image, so every node has finplat and the service's Ray.
    assert {name for name, s in services.items() if "ray" in s.get("profiles", [])} == RAY
    assert head["build"] == worker["build"] == "."
    assert head["entrypoint"] == worker["entrypoint"] == ["ray"]
    assert "--ray-client-server-port=10001" in head["command"]
    assert 10001 in _published(head)
    assert "--address=ray-head:6379" in worker["command"]
    assert "--port=6379" in head["command"]
    # Local unless asked for; the head's Ray Client port when it is.
    assert (
        environment["FINPLAT_BACKTEST_SWEEP_EXECUTOR"]
        == "${FINPLAT_BACKTEST_SWEEP_EXECUTOR:-local}"
    )
    assert environment["FINPLAT_BACKTEST_RAY_ADDRESS"].endswith(":-ray://ray-head:10001}")
