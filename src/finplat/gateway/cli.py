"""`finplat gateway serve`: the REST and WebSocket gateway under uvicorn."""

import click

from finplat.gateway.service.app import run
from finplat.gateway.service.settings import GatewaySettings


@click.group()
def gateway() -> None:
    """REST (grpc-gateway compatible) and WebSocket gateway onto the gRPC services."""


@gateway.command()
@click.option(
    "--host", help="Interface to listen on.  [default: FINPLAT_GATEWAY_HOST or 127.0.0.1]"
)
@click.option(
    "--port", type=int, help="Port to listen on.  [default: FINPLAT_GATEWAY_PORT or 8080]"
)
@click.option("--workers", type=int, help="uvicorn worker processes.  [default: 1]")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve until Ctrl-C or SIGTERM (settings from FINPLAT_GATEWAY_* variables)."""
    settings = GatewaySettings()
    overrides = {"host": host, "port": port, "workers": workers}
    # Options win over the environment; validated again, like the environment was.
    run(
        settings.model_validate(
            settings.model_dump() | {k: v for k, v in overrides.items() if v is not None}
        )
    )
