"""Who may call a gRPC server, and how a client dials one: TLS and the bearer token.

The fields are mixed into each service's settings (so the variables read
`FINPLAT_PRICE_API_TOKEN`, `FINPLAT_BACKTEST_TLS_CERT_FILE`, ...) and into the settings of each
client, so the price service, the backtest service and the gateway share one definition. TLS
here is server-authenticated TLS, as grpc-gateway and most service meshes use between a gateway
and its backends: the server shows a certificate, the client checks it against a CA file.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import grpc
from pydantic import BaseModel, SecretStr, model_validator

from finplat.core.auth import OPEN_PREFIXES, BearerTokenInterceptor


class TlsCertificate(BaseModel):
    """A server's certificate and key: with both set, its port speaks TLS only."""

    tls_cert_file: Path | None = None
    """PEM certificate chain of the server; with `tls_key_file`, the port speaks TLS only."""
    tls_key_file: Path | None = None
    """PEM private key of `tls_cert_file`."""

    @model_validator(mode="after")
    def _tls_needs_both(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both tls_cert_file and tls_key_file, or neither")
        return self


class ServerSecurity(TlsCertificate):
    """The doors of a gRPC server: its certificate and the token every call must carry."""

    api_token: SecretStr | None = None
    """When set, every call needs `authorization: Bearer <token>` (the gateway forwards the
    header it was given); others get UNAUTHENTICATED."""
    open_health: bool = True
    """Health checks and reflection answer without the token (load balancers, `finplat health`
    and grpcurl need them); false puts them behind it too."""

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """The token check, when a token is set."""
        if self.api_token is None:
            return []
        open_prefixes = OPEN_PREFIXES if self.open_health else ()
        return [BearerTokenInterceptor(self.api_token, open_prefixes)]

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS credentials for the port, or None for plaintext."""
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        return grpc.ssl_server_credentials(
            [(self.tls_key_file.read_bytes(), self.tls_cert_file.read_bytes())]
        )


class ChannelSecurity(BaseModel):
    """How a client dials a gRPC server: plaintext, or TLS checked against a CA."""

    tls_ca_file: Path | None = None
    """PEM CA bundle that signed the gRPC servers' certificates; when set, calls use TLS."""
    tls_server_name: str | None = None
    """Name to check the server's certificate against, when it differs from the address's
    host (e.g. dialing an IP address)."""

    def open_channel(
        self, address: str, options: Sequence[tuple[str, Any]] = ()
    ) -> grpc.aio.Channel:
        """A channel to `address`: TLS when a CA is set, plaintext otherwise."""
        credentials, settings = self._tls(options)
        if credentials is None:
            return grpc.aio.insecure_channel(address, options=settings)
        return grpc.aio.secure_channel(address, credentials, options=settings)

    def open_blocking_channel(self, address: str) -> grpc.Channel:
        """The same, on gRPC's synchronous API: for scripts, notebooks and health checks."""
        credentials, settings = self._tls(())
        if credentials is None:
            return grpc.insecure_channel(address, options=settings)
        return grpc.secure_channel(address, credentials, options=settings)

    def _tls(
        self, options: Sequence[tuple[str, Any]]
    ) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, Any]]]:
        settings = list(options)
        if self.tls_ca_file is None:
            return None, settings
        if self.tls_server_name is not None:
            settings.append(("grpc.ssl_target_name_override", self.tls_server_name))
        credentials = grpc.ssl_channel_credentials(root_certificates=self.tls_ca_file.read_bytes())
        return credentials, settings


def bearer_metadata(token: SecretStr | None) -> tuple[tuple[str, str], ...]:
    """Call metadata presenting `token`, or none without one."""
    if token is None:
        return ()
    return (("authorization", f"Bearer {token.get_secret_value()}"),)
