"""The registry guards the PriceUpdate schema: BACKWARD changes pass, others are refused.

BACKWARD (Confluent's semantics, which Apicurio's ccompat API follows): a consumer using the new
schema must read data written with the previous one. Adding a field with a default and removing
a field pass; adding a field without a default, or changing a field's type, are refused.
"""

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from finplat.cli import finplat
from finplat.contract.registry import RegistryError, SchemaRegistry
from finplat.contract.schemas import load
from finplat.core.connections import KafkaSettings
from tests.paths import SCHEMA_DIR

pytestmark = pytest.mark.integration


@pytest.fixture
def subject() -> str:
    # The registry outlives a test: a fresh subject keeps the tests independent.
    return f"test-{uuid.uuid4().hex}-value"


@pytest.fixture
def registry(kafka_settings: KafkaSettings) -> Iterator[SchemaRegistry]:
    with SchemaRegistry(kafka_settings.schema_registry_url) as client:
        yield client


def _schema() -> dict[str, Any]:
    return copy.deepcopy(load(SCHEMA_DIR))


def _with_field(field: dict[str, Any]) -> dict[str, Any]:
    schema = _schema()
    schema["fields"].append(field)
    return schema


def test_new_field_with_default_is_compatible(registry: SchemaRegistry, subject: str) -> None:
    first = registry.register(subject, _schema())
    changed = _with_field({"name": "venue", "type": "string", "default": ""})

    verdict = registry.check(subject, changed)
    second = registry.register(subject, changed)

    assert verdict.compatible
    assert verdict.against_version == first.version
    assert second.version == first.version + 1


def test_removed_field_is_compatible_under_backward(registry: SchemaRegistry, subject: str) -> None:
    registry.register(subject, _schema())
    changed = _schema()
    changed["fields"] = [f for f in changed["fields"] if f["name"] != "exchange"]

    assert registry.check(subject, changed).compatible


def test_new_field_without_default_is_refused(registry: SchemaRegistry, subject: str) -> None:
    registry.register(subject, _schema())
    changed = _with_field({"name": "venue", "type": "string"})

    verdict = registry.check(subject, changed)

    assert not verdict.compatible


def test_changed_type_is_refused(registry: SchemaRegistry, subject: str) -> None:
    registry.register(subject, _schema())
    changed = _schema()
    for field in changed["fields"]:
        if field["name"] == "price":
            field["type"] = "double"
            field["default"] = 0.0

    verdict = registry.check(subject, changed)

    assert not verdict.compatible


def test_register_refuses_an_incompatible_schema(registry: SchemaRegistry, subject: str) -> None:
    registry.register(subject, _schema())

    with pytest.raises(RegistryError, match=r"HTTP 409.*venue"):
        registry.register(subject, _with_field({"name": "venue", "type": "long"}))


def test_cli_check_prints_the_registry_reason(
    kafka_settings: KafkaSettings, subject: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINPLAT_SCHEMAS_REGISTRY_URL", kafka_settings.schema_registry_url)
    monkeypatch.setenv("FINPLAT_SCHEMAS_SUBJECT", subject)
    runner = CliRunner()
    registered = runner.invoke(finplat, ["schemas", "register"])
    fresh = runner.invoke(finplat, ["schemas", "check"])
    (tmp_path / "price_update.avsc").write_text(
        json.dumps(_with_field({"name": "venue", "type": "long"}))
    )

    refused = runner.invoke(finplat, ["schemas", "--schema-dir", str(tmp_path), "check"])

    assert registered.exit_code == 0, registered.output
    assert f"registered {subject} version 1" in registered.output
    assert fresh.exit_code == 0
    assert f"{subject}: compatible with version 1" in fresh.output
    assert refused.exit_code == 1
    assert "NOT compatible with version 1" in refused.output
