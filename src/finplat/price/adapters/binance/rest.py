"""Binance spot REST client (httpx, async): klines and server time, within the rate limits.

Binance counts request weight per IP and minute and reports it in `X-MBX-USED-WEIGHT-1M`;
the client pauses until the next minute once the used share reaches the headroom. A 429
(rate limited) or 418 (IP banned after ignoring 429s) is retried after `Retry-After`
seconds; 5xx answers and network errors after the retry policy's backoff. Other 4xx answers
are our mistake and raise at once.
"""

import logging
import random
from types import TracebackType
from typing import Any, Self

import httpx
import msgspec

from finance.market.v1 import market_pb2
from finplat.binance.wire import REST_KLINES, rest_kline_candle
from finplat.core.clock import Clock, SystemClock
from finplat.core.retry import Backoff
from finplat.market.intervals import parse_interval
from finplat.price.adapters.binance.settings import RestSettings
from finplat.price.adapters.errors import RestError

logger = logging.getLogger(__name__)

_time = msgspec.json.Decoder(dict[str, int])
_error = msgspec.json.Decoder(dict[str, Any])
_RETRY_AFTER_STATUSES = frozenset((418, 429))


class BinanceRest:
    """One HTTP connection pool to the REST API; open with `async with`."""

    def __init__(
        self,
        settings: RestSettings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self.used_weight_1m = 0
        self.requests = 0
        self.weight_pauses = 0
        self.retries = 0

    async def open(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self._settings.base_url,
            timeout=self._settings.timeout_s,
            transport=self._transport,
            headers={"Accept": "application/json"},
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def server_time_ms(self) -> int:
        """The exchange's clock, epoch milliseconds."""
        return _time.decode(await self._get("/api/v3/time", {}))["serverTime"]

    async def klines(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
        now_ms: int | None = None,
    ) -> list[market_pb2.Candle]:
        """One page of `/api/v3/klines`: open times within [start_ms, end_ms], both inclusive.

        Without `now_ms` every candle is marked closed; with it, those ending at or after
        `now_ms` are not (Binance returns the forming candle last).
        """
        spec = parse_interval(interval)
        params: dict[str, str | int] = {
            "symbol": symbol.upper(),
            "interval": interval,
            "limit": limit or self._settings.klines_page_limit,
        }
        if start_ms is not None:
            params["startTime"] = start_ms
        if end_ms is not None:
            params["endTime"] = end_ms
        try:
            rows = REST_KLINES.decode(await self._get("/api/v3/klines", params))
        except msgspec.MsgspecError as exc:
            raise RestError(f"unexpected klines response: {exc}") from exc
        return [
            rest_kline_candle(row, symbol, spec, closed=now_ms is None or row[6] < now_ms)
            for row in rows
        ]

    async def _get(self, path: str, params: dict[str, str | int]) -> bytes:
        if self._client is None:
            raise RestError("REST client used before open()")
        backoff = Backoff(self._settings.retry, self._rng)
        while True:
            await self._respect_weight()
            delay: float
            try:
                response = await self._client.get(path, params=params)
            except httpx.HTTPError as exc:
                delay = self._retry_delay(backoff, f"{type(exc).__name__}: {exc}", path)
            else:
                self.requests += 1
                self._note_weight(response)
                if response.status_code == 200:
                    return response.content
                if response.status_code in _RETRY_AFTER_STATUSES:
                    delay = self._retry_after(response, backoff, path)
                elif response.status_code >= 500:
                    delay = self._retry_delay(backoff, f"HTTP {response.status_code}", path)
                else:
                    raise _client_error(response)
            self.retries += 1
            await self._clock.sleep(delay)

    def _retry_delay(self, backoff: Backoff, reason: str, path: str) -> float:
        if backoff.attempt + 1 >= self._settings.retry.max_attempts:
            raise RestError(f"GET {path} failed {backoff.attempt + 1} times, last: {reason}")
        delay = backoff.next_delay_s()
        logger.warning(
            "REST request failed, retrying",
            extra={"path": path, "reason": reason, "retry_in_s": round(delay, 3)},
        )
        return delay

    def _retry_after(self, response: httpx.Response, backoff: Backoff, path: str) -> float:
        reason = f"HTTP {response.status_code}"
        fallback = self._retry_delay(backoff, reason, path)
        try:
            delay = float(response.headers.get("Retry-After", ""))
        except ValueError:
            delay = fallback
        logger.warning(
            "REST rate limited by the exchange",
            extra={"path": path, "status": response.status_code, "retry_after_s": delay},
        )
        return max(delay, 0.0)

    def _note_weight(self, response: httpx.Response) -> None:
        used = response.headers.get("X-MBX-USED-WEIGHT-1M")
        if used is not None and used.isdigit():
            self.used_weight_1m = int(used)

    async def _respect_weight(self) -> None:
        budget = self._settings.weight_limit_1m * self._settings.weight_headroom
        if self.used_weight_1m < budget:
            return
        # The weight window is the calendar minute: wait for the next one.
        wait_s = (60_000 - self._clock.time_ms() % 60_000) / 1000
        self.weight_pauses += 1
        logger.info(
            "REST weight budget used up, pausing",
            extra={"used_weight_1m": self.used_weight_1m, "pause_s": wait_s},
        )
        await self._clock.sleep(wait_s)
        self.used_weight_1m = 0


def _client_error(response: httpx.Response) -> RestError:
    code: int | None = None
    message = response.text[:200]
    try:
        body = _error.decode(response.content)
        code, message = body.get("code"), str(body.get("msg", message))
    except msgspec.MsgspecError:
        pass
    return RestError(
        f"HTTP {response.status_code}: {message}", status=response.status_code, code=code
    )
