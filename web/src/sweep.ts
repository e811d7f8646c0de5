// The sweep panel: a strategy's parameter grid started as a long-running operation
// (POST /api/sweeps:start), followed over Server-Sent Events (GET /api/{name}:watch), cancelled
// with POST /v1/{name}:cancel, then its best results and a link to their CSV export.

import { getJson, postJson, showError } from "./api";
import { fillStrategies, format, storedRange, type MetricKind } from "./backtest";
import type { Operation, ParameterRange, ParameterSpec, StreamFrame, Strategy, Sweep, SweepResult } from "./types";

// Metrics a sweep can rank by, as rank_by takes them (Metrics' proto field names).
const RANK_BY: [name: string, label: string, kind: MetricKind][] = [
  ["sharpe", "Sharpe", "number"],
  ["sortino", "Sortino", "number"],
  ["calmar", "Calmar", "number"],
  ["total_return", "Total return", "percent"],
  ["cagr", "CAGR", "percent"],
  ["max_drawdown", "Max drawdown", "percent"],
  ["profit_factor", "Profit factor", "number"],
  ["win_rate", "Win rate", "percent"],
];
const SHOWN_RESULTS = 10;
const CANCELLED = 1; // google.rpc.Code
const UNAVAILABLE = 14;
const RANGE_PARTS = ["start", "stop", "step"] as const;

export interface SweepElements {
  form: HTMLFormElement;
  strategy: HTMLSelectElement;
  parameters: HTMLElement;
  rankBy: HTMLSelectElement;
  start: HTMLButtonElement;
  cancel: HTMLButtonElement;
  progress: HTMLProgressElement;
  /** Progress text; its data-state is idle, running, done, cancelled or failed. */
  status: HTMLElement;
  results: HTMLTableElement;
  exportLink: HTMLAnchorElement;
  error: HTMLElement;
}

export class SweepPanel {
  private strategies: Strategy[] = [];
  private source: EventSource | null = null;
  private operation: string | null = null; // name of the operation followed

  constructor(private readonly ui: SweepElements) {
    ui.rankBy.replaceChildren(...RANK_BY.map(([name, label]) => new Option(label, name)));
    ui.strategy.addEventListener("change", () => this.showParameters());
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.start().catch((error: unknown) => {
        this.ui.status.textContent = "";
        this.end("failed", error);
      });
    });
    ui.cancel.addEventListener("click", () => {
      this.cancel().catch((error: unknown) => showError(ui.error, error));
    });
    this.setState("idle");
  }

  setStrategies(strategies: Strategy[]): void {
    this.strategies = strategies;
    fillStrategies(this.ui.strategy, strategies);
    this.showParameters();
  }

  private showParameters(): void {
    const strategy = this.strategies.find((s) => s.name === this.ui.strategy.value);
    this.ui.parameters.replaceChildren(
      ...(strategy?.parameters ?? []).map((spec) => {
        const range = defaultRange(spec);
        const group = document.createElement("span");
        group.className = "range";
        group.title = spec.description ?? "";
        group.append(
          spec.name,
          ...RANGE_PARTS.map((part) => {
            const input = document.createElement("input");
            input.type = "number";
            input.name = `grid.${spec.name}.${part}`;
            input.setAttribute("aria-label", `${spec.name} ${part}`);
            input.placeholder = part;
            input.value = String(range[part]);
            input.step = spec.type === "PARAMETER_TYPE_INT" ? "1" : "any";
            input.required = true;
            return input;
          }),
        );
        return group;
      }),
    );
  }

  private async start(): Promise<void> {
    const data = new FormData(this.ui.form);
    const grid: Record<string, ParameterRange> = {};
    for (const [key, value] of data) {
      const match = /^grid\.(.+)\.(start|stop|step)$/.exec(key);
      if (!match) continue;
      (grid[match[1]] ??= { start: 0, stop: 0, step: 0 })[match[2] as keyof ParameterRange] = Number(value);
    }
    const symbol = String(data.get("symbol"));
    const interval = String(data.get("interval"));
    this.stopWatching();
    this.setState("running");
    this.ui.results.hidden = true;
    this.ui.exportLink.hidden = true;
    this.ui.progress.removeAttribute("value");
    this.ui.status.textContent = "starting…";
    showError(this.ui.error, null);
    const [start, end] = await storedRange(symbol, interval, Number(data.get("bars")));
    const operation = await postJson<Operation>("/api/sweeps:start", {
      strategy: String(data.get("strategy")),
      grid,
      data: { symbol, interval, startTime: new Date(start).toISOString(), endTime: new Date(end).toISOString() },
      config: { feeBps: Number(data.get("fee")) },
      rankBy: String(data.get("rankBy")),
      topN: Number(data.get("top")),
    });
    this.operation = operation.name;
    this.show(operation);
    if (!operation.done) this.watch(operation.name);
  }

  /** Follows the operation: EventSource sends `Accept: text/event-stream`, which the gateway answers with SSE. */
  private watch(name: string): void {
    const source = new EventSource(`/api/${name}:watch`);
    this.source = source;
    source.onmessage = (event: MessageEvent<string>) => {
      const frame = JSON.parse(event.data) as StreamFrame<Operation>;
      if (frame.result) {
        this.ui.progress.dataset.frames = String(Number(this.ui.progress.dataset.frames ?? 0) + 1);
        this.show(frame.result);
      } else if (frame.error.code !== UNAVAILABLE) {
        // The stream ends with this frame; an UNAVAILABLE one is left to EventSource's reconnect.
        this.end("failed", new Error(`watching ${name} failed: ${frame.error.message ?? `code ${frame.error.code}`}`));
      }
    };
    source.onerror = () => {
      // CONNECTING: the stream dropped and EventSource reconnects by itself (a new watch starts
      // with the operation as it is). CLOSED: the gateway answered an HTTP error, not a stream.
      if (source.readyState !== EventSource.CLOSED || this.source !== source) return;
      this.source = null;
      getJson<Operation>(`/v1/${name}`)
        .then((operation) => {
          if (this.operation !== name) return;
          this.show(operation);
          if (!operation.done) this.end("failed", new Error(`the gateway refused to stream ${name}; it still runs`));
        })
        .catch((error: unknown) => {
          if (this.operation === name) this.end("failed", error);
        });
    };
  }

  private async cancel(): Promise<void> {
    if (this.operation === null) return;
    this.ui.cancel.disabled = true;
    try {
      // The operation then ends CANCELLED, which the watch brings.
      await postJson(`/v1/${this.operation}:cancel`, {});
    } catch (error) {
      this.ui.cancel.disabled = this.ui.status.dataset.state !== "running";
      throw error;
    }
  }

  private show(operation: Operation): void {
    const progress = operation.metadata ?? {};
    const done = Number(progress.doneCombinations ?? 0);
    const total = Number(progress.totalCombinations ?? 0);
    const [rankName, rankLabel, rankKind] = rankMetric(progress.rankBy);
    if (total > 0) {
      this.ui.progress.max = total;
      this.ui.progress.value = done;
    }
    const parts = [`${done} / ${total > 0 ? total : "?"}`];
    const best = progress.best;
    if (best?.metrics) {
      parts.push(`best ${rankLabel} ${metric(best, rankName, rankKind)} (${parameterText(best)})`);
    }
    parts.push(`${Number.parseFloat(progress.elapsed ?? "0").toFixed(1)} s`);
    this.ui.status.textContent = parts.join(" · ");
    if (!operation.done) return;
    if (operation.error) {
      const why = operation.error.message ?? `code ${operation.error.code}`;
      if (operation.error.code === CANCELLED) {
        this.ui.status.textContent += ` · ${why}`;
        this.end("cancelled", null);
      } else {
        this.end("failed", new Error(`the sweep failed: ${why}`));
      }
    } else {
      if (operation.response) this.showResults(operation.response);
      this.end("done", null);
    }
  }

  private showResults(sweep: Sweep): void {
    const results = sweep.results ?? [];
    const [rankName, rankLabel, rankKind] = rankMetric(sweep.rankBy);
    const names = Object.keys(results[0]?.parameters ?? {}).sort();
    const columns: [label: string, cell: (r: SweepResult) => string][] = [
      ...names.map((name): [string, (r: SweepResult) => string] => [name, (r) => String(r.parameters?.[name] ?? "")]),
      [rankLabel, (r) => metric(r, rankName, rankKind)],
      ["Total return", (r) => metric(r, "total_return", "percent")],
      ["Trades", (r) => metric(r, "trade_count", "count")],
    ];
    if (rankName === "total_return") columns.splice(names.length, 1);
    const head = document.createElement("tr");
    for (const [label] of columns) head.append(Object.assign(document.createElement("th"), { textContent: label }));
    this.ui.results.tHead?.remove();
    this.ui.results.createTHead().append(head);
    const body = this.ui.results.tBodies[0] ?? this.ui.results.createTBody();
    body.replaceChildren(
      ...results.slice(0, SHOWN_RESULTS).map((result, index) => {
        const row = document.createElement("tr");
        row.dataset.rank = String(index + 1);
        for (const [, cell] of columns) row.insertCell().textContent = cell(result);
        return row;
      }),
    );
    const shown = Math.min(results.length, SHOWN_RESULTS);
    this.ui.results.createCaption().textContent = `Best ${shown} of ${results.length} kept by ${rankLabel} (sweep ${sweep.id})`;
    this.ui.results.hidden = false;
    this.ui.exportLink.href = `/api/sweeps/${encodeURIComponent(sweep.id)}:export?format=FILE_FORMAT_CSV`;
    this.ui.exportLink.download = `sweep-${sweep.id}.csv`;
    this.ui.exportLink.hidden = false;
  }

  private end(state: "done" | "cancelled" | "failed", error: unknown): void {
    this.stopWatching();
    this.setState(state);
    showError(this.ui.error, error);
  }

  private stopWatching(): void {
    this.source?.close();
    this.source = null;
  }

  private setState(state: "idle" | "running" | "done" | "cancelled" | "failed"): void {
    this.ui.status.dataset.state = state;
    this.ui.start.disabled = state === "running";
    this.ui.cancel.disabled = state !== "running";
    if (state === "running") this.ui.progress.dataset.frames = "0";
    else this.operation = null;
  }
}

/** A grid around the default: half to one and a half times it, five values, within min and max. */
function defaultRange(spec: ParameterSpec): ParameterRange {
  const integer = spec.type === "PARAMETER_TYPE_INT";
  const low = spec.minValue ?? 0; // proto3 leaves a 0 out
  const high = spec.maxValue ?? Number.POSITIVE_INFINITY; // a max of 0 would be no range at all
  const value = spec.defaultValue ?? low;
  const half = Math.abs(value) / 2 || 1;
  let start = Math.max(low, value - half);
  let stop = Math.min(high, value + half);
  if (integer) [start, stop] = [Math.ceil(start), Math.floor(stop)];
  const quarter = (stop - start) / 4;
  const step = integer ? Math.max(1, Math.round(quarter)) : Number(quarter.toPrecision(2)) || 1;
  stop = Math.min(high, Number((start + 4 * step).toPrecision(12)));
  return { start, stop, step };
}

/** The rank_by of an operation or sweep as [proto name, label, kind]; sharpe when empty. */
function rankMetric(rankBy: string | undefined): [string, string, MetricKind] {
  const name = rankBy || "sharpe";
  return RANK_BY.find(([n]) => n === name) ?? [name, name, "number"];
}

/** A metric of a result by its proto name (the JSON has it in camelCase), formatted. */
function metric(result: SweepResult, protoName: string, kind: MetricKind): string {
  const key = protoName.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
  return format(Number(result.metrics?.[key] ?? 0), kind);
}

function parameterText(result: SweepResult): string {
  return Object.entries(result.parameters ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => `${name}=${value}`)
    .join(", ");
}
