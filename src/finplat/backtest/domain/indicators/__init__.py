"""Technical indicators (numpy/numba), numerically compatible with TA-Lib's defaults."""

from finplat.backtest.domain.indicators.momentum import MACD, Stochastic, macd, rsi, stochastic
from finplat.backtest.domain.indicators.moving import ema, sma, wma
from finplat.backtest.domain.indicators.volatility import (
    BollingerBands,
    atr,
    bollinger_bands,
    true_range,
)
from finplat.backtest.domain.indicators.volume import vwap

__all__ = [
    "MACD",
    "BollingerBands",
    "Stochastic",
    "atr",
    "bollinger_bands",
    "ema",
    "macd",
    "rsi",
    "sma",
    "stochastic",
    "true_range",
    "vwap",
    "wma",
]
