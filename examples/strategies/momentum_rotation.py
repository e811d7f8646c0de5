"""A portfolio strategy of your own: hold the symbol that rose most over the last bars.

It decides the weights of all symbols together (a `portfolio_fn`), so it runs on portfolios
(RunPortfolio, POST /api/portfolios) only.
"""

import numpy as np
import numpy.typing as npt

from finplat.strategy import Panel, Params, ParamSpec, StrategySpec


def rotate(panel: Panel, params: Params) -> npt.NDArray[np.float64]:
    lookback = int(params.lookback)
    close = panel.close  # (bars, symbols)
    gain = np.full(close.shape, -np.inf)
    gain[lookback:] = close[lookback:] / close[:-lookback]  # uses closes up to each bar only
    weights = np.zeros(close.shape)
    weights[np.arange(len(panel)), np.argmax(gain, axis=1)] = params.weight
    weights[:lookback] = 0.0  # flat until `lookback` bars exist
    return weights


STRATEGY = StrategySpec(
    name="momentum_rotation",
    description="hold the symbol with the largest gain over the last `lookback` bars",
    schema=(
        ParamSpec("lookback", int, 60, 1, 100_000, "bars the gain is measured over"),
        ParamSpec("weight", float, 1.0, 0.0, 1.0, "fraction of the portfolio held"),
    ),
    signal_fn=None,
    portfolio_fn=rotate,
)
