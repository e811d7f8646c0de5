"""The HTML chart: self-contained, valid SVG panels, escaped text, bounded size."""

import re
import xml.etree.ElementTree as ET

import numpy as np

from finance.backtest.v1 import backtest_pb2
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig, PositionMode, run_strategy
from finplat.backtest.service.charts import MAX_POINTS, render_backtest_html
from finplat.backtest.service.convert import backtest_proto

SVG = re.compile(r"<svg\b.*?</svg>", re.S)


def _backtest(bars: Bars) -> backtest_pb2.Backtest:
    result = run_strategy(
        bars, "sma_crossover", {"fast": 10, "slow": 30},
        EngineConfig(fee_bps=10, mode=PositionMode.LONG_SHORT),
    )  # fmt: skip
    data = backtest_pb2.DataRange(symbol="BTCUSDT", interval="1m")
    data.start_time.FromMilliseconds(int(bars.open_time_ms[0]))
    data.end_time.FromMilliseconds(int(bars.open_time_ms[-1]) + 60_000)
    return backtest_proto("ID1", "sma_crossover", {"fast": 10, "slow": 30}, data, result, 0, 2000)


def test_page_has_three_valid_svg_panels_and_no_scripts(q4_bars: Bars) -> None:
    backtest = _backtest(q4_bars)

    page = render_backtest_html(backtest, q4_bars)

    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    panels = SVG.findall(page)
    assert len(panels) == 3
    for panel in panels:
        root = ET.fromstring(panel)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    price_panel = ET.fromstring(panels[0])
    polyline = price_panel.find("{http://www.w3.org/2000/svg}polyline")
    assert polyline is not None
    assert len(polyline.attrib["points"].split()) <= MAX_POINTS + 1
    trade_marks = price_panel.findall("{http://www.w3.org/2000/svg}g")
    assert len(trade_marks) == len(backtest.trades)


def test_without_bars_the_price_panel_is_left_out_and_text_is_escaped(q4_bars: Bars) -> None:
    backtest = _backtest(q4_bars.slice(0, 500))
    backtest.strategy = "<b>sneaky</b>"

    page = render_backtest_html(backtest)

    assert len(SVG.findall(page)) == 2
    assert "<b>sneaky</b>" not in page
    assert "&lt;b&gt;sneaky&lt;/b&gt;" in page


def test_flat_run_without_trades_still_renders() -> None:
    times = np.arange(5, dtype=np.int64) * 60_000
    price = np.full(5, 100.0)
    flat = Bars(times, price, price, price, price, np.ones(5))

    page = render_backtest_html(_backtest(flat), flat)

    assert len(SVG.findall(page)) == 3
    assert "Trades (0," in page
