"""A strategy of your own: an SMA crossover in plain numpy, long above, short below.

Load it by naming this directory: FINPLAT_BACKTEST_STRATEGY_DIRS='["examples/strategies"]'.
"""

import numpy as np
import numpy.typing as npt

from finplat.strategy import Bars, Indicators, Params, ParamSpec, StrategySpec, hold_last


def sma(close: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.float64]:
    """Mean of the last n closes, NaN until n closes exist: uses bars up to each bar only."""
    out = np.full(close.shape, np.nan)
    total = np.cumsum(close)
    out[n - 1 :] = (total[n - 1 :] - np.concatenate(([0.0], total[:-n]))) / n
    return out


def crossover(bars: Bars, params: Params, indicators: Indicators) -> npt.NDArray[np.int8]:
    fast, slow = sma(bars.close, int(params.fast)), sma(bars.close, int(params.slow))
    # +1 above, -1 below; NaN (warm-up) and ties compare False: 0, "no opinion".
    side = (fast > slow).astype(np.int8) - (fast < slow).astype(np.int8)
    return hold_last(side)  # a tie keeps the side held before it


def fast_shorter(params: Params) -> str | None:
    return None if params.fast < params.slow else "fast must be shorter than slow"


STRATEGY = StrategySpec(
    name="numpy_sma_crossover",
    description="SMA(fast) vs SMA(slow) in numpy: long above, short below",
    schema=(
        ParamSpec("fast", int, 10, 1, 1000, "fast SMA length (bars)"),
        ParamSpec("slow", int, 30, 2, 5000, "slow SMA length (bars)"),
    ),
    signal_fn=crossover,
    check=fast_shorter,
)
