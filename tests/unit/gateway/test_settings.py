"""GatewaySettings: defaults, the FINPLAT_GATEWAY_ prefix, secrets, and the serve command."""

import pydantic
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from finplat.gateway.cli import gateway
from finplat.gateway.service.app import create_app
from finplat.gateway.service.settings import GatewaySettings


def test_defaults_listen_on_loopback_and_point_at_the_local_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HOST", "PORT", "PRICE_ADDRESS", "BACKTEST_ADDRESS", "API_TOKEN"):
        monkeypatch.delenv(f"FINPLAT_GATEWAY_{name}", raising=False)

    settings = GatewaySettings()

    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.price_address == "127.0.0.1:50051"
    assert settings.backtest_address == "127.0.0.1:50052"
    assert settings.api_token is None
    assert settings.cors_origins == []


def test_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPLAT_GATEWAY_PORT", "9090")
    monkeypatch.setenv("FINPLAT_GATEWAY_PRICE_ADDRESS", "prices:6000")
    monkeypatch.setenv("FINPLAT_GATEWAY_CORS_ORIGINS", '["https://app.example"]')
    monkeypatch.setenv("FINPLAT_GATEWAY_API_TOKEN", "t0ken")

    settings = GatewaySettings()

    assert settings.port == 9090
    assert settings.price_address == "prices:6000"
    assert settings.cors_origins == ["https://app.example"]
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "t0ken"
    assert "t0ken" not in repr(settings)


def test_settings_are_frozen_and_strict() -> None:
    settings = GatewaySettings()

    with pytest.raises(pydantic.ValidationError):
        settings.port = 1
    with pytest.raises(pydantic.ValidationError):
        GatewaySettings(unknown_option=1)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        GatewaySettings(port=70000)


def test_serve_command_documents_its_options() -> None:
    result = CliRunner().invoke(gateway, ["serve", "--help"])

    assert result.exit_code == 0
    assert "--port" in result.output
    assert "FINPLAT_GATEWAY_" in result.output


def test_cors_origins_enable_cors() -> None:
    app = create_app(GatewaySettings(cors_origins=["https://app.example"]))
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }

    # No `with`: no lifespan, so no upstream is contacted; CORS answers before routing.
    allowed = TestClient(app).options("/api/prices/BTCUSDT", headers=preflight)
    other = TestClient(app).options(
        "/api/prices/BTCUSDT", headers=preflight | {"Origin": "https://evil.example"}
    )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers
