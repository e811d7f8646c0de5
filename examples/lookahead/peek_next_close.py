"""A strategy that cheats, for `finplat backtest lookahead` to catch: it reads the next close.

Long when the next bar closes higher, short when lower: a perfect forecast, and impossible,
since the target of a bar is filled at the next open, before that close exists.
"""

import numpy as np
import numpy.typing as npt

from finplat.strategy import Bars, Indicators, Params, StrategySpec


def peek(bars: Bars, params: Params, indicators: Indicators) -> npt.NDArray[np.int8]:
    return np.append(np.sign(np.diff(bars.close)), 0).astype(np.int8)


STRATEGY = StrategySpec(
    name="peek_next_close",
    description="cheats: trades on the next bar's close",
    schema=(),
    signal_fn=peek,
)
