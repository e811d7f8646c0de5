"""Stored backtests: round trip, newest-first keyset paging, filters, a reopened file."""

from pathlib import Path

import pytest

from finance.backtest.v1 import backtest_pb2
from finplat.backtest.adapters.results_store import InvalidPageTokenError, ResultStore
from finplat.backtest.errors import NotFoundError
from finplat.backtest.service.ids import is_id, new_id

BASE_MS = 1_730_000_000_000


def _run(
    index: int, strategy: str = "sma_crossover", symbol: str = "BTCUSDT"
) -> backtest_pb2.Backtest:
    run = backtest_pb2.Backtest(
        id=new_id(BASE_MS + index * 1000),
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


@pytest.mark.asyncio
async def test_round_trip_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "results.sqlite3"
    store = await ResultStore.open(path)
    run = _run(1)
    await store.add_backtest(run)
    await store.close()

    reopened = await ResultStore.open(path)
    got = await reopened.get_backtest(run.id)
    await reopened.close()

    assert got == run


@pytest.mark.asyncio
async def test_pages_newest_first_without_trades_or_curves(tmp_path: Path) -> None:
    store = await ResultStore.open(tmp_path / "r.db")
    runs = [_run(i) for i in range(5)]
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
async def test_filters_by_strategy_and_symbol(tmp_path: Path) -> None:
    store = await ResultStore.open(tmp_path / "r.db")
    runs = [_run(0), _run(1, strategy="rsi_reversion"), _run(2, symbol="ETHUSDT"), _run(3)]
    for run in runs:
        await store.add_backtest(run)

    by_strategy, _ = await store.list_backtests(0, strategy="sma_crossover")
    by_both, _ = await store.list_backtests(0, strategy="sma_crossover", symbol="BTCUSDT")
    await store.close()

    assert [r.id for r in by_strategy] == [runs[3].id, runs[2].id, runs[0].id]
    assert [r.id for r in by_both] == [runs[3].id, runs[0].id]


@pytest.mark.asyncio
async def test_unknown_id_and_bad_token(tmp_path: Path) -> None:
    store = await ResultStore.open(tmp_path / "r.db")

    with pytest.raises(NotFoundError):
        await store.get_backtest("01NOTTHERE")
    with pytest.raises(InvalidPageTokenError):
        await store.list_backtests(10, "%%%")
    await store.close()


@pytest.mark.asyncio
async def test_sweeps_are_stored(tmp_path: Path) -> None:
    store = await ResultStore.open(tmp_path / "r.db")
    sweep = backtest_pb2.Sweep(id=new_id(), strategy="sma_crossover", rank_by="sharpe")

    await store.add_sweep(sweep)
    got = await store.get_sweep(sweep.id)
    await store.close()

    assert got == sweep


def test_ids_sort_by_time_and_encode_the_millisecond() -> None:
    early = new_id(1000, bytes(10))
    late = new_id(1001, bytes(10))

    # ULID layout: 10 characters of time (1000 = 31 * 32 + 8 -> "Z8"), 16 of randomness.
    assert early == "00000000Z8" + "0" * 16
    assert early < late
    assert is_id(new_id())
    assert not is_id("not-an-id")
