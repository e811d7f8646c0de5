"""`finplat health ADDRESS`: ask a gRPC server's standard health service, for scripts and
container health checks (what grpc_health_probe does, without another binary)."""

from pathlib import Path

import click
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from finplat.core.grpc_security import ChannelSecurity

_SERVING = health_pb2.HealthCheckResponse.SERVING


@click.command()
@click.argument("address")
@click.option("--service", default="", help="Service name; the whole server when empty.")
@click.option("--timeout-s", default=3.0, show_default=True, type=float)
@click.option(
    "--tls-ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Dial with TLS, trusting this PEM CA (for a server with FINPLAT_*_TLS_CERT_FILE set).",
)
def health(address: str, service: str, timeout_s: float, tls_ca_file: Path | None) -> None:
    """Exit 0 when the gRPC server at ADDRESS (host:port) reports SERVING, 1 otherwise."""
    channel = ChannelSecurity(tls_ca_file=tls_ca_file).open_blocking_channel(address)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise click.ClickException(f"{address}: {exc.code().name}: {exc.details()}") from exc
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    click.echo(f"{address} {service or '(server)'}: {status}")
    if response.status != _SERVING:
        raise SystemExit(1)
