// Candlestick chart of one symbol and interval. History comes from GET /api/candles (forming
// candle included); live prices then move the last candle, and each new candle reloads the
// history so the one that just closed shows its real open, high and low.

import {
  CandlestickSeries,
  createChart,
  type CandlestickData,
  type IChartApi,
  type ISeriesApi,
  type UTCTimestamp,
} from "lightweight-charts";

import { getJson } from "./api";
import { candleOpen } from "./intervals";
import type { Candle, PriceUpdate } from "./types";

const HISTORY = 300;
// At most one reload per this long, however fast candles close (every second at 60x replay).
const RELOAD_MIN_MS = 2_000;

export class CandleChart {
  private readonly chart: IChartApi;
  private readonly series: ISeriesApi<"Candlestick">;
  private symbol = "";
  private interval = "";
  private last: CandlestickData<UTCTimestamp> | null = null;
  private count = 0;
  private lastReload = 0;
  private reloadTimer: number | undefined;

  constructor(
    private readonly container: HTMLElement,
    private readonly onError: (error: unknown) => void,
  ) {
    this.chart = createChart(container, {
      autoSize: true,
      layout: { background: { color: "#ffffff" }, textColor: "#333" },
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    this.series = this.chart.addSeries(CandlestickSeries, {
      upColor: "#26a69a",
      downColor: "#ef5350",
      borderVisible: false,
      wickUpColor: "#26a69a",
      wickDownColor: "#ef5350",
    });
  }

  async show(symbol: string, interval: string): Promise<void> {
    this.symbol = symbol;
    this.interval = interval;
    this.series.setData([]);
    this.last = null;
    this.count = 0;
    this.mark();
    await this.reload();
    this.chart.timeScale().fitContent();
  }

  /** Moves the last candle with a live price of the charted symbol. */
  apply(update: PriceUpdate): void {
    if (update.symbol !== this.symbol || this.last === null) return;
    const price = Number(update.price);
    const open = (candleOpen(Number(update.timestamp), this.interval) / 1000) as UTCTimestamp;
    if (open < this.last.time) return; // older than what the chart already shows
    if (open === this.last.time) {
      this.last = {
        ...this.last,
        high: Math.max(this.last.high, price),
        low: Math.min(this.last.low, price),
        close: price,
      };
    } else {
      // A new candle: provisional (opened at the last close) until the reload brings the real one.
      const start = this.last.close;
      this.last = { time: open, open: start, high: Math.max(start, price), low: Math.min(start, price), close: price };
      this.count += 1;
      this.scheduleReload();
    }
    this.series.update(this.last);
    this.mark();
  }

  private scheduleReload(): void {
    if (this.reloadTimer !== undefined) return;
    const wait = Math.max(0, this.lastReload + RELOAD_MIN_MS - Date.now());
    this.reloadTimer = window.setTimeout(() => {
      this.reloadTimer = undefined;
      this.reload().catch(this.onError);
    }, wait);
  }

  private async reload(): Promise<void> {
    const [symbol, interval] = [this.symbol, this.interval];
    this.lastReload = Date.now();
    const path = `/api/candles/${symbol}/${interval}?limit=${HISTORY}&includeForming=true`;
    const answer = await getJson<{ candles?: Candle[] }>(path);
    if (symbol !== this.symbol || interval !== this.interval) return; // the user moved on
    const bars = (answer.candles ?? []).map(toBar);
    this.series.setData(bars);
    this.last = bars.at(-1) ?? null;
    this.count = bars.length;
    this.mark();
    this.onError(null);
  }

  // What the chart holds, on the element (data-candles, data-last-open): a person can inspect
  // it, and the browser test sees it without reading the canvas.
  private mark(): void {
    this.container.dataset.candles = String(this.count);
    this.container.dataset.lastOpen = this.last === null ? "" : String(this.last.time * 1000);
  }
}

function toBar(candle: Candle): CandlestickData<UTCTimestamp> {
  return {
    time: (Number(candle.openTime) / 1000) as UTCTimestamp,
    open: Number(candle.open),
    high: Number(candle.high),
    low: Number(candle.low),
    close: Number(candle.close),
  };
}
