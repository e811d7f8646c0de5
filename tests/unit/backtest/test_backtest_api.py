"""BacktestService on a real in-process gRPC server, bars from a fake PriceService over gRPC."""

import io
import math
from typing import Any

import grpc
import numpy as np
import pyarrow.parquet as pq
import pytest

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig, PositionMode, run_strategy
from finplat.backtest.domain.strategies import (
    REGISTRY,
    Indicators,
    Params,
    ParamSpec,
    Signal,
    StrategySpec,
)
from finplat.backtest.service.runs import Limits
from tests.unit.backtest.api_harness import (
    DAY_MS,
    NOV_1_MS,
    Harness,
    rpc_error,
    run_request,
)


@pytest.mark.asyncio
async def test_run_backtest_matches_the_engine_on_the_same_klines(
    service: Harness, q4_bars: Bars
) -> None:
    direct = run_strategy(
        q4_bars, "sma_crossover", {"fast": 10, "slow": 30},
        EngineConfig(fee_bps=10, mode=PositionMode.LONG_ONLY),
    )  # fmt: skip

    response = await service.stub.RunBacktest(run_request())

    run = response.backtest
    assert run.bar_count == len(q4_bars) == 4320
    assert service.prices.answered == [1000, 1000, 1000, 1000, 320]  # paginated by time
    m, d = run.metrics, direct.metrics
    assert (m.total_return, m.sharpe, m.sortino, m.max_drawdown, m.final_equity) == (
        d.total_return, d.sharpe, d.sortino, d.max_drawdown, d.final_equity,
    )  # fmt: skip
    assert (m.volatility, m.trade_count, m.average_trade) == (
        d.annual_volatility, d.n_trades, d.avg_trade_return,
    )  # fmt: skip
    assert m.max_drawdown_duration.ToSeconds() == d.max_drawdown_duration_bars * 60
    # One position at a time: entry order and the domain's exit order are the same.
    assert [t.entry_price for t in run.trades] == direct.trades.entry_price.tolist()
    assert [t.pnl for t in run.trades] == direct.trades.pnl.tolist()
    assert len(run.equity_curve) <= 2000
    assert run.equity_curve[-1].equity == direct.equity[-1]
    assert dict(run.parameters) == {"fast": 10.0, "slow": 30.0}
    assert run.config.initial_cash == 10_000.0


@pytest.mark.asyncio
async def test_stored_run_can_be_fetched_and_listed(service: Harness) -> None:
    created = (await service.stub.RunBacktest(run_request(end_ms=NOV_1_MS + DAY_MS))).backtest

    fetched = await service.stub.GetBacktest(backtest_service_pb2.GetBacktestRequest(id=created.id))
    listed = await service.stub.ListBacktests(
        backtest_service_pb2.ListBacktestsRequest(symbol="btcusdt")
    )

    assert fetched.backtest == created
    assert [b.id for b in listed.backtests] == [created.id]
    assert listed.next_page_token == ""


@pytest.mark.asyncio
async def test_enum_name_interval_runs_like_the_binance_code_and_is_echoed_as_it(
    service: Harness,
) -> None:
    by_code = (await service.stub.RunBacktest(run_request(end_ms=NOV_1_MS + DAY_MS))).backtest
    request = run_request(end_ms=NOV_1_MS + DAY_MS)
    request.data.interval = "INTERVAL_1M"  # as Candle.interval reads in JSON

    by_name = (await service.stub.RunBacktest(request)).backtest
    fetched = await service.stub.GetBacktest(backtest_service_pb2.GetBacktestRequest(id=by_name.id))
    chart = await service.stub.GetBacktestChart(
        backtest_service_pb2.GetBacktestChartRequest(id=by_name.id)
    )

    assert by_name.data.interval == "1m"
    assert fetched.backtest.data.interval == "1m"
    assert "on BTCUSDT 1m" in chart.chart.data.decode()
    # The price service is asked in Binance notation: 2 chunks per run, then 2 for the chart.
    assert [r.interval for r in service.prices.requests] == ["1m"] * 6
    assert by_name.bar_count == by_code.bar_count == 1440
    assert by_name.metrics == by_code.metrics
    assert list(by_name.trades) == list(by_code.trades)
    assert list(by_name.equity_curve) == list(by_code.equity_curve)
    assert by_name.data.start_time == by_code.data.start_time
    assert by_name.data.end_time == by_code.data.end_time


@pytest.mark.asyncio
async def test_sweep_echoes_an_enum_name_interval_in_binance_notation(service: Harness) -> None:
    base = run_request(end_ms=NOV_1_MS + DAY_MS)
    base.data.interval = "INTERVAL_1M"
    request = backtest_service_pb2.RunSweepRequest(
        strategy="sma_crossover",
        grid={"fast": backtest_pb2.ParameterRange(start=5, stop=10, step=5)},
        data=base.data, config=base.config,
    )  # fmt: skip

    sweep = (await service.stub.RunSweep(request)).sweep

    assert sweep.data.interval == "1m"
    assert len(sweep.results) == 2


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("interval", "message"),
    [
        ("INTERVAL_7M", "data.interval: unknown interval 'INTERVAL_7M'"),
        ("INTERVAL_UNSPECIFIED", "data.interval: unknown interval 'INTERVAL_UNSPECIFIED'"),
        ("interval_1m", "or an Interval enum name (INTERVAL_1S, INTERVAL_1M,"),
    ],
)
async def test_unknown_interval_names_are_invalid_argument(
    service: Harness, interval: str, message: str
) -> None:
    request = run_request()
    request.data.interval = interval

    code, details = await rpc_error(service.stub.RunBacktest(request))

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details
    assert service.prices.requests == []


@pytest.mark.asyncio
async def test_bar_limit_message_names_the_interval_in_binance_notation(service: Harness) -> None:
    request = run_request(end_ms=NOV_1_MS + 200 * DAY_MS)
    request.data.interval = "INTERVAL_1M"

    code, details = await rpc_error(service.stub.RunBacktest(request))

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "time range holds more than 100000 1m bars" in details


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (run_request(strategy="moon"), grpc.StatusCode.NOT_FOUND, "unknown strategy 'moon'"),
        (run_request(parameters={"fast": 0}), grpc.StatusCode.INVALID_ARGUMENT,
         "'fast': must be in"),
        (run_request(parameters={"fast": 30, "slow": 10}), grpc.StatusCode.INVALID_ARGUMENT,
         "must be < slow"),
        (run_request(parameters={"fast": 2.5}), grpc.StatusCode.INVALID_ARGUMENT, "must be an int"),
        (run_request(parameters={"speed": 2}), grpc.StatusCode.INVALID_ARGUMENT,
         "'speed': unknown"),
        (run_request(end_ms=NOV_1_MS), grpc.StatusCode.INVALID_ARGUMENT, "empty or inverted"),
        (run_request(end_ms=NOV_1_MS - 1), grpc.StatusCode.INVALID_ARGUMENT, "empty or inverted"),
        (run_request(symbol="DOGEUSDT"), grpc.StatusCode.FAILED_PRECONDITION, "not tracked"),
        (run_request(start_ms=0, end_ms=DAY_MS), grpc.StatusCode.FAILED_PRECONDITION,
         "no 1m candles for BTCUSDT"),
        (run_request(end_ms=NOV_1_MS + 200 * DAY_MS), grpc.StatusCode.INVALID_ARGUMENT,
         "more than 100000"),
    ],
)  # fmt: skip
async def test_run_backtest_rejects_bad_requests(
    service: Harness,
    request_: backtest_service_pb2.RunBacktestRequest,
    code: grpc.StatusCode,
    message: str,
) -> None:
    got_code, details = await rpc_error(service.stub.RunBacktest(request_))

    assert got_code == code
    assert message in details


@pytest.mark.asyncio
async def test_config_out_of_range_is_invalid_argument(service: Harness) -> None:
    request = run_request()
    request.config.position_fraction = 1.5

    code, details = await rpc_error(service.stub.RunBacktest(request))

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "fraction must be in (0, 1]" in details


@pytest.mark.asyncio
async def test_get_unknown_backtest_is_not_found(service: Harness) -> None:
    code, _ = await rpc_error(
        service.stub.GetBacktest(backtest_service_pb2.GetBacktestRequest(id="nope"))
    )

    assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.asyncio
async def test_list_with_bad_token_is_invalid_argument(service: Harness) -> None:
    code, _ = await rpc_error(
        service.stub.ListBacktests(backtest_service_pb2.ListBacktestsRequest(page_token="!!"))
    )

    assert code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.asyncio
async def test_sweep_ranks_the_grid_and_validates_rank_by(service: Harness) -> None:
    base = run_request(end_ms=NOV_1_MS + DAY_MS)
    request = backtest_service_pb2.RunSweepRequest(
        strategy="sma_crossover",
        grid={"fast": backtest_pb2.ParameterRange(start=5, stop=15, step=5),
              "slow": backtest_pb2.ParameterRange(start=20, stop=40, step=20)},
        data=base.data, config=base.config, rank_by="total_return", top_n=4,
    )  # fmt: skip

    sweep = (await service.stub.RunSweep(request)).sweep
    request.rank_by = "luck"
    code, details = await rpc_error(service.stub.RunSweep(request))

    returns = [r.metrics.total_return for r in sweep.results]
    assert len(sweep.results) == 4  # 3 x 2 combinations, best 4 kept
    assert returns == sorted(returns, reverse=True)
    assert sweep.rank_by == "total_return"
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "rank_by must be one of" in details


@pytest.mark.asyncio
async def test_get_stats_converts_the_snapshot(service: Harness) -> None:
    stats = await service.stub.GetStats(backtest_service_pb2.GetStatsRequest())

    assert (stats.total_messages, stats.decode_errors, stats.dead_lettered, stats.duplicates) == (
        3, 1, 1, 2,
    )  # fmt: skip
    (btc,) = stats.symbols
    assert (btc.symbol, btc.count, btc.last_price, btc.min_price, btc.volume) == (
        "BTCUSDT", 3, "101.5", "99.00", "0.75",
    )  # fmt: skip
    assert btc.first_event_time.ToMilliseconds() == 1000
    assert math.isclose(btc.messages_per_second, 0.05)
    (lag,) = stats.lag
    assert (lag.partition, lag.committed_offset, lag.end_offset, lag.lag) == (0, 7, 10, 3)
    assert stats.uptime.ToMilliseconds() == 90_500


@pytest.mark.asyncio
async def test_list_strategies_exposes_parameter_schemas(service: Harness) -> None:
    response = await service.stub.ListStrategies(backtest_service_pb2.ListStrategiesRequest())

    names = [s.name for s in response.strategies]
    sma = next(s for s in response.strategies if s.name == "sma_crossover")
    fast = next(p for p in sma.parameters if p.name == "fast")
    assert names == sorted(names)
    assert (fast.type, fast.default_value, fast.min_value, fast.max_value) == (
        backtest_pb2.PARAMETER_TYPE_INT, 10.0, 1.0, 10_000.0,
    )  # fmt: skip


@pytest.mark.asyncio
async def test_chart_of_a_stored_run_is_html_with_the_price_panel(service: Harness) -> None:
    created = (await service.stub.RunBacktest(run_request(end_ms=NOV_1_MS + DAY_MS))).backtest

    response = await service.stub.GetBacktestChart(
        backtest_service_pb2.GetBacktestChartRequest(id=created.id)
    )
    page = response.chart.data.decode()

    assert response.chart.content_type == "text/html; charset=utf-8"
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 3
    assert "BTCUSDT close, trades" in page


@pytest.mark.asyncio
async def test_chart_of_an_unknown_run_is_not_found(service: Harness) -> None:
    code, _ = await rpc_error(
        service.stub.GetBacktestChart(backtest_service_pb2.GetBacktestChartRequest(id="nope"))
    )

    assert code == grpc.StatusCode.NOT_FOUND


def _lookahead_request(**options: Any) -> backtest_service_pb2.CheckLookaheadRequest:
    request = backtest_service_pb2.CheckLookaheadRequest(
        strategy="sma_crossover",
        parameters={"fast": 10, "slow": 30},
        data=backtest_pb2.DataRange(symbol="BTCUSDT", interval="1m"),
        **options,
    )
    request.data.start_time.FromMilliseconds(NOV_1_MS)
    request.data.end_time.FromMilliseconds(NOV_1_MS + DAY_MS)
    return request


@pytest.mark.asyncio
async def test_check_lookahead_finds_a_built_in_clean_on_real_bars(service: Harness) -> None:
    response = await service.stub.CheckLookahead(_lookahead_request(every=60, random_prefixes=0))

    # 1,440 bars cut after bars 0, 60, ..., 1380: 24 prefixes, none changing a target.
    assert (response.clean, response.bar_count, response.prefixes_checked) == (True, 1440, 24)
    assert (response.differing_prefixes, response.differing_bars) == (0, 0)
    assert list(response.differences) == []


@pytest.mark.asyncio
async def test_check_lookahead_refuses_bad_options_and_too_much_work(service: Harness) -> None:
    negative = await rpc_error(service.stub.CheckLookahead(_lookahead_request(random_prefixes=-1)))
    service.servicer._limits = Limits(max_bars=100_000, max_lookahead_bars=10_000)
    too_much = await rpc_error(service.stub.CheckLookahead(_lookahead_request()))
    unknown = await rpc_error(
        service.stub.CheckLookahead(backtest_service_pb2.CheckLookaheadRequest(strategy="nope"))
    )

    assert negative[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert "must not be negative" in negative[1]
    assert too_much[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than 10,000: raise `every`" in too_much[1]
    assert unknown[0] == grpc.StatusCode.NOT_FOUND


@pytest.mark.asyncio
async def test_a_stored_runs_trades_and_equity_export_to_parquet_and_csv(
    service: Harness,
) -> None:
    run = (await service.stub.RunBacktest(run_request())).backtest
    export = backtest_service_pb2.ExportBacktestRequest
    trades = await service.stub.ExportBacktest(
        export(id=run.id, table=backtest_service_pb2.RESULT_TABLE_TRADES)
    )
    equity = await service.stub.ExportBacktest(
        export(
            id=run.id,
            table=backtest_service_pb2.RESULT_TABLE_EQUITY,
            format=backtest_service_pb2.FILE_FORMAT_CSV,
        )
    )

    assert trades.file.content_type == "application/vnd.apache.parquet"
    rows = pq.read_table(io.BytesIO(trades.file.data)).to_pylist()
    assert len(rows) == len(run.trades) > 0
    assert [row["pnl"] for row in rows] == [t.pnl for t in run.trades]
    assert rows[0]["side"] == backtest_pb2.Side.Name(run.trades[0].side)
    assert (
        int(rows[0]["entry_time"].timestamp() * 1000) == run.trades[0].entry_time.ToMilliseconds()
    )
    assert equity.file.content_type == "text/csv"
    lines = equity.file.data.decode().splitlines()
    assert lines[0] == '"time","equity","drawdown"'
    assert len(lines) == 1 + len(run.equity_curve)
    assert float(lines[1].split(",")[1]) == run.equity_curve[0].equity


@pytest.mark.asyncio
async def test_export_names_what_is_wrong(service: Harness) -> None:
    export = backtest_service_pb2.ExportBacktestRequest
    missing = await rpc_error(
        service.stub.ExportBacktest(
            export(id="nope", table=backtest_service_pb2.RESULT_TABLE_TRADES)
        )
    )
    no_table = await rpc_error(service.stub.ExportBacktest(export(id="nope")))

    assert missing[0] == grpc.StatusCode.NOT_FOUND
    assert no_table == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "table must be RESULT_TABLE_TRADES or RESULT_TABLE_EQUITY",
    )


@pytest.mark.asyncio
async def test_a_stored_sweep_exports_one_row_per_combination_in_rank_order(
    service: Harness,
) -> None:
    base = run_request(end_ms=NOV_1_MS + DAY_MS)
    request = backtest_service_pb2.RunSweepRequest(
        strategy="sma_crossover",
        grid={"fast": backtest_pb2.ParameterRange(start=5, stop=15, step=5),
              "slow": backtest_pb2.ParameterRange(start=20, stop=40, step=20)},
        data=base.data, config=base.config, rank_by="sharpe",
    )  # fmt: skip
    sweep = (await service.stub.RunSweep(request)).sweep
    export = backtest_service_pb2.ExportSweepRequest

    parquet = await service.stub.ExportSweep(export(id=sweep.id))
    csv_file = await service.stub.ExportSweep(
        export(id=sweep.id, format=backtest_service_pb2.FILE_FORMAT_CSV)
    )
    missing = await rpc_error(service.stub.ExportSweep(export(id="nope")))

    rows = pq.read_table(io.BytesIO(parquet.file.data)).to_pylist()
    assert len(rows) == len(sweep.results) == 6  # 3 x 2 combinations
    assert [(row["fast"], row["slow"]) for row in rows] == [
        (r.parameters["fast"], r.parameters["slow"]) for r in sweep.results
    ]
    assert [row["sharpe"] for row in rows] == [r.metrics.sharpe for r in sweep.results]
    first_duration = sweep.results[0].metrics.max_drawdown_duration
    assert rows[0]["max_drawdown_duration"] == first_duration.ToTimedelta().total_seconds()
    assert csv_file.file.content_type == "text/csv"
    header = csv_file.file.data.decode().splitlines()[0]
    assert header.startswith('"fast","slow","total_return"')
    assert missing[0] == grpc.StatusCode.NOT_FOUND


def _failing(bars: Bars, params: Params, ind: Indicators) -> Signal:
    if params.fail_at < len(bars):
        raise RuntimeError(f"no data at bar {int(params.fail_at)}")
    return np.zeros(len(bars) - 1, np.int8)  # one target short


@pytest.mark.asyncio
@pytest.mark.usefixtures("isolated_registry")
async def test_a_failing_user_strategy_is_failed_precondition_and_the_service_goes_on(
    service: Harness,
) -> None:
    REGISTRY.add(
        StrategySpec(
            "fragile", "fails", (ParamSpec("fail_at", int, 0, 0, 10**7, "bar"),), _failing
        ),
        "file /strategies/fragile.py",
    )

    raised = await rpc_error(service.stub.RunBacktest(run_request("fragile", {})))
    short = await rpc_error(service.stub.RunBacktest(run_request("fragile", {"fail_at": 10**7})))
    swept = await rpc_error(
        service.stub.RunSweep(
            backtest_service_pb2.RunSweepRequest(
                strategy="fragile",
                grid={"fail_at": backtest_pb2.ParameterRange(start=0, stop=2, step=1)},
                data=run_request().data,
            )
        )
    )
    checked = await rpc_error(
        service.stub.CheckLookahead(
            backtest_service_pb2.CheckLookaheadRequest(strategy="fragile", data=run_request().data)
        )
    )
    listed = await service.stub.ListStrategies(backtest_service_pb2.ListStrategiesRequest())
    after = await service.stub.RunBacktest(run_request())

    assert raised == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "strategy 'fragile' raised RuntimeError: no data at bar 0",
    )
    assert short == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "strategy 'fragile' returned shape (4319,), expected (4320,)",
    )
    assert swept == raised
    assert checked[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert "strategy 'fragile' raised RuntimeError" in checked[1]
    sources = {s.name: s.source for s in listed.strategies}
    assert sources["fragile"] == "file /strategies/fragile.py"
    assert sources["sma_crossover"] == "built-in"
    assert after.backtest.bar_count == 4320
