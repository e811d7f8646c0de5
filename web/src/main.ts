// The live page: wires the price feed, the candle chart, the backtest form and the sweep panel
// to the page.

import "./style.css";

import { getJson, showError } from "./api";
import { BacktestPanel } from "./backtest";
import { CandleChart } from "./candlechart";
import { INTERVALS } from "./intervals";
import { PriceFeed } from "./prices";
import { PriceTable } from "./pricetable";
import { SweepPanel } from "./sweep";
import type { PriceUpdate } from "./types";

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`the page has no #${id}`);
  return element as T;
}

function fillIntervals(select: HTMLSelectElement): void {
  select.replaceChildren(...INTERVALS.map((interval) => new Option(interval, interval)));
}

function main(): void {
  const priceError = byId("price-error");
  const chartError = byId("chart-error");
  const backtestError = byId("backtest-error");
  const status = byId("feed-status");

  const table = new PriceTable(byId<HTMLTableSectionElement>("price-rows"));
  const chart = new CandleChart(byId("chart"), (error) => showError(chartError, error));

  const symbol = byId<HTMLSelectElement>("chart-symbol");
  const interval = byId<HTMLSelectElement>("chart-interval");
  fillIntervals(interval);
  fillIntervals(byId<HTMLSelectElement>("bt-interval"));
  fillIntervals(byId<HTMLSelectElement>("sw-interval"));
  const showChart = (): void => {
    chart.show(symbol.value, interval.value).catch((error: unknown) => showError(chartError, error));
  };
  symbol.addEventListener("change", showChart);
  interval.addEventListener("change", showChart);
  showChart();

  const onPrices = (updates: PriceUpdate[]): void => {
    table.update(updates);
    for (const update of updates) chart.apply(update);
  };
  // The latest prices at once; the WebSocket only brings changes.
  getJson<{ prices?: PriceUpdate[] }>("/api/prices")
    .then((answer) => onPrices(answer.prices ?? []))
    .catch((error: unknown) => showError(priceError, error));
  new PriceFeed(onPrices, (state, detail) => {
    status.textContent = state;
    status.className = `status ${state}`;
    showError(priceError, detail ? new Error(detail) : null);
  }).start();

  const panel = new BacktestPanel(
    {
      form: byId<HTMLFormElement>("bt-form"),
      strategy: byId<HTMLSelectElement>("bt-strategy"),
      parameters: byId("bt-parameters"),
      metrics: byId<HTMLTableSectionElement>("bt-metrics"),
      equity: byId("bt-equity"),
      summary: byId("bt-summary"),
    },
    (error) => showError(backtestError, error),
  );
  const sweepError = byId("sweep-error");
  const sweep = new SweepPanel({
    form: byId<HTMLFormElement>("sw-form"),
    strategy: byId<HTMLSelectElement>("sw-strategy"),
    parameters: byId("sw-parameters"),
    rankBy: byId<HTMLSelectElement>("sw-rank"),
    start: byId<HTMLButtonElement>("sw-start"),
    cancel: byId<HTMLButtonElement>("sw-cancel"),
    progress: byId<HTMLProgressElement>("sw-progress"),
    status: byId("sw-status"),
    results: byId<HTMLTableElement>("sw-results"),
    exportLink: byId<HTMLAnchorElement>("sw-export"),
    error: sweepError,
  });
  panel
    .loadStrategies()
    .then((strategies) => sweep.setStrategies(strategies))
    .catch((error: unknown) => {
      showError(backtestError, error);
      showError(sweepError, error);
    });
}

main();
