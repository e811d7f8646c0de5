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
