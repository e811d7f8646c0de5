"""The upstream call's deadline, kept as grpc-gateway keeps it: on the request's context.

grpc-gateway's AnnotateContext sets the deadline before the request is read, so a slow body
spends it. Python's gRPC takes a relative timeout when the call starts, hence an absolute
deadline carried until then. When it runs out, grpc-go fails the call with its context's error
(status.FromContextError), "context deadline exceeded"; Python's gRPC says "Deadline Exceeded".
"""

import dataclasses
import time
from dataclasses import dataclass

import grpc

from finplat.gateway.service.status_to_http import GatewayError

CONTEXT_DEADLINE_EXCEEDED = "context deadline exceeded"
# Python's gRPC turns a deadline into int64 nanoseconds since the epoch, which overflow (into a
# deadline long passed) after 2262; Go's time does not. A call given longer is given no deadline,
# which is what a century amounts to.
_LONGEST_TIMEOUT_S = 100 * 365 * 24 * 3600.0


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(self.at - time.monotonic(), 0.0)

    def passed(self) -> bool:
        return time.monotonic() >= self.at


def timeout_left(deadline: Deadline | None) -> float | None:
    """The timeout to give a call starting now; None for no deadline.

    A deadline already passed fails here: Python's gRPC may still complete a call given no time
    at all, where grpc-go, its context done, fails it.
    """
    if deadline is None:
        return None
    left = deadline.remaining()
    if left <= 0:
        raise GatewayError(grpc.StatusCode.DEADLINE_EXCEEDED, CONTEXT_DEADLINE_EXCEEDED)
    return None if left > _LONGEST_TIMEOUT_S else left


def upstream_failure(error: GatewayError, deadline: Deadline | None) -> GatewayError:
    """`error` as grpc-go reports it when the gateway's own deadline is what ended the call."""
    expired = deadline is not None and deadline.passed()
    if error.code == grpc.StatusCode.DEADLINE_EXCEEDED and expired:
        return dataclasses.replace(error, message=CONTEXT_DEADLINE_EXCEEDED)
    return error
