"""gRPC statuses as HTTP errors, shaped like grpc-gateway v2's DefaultHTTPErrorHandler.

The body is the `google.rpc.Status` of the failure in proto3 JSON with unpopulated fields
emitted: `{"code": 5, "message": "...", "details": []}`. The HTTP status comes from the gRPC
code through grpc-gateway's `HTTPStatusFromCode` table (runtime/errors.go), unless the gateway
itself chose a more precise one (413 for an oversized body), as grpc-gateway's
`HTTPStatusError` does.
"""

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)

# Imported for its side effect: the standard error details (BadRequest, ErrorInfo, RetryInfo...)
# become resolvable `Any` types, so upstream details are rendered instead of dropped.
_ = error_details_pb2

_DETAILS_TRAILER = "grpc-status-details-bin"

HTTP_STATUS_BY_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    # 499 Client Closed Request, since grpc-gateway v2.13 (it was 408 before).
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    # Deliberately not 412, as grpc-gateway notes: the precondition is the system's state.
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


def http_status_from_code(code: grpc.StatusCode) -> int:
    """grpc-gateway's HTTPStatusFromCode: unknown codes are 500."""
    return HTTP_STATUS_BY_CODE.get(code, 500)


def code_number(code: grpc.StatusCode) -> int:
    number: int = code.value[0]
    return number


@dataclass
class GatewayError(Exception):
    """A failure answered with a Status body, from the gateway itself or from an upstream."""

    code: grpc.StatusCode
    message: str
    http_status: int | None = None
    details: list[dict[str, Any]] = field(default_factory=list)
    # Upstream metadata, returned as Grpc-Metadata-* / Grpc-Trailer-* headers even on failure.
    initial_metadata: tuple[tuple[str, str | bytes], ...] = ()
    trailing_metadata: tuple[tuple[str, str | bytes], ...] = ()

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return self.http_status or http_status_from_code(self.code)

    def status_dict(self) -> dict[str, Any]:
        return {"code": code_number(self.code), "message": self.message, "details": self.details}

    def body(self) -> bytes:
        return json.dumps(self.status_dict(), separators=(",", ":"), ensure_ascii=False).encode()


def invalid_argument(message: str) -> GatewayError:
    return GatewayError(grpc.StatusCode.INVALID_ARGUMENT, message)


def from_rpc_error(error: grpc.aio.AioRpcError) -> GatewayError:
    """The Status of a failed upstream call, rich details (grpc-status-details-bin) included."""
    trailing = tuple(error.trailing_metadata() or ())
    return GatewayError(
        code=error.code(),
        message=error.details() or "",
        details=_details(trailing),
        initial_metadata=tuple(error.initial_metadata() or ()),
        trailing_metadata=trailing,
    )


def _details(trailing: tuple[tuple[str, str | bytes], ...]) -> list[dict[str, Any]]:
    raw = next((value for key, value in trailing if key == _DETAILS_TRAILER), None)
    if not isinstance(raw, bytes):
        return []
    try:
        status = status_pb2.Status.FromString(raw)
    except DecodeError:  # a corrupt trailer must not turn the error into a 500
        logger.warning("upstream sent an unparsable %s trailer", _DETAILS_TRAILER)
        return []
    details: list[dict[str, Any]] = []
    for detail in status.details:
        try:
            details.append(
                json_format.MessageToDict(detail, always_print_fields_with_no_presence=True)
            )
        except (TypeError, KeyError, json_format.SerializeToJsonError):
            # grpc-gateway fails the whole body on an unknown Any; dropping the one detail keeps
            # the code and message, which matter more to a client.
            logger.warning("dropping error detail of unknown type %s", detail.type_url)
    return details
