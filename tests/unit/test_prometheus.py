"""deploy/prometheus: the scrape configuration (native and compose), the alert rules and their unit
tests, checked by promtool, plus the conventions promtool does not know about."""

import json
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from finplat.backtest.service.settings import BacktestSettings
from finplat.gateway.service.settings import GatewaySettings
from finplat.platform.prometheus import write_config
from finplat.price.service.settings import PriceSettings
from tests.paths import REPO_ROOT

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "finplat.json"
# Where compose mounts the configuration, as prometheus.yml's relative paths expect.
CONFIG_DIR = PurePosixPath("/etc/prometheus")
SEVERITIES = {"critical", "warning"}


def _promtool(*args: str, cwd: Path) -> str:
    """Run promtool; fail with its output when it does not succeed."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool is not installed; `make test` installs it (Debian's `prometheus` package, "
            "through `make system-deps`)"
        )
    result = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _alerts() -> list[dict[str, Any]]:
    return [
        rule for group in _load(PROMETHEUS_DIR / "alerts.yml")["groups"] for rule in group["rules"]
    ]


def _compose_prometheus() -> dict[str, Any]:
    service: dict[str, Any] = _load(REPO_ROOT / "compose.yaml")["services"]["prometheus"]
    return service


def test_native_config_is_valid() -> None:
    output = _promtool("check", "config", "prometheus.yml", cwd=PROMETHEUS_DIR)

    # A missing file_sd file is only a warning to promtool; for us it is a target list lost.
    assert "WARNING" not in output, output


def test_compose_config_is_valid_as_compose_mounts_it(tmp_path: Path) -> None:
    for volume in _compose_prometheus()["volumes"]:
        source, target = volume.split(":")[:2]
        if not source.startswith("./"):
            continue  # the data volume
        placed = tmp_path / PurePosixPath(target).relative_to(CONFIG_DIR)
        placed.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / source, placed)

    output = _promtool("check", "config", "prometheus.yml", cwd=tmp_path)

    assert "WARNING" not in output, output
    targets = _load(tmp_path / "targets.yml")
    assert targets == _load(PROMETHEUS_DIR / "compose" / "targets.yml")


def test_alert_rules_are_valid() -> None:
    _promtool("check", "rules", "alerts.yml", cwd=PROMETHEUS_DIR)


def test_alert_rules_pass_their_unit_tests() -> None:
    _promtool("test", "rules", "alerts_test.yml", cwd=PROMETHEUS_DIR)


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    # Grafana's interval variables are not PromQL; any valid duration stands in for them.
    rules = [
        {
            "record": f"dashboard:panel_{panel['id']}_{target['refId']}",
            "expr": target["expr"].replace("$__rate_interval", "1m").replace("$__range", "1h"),
        }
        for panel in panels
        for target in panel.get("targets", [])
    ]
    (tmp_path / "dashboard.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )

    assert len(rules) > 20
    _promtool("check", "rules", "dashboard.yml", cwd=tmp_path)


def test_every_alert_has_a_severity_a_summary_and_a_description() -> None:
    alerts = _alerts()

    assert len(alerts) >= 8
    for rule in alerts:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = [
        case
        for test in _load(PROMETHEUS_DIR / "alerts_test.yml")["tests"]
        for case in test["alert_rule_test"]
    ]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}

    names = {rule["alert"] for rule in _alerts()}
    assert firing == names
    assert quiet == names


def _by_service(path: Path) -> dict[str, tuple[str, int]]:
    groups = _load(path)
    found: dict[str, tuple[str, int]] = {}
    for group in groups:
        (target,) = group["targets"]
        host, port = target.rsplit(":", 1)
        found[group["labels"]["service"]] = (host, int(port))
    return found


def test_targets_are_the_ports_of_our_settings_in_both_environments() -> None:
    # Defaults from the classes, not instances: the environment running the tests may differ.
    ports = {
        "price": PriceSettings.model_fields["metrics_port"].default,
        "backtest": BacktestSettings.model_fields["metrics_port"].default,
        "gateway": GatewaySettings.model_fields["port"].default,
    }
    compose_hosts = {"price": "price-service", "backtest": "backtest-service", "gateway": "gateway"}

    native = _by_service(PROMETHEUS_DIR / "targets.yml")
    compose = _by_service(PROMETHEUS_DIR / "compose" / "targets.yml")

    assert native == {service: ("127.0.0.1", port) for service, port in ports.items()}
    assert compose == {service: (compose_hosts[service], port) for service, port in ports.items()}
    services = _load(REPO_ROOT / "compose.yaml")["services"]
    for service, port in ports.items():
        published = {int(str(p).split(":")[-1]) for p in services[compose_hosts[service]]["ports"]}
        assert port in published, service


def test_native_config_is_valid_as_finplat_up_writes_it(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    targets = {"gateway": "127.0.0.1:18080", "price": "127.0.0.1:19101"}

    write_config(PROMETHEUS_DIR, etc, targets)

    output = _promtool("check", "config", str(etc / "prometheus.yml"), cwd=tmp_path)
    assert "WARNING" not in output, output
    assert "SUCCESS: 1 rule files found" in output, output
    assert _load(etc / "targets.yml") == [
        {"targets": ["127.0.0.1:18080"], "labels": {"service": "gateway"}},
        {"targets": ["127.0.0.1:19101"], "labels": {"service": "price"}},
    ]
