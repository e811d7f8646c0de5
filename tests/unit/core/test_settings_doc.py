"""docs/CONFIGURATION.md: fresh, complete, and true to the settings it documents."""

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field

from finplat.price.service.settings import PriceSettings
from finplat.settings_doc import DOCUMENTED, field_docs, render, settings_doc
from tests.paths import REPO_ROOT, SRC_DIR

REFERENCE = REPO_ROOT / "docs" / "CONFIGURATION.md"


def test_the_reference_is_fresh() -> None:
    written = REFERENCE.read_text(encoding="utf-8") if REFERENCE.is_file() else ""

    assert written == render(), "docs/CONFIGURATION.md is stale: run `finplat settings-doc`"


def _settings_classes() -> set[tuple[str, str]]:
    found = set()
    for path in (SRC_DIR / "finplat").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id == "BaseSettings" for base in node.bases
            ):
                module = ".".join(path.relative_to(SRC_DIR).with_suffix("").parts)
                found.add((module, node.name))
    return found


def test_every_settings_class_is_documented() -> None:
    documented = {(cls.__module__, cls.__name__) for _, cls in DOCUMENTED}

    assert len(documented) >= 10
    assert _settings_classes() == documented


@pytest.mark.parametrize(
    "row",
    [
        # A field docstring.
        "| `FINPLAT_KAFKA_BOOTSTRAP_SERVERS` | `str` | `127.0.0.1:9092` "
        "| Comma-separated broker addresses. |",
        # A comment above the field, and the field's bounds.
        "| `FINPLAT_BACKTEST_POLL_TIMEOUT_S` | `float (> 0, ≤ 5)` | `0.25` | How long one poll "
        "waits; also bounds how long a stop request waits for the poll thread. |",
        # Three levels of nesting, with the default of the nested model's factory (0.5, where
        # RetryPolicy's own default is 1.0).
        "| `FINPLAT_PRICE_FEED__REST__RETRY__INITIAL_S` | `float (> 0)` | `0.5` | First wait. |",
        # Both names an alias accepts; a default derived from the repository's location.
        "| `FINPLAT_REPLAY_DATA_DIR`<br>`FINPLAT_DATA_DIR` | `Path` "
        "| `<repository>/../shared/data/binance` |",
        # A default derived from the home directory; an optional path.
        "| `FINPLAT_STACK_CACHE_DIR` | `Path` | `~/.cache/finplat` |",
        "| `FINPLAT_STACK_KAFKA_JAVA_HOME` | `Path \\| None` | unset |",
        # A secret's default is never printed.
        "| `FINPLAT_INFLUX_TOKEN` | `SecretStr` | a development secret |",
        # Lists as the JSON the environment takes.
        '| `FINPLAT_PRICE_FEED__SYMBOLS` | `tuple[str, ...]` | `["BTCUSDT", "ETHUSDT"]` |',
    ],
)
def test_rows(row: str) -> None:
    assert any(line.startswith(row) for line in render().splitlines())


def test_the_environment_does_not_leak_into_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = render()
    monkeypatch.setenv("FINPLAT_KAFKA_TOPIC", "elsewhere")
    monkeypatch.setenv("HOME", "/somewhere/else")

    assert render() == expected


def test_a_documented_nested_variable_sets_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPLAT_PRICE_FEED__REST__RETRY__MAX_S", "40")

    assert PriceSettings().feed.rest.retry.max_s == 40


def test_a_field_description_wins_over_its_docstring() -> None:
    class Described(BaseModel):
        value: int = Field(default=1, description="From Field.")
        """From the docstring."""
        other: int = 2
        # From a comment
        # on two lines.
        third: int = 3

    assert field_docs(Described) == {
        "value": "From Field.",
        "other": "",
        "third": "From a comment on two lines.",
    }


def test_check_fails_naming_the_command_and_write_fixes_it(tmp_path: Path) -> None:
    output = tmp_path / "CONFIGURATION.md"
    output.write_text("stale\n")
    runner = CliRunner()

    stale = runner.invoke(settings_doc, ["--output", str(output), "--check"])
    written = runner.invoke(settings_doc, ["--output", str(output)])
    fresh = runner.invoke(settings_doc, ["--output", str(output), "--check"])

    assert stale.exit_code == 1
    assert "run `finplat settings-doc`" in stale.output
    assert written.exit_code == 0
    assert fresh.exit_code == 0
    assert output.read_text(encoding="utf-8") == render()
