"""google.longrunning.Operations over gRPC (AIP-151), for the service's sweep and
walk-forward operations.

The standard service, so that any AIP-151 client follows our operations as it follows
Google's; over REST at googleapis' routes (`GET /v1/operations/{id}`, `POST .../{id}:cancel`,
`DELETE`) and the two proto/grpc-gateway.yaml adds (`GET /api/operations`, `POST
/v1/operations/{id}:wait`). ListOperations leaves out each operation's response, which can be
megabytes; GetOperation has it.
"""

import math
from typing import Any

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc  # type: ignore[import-untyped]
from google.protobuf import empty_pb2
from typing_extensions import override

from finplat.backtest.adapters.results_store import InvalidPageTokenError
from finplat.backtest.service.operations import PREFIX, Operations
from finplat.backtest.service.statuses import Context, abort, answered

SERVICE_NAME = "google.longrunning.Operations"
# The collection ListOperations takes as its `name` ("" is accepted, as many servers do).
COLLECTION = PREFIX.rstrip("/")
_DEADLINE_MARGIN_S = 0.1


class OperationsServicer(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    """Get, list, cancel, delete and wait for the service's operations."""

    def __init__(self, operations: Operations) -> None:
        self._operations = operations

    @override
    async def GetOperation(self, request: Any, context: Context) -> Any:
        return await answered(context, self._operations.get(request.name))

    @override
    async def ListOperations(self, request: Any, context: Context) -> Any:
        if request.name not in ("", COLLECTION):
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"no collection {request.name!r}; use {COLLECTION!r}"
            )
        if request.filter:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "filter is not supported")
        if request.page_size < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_size must be >= 0")
        try:
            found, token = await answered(
                context, self._operations.page(request.page_size, request.page_token)
            )
        except InvalidPageTokenError as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return operations_pb2.ListOperationsResponse(operations=found, next_page_token=token)

    @override
    async def CancelOperation(self, request: Any, context: Context) -> empty_pb2.Empty:
        await answered(context, self._operations.cancel(request.name))
        return empty_pb2.Empty()

    @override
    async def DeleteOperation(self, request: Any, context: Context) -> empty_pb2.Empty:
        await answered(context, self._operations.delete(request.name))
        return empty_pb2.Empty()

    @override
    async def WaitOperation(self, request: Any, context: Context) -> Any:
        # Until done, the request's timeout or just before the caller's deadline, whichever
        # comes first: at the deadline the caller would get DEADLINE_EXCEEDED, not the state.
        timeout = (
            request.timeout.ToTimedelta().total_seconds() if request.HasField("timeout") else None
        )
        remaining = context.time_remaining()
        if remaining is not None and not math.isinf(remaining):
            before_deadline = max(0.0, remaining - _DEADLINE_MARGIN_S)
            timeout = before_deadline if timeout is None else min(timeout, before_deadline)
        return await answered(context, self._operations.wait(request.name, timeout))
