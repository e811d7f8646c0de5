"""The result and operation stores' tests, the same on both databases: classes that a test
module subclasses with a `location` fixture (a SQLite file in tests/unit/backtest, a fresh
PostgreSQL database in tests/integration/backtest). Not collected here: no `Test` prefix."""

import asyncio
import dataclasses
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from google.longrunning import operations_pb2  # type: ignore[import-untyped]

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.adapters.database import Location
from finplat.backtest.adapters.operation_store import KeptChunk, LeaseLostError, OperationStore
from finplat.backtest.adapters.results_store import InvalidPageTokenError, ResultStore
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.errors import NotFoundError, StoreError
from finplat.backtest.service.ids import new_id

# Past 2**31: the times need 64-bit columns.
BASE_MS = 1_730_000_000_000
# Two instances of the service on one database, as their operation leases name them, and how
# long a lease lasts: those added at BASE_MS + n seconds are all expired at LATER_MS.
ONE, TWO = "instance-one", "instance-two"
LEASE_MS = 1_000
LATER_MS = BASE_MS + 3_600_000


def backtest(
    index: int, strategy: str = "sma_crossover", symbol: str = "BTCUSDT", run_id: str = ""
) -> backtest_pb2.Backtest:
    """A stored run created `index` seconds after BASE_MS, with a trade and an equity point."""
    run = backtest_pb2.Backtest(
        id=run_id or new_id(BASE_MS + index * 1000),
        strategy=strategy,
        parameters={"fast": 10.0, "slow": 30.0 + index},
        data=backtest_pb2.DataRange(symbol=symbol, interval="1m"),
        metrics=backtest_pb2.Metrics(total_return=index / 100, trade_count=index),
        trades=[backtest_pb2.Trade(side=backtest_pb2.SIDE_LONG, pnl=1.5)],
        equity_curve=[backtest_pb2.EquityPoint(equity=10_000.0)],
        bar_count=100 + index,
    )
    run.create_time.FromMilliseconds(BASE_MS + index * 1000)
    return run


def _operation(name: str, done: bool = False) -> operations_pb2.Operation:
    return operations_pb2.Operation(name=f"operations/{name}", done=done)


def _metrics(sharpe: float) -> Metrics:
    values: dict[str, Any] = {f.name: 0.5 for f in dataclasses.fields(Metrics)}
    return Metrics(**values | {"sharpe": sharpe, "n_trades": 3})


class ResultStoreCases:
    """`ResultStore` on the subclass's `location`."""

    @pytest.mark.asyncio
    async def test_round_trip_survives_reopen(self, location: Location) -> None:
        store = await ResultStore.open(location)
        run = backtest(1)
        await store.add_backtest(run)
        await store.close()

        reopened = await ResultStore.open(location)
        got = await reopened.get_backtest(run.id)
        await reopened.close()

        assert got == run

    @pytest.mark.asyncio
    async def test_pages_newest_first_without_trades_or_curves(self, location: Location) -> None:
        store = await ResultStore.open(location)
        runs = [backtest(i) for i in range(5)]
        for run in runs:
            await store.add_backtest(run)

        first, token1 = await store.list_backtests(2)
        second, token2 = await store.list_backtests(2, token1)
        third, token3 = await store.list_backtests(2, token2)
        await store.close()

        assert [r.id for r in first + second + third] == [runs[i].id for i in (4, 3, 2, 1, 0)]
        assert token3 == ""
        assert all(not r.trades and not r.equity_curve for r in first + second + third)
        assert first[0].metrics.trade_count == 4

    @pytest.mark.asyncio
    async def test_runs_of_one_millisecond_page_by_id_bytes(self, location: Location) -> None:
        store = await ResultStore.open(location)
        # Byte order, not a locale's: "B" (0x42) < "_" (0x5f) < "a" (0x61) < "b".
        ids = ["a", "B", "_x", "b"]
        for run_id in ids:
            await store.add_backtest(backtest(7, run_id=run_id))
        await store.add_backtest(backtest(3))

        pages, token = [], ""
        while True:
            page, token = await store.list_backtests(1, token)
            pages.append([r.id for r in page])
            if not token:
                break
        await store.close()

        assert pages[:4] == [["b"], ["a"], ["_x"], ["B"]]
        assert len(pages) == 5

    @pytest.mark.asyncio
    async def test_filters_by_strategy_and_symbol(self, location: Location) -> None:
        store = await ResultStore.open(location)
        runs = [backtest(0), backtest(1, strategy="rsi_reversion"),
                backtest(2, symbol="ETHUSDT"), backtest(3)]  # fmt: skip
        for run in runs:
            await store.add_backtest(run)

        by_strategy, _ = await store.list_backtests(0, strategy="sma_crossover")
        by_both, _ = await store.list_backtests(0, strategy="sma_crossover", symbol="BTCUSDT")
        by_symbol, _ = await store.list_backtests(0, symbol="ETHUSDT")
        first, token = await store.list_backtests(1, strategy="sma_crossover")
        rest, _ = await store.list_backtests(5, token, strategy="sma_crossover")
        await store.close()

        assert [r.id for r in by_strategy] == [runs[3].id, runs[2].id, runs[0].id]
        assert [r.id for r in by_both] == [runs[3].id, runs[0].id]
        assert [r.id for r in by_symbol] == [runs[2].id]
        assert [r.id for r in first + rest] == [r.id for r in by_strategy]

    @pytest.mark.asyncio
    async def test_unknown_id_bad_token_and_a_taken_id(self, location: Location) -> None:
        store = await ResultStore.open(location)
        run = backtest(1)
        await store.add_backtest(run)

        with pytest.raises(NotFoundError):
            await store.get_backtest("01NOTTHERE")
        with pytest.raises(InvalidPageTokenError):
            await store.list_backtests(10, "%%%")
        with pytest.raises(StoreError):
            await store.add_backtest(backtest(2, run_id=run.id))
        # The failed insert was rolled back: the store goes on.
        await store.add_backtest(backtest(3))
        listed, _ = await store.list_backtests(10)
        await store.close()

        assert [r.bar_count for r in listed] == [103, 101]

    @pytest.mark.asyncio
    async def test_sweeps_and_walk_forwards_are_stored_and_stored_again(
        self, location: Location
    ) -> None:
        store = await ResultStore.open(location)
        sweep = backtest_pb2.Sweep(id=new_id(), strategy="sma_crossover", rank_by="sharpe")
        sweep.create_time.FromMilliseconds(BASE_MS)
        walk = backtest_service_pb2.WalkForward(id=new_id(), strategy="sma_crossover")

        await store.add_sweep(sweep)
        await store.add_walk_forward(walk)
        first = (await store.get_sweep(sweep.id), await store.get_walk_forward(walk.id))
        # Resumed: the same ids stored again, replacing the rows.
        sweep.results.add(parameters={"fast": 5.0})
        walk.folds.add(index=0)
        await store.add_sweep(sweep)
        await store.add_walk_forward(walk)
        again = (await store.get_sweep(sweep.id), await store.get_walk_forward(walk.id))
        with pytest.raises(NotFoundError):
            await store.get_sweep("nope")
        with pytest.raises(NotFoundError):
            await store.get_walk_forward("nope")
        await store.close()

        assert not first[0].results
        assert not first[1].folds
        assert again == (sweep, walk)

    @pytest.mark.asyncio
    async def test_sweep_table_pieces_of_megabytes(self, location: Location) -> None:
        store = await ResultStore.open(location)
        # Random doubles hardly compress: each piece stays above 2 MB in the database.
        rng = np.random.default_rng(7)
        pieces = [pa.table({"combo": np.arange(i * 300_000, (i + 1) * 300_000),
                            "sharpe": rng.standard_normal(300_000)}) for i in range(3)]  # fmt: skip
        for index, piece in enumerate(pieces):
            await store.add_sweep_rows("sweep-a", index, piece)
        await store.add_sweep_rows("sweep-b", 0, pieces[0].slice(0, 10))
        stored = await store.sweep_row_pieces("sweep-a")
        got = [await store.get_sweep_rows("sweep-a", i) for i in stored]
        # Stored again from piece 0: the old pieces go.
        await store.add_sweep_rows("sweep-a", 0, pieces[2])
        again = await store.sweep_row_pieces("sweep-a")
        first_again = await store.get_sweep_rows("sweep-a", 0)
        with pytest.raises(NotFoundError):
            await store.get_sweep_rows("sweep-a", 1)
        none = await store.sweep_row_pieces("sweep-c")
        other = await store.get_sweep_rows("sweep-b", 0)
        await store.close()

        assert stored == [0, 1, 2]
        assert all(g.equals(p) for g, p in zip(got, pieces, strict=True))
        assert again == [0]
        assert first_again.equals(pieces[2])
        assert none == []
        assert other.equals(pieces[0].slice(0, 10))

    @pytest.mark.asyncio
    async def test_both_stores_share_the_database(self, location: Location) -> None:
        results = await ResultStore.open(location)
        operations = await OperationStore.open(location)
        run = backtest(1)

        await results.add_backtest(run)
        await operations.add(_operation("a"), BASE_MS, b"request", ONE, LEASE_MS)
        # Another instance of the service: stores of its own on the same database.
        other_results = await ResultStore.open(location)
        other_operations = await OperationStore.open(location)
        seen = (
            await other_results.get_backtest(run.id),
            await other_operations.get("operations/a"),
        )
        for store in (results, operations, other_results, other_operations):
            await store.close()

        assert seen == (run, _operation("a"))


class OperationStoreCases:
    """`OperationStore` on the subclass's `location`."""

    @pytest.mark.asyncio
    async def test_operations_and_their_chunks_survive_reopen(self, location: Location) -> None:
        store = await OperationStore.open(location)
        running = _operation("a")
        await store.add(running, BASE_MS, b"the request", ONE, LEASE_MS)
        running.metadata.Pack(backtest_service_pb2.SweepProgress(done_combinations=3))
        await store.add_chunk(running, 0, "plan-1", [_metrics(1.5), _metrics(math.nan)], ONE)
        await store.add_chunk(running, 4, "plan-1", [_metrics(-2.0)], ONE)
        await store.close()

        reopened = await OperationStore.open(location)
        got = await reopened.get(running.name)
        chunks = await reopened.chunks(running.name)
        one = await reopened.chunk(running.name, 4)
        (unfinished,) = await reopened.claim_unfinished(TWO, LATER_MS, LEASE_MS)
        await reopened.close()

        # Each chunk's progress was written with it.
        assert got == running
        assert sorted(chunks) == [0, 4]
        assert chunks[0].plan == "plan-1"
        assert chunks[0].metrics[0] == _metrics(1.5)
        assert math.isnan(chunks[0].metrics[1].sharpe)
        assert one == KeptChunk("plan-1", [_metrics(-2.0)])
        assert (unfinished.request, unfinished.operation) == (b"the request", running)

    @pytest.mark.asyncio
    async def test_a_chunk_kept_again_replaces_it_and_the_end_forgets_them(
        self, location: Location
    ) -> None:
        store = await OperationStore.open(location)
        operation = _operation("a")
        await store.add(operation, BASE_MS, b"", ONE, LEASE_MS)
        await store.add_chunk(operation, 0, "old plan", [_metrics(1.0)], ONE)
        await store.add_chunk(operation, 0, "new plan", [_metrics(2.0)], ONE)
        replaced = await store.chunk(operation.name, 0)
        progress = _operation("a")
        progress.metadata.Pack(backtest_service_pb2.SweepProgress(done_combinations=1))
        await store.save(progress, ONE)
        kept_while_running = await store.chunks(operation.name)
        ended = _operation("a", done=True)
        ended.error.code = 1
        await store.save(ended, ONE)
        kept_at_the_end = await store.chunks(operation.name)
        got = await store.get(operation.name)
        unfinished = await store.claim_unfinished(TWO, LATER_MS, LEASE_MS)
        # Its lease went with its end: nothing left to renew.
        renewed = await store.renew(ONE, [operation.name], LATER_MS, LEASE_MS)
        with pytest.raises(NotFoundError):
            await store.chunk(operation.name, 0)
        await store.close()

        assert replaced == KeptChunk("new plan", [_metrics(2.0)])
        assert list(kept_while_running) == [0]
        assert kept_at_the_end == {}
        assert got == ended
        assert unfinished == []
        assert renewed == set()

    @pytest.mark.asyncio
    async def test_pages_newest_first_and_unfinished_oldest_first(self, location: Location) -> None:
        store = await OperationStore.open(location)
        # Two of one millisecond: the name decides, byte by byte.
        names = [("c", 1), ("a", 2), ("b", 2), ("d", 3)]
        for name, second in names:
            await store.add(
                _operation(name, done=name == "b"), BASE_MS + second * 1000, b"", ONE, LEASE_MS
            )

        first, token1 = await store.page(2)
        second_page, token2 = await store.page(2, token1)
        everything, last_token = await store.page(0)
        unfinished = await store.claim_unfinished(TWO, LATER_MS, LEASE_MS)
        with pytest.raises(InvalidPageTokenError):
            await store.page(2, "%%%")
        await store.close()

        newest_first = ["operations/d", "operations/b", "operations/a", "operations/c"]
        assert [op.name for op in first + second_page] == newest_first
        assert token2 == ""
        assert ([op.name for op in everything], last_token) == (newest_first, "")
        oldest_first = ["operations/c", "operations/a", "operations/d"]
        assert [u.operation.name for u in unfinished] == oldest_first

    @pytest.mark.asyncio
    async def test_delete_forgets_the_operation_and_its_chunks(self, location: Location) -> None:
        store = await OperationStore.open(location)
        kept, gone = _operation("kept"), _operation("gone")
        for operation in (kept, gone):
            await store.add(operation, BASE_MS, b"", ONE, LEASE_MS)
            await store.add_chunk(operation, 0, "plan", [_metrics(1.0)], ONE)

        await store.delete(gone.name)
        with pytest.raises(NotFoundError):
            await store.delete(gone.name)
        with pytest.raises(NotFoundError):
            await store.get(gone.name)
        with pytest.raises(StoreError):
            await store.add(kept, BASE_MS, b"", TWO, LEASE_MS)  # a name is added once
        left = (await store.chunks(gone.name), list(await store.chunks(kept.name)))
        # Its lease went with it: an instance still running it stops writing.
        renewed = await store.renew(ONE, [gone.name, kept.name], BASE_MS, LEASE_MS)
        with pytest.raises(LeaseLostError):
            await store.add_chunk(gone, 1, "plan", [_metrics(1.0)], ONE)
        await store.close()

        assert left == ({}, [0])
        assert renewed == {kept.name}

    @pytest.mark.asyncio
    async def test_claims_are_exclusive_between_instances_claiming_at_once(
        self, location: Location
    ) -> None:
        one, two = await OperationStore.open(location), await OperationStore.open(location)
        names = [f"operations/{i:02}" for i in range(20)]
        for i, name in enumerate(names):
            await one.add(_operation(name[11:]), BASE_MS + i, f"request {i}".encode(), ONE,
                          LEASE_MS)  # fmt: skip
        held = await two.claim_unfinished(TWO, BASE_MS + LEASE_MS - 1, LEASE_MS)
        # Both instances at once (each store on a thread, with a connection, of its own).
        taken = await asyncio.gather(
            one.claim_unfinished(ONE, LATER_MS, LEASE_MS),
            two.claim_unfinished(TWO, LATER_MS, LEASE_MS),
        )
        again = await two.claim_unfinished(TWO, LATER_MS + LEASE_MS - 1, LEASE_MS)
        await one.close()
        await two.close()

        by_one, by_two = ([u.operation.name for u in claimed] for claimed in taken)
        assert held == []  # nobody's lease had expired
        assert sorted(by_one + by_two) == names  # each taken once, by one of them
        assert all(u.request == f"request {names.index(u.operation.name)}".encode()
                   for u in taken[0] + taken[1])  # fmt: skip
        assert again == []

    @pytest.mark.asyncio
    async def test_an_expired_lease_is_taken_over_and_its_old_owner_writes_nothing(
        self, location: Location
    ) -> None:
        store = await OperationStore.open(location)
        stalled, alive = _operation("stalled"), _operation("alive")
        await store.add(stalled, BASE_MS, b"s", ONE, LEASE_MS)
        await store.add(alive, BASE_MS + LEASE_MS, b"a", ONE, LEASE_MS)
        await store.add_chunk(stalled, 0, "plan", [_metrics(1.0)], ONE)
        # Expired (at BASE_MS + 2s) but not taken over yet: still its owner's to renew...
        kept = await store.renew(ONE, [alive.name], BASE_MS + 2_100, LEASE_MS)
        # ...while the other one is taken over by another instance.
        (taken,) = await store.claim_unfinished(TWO, BASE_MS + 2_100, LEASE_MS)
        renewed = await store.renew(ONE, [stalled.name, alive.name], BASE_MS + 2_200, LEASE_MS)
        late = _operation("stalled")
        late.metadata.Pack(backtest_service_pb2.SweepProgress(done_combinations=99))
        with pytest.raises(LeaseLostError):
            await store.add_chunk(late, 1, "plan", [_metrics(9.0)], ONE)
        with pytest.raises(LeaseLostError):
            await store.save(_operation("stalled", done=True), ONE)
        by_successor = _operation("stalled")
        by_successor.metadata.Pack(backtest_service_pb2.SweepProgress(done_combinations=2))
        await store.add_chunk(by_successor, 1, "plan", [_metrics(2.0)], TWO)
        got, chunks = await store.get(stalled.name), await store.chunks(stalled.name)
        # Neither renewed by the old owner nor claimable again while the new one holds it.
        nothing = await store.claim_unfinished(ONE, BASE_MS + 3_000, LEASE_MS)
        await store.close()

        assert kept == {alive.name}
        assert (taken.request, taken.operation) == (b"s", stalled)
        assert renewed == {alive.name}
        assert got == by_successor
        assert {i: c.metrics for i, c in chunks.items()} == {0: [_metrics(1.0)],
                                                             1: [_metrics(2.0)]}  # fmt: skip
        assert nothing == []

    @pytest.mark.asyncio
    async def test_released_leases_are_claimed_at_once_and_the_cancel_flag_goes_with_them(
        self, location: Location
    ) -> None:
        store = await OperationStore.open(location)
        for name in ("a", "b", "c"):
            await store.add(_operation(name), BASE_MS, b"", ONE, LEASE_MS)
        await store.add(_operation("done", done=True), BASE_MS, b"", ONE, LEASE_MS)
        await store.save(_operation("done", done=True), ONE)

        asked = [await store.request_cancel(f"operations/{n}") for n in ("a", "done", "nope")]
        flagged = await store.cancel_requested(["operations/a", "operations/b", "operations/done"])
        await store.release(ONE)
        # Well before the leases would have expired.
        taken = await store.claim_unfinished(TWO, BASE_MS + 1, LEASE_MS)
        still_flagged = await store.cancel_requested(["operations/a"])
        await store.close()

        assert asked == [True, False, False]  # a finished one, or none, has nothing to cancel
        assert flagged == {"operations/a"}
        assert [u.operation.name for u in taken] == ["operations/a", "operations/b",
                                                     "operations/c"]  # fmt: skip
        assert still_flagged == {"operations/a"}
