"""Prometheus as `make up` runs it: scraping every service and evaluating the alert rules."""

from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import Platform
from tests.paths import REPO_ROOT
from tests.support import eventually

pytestmark = pytest.mark.integration

_SERVICES = {"price", "backtest", "gateway"}
# The first scrape comes within one scrape interval (15 s) of Prometheus starting.
_SCRAPE_TIMEOUT_S = 45


def _api(platform: Platform, path: str) -> Any:
    response = httpx.get(f"{platform.prometheus_url}/api/v1/{path}", timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


def _healthy_services(platform: Platform) -> set[str] | None:
    targets = _api(platform, "targets")["activeTargets"]
    healthy = {t["labels"]["service"] for t in targets if t["health"] == "up"}
    return healthy if healthy == _SERVICES else None


def test_prometheus_scrapes_every_service(platform: Platform) -> None:
    eventually(lambda: _healthy_services(platform), timeout_s=_SCRAPE_TIMEOUT_S, interval_s=1)

    # The services' own series arrive, not only `up`.
    result = _api(platform, "query?query=finplat_price_feed_frames_total")["result"]
    assert result, "no finplat_price_feed_frames_total series scraped from the price service"


def test_prometheus_evaluates_the_repository_alert_rules(platform: Platform) -> None:
    shared = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    expected = {rule["alert"] for group in shared["groups"] for rule in group["rules"]}

    groups = _api(platform, "rules")["groups"]

    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert loaded == expected
    broken = [r["name"] for g in groups for r in g["rules"] if r.get("health") == "err"]
    assert broken == []
