"""Settings of the gateway, read once from `FINPLAT_GATEWAY_*` by the composition root."""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from finplat.core.grpc_security import ChannelSecurity, TlsCertificate
from finplat.core.paths import REPOSITORY


class GatewaySettings(BaseSettings, TlsCertificate, ChannelSecurity):
    """Where the gateway listens, which upstreams it calls, and its limits.

    `tls_cert_file` and `tls_key_file` (TlsCertificate) make the gateway serve HTTPS and WSS
    only; `tls_ca_file` and `tls_server_name` (ChannelSecurity) are how it dials the price and
    backtest services when they speak TLS."""

    model_config = SettingsConfigDict(env_prefix="FINPLAT_GATEWAY_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # uvicorn worker processes; each one opens its own channels and WebSocket upstream.
    workers: int = Field(default=1, ge=1)

    # host:port of the price service; several, comma-separated, for instances that each serve
    # every symbol (shards): calls go to the first reachable, and the /ws/prices stream moves to
    # the next when its instance fails, resuming after the last update it relayed.
    price_address: str = "127.0.0.1:50051"
    backtest_address: str = "127.0.0.1:50052"

    # Deadline of unary calls sent without a `Grpc-Timeout` header; 0 means none. grpc-gateway
    # defaults to none, but a gateway that never gives up holds sockets open behind a dead
    # upstream. Server-streaming calls only get the header's deadline: a stream is long-lived.
    default_deadline_s: float = Field(default=30.0, ge=0)
    # HTTP/2 keepalive pings on the upstream channels, so a dead upstream is noticed even when a
    # stream is quiet. Upstream servers must allow pings this often (min_ping_interval).
    keepalive_time_s: float = Field(default=60.0, gt=0)
    keepalive_timeout_s: float = Field(default=20.0, gt=0)
    # Timeout of each upstream's grpc.health.v1 Check behind `GET /health`.
    health_timeout_s: float = Field(default=2.0, gt=0)

    # Origins allowed by CORS, as a JSON list (`["https://app.example"]`); empty disables CORS.
    cors_origins: list[str] = Field(default_factory=list)
    # Largest request body accepted; larger ones get 413 before any upstream call.
    max_request_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # When set, every mapped route and /ws/prices need `Authorization: Bearer <token>`; the
    # header is forwarded, so the services' interceptor checks the same token.
    api_token: SecretStr | None = None

    # Frames a WebSocket client may have waiting; a client that lets it fill is dropped (1013).
    ws_send_queue_frames: int = Field(default=256, ge=1)
    # Flush interval of clients that asked for batched frames (`?batch=true`).
    ws_batch_interval_ms: int = Field(default=100, ge=1)
    # Application-level `{"type": "ping"}` frames and protocol pings (uvicorn) every so often.
    ws_ping_interval_s: float = Field(default=20.0, gt=0)
    ws_ping_timeout_s: float = Field(default=20.0, gt=0)
    # Largest message a WebSocket client may send, and how many symbols it may subscribe to.
    ws_max_message_bytes: int = Field(default=64 * 1024, gt=0)
    ws_max_symbols: int = Field(default=1024, ge=1)
    # Comment lines sent on idle Server-Sent Events streams so proxies keep them open.
    sse_keepalive_s: float = Field(default=15.0, gt=0)

    # The built front end (`make install` builds web/ into web/dist): the live page at `/`,
    # Swagger UI at `/docs`, their files under `/assets/`. Without it those answer 503.
    # The Docker image keeps the same layout under /app.
    web_dir: Path = REPOSITORY / "web" / "dist"
