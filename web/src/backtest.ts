// The backtest form: strategies and their parameters from GET /api/strategies, a run through
// POST /api/backtests over the newest stored bars, then its metrics and equity curve.

import { createChart, LineSeries, type IChartApi, type ISeriesApi, type UTCTimestamp } from "lightweight-charts";

import { getJson, postJson } from "./api";
import { INTERVAL_MS } from "./intervals";
import type { Backtest, Candle, Strategy } from "./types";

export type MetricKind = "percent" | "number" | "count" | "money";

// Metrics shown, in order, and how: fractions as percentages, ratios as plain numbers.
const METRICS: [key: string, label: string, kind: MetricKind][] = [
  ["totalReturn", "Total return", "percent"],
  ["cagr", "CAGR", "percent"],
  ["sharpe", "Sharpe", "number"],
  ["sortino", "Sortino", "number"],
  ["maxDrawdown", "Max drawdown", "percent"],
  ["winRate", "Win rate", "percent"],
  ["profitFactor", "Profit factor", "number"],
  ["tradeCount", "Trades", "count"],
  ["exposure", "Exposure", "percent"],
  ["finalEquity", "Final equity", "money"],
];

export interface BacktestElements {
  form: HTMLFormElement;
  strategy: HTMLSelectElement;
  parameters: HTMLElement;
  metrics: HTMLTableSectionElement;
  equity: HTMLElement;
  summary: HTMLElement;
}

export class BacktestPanel {
  private strategies: Strategy[] = [];
  private equityChart: IChartApi | null = null;
  private equitySeries: ISeriesApi<"Line"> | null = null;

  constructor(
    private readonly ui: BacktestElements,
    private readonly onError: (error: unknown) => void,
  ) {
    ui.strategy.addEventListener("change", () => this.showParameters());
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run().catch(this.onError);
    });
  }

  /** Lists the strategies in the form; returns them, for the other panels that offer them. */
  async loadStrategies(): Promise<Strategy[]> {
    const answer = await getJson<{ strategies?: Strategy[] }>("/api/strategies");
    this.strategies = answer.strategies ?? [];
    fillStrategies(this.ui.strategy, this.strategies);
    this.showParameters();
    return this.strategies;
  }

  private showParameters(): void {
    const strategy = this.strategies.find((s) => s.name === this.ui.strategy.value);
    this.ui.parameters.replaceChildren(
      ...(strategy?.parameters ?? []).map((spec) => {
        const label = document.createElement("label");
        label.title = spec.description ?? "";
        const input = document.createElement("input");
        input.type = "number";
        input.name = `param.${spec.name}`;
        input.value = String(spec.defaultValue ?? 0);
        input.step = spec.type === "PARAMETER_TYPE_INT" ? "1" : "any";
        if (spec.minValue !== undefined) input.min = String(spec.minValue);
        if (spec.maxValue !== undefined) input.max = String(spec.maxValue);
        label.append(spec.name, input);
        return label;
      }),
    );
  }

  private async run(): Promise<void> {
    const button = this.ui.form.querySelector("button");
    const data = new FormData(this.ui.form);
    const symbol = String(data.get("symbol"));
    const interval = String(data.get("interval"));
    const parameters: Record<string, number> = {};
    for (const [name, value] of data) {
      if (name.startsWith("param.")) parameters[name.slice("param.".length)] = Number(value);
    }
    if (button) button.disabled = true;
    this.ui.summary.textContent = "running…";
    try {
      const [start, end] = await storedRange(symbol, interval, Number(data.get("bars")));
      const answer = await postJson<{ backtest: Backtest }>("/api/backtests", {
        strategy: String(data.get("strategy")),
        parameters,
        data: { symbol, interval, startTime: new Date(start).toISOString(), endTime: new Date(end).toISOString() },
        config: { initialCash: Number(data.get("cash")), feeBps: Number(data.get("fee")) },
      });
      this.show(answer.backtest);
      this.onError(null);
    } catch (error) {
      this.ui.summary.textContent = "";
      throw error;
    } finally {
      if (button) button.disabled = false;
    }
  }

  private show(backtest: Backtest): void {
    const metrics = backtest.metrics ?? {};
    this.ui.metrics.replaceChildren(
      ...METRICS.map(([key, label, kind]) => {
        const row = document.createElement("tr");
        row.dataset.metric = key;
        row.insertCell().textContent = label;
        row.insertCell().textContent = format(Number(metrics[key] ?? 0), kind);
        return row;
      }),
    );
    const chartLink = document.createElement("a");
    chartLink.href = `/api/backtests/${backtest.id}/chart`;
    chartLink.target = "_blank";
    chartLink.textContent = "full chart";
    this.ui.summary.replaceChildren(`${backtest.strategy} over ${backtest.barCount ?? 0} bars (id ${backtest.id}) · `, chartLink);
    this.showEquity(backtest);
  }

  private showEquity(backtest: Backtest): void {
    if (this.equitySeries === null) {
      this.equityChart = createChart(this.ui.equity, { autoSize: true, timeScale: { timeVisible: true } });
      this.equitySeries = this.equityChart.addSeries(LineSeries, { color: "#1e88e5", lineWidth: 2 });
    }
    const points = (backtest.equityCurve ?? []).map((p) => ({
      time: (Date.parse(p.time) / 1000) as UTCTimestamp,
      value: p.equity ?? 0,
    }));
    this.equitySeries.setData(points);
    this.equityChart?.timeScale().fitContent();
    this.ui.equity.dataset.points = String(points.length);
  }
}

export function fillStrategies(select: HTMLSelectElement, strategies: Strategy[]): void {
  select.replaceChildren(...strategies.map((s) => new Option(`${s.name} — ${s.description ?? ""}`, s.name)));
}

/** [first, end) open times of the newest `bars` closed candles the price service stores. */
export async function storedRange(symbol: string, interval: string, bars: number): Promise<[number, number]> {
  const answer = await getJson<{ candles?: Candle[] }>(`/api/candles/${symbol}/${interval}?limit=${bars}`);
  const candles = answer.candles ?? [];
  if (candles.length === 0) throw new Error(`no stored ${interval} candles of ${symbol} to backtest on`);
  const step = INTERVAL_MS[interval];
  return [Number(candles[0].openTime), Number(candles[candles.length - 1].openTime) + step];
}

export function format(value: number, kind: MetricKind): string {
  switch (kind) {
    case "percent":
      return `${(value * 100).toFixed(2)} %`;
    case "count":
      return String(value);
    case "money":
      return value.toLocaleString("en-US", { maximumFractionDigits: 2 });
    default:
      return value.toFixed(3);
  }
}
