"""HTTP headers to gRPC metadata and back, as grpc-gateway v2 maps them (runtime/context.go).

Incoming: `Authorization` passes through as `authorization`; IANA permanent headers go as
`grpcgateway-<name>`; `Grpc-Metadata-<name>` goes as `<name>` (base64-decoded for `-bin`);
`X-Forwarded-Host` and `X-Forwarded-For` describe the caller; `Grpc-Timeout` sets the deadline.
Outgoing: header metadata becomes `Grpc-Metadata-<name>`, trailer metadata `Grpc-Trailer-<name>`.
"""

import base64
import binascii
import re
from collections.abc import Iterable

from finplat.gateway.service.status_to_http import invalid_argument

Metadata = list[tuple[str, str | bytes]]

METADATA_HEADER_PREFIX = "grpc-metadata-"
METADATA_PREFIX = "grpcgateway-"
TRAILER_HEADER_PREFIX = "Grpc-Trailer-"
RESPONSE_HEADER_PREFIX = "Grpc-Metadata-"

PERMANENT_HEADERS = frozenset(
    {
        "accept",
        "accept-charset",
        "accept-language",
        "accept-ranges",
        "authorization",
        "cache-control",
        "content-type",
        "cookie",
        "date",
        "expect",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-schedule-tag-match",
        "if-unmodified-since",
        "max-forwards",
        "origin",
        "pragma",
        "referer",
        "user-agent",
        "via",
        "warning",
    }
)
# Keys gRPC reserves or HTTP/2 forbids: sending them as metadata would fail the call.
_RESERVED_KEYS = frozenset(
    {"connection", "content-type", "host", "keep-alive", "proxy-connection", "te"}
    | {"transfer-encoding", "upgrade", "user-agent"}
)
_VALID_KEY = re.compile(r"[0-9a-z_.\-]+")
_NANOS_PER_TIMEOUT_UNIT = {
    "H": 3_600_000_000_000,
    "M": 60_000_000_000,
    "S": 1_000_000_000,
    "m": 1_000_000,
    "u": 1_000,
    "n": 1,
}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def parse_grpc_timeout(value: str) -> float:
    """Seconds of a `Grpc-Timeout` value (`1S`, `100m`, `5M`), as grpc-gateway's timeoutDecode.

    Digits (Go's strconv.ParseInt: an optional sign, then decimal digits, within int64), then one
    unit letter. The product is a Go time.Duration, int64 nanoseconds, whose overflow wraps: a
    huge value may come out as a short or negative (already expired) deadline, as it does there.
    """
    unit = _NANOS_PER_TIMEOUT_UNIT.get(value[-1:]) if len(value) >= 2 else None
    digits = value[:-1]
    if unit is None or not re.fullmatch(r"[+-]?[0-9]+", digits):
        raise invalid_argument(f"invalid grpc-timeout: {value}")
    count = int(digits)
    if not _INT64_MIN <= count <= _INT64_MAX:
        raise invalid_argument(f"invalid grpc-timeout: {value}")
    return _wrap_int64(count * unit) / 1e9


def _wrap_int64(value: int) -> int:
    return (value - _INT64_MIN) % 2**64 + _INT64_MIN


def incoming_metadata(
    headers: Iterable[tuple[bytes, bytes]], client_host: str | None
) -> tuple[Metadata, float | None]:
    """gRPC metadata for an HTTP request's headers, and the timeout its Grpc-Timeout asks for."""
    pairs = list(headers)
    # First, as annotateContext decodes it before any other header; only the first value counts
    # (Header.Get), and an empty one is no timeout at all.
    timeout_value = next((v for k, v in pairs if k.lower() == b"grpc-timeout"), b"")
    timeout = parse_grpc_timeout(timeout_value.decode("latin-1")) if timeout_value else None
    metadata: Metadata = []
    forwarded_host: str | None = None
    host: str | None = None
    forwarded_for: str | None = None
    for raw_key, raw_value in pairs:
        key = raw_key.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if key == "grpc-timeout":
            continue
        if key == "x-forwarded-host":
            forwarded_host = value
        elif key == "x-forwarded-for":
            forwarded_for = value
        elif key == "host":
            host = value
        if key == "authorization":
            metadata.append(("authorization", value))
        if key in PERMANENT_HEADERS:
            _append(metadata, METADATA_PREFIX + key, value, raw_value)
        elif key.startswith(METADATA_HEADER_PREFIX):
            _append(metadata, key[len(METADATA_HEADER_PREFIX) :], value, raw_value)
    if forwarded_host or host:
        metadata.append(("x-forwarded-host", forwarded_host or host or ""))
    if client_host:
        chain = f"{forwarded_for}, {client_host}" if forwarded_for else client_host
        metadata.append(("x-forwarded-for", chain))
    return metadata, timeout


def _append(metadata: Metadata, key: str, value: str, raw_value: bytes) -> None:
    if not _VALID_KEY.fullmatch(key) or key in _RESERVED_KEYS or key.startswith("grpc-"):
        return  # grpc-gateway logs and skips keys gRPC would reject
    if key.endswith("-bin"):
        # gRPC base64-encodes binary metadata itself, so the header's encoding comes off here.
        metadata.append((key, _decode_bin(key, value)))
    elif all(0x20 <= byte <= 0x7E for byte in raw_value):
        metadata.append((key, value))


def _decode_bin(key: str, value: str) -> bytes:
    try:
        if len(value) % 4 == 0:
            return base64.b64decode(value, validate=True)
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument(f"invalid binary header {key}: illegal base64 data") from None


def outgoing_headers(
    initial: Iterable[tuple[str, str | bytes]], trailing: Iterable[tuple[str, str | bytes]]
) -> list[tuple[bytes, bytes]]:
    """Response headers for upstream header (`Grpc-Metadata-*`) and trailer metadata."""
    headers: list[tuple[bytes, bytes]] = []
    for prefix, metadata in ((RESPONSE_HEADER_PREFIX, initial), (TRAILER_HEADER_PREFIX, trailing)):
        for key, value in metadata:
            if key.startswith("grpc-"):
                continue  # transport details (status, details-bin), not application metadata
            encoded = base64.b64encode(value) if isinstance(value, bytes) else value.encode()
            headers.append(((prefix + _canonical(key)).encode("latin-1"), encoded))
    return headers


def _canonical(key: str) -> str:
    # Go's textproto.CanonicalMIMEHeaderKey, which net/http applies to every header it writes.
    return "-".join(part[:1].upper() + part[1:] for part in key.split("-"))
