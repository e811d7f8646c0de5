"""The REST side of the replay server: Binance's public market endpoints and fault controls.

Binance endpoints (GET): `/api/v3/ping`, `/api/v3/time`, `/api/v3/exchangeInfo`,
`/api/v3/klines` (symbol, interval 1m..1M aggregated from 1m, startTime, endTime, limit),
with Binance's error bodies and the `X-MBX-USED-WEIGHT-1M` header.
Controls (GET, since the websockets HTTP parser takes GET only): `/control/drop`,
`/control/malformed?n=3`, `/control/stall?seconds=2`, `/control/shutdown` (serverShutdown event),
`/control/rest-failures?n=1&status=429&retry_after=1`, `/control/stats`.
"""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from finance.market.v1 import market_pb2
from finplat.core.clock import Clock
from finplat.market.decimals import CONTEXT, format8
from finplat.market.intervals import INTERVALS
from finplat.replay.faults import Faults
from finplat.replay.market import Market
from finplat.replay.settings import ReplaySettings

Reply = tuple[int, bytes, dict[str, str]]
Params = dict[str, list[str]]
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
_WEIGHTS = {"/api/v3/ping": 1, "/api/v3/time": 1, "/api/v3/exchangeInfo": 20, "/api/v3/klines": 2}
_encode = msgspec.json.Encoder().encode


class ApiError(Exception):
    """A Binance-style error answer: HTTP status, Binance code and message."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


class RestApi:
    """Answers one HTTP GET; the server turns the reply into an HTTP response."""

    def __init__(
        self,
        settings: ReplaySettings,
        market: Market,
        faults: Faults,
        clock: Clock,
        stats: Callable[[], dict[str, Any]],
    ) -> None:
        self._settings = settings
        self._market = market
        self._faults = faults
        self._clock = clock
        self._stats = stats
        self._minute = 0
        self._weight = 0

    def handle(self, path: str, params: Params) -> Reply:
        if path.startswith("/control/"):
            return self._checked_control(path.removeprefix("/control/"), params)
        if path not in _WEIGHTS:
            return _error(ApiError(404, -1000, f"Unknown endpoint {path}."))
        headers = {"X-MBX-USED-WEIGHT-1M": str(self._use_weight(_WEIGHTS[path]))}
        failure = self._faults.next_rest_failure()
        if failure is not None:
            status, retry_after = failure
            headers["Retry-After"] = f"{retry_after:g}"
            return _with(_error(ApiError(status, -1003, "Too many requests.")), headers)
        if self._weight > self._settings.rest_weight_limit_1m:
            headers["Retry-After"] = str(60 - self._clock.time_ms() // 1000 % 60)
            return _with(_error(ApiError(429, -1003, "Too much request weight used.")), headers)
        try:
            body = self._endpoint(path, params)
        except ApiError as exc:
            return _with(_error(exc), headers)
        return 200, _encode(body), headers

    def _use_weight(self, weight: int) -> int:
        minute = self._clock.time_ms() // 60_000
        if minute != self._minute:
            self._minute, self._weight = minute, 0
        self._weight += weight
        return self._weight

    def _endpoint(self, path: str, params: Params) -> Any:
        if path == "/api/v3/ping":
            return {}
        if path == "/api/v3/time":
            return {"serverTime": self._market.now_ms()}
        if path == "/api/v3/exchangeInfo":
            return self._exchange_info()
        return self._klines(params)

    def _klines(self, params: Params) -> list[list[Any]]:
        symbol = _param(params, "symbol")
        if symbol is None:
            raise ApiError(
                400,
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            )
        if symbol.upper() not in self._market.tables:
            raise ApiError(400, -1121, "Invalid symbol.")
        spec = INTERVALS.get(_param(params, "interval") or "")
        if spec is None or spec.code == "1s":
            raise ApiError(400, -1120, "Invalid interval.")
        limit = _int_param(params, "limit") or 500
        if not 1 <= limit <= 1000:
            raise ApiError(400, -1130, "Invalid data sent for a parameter.")
        start, end = _int_param(params, "startTime"), _int_param(params, "endTime")
        if start is not None and end is not None and start > end:
            raise ApiError(400, -1023, "Start time is greater than end time.")
        candles = self._market.closed_klines(symbol.upper(), spec, start, end, limit)
        return [self._row(candle) for candle in candles]

    def _row(self, c: market_pb2.Candle) -> list[Any]:
        taker_base, taker_quote = self._taker(c)
        return [
            c.open_time,
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume,
            c.close_time,
            c.quote_volume or "0.00000000",
            c.trade_count,
            taker_base,
            taker_quote,
            "0",
        ]

    def _taker(self, c: market_pb2.Candle) -> tuple[str, str]:
        """Taker-buy volumes summed from the 1m rows (the Candle message does not carry them)."""
        table = self._market.tables[c.symbol]
        shift = self._market.shift_of(c.symbol, c.open_time)
        lo, hi = table.index(c.open_time - shift), table.index(c.close_time + 1 - shift)
        base = quote = Decimal(0)
        for i in range(lo, hi):
            fields = table.fields(i)
            if not fields[9]:
                return "0.00000000", "0.00000000"  # an OHLCV-only source
            base = CONTEXT.add(base, Decimal(fields[9]))
            quote = CONTEXT.add(quote, Decimal(fields[10]))
        return format8(base), format8(quote)

    def _exchange_info(self) -> dict[str, Any]:
        symbols = []
        for symbol in self._market.tables:
            quote = next((q for q in _QUOTES if symbol.endswith(q) and symbol != q), symbol[-4:])
            symbols.append(
                {
                    "symbol": symbol,
                    "status": "TRADING",
                    "baseAsset": symbol.removesuffix(quote),
                    "baseAssetPrecision": 8,
                    "quoteAsset": quote,
                    "quoteAssetPrecision": 8,
                    "isSpotTradingAllowed": True,
                    "filters": [],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": self._market.now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self._settings.rest_weight_limit_1m,
                },
                {
                    "rateLimitType": "CONNECTIONS",
                    "interval": "MINUTE",
                    "intervalNum": 5,
                    "limit": 300,
                },
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _checked_control(self, action: str, params: Params) -> Reply:
        try:
            return self._control(action, params)
        except ApiError as exc:
            return _error(exc)
        except ValueError:
            return _error(ApiError(400, -1100, "Illegal characters found in a parameter."))

    def _control(self, action: str, params: Params) -> Reply:
        result: dict[str, Any]
        if action == "drop":
            result = {"dropped": self._faults.drop()}
        elif action == "malformed":
            result = {"connections": self._faults.malformed(_int_param(params, "n") or 1)}
        elif action == "shutdown":
            result = {"connections": self._faults.shutdown_notice(self._market.now_ms())}
        elif action == "stall":
            seconds = float(_param(params, "seconds") or "1")
            self._faults.stall(seconds)
            result = {"stalled_s": seconds}
        elif action == "rest-failures":
            count, status = _int_param(params, "n") or 1, _int_param(params, "status") or 429
            self._faults.rest_failures(count, status, float(_param(params, "retry_after") or "1"))
            result = {"failures": count, "status": status}
        elif action == "stats":
            result = self._stats()
        else:
            return _error(ApiError(404, -1000, f"Unknown control {action}."))
        return 200, _encode(result), {}


def _param(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _int_param(params: Params, name: str) -> int | None:
    value = _param(params, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None


def _error(exc: ApiError) -> Reply:
    return exc.status, _encode({"code": exc.code, "msg": exc.msg}), {}


def _with(reply: Reply, headers: dict[str, str]) -> Reply:
    return reply[0], reply[1], {**reply[2], **headers}
