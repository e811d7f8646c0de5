"""StartWalkForward on the real in-process service: its folds equal the domain's walk-forward
on the same bars; a bad request is refused at the start; a cancel ends it."""

import asyncio
import io
import time
from pathlib import Path

import grpc
import pyarrow.parquet as pq
import pytest
from google.longrunning import operations_pb2  # type: ignore[import-untyped]
from google.protobuf.duration_pb2 import Duration

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.adapters.operation_store import OperationStore
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig, PositionMode
from finplat.backtest.domain.walk_forward import FoldLayout, WindowMode, walk_forward
from finplat.backtest.service.runs import Limits
from tests.unit.backtest.api_harness import Harness, rpc_error, run_request, serve_harness

pytestmark = pytest.mark.asyncio


def _request(folds: int = 4) -> backtest_service_pb2.StartWalkForwardRequest:
    base = run_request()  # the harness's three days of BTCUSDT 1m, 10 bps, long only
    return backtest_service_pb2.StartWalkForwardRequest(
        strategy="sma_crossover",
        grid={"fast": backtest_pb2.ParameterRange(start=5, stop=15, step=5),
              "slow": backtest_pb2.ParameterRange(start=20, stop=60, step=20)},
        data=base.data, config=base.config, rank_by="sharpe", folds=folds,
        in_sample_ratio=2, mode=backtest_service_pb2.WINDOW_MODE_ANCHORED, warmup_bars=60,
    )  # fmt: skip


async def _wait(service: Harness, name: str) -> object:
    timeout = Duration(seconds=60)
    return await service.operations.WaitOperation(
        operations_pb2.WaitOperationRequest(name=name, timeout=timeout), timeout=65
    )


async def test_the_folds_equal_the_domains_walk_forward(service: Harness, q4_bars: Bars) -> None:
    direct = walk_forward(
        q4_bars, "sma_crossover", {"fast": [5, 10, 15], "slow": [20, 40, 60]},
        FoldLayout.from_ratio(len(q4_bars), 4, 2, WindowMode.ANCHORED),
        EngineConfig(fee_bps=10, mode=PositionMode.LONG_ONLY), "sharpe", warmup_bars=60,
    )  # fmt: skip

    started = await service.stub.StartWalkForward(_request())
    ended = await _wait(service, started.name)

    assert not started.done
    progress = backtest_service_pb2.WalkForwardProgress()
    assert ended.metadata.Unpack(progress)  # type: ignore[attr-defined]
    assert (progress.done_folds, progress.total_folds) == (4, 4)
    result = backtest_service_pb2.WalkForward()
    assert ended.response.Unpack(result)  # type: ignore[attr-defined]
    assert result.id == progress.walk_forward_id
    assert len(result.folds) == 4
    for fold, expected in zip(result.folds, direct.folds, strict=True):
        assert dict(fold.parameters) == {k: float(v) for k, v in expected.params.items()}
        assert fold.out_of_sample_start_time.ToMilliseconds() == (
            expected.out_of_sample.first_open_ms
        )
        assert fold.out_of_sample_metrics.sharpe == expected.out_of_sample_metrics.sharpe
        assert fold.in_sample_metrics.sharpe == expected.in_sample_metrics.sharpe
    assert result.out_of_sample_metrics.final_equity == direct.stitched.metrics.final_equity
    assert dict(result.whole_period_best.parameters) == {
        k: float(v) for k, v in direct.whole_period.params.items()
    }
    assert result.mode == backtest_service_pb2.WINDOW_MODE_ANCHORED
    stored = await service.stub.GetWalkForward(
        backtest_service_pb2.GetWalkForwardRequest(id=result.id)
    )
    assert stored.walk_forward == result
    folds = await service.stub.ExportWalkForward(
        backtest_service_pb2.ExportWalkForwardRequest(id=result.id)
    )
    curve = await service.stub.ExportWalkForward(
        backtest_service_pb2.ExportWalkForwardRequest(
            id=result.id,
            table=backtest_service_pb2.WALK_FORWARD_TABLE_EQUITY,
            format=backtest_service_pb2.FILE_FORMAT_CSV,
        )
    )
    rows = pq.read_table(io.BytesIO(folds.file.data)).to_pylist()
    assert [(row["fold"], row["fast"], row["slow"]) for row in rows] == [
        (f.index, f.parameters["fast"], f.parameters["slow"]) for f in result.folds
    ]
    assert [row["out_of_sample.sharpe"] for row in rows] == [
        f.out_of_sample_metrics.sharpe for f in result.folds
    ]
    assert curve.file.content_type == "text/csv"
    lines = curve.file.data.decode().splitlines()
    assert lines[0] == '"time","equity","drawdown"'
    assert len(lines) == 1 + len(result.out_of_sample_equity)
    missing = await rpc_error(
        service.stub.GetWalkForward(backtest_service_pb2.GetWalkForwardRequest(id="nope"))
    )
    assert missing[0] == grpc.StatusCode.NOT_FOUND


async def test_bad_walk_forwards_are_refused_at_the_start(service: Harness) -> None:
    no_folds = _request(folds=0)
    too_many = _request(folds=2000)

    assert await rpc_error(service.stub.StartWalkForward(no_folds)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "folds must be in [1, 100], got 0",
    )  # fmt: skip
    assert (await rpc_error(service.stub.StartWalkForward(too_many)))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    heavy = _request(folds=10)  # 100 x 100 combinations in 11 sweeps
    heavy.grid["fast"].start, heavy.grid["fast"].stop, heavy.grid["fast"].step = 1, 100, 1
    heavy.grid["slow"].start, heavy.grid["slow"].stop, heavy.grid["slow"].step = 101, 200, 1
    assert await rpc_error(service.stub.StartWalkForward(heavy)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "10000 combinations x (10 folds + the whole period) are 110,000 backtests, more than "
        "100,000",
    )
    hopeless = _request()  # every fast above every slow
    hopeless.grid["fast"].start, hopeless.grid["fast"].stop = 100, 110
    assert await rpc_error(service.stub.StartWalkForward(hopeless)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "grid: no valid combination (each breaks the strategy's check)",
    )


async def test_too_many_folds_for_the_bars_fail_the_operation(service: Harness) -> None:
    request = _request(folds=100)
    request.data.end_time.FromMilliseconds(request.data.start_time.ToMilliseconds() + 3_600_000)

    short = await service.stub.StartWalkForward(request)
    ended = await _wait(service, short.name)

    assert ended.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]  # type: ignore[attr-defined]
    assert "too few bars" in ended.error.message  # type: ignore[attr-defined]


async def test_a_cancelled_walk_forward_stops_within_a_second(service: Harness) -> None:
    request = _request(folds=20)
    request.grid["fast"].stop, request.grid["slow"].stop, request.grid["slow"].step = 40, 200, 1
    started = await service.stub.StartWalkForward(request)
    await asyncio.sleep(0.5)  # into the first in-sample sweeps

    asked = time.monotonic()
    await service.operations.CancelOperation(
        operations_pb2.CancelOperationRequest(name=started.name)
    )
    cancelled = await _wait(service, started.name)

    assert time.monotonic() - asked < 1.0
    assert cancelled.error.code == grpc.StatusCode.CANCELLED.value[0]  # type: ignore[attr-defined]


async def test_a_stopped_walk_forward_resumes_from_the_sweeps_it_kept(
    tmp_path: Path, q4_bars: Bars
) -> None:
    request = _request(folds=6)
    request.grid["fast"].stop, request.grid["fast"].step = 30, 1
    request.grid["slow"].stop, request.grid["slow"].step = 120, 2
    limits = Limits(max_bars=100_000)
    async with serve_harness(tmp_path, limits) as first:
        started = await first.stub.StartWalkForward(request)
        async for operation in first.stub.WatchOperation(
            backtest_service_pb2.WatchOperationRequest(name=started.name)
        ):
            progress = backtest_service_pb2.WalkForwardProgress()
            operation.metadata.Unpack(progress)
            if progress.done_folds >= 2:
                break
    store = await OperationStore.open(tmp_path / "results.sqlite3")
    kept = await store.chunks(started.name)
    await store.close()

    async with serve_harness(tmp_path, limits) as second:
        assert await second.sweeps.resume() == 1
        ended = await _wait(second, started.name)
    direct = walk_forward(
        q4_bars, "sma_crossover",
        {"fast": list(range(5, 31)), "slow": list(range(20, 121, 2))},
        FoldLayout.from_ratio(len(q4_bars), 6, 2, WindowMode.ANCHORED),
        EngineConfig(fee_bps=10, mode=PositionMode.LONG_ONLY), "sharpe", warmup_bars=60,
    )  # fmt: skip

    # The whole period's sweep and at least two folds' were kept, and the rest done after.
    assert 3 <= len(kept) < 7
    result = backtest_service_pb2.WalkForward()
    assert ended.response.Unpack(result)  # type: ignore[attr-defined]
    assert [dict(f.parameters) for f in result.folds] == [
        {k: float(v) for k, v in f.params.items()} for f in direct.folds
    ]
    assert result.out_of_sample_metrics.final_equity == direct.stitched.metrics.final_equity
