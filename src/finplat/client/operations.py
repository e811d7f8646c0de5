"""Parameter sweeps run as long-running operations (AIP-151) of the backtest service: start one,
follow its progress, wait for its results as a DataFrame, or cancel it.

The operation lives in the service, not in a `SweepOperation`: it goes on when the client stops
following it, any number of clients may follow it, and `SweepOperation.attach` (or
`Platform.sweep_operation`) picks up one started elsewhere by its name. The calls block, as the
rest of `finplat.client` does.

    operation = platform.start_sweep(
        "sma_crossover", "BTCUSDT", "1m", "2024-11-01", "2024-11-02",
        grid={"fast": range(5, 21, 5), "slow": (20, 100, 10)},
    )
    for progress in operation.follow():
        print(f"{progress.done}/{progress.total}")
    results = operation.wait().results  # one row per combination, best first
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Self

import grpc
import pandas as pd
from google.longrunning import operations_pb2, operations_pb2_grpc  # type: ignore[import-untyped]
from google.protobuf import duration_pb2

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2, backtest_service_pb2_grpc
from finplat.client import tables

Metadata = tuple[tuple[str, str], ...]
GridAxis = range | tuple[float, float, float] | float | backtest_pb2.ParameterRange
"""The values a sweep tries for one parameter: a `range` (exactly its values), a
`(start, stop, step)` tuple with `stop` included (the service's ParameterRange, as the CLI's
`START:STOP:STEP`), one number alone, or a ParameterRange message."""

# `wait()` without a timeout asks WaitOperation again every this many seconds: one call held
# open for hours would meet proxies' idle limits, and a call a minute costs nothing.
_WAIT_SLICE_S = 60.0
# The call's deadline leaves the server this much beyond the wait it was asked for, so that
# the server answers with the operation rather than the client giving up with DEADLINE_EXCEEDED.
_DEADLINE_MARGIN_S = 5.0
_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


class OperationError(Exception):
    """The operation ended with an error (CANCELLED when it was cancelled)."""

    def __init__(self, name: str, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{name} ended {code.name}: {message}")
        self.name = name
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Combination:
    """One parameter combination of a sweep and its outcome."""

    parameters: dict[str, float]
    metrics: dict[str, float | pd.Timedelta]
    """Every field of the service's Metrics; durations as Timedelta."""


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep operation stands."""

    name: str
    """The operation's name, "operations/<sweep id>"."""
    sweep_id: str
    strategy: str
    rank_by: str
    """The Metrics field combinations are ranked by."""
    done: int
    """Combinations finished."""
    total: int
    """Valid combinations to run, known from the operation's start."""
    best: Combination | None
    """The best combination finished so far; None before the first."""
    elapsed: timedelta
    """Time spent computing."""
    finished: bool
    """The operation is over: succeeded, failed or cancelled (`SweepOperation.wait` tells)."""

    @classmethod
    def of(cls, operation: Any) -> Self:
        """The progress a google.longrunning.Operation carries as its metadata."""
        progress = backtest_service_pb2.SweepProgress()
        if not operation.metadata.Unpack(progress):
            raise ValueError(f"{operation.name} is not a sweep: {operation.metadata.type_url}")
        best = progress.best if progress.HasField("best") else None
        return cls(
            name=operation.name,
            sweep_id=progress.sweep_id,
            strategy=progress.strategy,
            rank_by=progress.rank_by,
            done=progress.done_combinations,
            total=progress.total_combinations,
            best=None if best is None else combination(best),
            elapsed=progress.elapsed.ToTimedelta(),
            finished=operation.done,
        )


@dataclass(frozen=True)
class SweepRun:
    """A finished, stored sweep: its results as a table, and the message itself."""

    id: str
    rank_by: str
    results: pd.DataFrame
    """One row per combination kept, best first: its parameters, then every metric (named as
    in the service's ExportSweep table, see `finplat.client.tables.sweep_table`)."""
    message: backtest_pb2.Sweep


class SweepOperation:
    """A sweep running (or run) as an operation of the backtest service.

    Made by `start` or `attach` (or `Platform.start_sweep` and `Platform.sweep_operation`).
    """

    def __init__(
        self,
        channel: grpc.Channel,
        operation: Any,
        *,
        metadata: Metadata = (),
        timeout_s: float = 120.0,
    ) -> None:
        self._backtests = backtest_service_pb2_grpc.BacktestServiceStub(channel)
        self._operations = operations_pb2_grpc.OperationsStub(channel)
        self._metadata = metadata
        self._timeout_s = timeout_s
        # The latest state seen: `wait` needs no call once a `follow` has seen it done.
        self._last = operation

    @classmethod
    def start(
        cls,
        channel: grpc.Channel,
        request: backtest_service_pb2.RunSweepRequest,
        *,
        metadata: Metadata = (),
        timeout_s: float = 120.0,
    ) -> Self:
        """Start the sweep; returns at once. A bad request raises the service's grpc.RpcError
        (INVALID_ARGUMENT, NOT_FOUND) here."""
        stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
        started = stub.StartSweep(
            backtest_service_pb2.StartSweepRequest(sweep=request),
            timeout=timeout_s,
            metadata=metadata,
        )
        return cls(channel, started, metadata=metadata, timeout_s=timeout_s)

    @classmethod
    def attach(
        cls, channel: grpc.Channel, name: str, *, metadata: Metadata = (), timeout_s: float = 120.0
    ) -> Self:
        """The operation called `name` ("operations/..."); grpc.RpcError NOT_FOUND if none,
        ValueError if it is another kind of operation."""
        operations = operations_pb2_grpc.OperationsStub(channel)
        operation = operations.GetOperation(
            operations_pb2.GetOperationRequest(name=name), timeout=timeout_s, metadata=metadata
        )
        SweepProgress.of(operation)  # checks that it is a sweep
        return cls(channel, operation, metadata=metadata, timeout_s=timeout_s)

    @property
    def name(self) -> str:
        """The operation's name, "operations/<sweep id>": what `attach` and the CLI take."""
        name: str = self._last.name
        return name

    def progress(self) -> SweepProgress:
        """Where the operation stands now."""
        self._last = self._operations.GetOperation(
            operations_pb2.GetOperationRequest(name=self.name),
            timeout=self._timeout_s,
            metadata=self._metadata,
        )
        return SweepProgress.of(self._last)

    def follow(self) -> Iterator[SweepProgress]:
        """The progress now, then after each change (at most ten a second), until the operation
        is over: the last one has `finished` set. Stopping early (a `break`) ends the stream,
        not the operation."""
        call = self._backtests.WatchOperation(
            backtest_service_pb2.WatchOperationRequest(name=self.name), metadata=self._metadata
        )
        try:
            for operation in call:
                self._last = operation
                yield SweepProgress.of(operation)
        finally:
            call.cancel()  # a no-op once the stream has ended

    def wait(self, timeout: float | None = None) -> SweepRun:
        """The stored sweep once the operation is done.

        Raises `OperationError` if it ended with an error (CANCELLED included), and
        `TimeoutError` if it is still running after `timeout` seconds (it goes on running).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        operation = self._last
        while not operation.done:
            left = _WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
            operation = self._wait_once(max(0.0, min(left, _WAIT_SLICE_S)))
            if not operation.done and deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name} still running after {timeout} s")
        self._last = operation
        return _outcome(operation)

    def cancel(self) -> None:
        """Ask the service to stop the sweep: it ends CANCELLED within a moment, and `wait` then
        raises `OperationError`. A finished operation is left as it is."""
        self._operations.CancelOperation(
            operations_pb2.CancelOperationRequest(name=self.name),
            timeout=self._timeout_s,
            metadata=self._metadata,
        )

    def _wait_once(self, seconds: float) -> Any:
        timeout = duration_pb2.Duration()
        timeout.FromNanoseconds(round(seconds * 1e9))
        return self._operations.WaitOperation(
            operations_pb2.WaitOperationRequest(name=self.name, timeout=timeout),
            timeout=seconds + _DEADLINE_MARGIN_S,
            metadata=self._metadata,
        )

    def __repr__(self) -> str:
        return f"SweepOperation({self.name!r})"


def parameter_range(axis: GridAxis) -> backtest_pb2.ParameterRange:
    """The ParameterRange of one grid axis (see `GridAxis`)."""
    if isinstance(axis, backtest_pb2.ParameterRange):
        return axis
    if isinstance(axis, range):
        if not axis:
            raise ValueError(f"{axis} has no values")
        low, high = sorted((axis[0], axis[-1]))
        return backtest_pb2.ParameterRange(start=low, stop=high, step=abs(axis.step))
    if isinstance(axis, tuple) and len(axis) == 3:
        start, stop, step = axis
        return backtest_pb2.ParameterRange(start=start, stop=stop, step=step)
    # Anything float() takes is one value: numpy's integers as well as Python's numbers.
    try:
        value = float(axis)
    except (TypeError, ValueError):
        raise TypeError(
            f"a grid axis is a range, a (start, stop, step) tuple or a number, not {axis!r}"
        ) from None
    return backtest_pb2.ParameterRange(start=value, stop=value, step=1)


def sweep_grid(grid: Mapping[str, GridAxis]) -> dict[str, backtest_pb2.ParameterRange]:
    """RunSweepRequest's grid: each parameter's axis as a ParameterRange."""
    return {name: parameter_range(axis) for name, axis in grid.items()}


def metric_value(value: Any) -> float | pd.Timedelta:
    """A Metrics field as a number, or as a Timedelta for a duration."""
    if isinstance(value, duration_pb2.Duration):
        return pd.Timedelta(value.ToTimedelta())
    return float(value)


def metrics_dict(metrics: backtest_pb2.Metrics) -> dict[str, float | pd.Timedelta]:
    """Every field of `metrics`, by name."""
    return {
        field.name: metric_value(getattr(metrics, field.name))
        for field in metrics.DESCRIPTOR.fields
    }


def combination(result: backtest_pb2.SweepResult) -> Combination:
    """A sweep's result message as plain dicts."""
    return Combination(dict(result.parameters), metrics_dict(result.metrics))


def _outcome(operation: Any) -> SweepRun:
    """The sweep a done operation answered, or its error raised."""
    if operation.HasField("error"):
        code = _STATUS_CODES.get(operation.error.code, grpc.StatusCode.UNKNOWN)
        raise OperationError(operation.name, code, operation.error.message)
    sweep = backtest_pb2.Sweep()
    if not operation.response.Unpack(sweep):
        raise OperationError(
            operation.name,
            grpc.StatusCode.UNKNOWN,
            f"response is a {operation.response.type_url}, not a Sweep",
        )
    return SweepRun(sweep.id, sweep.rank_by, tables.sweep_table(sweep).to_pandas(), sweep)
