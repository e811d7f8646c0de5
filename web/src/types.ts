// The JSON shapes the gateway answers (proto3 JSON: camelCase, int64 as strings, and fields at
// their default value left out, hence the optional fields).

export interface PriceUpdate {
  symbol: string;
  price: string;
  timestamp: number | string;
  volume?: string;
  kind?: string;
}

export interface Candle {
  openTime: string;
  open: string;
  high: string;
  low: string;
  close: string;
  closed?: boolean;
}

export interface ParameterSpec {
  name: string;
  type?: string;
  defaultValue?: number;
  minValue?: number;
  maxValue?: number;
  description?: string;
}

export interface Strategy {
  name: string;
  description?: string;
  parameters?: ParameterSpec[];
}

export type Metrics = Partial<Record<string, number | string>>;

export interface EquityPoint {
  time: string;
  equity?: number;
}

export interface Backtest {
  id: string;
  strategy: string;
  barCount?: string;
  metrics?: Metrics;
  equityCurve?: EquityPoint[];
}

// Parameter sweeps, run as long-running operations (google.longrunning.Operation).

export interface ParameterRange {
  start: number;
  stop: number;
  step: number;
}

export interface SweepResult {
  parameters?: Record<string, number>;
  metrics?: Metrics;
}

/** The operation's metadata (finance.backtest.v1.SweepProgress). */
export interface SweepProgress {
  "@type"?: string;
  sweepId?: string;
  strategy?: string;
  doneCombinations?: string;
  totalCombinations?: string;
  best?: SweepResult;
  elapsed?: string; // a Duration: "1.5s"
  createTime?: string;
  rankBy?: string; // a Metrics field's proto name: "sharpe", "total_return", ...
}

/** The operation's response once done without error (finance.backtest.v1.Sweep). */
export interface Sweep {
  "@type"?: string;
  id: string;
  strategy?: string;
  rankBy?: string;
  results?: SweepResult[];
}

/** google.rpc.Status, as an operation's error and as the gateway's error bodies and frames. */
export interface Status {
  code?: number;
  message?: string;
}

export interface Operation {
  name: string;
  metadata?: SweepProgress;
  done?: boolean;
  response?: Sweep;
  error?: Status;
}

/** One message of a server stream (grpc-gateway's envelope): a result or the error ending it. */
export type StreamFrame<T> = { result: T; error?: undefined } | { error: Status; result?: undefined };
