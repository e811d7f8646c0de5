"""Sweeps as long-running operations (AIP-151) on the real in-process service: started at once,
followed, cancelled, deleted, and resumed after a stop from the chunks kept."""

import io
import math
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from google.longrunning import operations_pb2  # type: ignore[import-untyped]
from google.protobuf.duration_pb2 import Duration

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.adapters.operation_store import OperationStore
from finplat.backtest.adapters.results_store import ResultStore
from finplat.backtest.domain.sweep import plan_sweep
from finplat.backtest.service.convert import engine_config
from finplat.backtest.service.runs import Limits
from tests.unit.backtest.api_harness import (
    DAY_MS,
    NOV_1_MS,
    Harness,
    rpc_error,
    run_request,
    serve_harness,
)
from tests.unit.backtest.conftest import btc_1m

pytestmark = pytest.mark.asyncio


def _sweep(fast: int, slow: int, days: int = 1) -> backtest_service_pb2.StartSweepRequest:
    """fast 1..`fast` x slow 2..`slow` (those with fast >= slow skipped) over `days` days."""
    base = run_request(end_ms=NOV_1_MS + days * DAY_MS)
    sweep = backtest_service_pb2.RunSweepRequest(
        strategy="sma_crossover",
        grid={"fast": backtest_pb2.ParameterRange(start=1, stop=fast, step=1),
              "slow": backtest_pb2.ParameterRange(start=2, stop=slow, step=1)},
        data=base.data, config=base.config, rank_by="sharpe",
    )  # fmt: skip
    return backtest_service_pb2.StartSweepRequest(sweep=sweep)


_PARQUET = backtest_service_pb2.FILE_FORMAT_PARQUET


async def _download(
    service: Harness,
    sweep_id: str,
    file_format: "backtest_service_pb2.FileFormat.ValueType" = _PARQUET,
) -> pa.Table:
    """A sweep's whole table as DownloadSweepTable streams it, read back from the file."""
    request = backtest_service_pb2.DownloadSweepTableRequest(id=sweep_id, format=file_format)
    pieces = [piece async for piece in service.stub.DownloadSweepTable(request)]
    assert all(len(piece.data) <= 1 << 20 for piece in pieces)
    data = io.BytesIO(b"".join(piece.data for piece in pieces))
    if file_format == backtest_service_pb2.FILE_FORMAT_CSV:
        assert {piece.content_type for piece in pieces} == {"text/csv"}
        return pa_csv.read_csv(data)
    assert {piece.content_type for piece in pieces} == {"application/vnd.apache.parquet"}
    return pq.read_table(data)


def _progress(operation: Any) -> backtest_service_pb2.SweepProgress:
    progress = backtest_service_pb2.SweepProgress()
    assert operation.metadata.Unpack(progress)
    return progress


def _response(operation: Any) -> backtest_pb2.Sweep:
    sweep = backtest_pb2.Sweep()
    assert operation.response.Unpack(sweep)
    return sweep


async def _wait(service: Harness, name: str, seconds: float = 60) -> Any:
    timeout = Duration()
    timeout.FromMilliseconds(int(seconds * 1000))
    request = operations_pb2.WaitOperationRequest(name=name, timeout=timeout)
    return await service.operations.WaitOperation(request, timeout=seconds + 5)


async def _until_done_at_least(service: Harness, name: str, count: int) -> int:
    async for operation in service.stub.WatchOperation(
        backtest_service_pb2.WatchOperationRequest(name=name)
    ):
        done = _progress(operation).done_combinations
        if done >= count or operation.done:
            return done
    raise AssertionError("the watch ended before the operation was done")


async def test_a_started_sweep_returns_at_once_and_ends_as_run_sweep_would(
    service: Harness,
) -> None:
    request = _sweep(fast=6, slow=8)

    started = await service.stub.StartSweep(request)
    done = await _wait(service, started.name)
    direct = (await service.stub.RunSweep(request.sweep)).sweep

    assert not started.done
    progress = _progress(started)
    assert started.name == f"operations/{progress.sweep_id}"
    assert (progress.strategy, progress.rank_by) == ("sma_crossover", "sharpe")
    assert progress.total_combinations == 27  # known from the first answer
    assert done.done
    assert not done.HasField("error")
    final = _progress(done)
    # fast 1..6 x slow 2..8 is 42 pairs; those with fast >= slow (1+2+3+4+5 = 15) are skipped.
    assert final.done_combinations == final.total_combinations == 27
    swept = _response(done)
    assert swept.id == progress.sweep_id
    assert [(dict(r.parameters), r.metrics) for r in swept.results] == [
        (dict(r.parameters), r.metrics) for r in direct.results
    ]
    assert final.best == swept.results[0]
    exported = await service.stub.ExportSweep(backtest_service_pb2.ExportSweepRequest(id=swept.id))
    assert exported.file.data.startswith(b"PAR1")
    got = await service.operations.GetOperation(operations_pb2.GetOperationRequest(name=done.name))
    assert got == done


async def test_a_bad_sweep_is_refused_when_started(service: Harness) -> None:
    bad_rank = _sweep(3, 4)
    bad_rank.sweep.rank_by = "luck"
    unknown = _sweep(3, 4)
    unknown.sweep.strategy = "moon"

    assert (await rpc_error(service.stub.StartSweep(bad_rank)))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (await rpc_error(service.stub.StartSweep(unknown)))[0] == grpc.StatusCode.NOT_FOUND
    tiny_step = _sweep(3, 4)
    tiny_step.sweep.grid["fast"].stop, tiny_step.sweep.grid["fast"].step = 1e300, 1e-300
    assert await rpc_error(service.stub.StartSweep(tiny_step)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "grid has more than 10000 combinations",
    )  # fmt: skip
    listed = await service.operations.ListOperations(operations_pb2.ListOperationsRequest())
    assert list(listed.operations) == []


async def test_a_cancelled_sweep_stops_within_a_second(service: Harness) -> None:
    started = await service.stub.StartSweep(_sweep(fast=50, slow=200, days=3))
    await _until_done_at_least(service, started.name, 1)

    asked = time.monotonic()
    await service.operations.CancelOperation(
        operations_pb2.CancelOperationRequest(name=started.name)
    )
    ended = await _wait(service, started.name, seconds=5)
    took = time.monotonic() - asked

    assert ended.done
    assert (ended.error.code, ended.error.message) == (
        grpc.StatusCode.CANCELLED.value[0], "cancelled by the client",
    )  # fmt: skip
    progress = _progress(ended)
    assert 0 < progress.done_combinations < progress.total_combinations
    assert took < 1.0
    # Cancelling a finished operation changes nothing.
    await service.operations.CancelOperation(
        operations_pb2.CancelOperationRequest(name=started.name)
    )
    again = await service.operations.GetOperation(
        operations_pb2.GetOperationRequest(name=started.name)
    )
    assert again == ended


async def test_watch_streams_growing_progress_until_done(service: Harness) -> None:
    started = await service.stub.StartSweep(_sweep(fast=20, slow=40))
    seen = [
        (operation.done, _progress(operation).done_combinations)
        async for operation in service.stub.WatchOperation(
            backtest_service_pb2.WatchOperationRequest(name=started.name)
        )
    ]

    counts = [done for _, done in seen]
    assert counts == sorted(counts)
    assert [finished for finished, _ in seen] == [False] * (len(seen) - 1) + [True]
    assert counts[-1] == _progress(await _wait(service, started.name)).total_combinations


async def test_unknown_operations_and_bad_lists_are_refused(service: Harness) -> None:
    ops = service.operations
    name = "operations/nope"

    assert (await rpc_error(ops.GetOperation(operations_pb2.GetOperationRequest(name=name))))[
        0
    ] == grpc.StatusCode.NOT_FOUND
    assert (await rpc_error(ops.CancelOperation(operations_pb2.CancelOperationRequest(name=name))))[
        0
    ] == grpc.StatusCode.NOT_FOUND
    watch = service.stub.WatchOperation(backtest_service_pb2.WatchOperationRequest(name=name))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in watch:
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    filtered = operations_pb2.ListOperationsRequest(name="operations", filter="done=true")
    elsewhere = operations_pb2.ListOperationsRequest(name="backtests")
    assert (await rpc_error(ops.ListOperations(filtered)))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert (await rpc_error(ops.ListOperations(elsewhere)))[0] == grpc.StatusCode.NOT_FOUND


async def test_operations_list_newest_first_in_pages_and_delete(service: Harness) -> None:
    names = []
    for _ in range(3):
        started = await service.stub.StartSweep(_sweep(fast=2, slow=3))
        names.append(started.name)
        await _wait(service, started.name)

    first = await service.operations.ListOperations(
        operations_pb2.ListOperationsRequest(name="operations", page_size=2)
    )
    rest = await service.operations.ListOperations(
        operations_pb2.ListOperationsRequest(page_size=2, page_token=first.next_page_token)
    )
    await service.operations.DeleteOperation(operations_pb2.DeleteOperationRequest(name=names[0]))
    gone = await rpc_error(
        service.operations.GetOperation(operations_pb2.GetOperationRequest(name=names[0]))
    )

    assert [op.name for op in [*first.operations, *rest.operations]] == names[::-1]
    assert rest.next_page_token == ""
    assert all(op.done for op in first.operations)
    assert gone[0] == grpc.StatusCode.NOT_FOUND


async def test_a_stopped_service_resumes_the_sweep_from_the_chunks_it_kept(
    tmp_path: Path,
) -> None:
    limits = Limits(max_bars=100_000)
    request = _sweep(fast=40, slow=120, days=3)
    async with serve_harness(tmp_path, limits) as first:
        started = await first.stub.StartSweep(request)
        await _until_done_at_least(first, started.name, 1500)
    # Stopped mid-sweep: what the file holds is what the next start resumes from.
    store = await OperationStore.open(tmp_path / "results.sqlite3")
    kept = await store.chunks(started.name)
    stored = await store.get(started.name)
    await store.close()

    async with serve_harness(tmp_path, limits) as second:
        assert await second.sweeps.resume() == 1
        resumed = await second.operations.GetOperation(
            operations_pb2.GetOperationRequest(name=started.name)
        )
        ended = await _wait(second, started.name)
        direct = (await second.stub.RunSweep(request.sweep)).sweep

    kept_count = sum(len(chunk.metrics) for chunk in kept.values())
    total = _progress(ended).total_combinations
    assert not stored.done
    # Each worker drops the chunk it was in the middle of: at most two of ~20 combinations.
    assert 1000 <= kept_count < total
    # Resumed from the kept chunks, not from zero; and done with every combination.
    assert _progress(resumed).done_combinations >= kept_count
    assert ended.done
    assert not ended.HasField("error")
    assert _progress(ended).done_combinations == total
    assert [(dict(r.parameters), r.metrics) for r in _response(ended).results] == [
        (dict(r.parameters), r.metrics) for r in direct.results
    ]
    # The whole table holds the chunks kept before the stop and those run after it.
    async with serve_harness(tmp_path, limits) as third:
        resumed_table = await _download(third, _progress(ended).sweep_id)
        direct_table = await _download(third, direct.id)
    assert resumed_table.num_rows == total
    assert resumed_table.equals(direct_table)


async def test_a_waiting_sweep_cancelled_ends_at_once_while_the_running_one_goes_on(
    service: Harness,
) -> None:
    running = await service.stub.StartSweep(_sweep(fast=50, slow=200, days=3))
    waiting = await service.stub.StartSweep(_sweep(fast=3, slow=4))

    asked = time.monotonic()
    await service.operations.CancelOperation(
        operations_pb2.CancelOperationRequest(name=waiting.name)
    )
    ended = await _wait(service, waiting.name, seconds=5)
    took = time.monotonic() - asked
    still = await service.operations.GetOperation(
        operations_pb2.GetOperationRequest(name=running.name)
    )
    await service.operations.CancelOperation(
        operations_pb2.CancelOperationRequest(name=running.name)
    )

    assert ended.error.code == grpc.StatusCode.CANCELLED.value[0]
    assert _progress(ended).done_combinations == 0
    assert took < 1.0
    assert not still.done


async def test_chunks_of_another_plan_are_computed_again_when_resumed(tmp_path: Path) -> None:
    limits = Limits(max_bars=100_000)
    request = _sweep(fast=40, slow=120, days=3)
    async with serve_harness(tmp_path, limits) as first:
        started = await first.stub.StartSweep(request)
        await _until_done_at_least(first, started.name, 500)
    # What a changed range or strategy would leave: chunks computed for another plan (written
    # as the first instance, whose lease the stop let go of but still names it).
    store = await OperationStore.open(tmp_path / "results.sqlite3")
    stale = await store.chunks(started.name)
    for index, chunk in stale.items():
        wrong = [replace(m, sharpe=1e9) for m in chunk.metrics]
        await store.add_chunk(
            await store.get(started.name), index, "another plan", wrong, first.sweeps.owner
        )
    await store.close()

    async with serve_harness(tmp_path, limits) as second:
        await second.sweeps.resume()
        ended = await _wait(second, started.name)
        direct = (await second.stub.RunSweep(request.sweep)).sweep
        listed = await second.operations.ListOperations(operations_pb2.ListOperationsRequest())

    # Had a stale chunk been used, its sharpe of 1e9 would lead the ranking.
    assert stale
    assert [(dict(r.parameters), r.metrics) for r in _response(ended).results] == [
        (dict(r.parameters), r.metrics) for r in direct.results
    ]
    # A list leaves out each response (a sweep's can be megabytes); Get has it.
    (only,) = listed.operations
    assert only.done
    assert not only.HasField("response")


async def test_a_grid_beyond_the_results_a_sweep_keeps_ranks_its_best_top_n(
    tmp_path: Path,
) -> None:
    # 110 x 99 = 10,890 combinations (4,950 valid): more than a sweep stores whole.
    request = _sweep(fast=110, slow=100)
    async with serve_harness(tmp_path, Limits(max_sweep_combinations=20_000)) as service:
        refused = await rpc_error(service.stub.StartSweep(request))
        request.sweep.top_n = 5
        started = await service.stub.StartSweep(request)
        ended = await _wait(service, started.name)
        whole = await _download(service, _progress(ended).sweep_id)
        whole_csv = await _download(
            service, _progress(ended).sweep_id, backtest_service_pb2.FILE_FORMAT_CSV
        )
    # The same day's bars and the same config, every combination run here in grid order.
    plan = plan_sweep(
        btc_1m(date(2024, 11, 1), date(2024, 11, 1)), "sma_crossover",
        {"fast": range(1, 111), "slow": range(2, 101)}, engine_config(request.sweep.config),
    )  # fmt: skip
    sharpes = [m.sharpe for m in plan.job.run(plan.combos)]

    assert refused == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "a grid of 10,890 combinations needs top_n between 1 and 10,000: the sweep stores and "
        "returns its best results, not all of them",
    )
    # Sorted here: the five best by sharpe, ties by grid order.
    combos = [(f, s) for f in range(1, 111) for s in range(2, 101) if f < s]
    assert len(sharpes) == len(combos) == _progress(ended).total_combinations == 4950
    best = sorted(range(len(combos)), key=lambda i: (math.isnan(sharpes[i]), -sharpes[i], i))[:5]
    assert [
        (r.parameters["fast"], r.parameters["slow"], r.metrics.sharpe)
        for r in _response(ended).results
    ] == [(*combos[i], sharpes[i]) for i in best]
    # Every combination, not only the five kept, in grid order.
    assert whole.num_rows == 4950
    assert list(zip(whole["fast"].to_pylist(), whole["slow"].to_pylist(), strict=True)) == combos
    assert whole["sharpe"].to_pylist() == pytest.approx(sharpes, nan_ok=True, rel=0, abs=0)
    assert whole.equals(whole_csv.cast(whole.schema))


async def test_a_sweep_run_directly_keeps_its_whole_table_and_one_stored_without_is_refused(
    tmp_path: Path,
) -> None:
    request = _sweep(fast=6, slow=8).sweep
    request.top_n = 2
    # As a sweep stored before whole tables were kept: the sweep, no table.
    store = await ResultStore.open(tmp_path / "results.sqlite3")
    older = backtest_pb2.Sweep(id="older", strategy="sma_crossover")
    older.results.add(parameters={"fast": 5.0, "slow": 20.0})
    await store.add_sweep(older)
    await store.close()
    async with serve_harness(tmp_path, Limits()) as service:
        swept = (await service.stub.RunSweep(request)).sweep
        whole = await _download(service, swept.id)
        skipped = _sweep(fast=9, slow=3).sweep  # fast 1..9 x slow 2..3: mostly fast >= slow
        skipped.grid["fast"].start = 5
        nothing = (await service.stub.RunSweep(skipped)).sweep
        empty = await _download(service, nothing.id)
        refused = await rpc_error(_download(service, "older"))
        missing = await rpc_error(_download(service, "nope"))

    combos = [(f, s) for f in range(1, 7) for s in range(2, 9) if f < s]
    assert len(swept.results) == 2
    assert list(zip(whole["fast"].to_pylist(), whole["slow"].to_pylist(), strict=True)) == combos
    # The two kept are the table's two best, with the same figures.
    best = whole.sort_by([("sharpe", "descending")]).slice(0, 2)
    assert best["sharpe"].to_pylist() == [r.metrics.sharpe for r in swept.results]
    assert (len(nothing.results), empty.num_rows) == (0, 0)
    assert refused[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert "ExportSweep" in refused[1]
    assert missing[0] == grpc.StatusCode.NOT_FOUND
