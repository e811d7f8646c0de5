"""Parameter sweeps and walk-forwards run as long-running operations (AIP-151) of the backtest
service: start one, follow its progress, wait for its results as DataFrames, or cancel it.

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
from typing import Any, Generic, Self, TypeVar

import grpc
import pandas as pd
from google.longrunning import operations_pb2, operations_pb2_grpc  # type: ignore[import-untyped]
from google.protobuf import duration_pb2, message

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
ProgressT = TypeVar("ProgressT")
ResultT = TypeVar("ResultT")
MessageT = TypeVar("MessageT", bound=message.Message)


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


@dataclass(frozen=True)
class WalkForwardProgress:
    """Where a walk-forward operation stands."""

    name: str
    """The operation's name, "operations/<walk-forward id>"."""
    walk_forward_id: str
    strategy: str
    done: int
    """Folds finished."""
    total: int
    """Folds in all."""
    elapsed: timedelta
    """Time spent computing in the current run of the operation."""
    finished: bool
    """The operation is over: succeeded, failed or cancelled (`wait` tells)."""

    @classmethod
    def of(cls, operation: Any) -> Self:
        """The progress a google.longrunning.Operation carries as its metadata."""
        progress = backtest_service_pb2.WalkForwardProgress()
        if not operation.metadata.Unpack(progress):
            raise ValueError(
                f"{operation.name} is not a walk-forward: {operation.metadata.type_url}"
            )
        return cls(
            name=operation.name,
            walk_forward_id=progress.walk_forward_id,
            strategy=progress.strategy,
            done=progress.done_folds,
            total=progress.total_folds,
            elapsed=progress.elapsed.ToTimedelta(),
            finished=operation.done,
        )


@dataclass(frozen=True)
class WalkForwardRun:
    """A finished, stored walk-forward: its folds, its stitched out-of-sample account and the
    whole-period optimum beside it (the gap between the two is the overfitting)."""

    id: str
    folds: pd.DataFrame
    """One row per fold: windows, chosen parameters, `in_sample.<metric>` and
    `out_of_sample.<metric>` (the service's ExportWalkForward table)."""
    out_of_sample_metrics: dict[str, float | pd.Timedelta]
    """The metrics of the out-of-sample windows chained as one account."""
    out_of_sample_equity: pd.DataFrame
    """That account's equity and drawdown, indexed by time (thinned as the service keeps it)."""
    whole_period_best: Combination
    """The best combination of one sweep over all the bars, and its metrics there."""
    message: backtest_service_pb2.WalkForward


class _Operation(Generic[ProgressT, ResultT]):
    """A long-running operation of the backtest service: its progress, its end, a cancel.

    The operation lives in the service: it goes on when the client stops following it.
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
    def _progress_of(cls, operation: Any) -> ProgressT:
        raise NotImplementedError

    @classmethod
    def _result_of(cls, operation: Any) -> ResultT:
        raise NotImplementedError

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
        cls._progress_of(operation)  # checks its kind
        return cls(channel, operation, metadata=metadata, timeout_s=timeout_s)

    @property
    def name(self) -> str:
        """The operation's name, "operations/<id>": what `attach` and the CLI take."""
        name: str = self._last.name
        return name

    def progress(self) -> ProgressT:
        """Where the operation stands now."""
        self._last = self._operations.GetOperation(
            operations_pb2.GetOperationRequest(name=self.name),
            timeout=self._timeout_s,
            metadata=self._metadata,
        )
        return self._progress_of(self._last)

    def follow(self) -> Iterator[ProgressT]:
        """The progress now, then after each change (at most ten a second), until the operation
        is over: the last one has `finished` set. Stopping early (a `break`) ends the stream,
        not the operation."""
        call = self._backtests.WatchOperation(
            backtest_service_pb2.WatchOperationRequest(name=self.name), metadata=self._metadata
        )
        try:
            for operation in call:
                self._last = operation
                yield self._progress_of(operation)
        finally:
            call.cancel()  # a no-op once the stream has ended

    def wait(self, timeout: float | None = None) -> ResultT:
        """The result once the operation is done.

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
        if operation.HasField("error"):
            code = _STATUS_CODES.get(operation.error.code, grpc.StatusCode.UNKNOWN)
            raise OperationError(operation.name, code, operation.error.message)
        return self._result_of(operation)

    def cancel(self) -> None:
        """Ask the service to stop the work: it ends CANCELLED within a moment, and `wait` then
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
        return f"{type(self).__name__}({self.name!r})"


class SweepOperation(_Operation[SweepProgress, "SweepRun"]):
    """A sweep running (or run) as an operation of the backtest service.

    Made by `start` or `attach` (or `Platform.start_sweep` and `Platform.sweep_operation`).
    """

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
    def _progress_of(cls, operation: Any) -> SweepProgress:
        return SweepProgress.of(operation)

    @classmethod
    def _result_of(cls, operation: Any) -> SweepRun:
        sweep = _response(operation, backtest_pb2.Sweep())
        return SweepRun(sweep.id, sweep.rank_by, tables.sweep_table(sweep).to_pandas(), sweep)


class WalkForwardOperation(_Operation[WalkForwardProgress, "WalkForwardRun"]):
    """A walk-forward running (or run) as an operation of the backtest service.

    Made by `start` or `attach` (or `Platform.start_walk_forward`).
    """

    @classmethod
    def start(
        cls,
        channel: grpc.Channel,
        request: backtest_service_pb2.StartWalkForwardRequest,
        *,
        metadata: Metadata = (),
        timeout_s: float = 120.0,
    ) -> Self:
        """Start the walk-forward; returns at once. A bad request raises the service's
        grpc.RpcError (INVALID_ARGUMENT, NOT_FOUND) here."""
        stub = backtest_service_pb2_grpc.BacktestServiceStub(channel)
        started = stub.StartWalkForward(request, timeout=timeout_s, metadata=metadata)
        return cls(channel, started, metadata=metadata, timeout_s=timeout_s)

    @classmethod
    def _progress_of(cls, operation: Any) -> WalkForwardProgress:
        return WalkForwardProgress.of(operation)

    @classmethod
    def _result_of(cls, operation: Any) -> WalkForwardRun:
        found = _response(operation, backtest_service_pb2.WalkForward())
        equity = (
            tables.equity_points_table(found.out_of_sample_equity).to_pandas().set_index("time")
        )
        return WalkForwardRun(
            found.id,
            tables.folds_table(found).to_pandas(),
            metrics_dict(found.out_of_sample_metrics),
            equity,
            combination(found.whole_period_best),
            found,
        )


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


def _response(operation: Any, message: MessageT) -> MessageT:
    """The response of a done operation, unpacked into ``message``."""
    if not operation.response.Unpack(message):
        raise OperationError(
            operation.name,
            grpc.StatusCode.UNKNOWN,
            f"response is a {operation.response.type_url}, not a {message.DESCRIPTOR.name}",
        )
    return message
