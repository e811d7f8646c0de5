"""compose.yaml and the Dockerfile match the native stack, our settings and how operators run
containers (no Docker engine runs here, so their structure is checked instead of
`docker compose config` and `docker build`)."""

import re
from pathlib import Path
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
from finplat.stack.kafka import kafka_nodes, topic_shape
from finplat.stack.process import StackDirs
from finplat.stack.settings import StackSettings
from tests.paths import REPO_ROOT

INFRASTRUCTURE = {"kafka", "schema-registry", "redis", "influxdb"}
MONITORING = {"prometheus", "grafana"}
SERVICES = {"replay", "price-service", "backtest-service", "gateway"}
JOBS = {"kafka-topics"}
RAY = {"ray-head", "ray-worker"}  # the `ray` profile's cluster, for sweeps
KAFKA_CLUSTER = {"kafka-2", "kafka-3"}  # the `cluster` profile's other Kafka nodes
CLUSTER_ENV = REPO_ROOT / "deploy" / "compose" / "cluster.env"
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


def _env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and line[0] != "#"]
    return dict(line.split("=", 1) for line in lines)


def _interpolated(value: Any, variables: dict[str, str]) -> str:
    """`value` as compose reads it: `${NAME:-default}` is NAME's value, else the default."""
    return re.sub(
        r"\$\{(\w+):-([^}]*)\}",
        lambda match: variables.get(match[1], match[2]),
        str(value),
    )


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
    assert f"--partitions={settings.topic_partitions}" in [_interpolated(a, {}) for a in command]


def test_every_published_port_binds_loopback_only(compose: dict[str, Any]) -> None:
    ports = [
        (name, str(port))
        for name, service in _services(compose).items()
        for port in service.get("ports", [])
    ]

    assert len(ports) == 15
    for name, port in ports:
        # "HOST:PUBLISHED:TARGET"; without HOST, Docker binds every interface.
        parts = port.split(":")
        assert len(parts) == 3, f"{name}: {port}"
        assert parts[0] == "127.0.0.1", f"{name}: {port}"


def test_every_service_has_the_restart_policy_operators_expect(compose: dict[str, Any]) -> None:
    restart = {name: service.get("restart") for name, service in _services(compose).items()}

    assert restart.keys() == INFRASTRUCTURE | MONITORING | SERVICES | JOBS | RAY | KAFKA_CLUSTER
    for name in INFRASTRUCTURE | MONITORING | RAY | KAFKA_CLUSTER:
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


def test_the_cluster_profile_has_the_shape_of_the_native_cluster(compose: dict[str, Any]) -> None:
    services = _services(compose)
    variables = _env_file(CLUSTER_ENV)
    native = StackSettings(kafka_brokers=3)
    shape = topic_shape(native)
    names = ["kafka", "kafka-2", "kafka-3"]
    nodes = [
        {key: _interpolated(value, variables) for key, value in services[n]["environment"].items()}
        for n in names
    ]
    topics = [_interpolated(a, variables) for a in services["kafka-topics"]["command"]]
    bootstrap = [f"{name}:29092" for name in names]

    assert {n for n, s in services.items() if "cluster" in s.get("profiles", [])} == KAFKA_CLUSTER
    assert [node["KAFKA_NODE_ID"] for node in nodes] == ["1", "2", "3"]
    assert {node["KAFKA_CONTROLLER_QUORUM_VOTERS"] for node in nodes} == {
        "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
    }
    for node in nodes:
        assert node["KAFKA_DEFAULT_REPLICATION_FACTOR"] == str(shape.replication_factor)
        assert node["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == str(shape.replication_factor)
        assert node["KAFKA_MIN_INSYNC_REPLICAS"] == str(shape.min_insync_replicas)
    assert f"--partitions={shape.partitions}" in topics
    assert f"--replication-factor={shape.replication_factor}" in topics
    assert f"--bootstrap-server={','.join(bootstrap)}" in topics
    for client in ("price-service", "backtest-service"):
        environment = services[client]["environment"]
        resolved = _interpolated(environment["FINPLAT_KAFKA_BOOTSTRAP_SERVERS"], variables)
        assert resolved == ",".join(bootstrap), client
    # Published where the native cluster's nodes listen.
    native_ports = [n.broker_port for n in kafka_nodes(native, StackDirs(REPO_ROOT / "var"))]
    assert [min(_published(services[n])) for n in names] == native_ports


def test_without_the_cluster_profile_kafka_is_one_node(compose: dict[str, Any]) -> None:
    node = {
        key: _interpolated(value, {})
        for key, value in _services(compose)["kafka"]["environment"].items()
    }

    assert node["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert node["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "1"
    assert node["KAFKA_MIN_INSYNC_REPLICAS"] == "1"
