"""`SweepRows`: a sweep's whole table in pieces, with exactly the columns and values of the
table ExportSweep builds from the stored protos."""

import math

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from finance.backtest.v1 import backtest_pb2
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.service.convert import sweep_result_proto
from finplat.backtest.service.exports import ROWS_PER_PIECE, SweepRows
from finplat.client.tables import sweep_table

_ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
_METRICS = st.builds(
    Metrics,
    total_return=_ANY_FLOAT,
    cagr=_ANY_FLOAT,
    annual_volatility=_ANY_FLOAT,
    sharpe=_ANY_FLOAT,
    sortino=_ANY_FLOAT,
    calmar=_ANY_FLOAT,
    max_drawdown=_ANY_FLOAT,
    max_drawdown_duration_bars=st.integers(0, 10_000_000),
    win_rate=_ANY_FLOAT,
    profit_factor=_ANY_FLOAT,
    n_trades=st.integers(0, 2**31 - 1),
    avg_trade_pnl=_ANY_FLOAT,
    avg_trade_return=_ANY_FLOAT,
    exposure=_ANY_FLOAT,
    final_equity=_ANY_FLOAT,
    # 1m, 30m and 1d bars, one bar (nan) and nonsense (0, negative)
    bars_per_year=st.sampled_from([525_600.0, 17_520.0, 365.0, math.nan, 0.0, -1.0]),
)
# "sharpe" as a parameter name collides with a metric's column: it becomes parameter.sharpe.
_PARAMS = st.fixed_dictionaries(
    {"fast": st.floats(1, 1e6), "sharpe": st.floats(-5, 5)},
)


def _identical(left: pa.Table, right: pa.Table) -> bool:
    # NaN == NaN here: equal bit patterns are the point, not arithmetic equality.
    return left.schema == right.schema and all(
        [repr(v) for v in left[name].to_pylist()] == [repr(v) for v in right[name].to_pylist()]
        for name in left.column_names
    )


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.tuples(_PARAMS, _METRICS), min_size=1, max_size=40))
def test_pieces_hold_exportsweeps_columns_and_values(
    rows: list[tuple[dict[str, float], Metrics]],
) -> None:
    params = [p for p, _ in rows]
    metrics = [m for _, m in rows]
    results = [sweep_result_proto(p, m) for p, m in rows]

    sweep_rows = SweepRows()
    pieces = sweep_rows.add(params[:7], metrics[:7]) + sweep_rows.add(params[7:], metrics[7:])
    pieces += sweep_rows.rest()

    assert _identical(pa.concat_tables(pieces), sweep_table(backtest_pb2.Sweep(results=results)))


def test_pieces_are_cut_at_the_piece_size_in_grid_order() -> None:
    metrics = Metrics(
        total_return=0.5, cagr=0.5, annual_volatility=0.5, sharpe=0.5, sortino=0.5, calmar=0.5,
        max_drawdown=0.5, max_drawdown_duration_bars=3, win_rate=0.5, profit_factor=0.5,
        n_trades=2, avg_trade_pnl=0.5, avg_trade_return=0.5, exposure=0.5, final_equity=1.0,
        bars_per_year=525_600.0,
    )  # fmt: skip
    count = 2 * ROWS_PER_PIECE + 5
    sweep_rows = SweepRows()

    pieces = sweep_rows.add([{"fast": float(i)} for i in range(count)], [metrics] * count)
    last = sweep_rows.rest()

    assert [p.num_rows for p in pieces] == [ROWS_PER_PIECE, ROWS_PER_PIECE]
    assert [p.num_rows for p in last] == [5]
    assert pa.concat_tables(pieces + last)["fast"].to_pylist() == list(range(count))
    assert sweep_rows.rest() == []
