"""A walk-forward request checked, and its report as the message an operation answers."""

import math
from dataclasses import dataclass

import grpc

from finance.backtest.v1 import backtest_service_pb2
from finplat.backtest.domain.walk_forward import WalkForwardReport, WindowMode
from finplat.backtest.service import convert, runs
from finplat.backtest.service.validation import RequestError

# Folds one walk-forward may have: each is a sweep of the grid.
MAX_FOLDS = 100
# Backtests one walk-forward may run, in sweeps' limits: ten sweeps of the largest grid.
WORK_PER_SWEEP_LIMIT = 10
_MODES = {
    backtest_service_pb2.WINDOW_MODE_UNSPECIFIED: WindowMode.ROLLING,
    backtest_service_pb2.WINDOW_MODE_ROLLING: WindowMode.ROLLING,
    backtest_service_pb2.WINDOW_MODE_ANCHORED: WindowMode.ANCHORED,
}
_PROTO_MODES = {WindowMode.ROLLING: backtest_service_pb2.WINDOW_MODE_ROLLING,
                WindowMode.ANCHORED: backtest_service_pb2.WINDOW_MODE_ANCHORED}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CheckedWalkForward:
    """A walk-forward request that passed every check: its grid and data as a sweep's."""

    sweep: runs.CheckedSweep
    folds: int
    in_sample_ratio: float
    mode: WindowMode
    warmup_bars: int


def _invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def check_walk_forward(
    request: backtest_service_pb2.StartWalkForwardRequest, limits: runs.Limits
) -> CheckedWalkForward:
    """The request's fields checked; what only the bars can tell (too few) is told later."""
    sweep = runs.check_sweep(
        backtest_service_pb2.RunSweepRequest(
            strategy=request.strategy, grid=request.grid, data=request.data,
            config=request.config, rank_by=request.rank_by,
        ),
        limits,
    )  # fmt: skip
    if not 1 <= request.folds <= MAX_FOLDS:
        raise _invalid(f"folds must be in [1, {MAX_FOLDS}], got {request.folds}")
    ratio = request.in_sample_ratio or 1.0
    if not (math.isfinite(ratio) and ratio > 0):
        raise _invalid(f"in_sample_ratio must be > 0, got {request.in_sample_ratio}")
    if request.mode not in _MODES:
        raise _invalid(f"unknown window mode {request.mode}")
    if request.warmup_bars < 0:
        raise _invalid("warmup_bars must not be negative")
    return CheckedWalkForward(sweep, request.folds, ratio, _MODES[request.mode],
                              request.warmup_bars)  # fmt: skip


def check_work(checked: CheckedWalkForward, combinations: int, limits: runs.Limits) -> None:
    """A sweep of the whole period and one per fold: bounded as one sweep is, times ten."""
    if combinations == 0:
        raise _invalid("grid: no valid combination (each breaks the strategy's check)")
    backtests = combinations * (checked.folds + 1)
    if backtests > limits.max_sweep_combinations * WORK_PER_SWEEP_LIMIT:
        raise _invalid(
            f"{combinations} combinations x ({checked.folds} folds + the whole period) are "
            f"{backtests:,} backtests, more than "
            f"{limits.max_sweep_combinations * WORK_PER_SWEEP_LIMIT:,}"
        )


def walk_forward_message(
    checked: CheckedWalkForward,
    report: WalkForwardReport,
    walk_forward_id: str,
    create_time_ms: int,
    max_points: int,
) -> backtest_service_pb2.WalkForward:
    """The folds, the stitched out-of-sample account and the whole-period optimum."""
    stitched = report.stitched
    return backtest_service_pb2.WalkForward(
        id=walk_forward_id,
        strategy=report.strategy,
        data=checked.sweep.query.proto(),
        config=convert.config_proto(report.config),
        rank_by=checked.sweep.rank_name,
        mode=_PROTO_MODES[report.layout.mode],
        warmup_bars=report.warmup_bars,
        folds=[
            backtest_service_pb2.WalkForwardFold(
                index=fold.index,
                in_sample_start_time=convert.timestamp(fold.in_sample.first_open_ms),
                in_sample_last_time=convert.timestamp(fold.in_sample.last_open_ms),
                out_of_sample_start_time=convert.timestamp(fold.out_of_sample.first_open_ms),
                out_of_sample_last_time=convert.timestamp(fold.out_of_sample.last_open_ms),
                parameters={k: float(v) for k, v in fold.params.items()},
                in_sample_metrics=convert.metrics_proto(fold.in_sample_metrics),
                out_of_sample_metrics=convert.metrics_proto(fold.out_of_sample_metrics),
            )
            for fold in report.folds
        ],
        out_of_sample_metrics=convert.metrics_proto(stitched.metrics),
        out_of_sample_equity=convert.equity_curve_proto(
            stitched.equity, stitched.open_time_ms, report.config.initial_capital, max_points
        ),
        whole_period_best=convert.sweep_result_proto(
            report.whole_period.params, report.whole_period.metrics
        ),
        create_time=convert.timestamp(create_time_ms),
    )
