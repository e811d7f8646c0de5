"""The backtest service's gRPC API on an in-process server, as `finplat backtest serve` wires
it (BacktestService and google.longrunning.Operations), for tests that bring their own parts."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from google.longrunning import operations_pb2_grpc  # type: ignore[import-untyped]

from finance.backtest.v1 import backtest_service_pb2_grpc
from finplat.backtest.adapters.operation_store import OperationStore
from finplat.backtest.adapters.results_store import ResultStore
from finplat.backtest.adapters.sweep_executor import SweepExecutor
from finplat.backtest.service import runs
from finplat.backtest.service.api import BacktestServicer, StatsView
from finplat.backtest.service.operations import Operations
from finplat.backtest.service.operations_api import SERVICE_NAME as OPERATIONS_SERVICE_NAME
from finplat.backtest.service.operations_api import OperationsServicer
from finplat.core.grpc_server import GrpcServer, ServiceBinding, start_server


@dataclass
class BacktestServer:
    server: GrpcServer
    servicer: BacktestServicer
    operations: Operations

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@asynccontextmanager
async def backtest_server(
    stats: StatsView,
    bars: runs.BarSource,
    results: ResultStore,
    path: Path,
    limits: runs.Limits,
    executor: SweepExecutor | None = None,
) -> AsyncIterator[BacktestServer]:
    """Both services on a free loopback port; operations kept in ``path`` (the results file),
    computed by ``executor`` (threads by default)."""
    store = await OperationStore.open(path)
    operations = Operations(store, results, bars, limits, executor=executor)
    servicer = BacktestServicer(stats, bars, results, limits, operations)
    bindings = [
        ServiceBinding(
            "finance.backtest.v1.BacktestService",
            lambda s: backtest_service_pb2_grpc.add_BacktestServiceServicer_to_server(servicer, s),
        ),
        ServiceBinding(
            OPERATIONS_SERVICE_NAME,
            lambda s: operations_pb2_grpc.add_OperationsServicer_to_server(
                OperationsServicer(operations), s
            ),
        ),
    ]
    server = await start_server("127.0.0.1:0", bindings)
    try:
        yield BacktestServer(server, servicer, operations)
    finally:
        await server.stop(0)
        await operations.close()
        await store.close()
