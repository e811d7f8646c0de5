"""The backtest service's adapters: the results store, the Kafka consumer and its state, dead
letters, candle history and kline files.
"""
