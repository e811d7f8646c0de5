"""The backtest service's adapters: the results store and consumer state (SQLite), dead letters
(Kafka), candle history (the price service, or kline files), and the sweep executor."""
