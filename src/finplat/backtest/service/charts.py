"""A backtest as one self-contained HTML page: price with trades, equity and drawdown in SVG.

No scripts, no external files: the page opens anywhere, including from a mail attachment or as
a `google.api.HttpBody` from the API. Long series are reduced to at most `MAX_POINTS` per line
by keeping each bucket's low and high, so spikes and the deepest drawdown stay visible.
"""

import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

import numpy as np
import numpy.typing as npt
from google.protobuf.timestamp_pb2 import Timestamp

from finance.backtest.v1 import backtest_pb2
from finplat.backtest.domain.bars import Bars

MAX_POINTS = 2000
MAX_TRADE_MARKERS = 1000
MAX_TRADE_ROWS = 200
_WIDTH, _LEFT, _RIGHT, _TOP, _BOTTOM = 1000, 80, 20, 16, 26
_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1040px}
h1{font-size:20px;margin:0 0 4px} .meta{color:#666;margin-bottom:16px}
table{border-collapse:collapse;margin:8px 0 20px} td,th{padding:3px 10px;text-align:right}
th{background:#f2f2f2} td:first-child,th:first-child{text-align:left}
svg{display:block;margin-bottom:8px} text{font:11px system-ui,sans-serif;fill:#555}
.grid{stroke:#e5e5e5} .long{fill:#1a9850} .short{fill:#d73027}
"""


def _reduce(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64]
]:  # fmt: skip
    n = y.shape[0]
    if n <= MAX_POINTS:
        return x, y
    edges = np.linspace(0, n, MAX_POINTS // 2 + 1).astype(np.int64)
    keep: list[int] = [n - 1]
    for start, stop in itertools.pairwise(edges):
        chunk = y[start:stop]
        keep.extend((int(start + np.argmin(chunk)), int(start + np.argmax(chunk))))
    index = np.unique(np.asarray(keep))
    return x[index], y[index]


class _Panel:
    """One plot area mapping (time ms, value) to pixels."""

    def __init__(self, height: int, t0: float, t1: float, lo: float, hi: float) -> None:
        if not hi > lo:
            lo, hi = lo - 1.0, hi + 1.0
        pad = (hi - lo) * 0.04
        self.height, self.t0, self.t1 = height, t0, max(t1, t0 + 1)
        self.lo, self.hi = lo - pad, hi + pad
        self.parts: list[str] = []

    def x(self, t: float) -> float:
        return _LEFT + (t - self.t0) / (self.t1 - self.t0) * (_WIDTH - _LEFT - _RIGHT)

    def y(self, v: float) -> float:
        return _TOP + (self.hi - v) / (self.hi - self.lo) * (self.height - _TOP - _BOTTOM)

    def line(self, t: npt.NDArray[np.float64], v: npt.NDArray[np.float64], color: str) -> None:
        t, v = _reduce(t, v)
        points = " ".join(f"{self.x(a):.1f},{self.y(b):.1f}" for a, b in zip(t, v, strict=True))
        self.parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.2" '
                          f'points="{points}"/>')  # fmt: skip

    def area(self, t: npt.NDArray[np.float64], v: npt.NDArray[np.float64], color: str) -> None:
        t, v = _reduce(t, v)
        base = self.y(0.0)
        points = " ".join(f"{self.x(a):.1f},{self.y(b):.1f}" for a, b in zip(t, v, strict=True))
        first, last = self.x(float(t[0])), self.x(float(t[-1]))
        self.parts.append(
            f'<polygon fill="{color}" fill-opacity="0.35" stroke="{color}" '
            f'points="{first:.1f},{base:.1f} {points} {last:.1f},{base:.1f}"/>'
        )

    def svg(self, label: str, fmt: str) -> str:
        axes = []
        for i in range(5):
            value = self.lo + (self.hi - self.lo) * i / 4
            y = self.y(value)
            axes.append(f'<line class="grid" x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" '
                        f'y1="{y:.1f}" y2="{y:.1f}"/><text x="{_LEFT - 6}" y="{y + 4:.1f}" '
                        f'text-anchor="end">{escape(format(value, fmt))}</text>')  # fmt: skip
        for i in range(5):
            t = self.t0 + (self.t1 - self.t0) * i / 4
            anchor = ("start", "middle", "middle", "middle", "end")[i]
            axes.append(f'<text x="{self.x(t):.1f}" y="{self.height - 8}" text-anchor="{anchor}">'
                        f"{_date(t)}</text>")  # fmt: skip
        axes.append(f'<text x="{_LEFT}" y="12" font-weight="bold">{escape(label)}</text>')
        body = "".join(axes + self.parts)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{self.height}" '
                f'viewBox="0 0 {_WIDTH} {self.height}" role="img">{body}</svg>')  # fmt: skip


def _date(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _ms(stamp: Timestamp) -> float:
    return float(stamp.ToMilliseconds())


def _trade_markers(panel: _Panel, trades: Sequence[backtest_pb2.Trade]) -> None:
    for trade in trades[:MAX_TRADE_MARKERS]:
        side = "long" if trade.side == backtest_pb2.SIDE_LONG else "short"
        x0, y0 = panel.x(_ms(trade.entry_time)), panel.y(trade.entry_price)
        x1, y1 = panel.x(_ms(trade.exit_time)), panel.y(trade.exit_price)
        tip = escape(
            f"{side} {_date(_ms(trade.entry_time))} @ {trade.entry_price:.2f} -> "
            f"{_date(_ms(trade.exit_time))} @ {trade.exit_price:.2f}, pnl {trade.pnl:.2f}"
        )
        # Entries: a triangle pointing at the fill, up for long, down for short.
        rise = 7 if side == "long" else -7
        outcome = "long" if trade.pnl >= 0 else "short"
        panel.parts.append(
            f'<g><title>{tip}</title><line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}"'
            f' stroke="#888" stroke-dasharray="2,2"/><path class="{side}" d="M{x0:.1f},{y0:.1f} '
            f'l-4,{rise} l8,0 z"/><circle class="{outcome}" cx="{x1:.1f}" cy="{y1:.1f}" r="2.5"/>'
            "</g>"
        )


def _metric_rows(metrics: backtest_pb2.Metrics) -> str:
    rows = []
    for field in backtest_pb2.Metrics.DESCRIPTOR.fields:
        value = getattr(metrics, field.name)
        if field.name == "max_drawdown_duration":
            text = f"{value.ToTimedelta()}"
        elif isinstance(value, float):
            text = "n/a" if math.isnan(value) else f"{value:,.4f}"
        else:
            text = str(value)
        rows.append(f"<tr><td>{escape(field.name)}</td><td>{escape(text)}</td></tr>")
    return "".join(rows)


def _trade_rows(trades: Sequence[backtest_pb2.Trade]) -> str:
    return "".join(
        f"<tr><td>{'long' if t.side == backtest_pb2.SIDE_LONG else 'short'}</td>"
        f"<td>{_date(_ms(t.entry_time))}</td><td>{t.entry_price:,.2f}</td>"
        f"<td>{_date(_ms(t.exit_time))}</td><td>{t.exit_price:,.2f}</td>"
        f"<td>{t.pnl:,.2f}</td><td>{t.return_fraction:.2%}</td></tr>"
        for t in trades[:MAX_TRADE_ROWS]
    )


def render_backtest_html(backtest: backtest_pb2.Backtest, bars: Bars | None = None) -> str:
    """The page of one backtest; `bars` adds the price panel (the run's bars, re-fetched)."""
    curve = backtest.equity_curve
    times = np.asarray([_ms(p.time) for p in curve], dtype=np.float64)
    equity = np.asarray([p.equity for p in curve], dtype=np.float64)
    dd = -np.asarray([p.drawdown for p in curve], dtype=np.float64)
    t0 = _ms(backtest.data.start_time) if backtest.data.HasField("start_time") else 0.0
    t1 = _ms(backtest.data.end_time) if backtest.data.HasField("end_time") else 1.0
    if times.size:
        t0, t1 = min(t0, float(times[0])), max(t1, float(times[-1]))
    panels = []
    if bars is not None and len(bars):
        close = np.asarray(bars.close, dtype=np.float64)
        price = _Panel(340, t0, t1, float(np.min(close)), float(np.max(close)))
        price.line(np.asarray(bars.open_time_ms, dtype=np.float64), close, "#4575b4")
        _trade_markers(price, backtest.trades)
        panels.append(price.svg(f"{backtest.data.symbol} close, trades", ",.2f"))
    if times.size:
        eq = _Panel(240, t0, t1, float(min(equity.min(), backtest.config.initial_cash)),
                    float(max(equity.max(), backtest.config.initial_cash)))  # fmt: skip
        eq.line(times, equity, "#1a9850")
        panels.append(eq.svg("equity", ",.0f"))
        draw = _Panel(160, t0, t1, float(dd.min()), 0.0)
        draw.area(times, dd, "#d73027")
        panels.append(draw.svg("drawdown", ".1%"))
    params = ", ".join(f"{k}={v:g}" for k, v in sorted(backtest.parameters.items()))
    title = f"{backtest.strategy} ({params}) on {backtest.data.symbol} {backtest.data.interval}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1><div class='meta'>{_date(t0)} to {_date(t1)} UTC, "
        f"{backtest.bar_count} bars, id {escape(backtest.id)}</div>{''.join(panels)}"
        f"<h2>Metrics</h2><table>{_metric_rows(backtest.metrics)}</table>"
        f"<h2>Trades ({len(backtest.trades)}, first {MAX_TRADE_ROWS} shown)</h2><table><tr>"
        "<th>side</th><th>entry</th><th>price</th><th>exit</th><th>price</th><th>pnl</th>"
        f"<th>return</th></tr>{_trade_rows(backtest.trades)}</table></body></html>"
    )
