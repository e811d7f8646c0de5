"""Benchmark: the gateway against the same calls made directly over gRPC, in the same run.

Three processes on loopback: a Fake PriceService upstream (or the real one, `--upstream`), the
gateway under uvicorn (httptools, uvloop), and this process as the load generator.

1. `GET /api/prices/{symbol}` through the gateway vs `PriceService.GetPrice` over gRPC: a
   throughput run at `--concurrency` keep-alive connections (or concurrent calls), then a
   sequential run (one at a time) whose latency difference is the gateway's overhead.
2. `--ws-clients` WebSocket clients on `/ws/prices?symbols=*` while the upstream streams
   `--ws-rate` updates/s: updates delivered per client per second, and lag (receipt time minus
   the upstream's `receive_timestamp`), for batched (`?batch=true`) and per-update frames.

Run: `.venv/bin/python bench/gateway_bench.py [--requests 20000] [--ws-clients 1000]`.
"""

import argparse
import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2_grpc
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from finance.market.v1 import market_pb2, price_service_pb2, price_service_pb2_grpc
from finplat.gateway.service.app import run
from finplat.gateway.service.settings import GatewaySettings

SYMBOLS = [f"SYM{i}USDT" for i in range(10)]
_TIMESTAMP = re.compile(rb'"receive_timestamp":(\d+)')


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def update(symbol: str) -> Any:
    return market_pb2.PriceUpdate(
        symbol=symbol,
        price="67012.34000000",
        timestamp=now_ms(),
        volume="0.00120000",
        service="price-service",
        kind=market_pb2.EVENT_KIND_TRADE,
        event_id="123456789",
        exchange="binance",
        receive_timestamp=now_ms(),
    )


# -- processes ------------------------------------------------------------------------------


class FakePriceService(price_service_pb2_grpc.PriceServiceServicer):
    """A fixed price for GetPrice; StreamPrices at `rate` updates/s, batched per 10 ms tick."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.reply = price_service_pb2.GetPriceResponse(price=update("BTCUSDT"))

    async def GetPrice(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        return self.reply

    async def ListPrices(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not benchmarked")

    async def GetCandles(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not benchmarked")

    async def StreamPrices(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        tick, sent, start = 0.01, 0, time.perf_counter()
        while True:
            due = int((time.perf_counter() - start) * self.rate)
            if due > sent:
                batch = [update(SYMBOLS[(sent + i) % len(SYMBOLS)]) for i in range(due - sent)]
                sent = due
                yield price_service_pb2.StreamPricesResponse(prices=batch)
            await asyncio.sleep(tick)


async def run_upstream(port: int, rate: int) -> None:
    server = grpc.aio.server()
    price_service_pb2_grpc.add_PriceServiceServicer_to_server(FakePriceService(rate), server)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def run_gateway(port: int, upstream: str, workers: int) -> None:
    os.environ.update(
        FINPLAT_GATEWAY_PORT=str(port),
        FINPLAT_GATEWAY_PRICE_ADDRESS=upstream,
        FINPLAT_GATEWAY_WORKERS=str(workers),
        FINPLAT_GATEWAY_WS_SEND_QUEUE_FRAMES="1024",
    )
    run(GatewaySettings())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], stderr=subprocess.DEVNULL)


async def wait_until_up(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


# -- load -----------------------------------------------------------------------------------


class HttpConnection(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 client: the load generator must cost less than the server."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"content-length:") + len(b"content-length:")
        length = int(head[at : head.find(b"\r\n", at) if b"\r\n" in head[at:] else None])
        total = end + 4 + length
        if len(self.buffer) >= total:
            response = bytes(self.buffer[:total])
            del self.buffer[:total]
            self.waiter.set_result(response)

    async def get(self, raw: bytes) -> bytes:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        response = await self.waiter
        self.waiter = None
        return response


@dataclass
class Run:
    name: str
    concurrency: int
    latencies: list[float]
    seconds: float
    errors: int

    def cells(self) -> list[str]:
        ordered = sorted(self.latencies)
        return [
            self.name,
            str(self.concurrency),
            str(len(ordered)),
            f"{len(ordered) / self.seconds:.0f}",
            f"{percentile(ordered, 0.5) * 1000:.2f}",
            f"{percentile(ordered, 0.99) * 1000:.2f}",
            str(self.errors),
        ]


def percentile(ordered: list[Any], q: float) -> Any:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        # The first column is a label (left), the others numbers (right).
        numbers = zip(cells[1:], widths[1:], strict=True)
        padded = [cells[0].ljust(widths[0]), *(c.rjust(w) for c, w in numbers)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


async def drive(
    name: str, concurrency: int, total: int, call: Callable[[int], Awaitable[bool]]
) -> Run:
    latencies: list[float] = []
    errors = 0
    remaining = total

    async def worker(index: int) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            ok = await call(index)
            latencies.append(time.perf_counter() - start)
            errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return Run(name, concurrency, latencies, time.perf_counter() - start, errors)


async def rest_run(port: int, concurrency: int, total: int, name: str) -> Run:
    loop = asyncio.get_running_loop()
    connections = [
        (await loop.create_connection(HttpConnection, "127.0.0.1", port))[1]
        for _ in range(concurrency)
    ]
    raw = b"GET /api/prices/BTCUSDT HTTP/1.1\r\nHost: bench\r\n\r\n"

    async def call(index: int) -> bool:
        return (await connections[index].get(raw)).startswith(b"HTTP/1.1 200")

    try:
        return await drive(name, concurrency, total, call)
    finally:
        for connection in connections:
            assert connection.transport is not None
            connection.transport.close()


async def grpc_run(address: str, concurrency: int, total: int, name: str) -> Run:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = price_service_pb2_grpc.PriceServiceStub(channel)
        request = price_service_pb2.GetPriceRequest(symbol="BTCUSDT")

        async def call(_: int) -> bool:
            response = await stub.GetPrice(request)
            return bool(response.price.symbol)

        return await drive(name, concurrency, total, call)


# -- WebSocket fan-out ------------------------------------------------------------------------


@dataclass
class WsResult:
    mode: str
    clients: int
    rate: int
    seconds: float
    counts: list[int]
    lags: list[int]
    dropped: int
    connected: int

    def cells(self) -> list[str]:
        per_client = [c / self.seconds for c in self.counts]
        lags = sorted(self.lags) or [0]
        return [
            self.mode,
            f"{self.connected}/{self.clients}",
            str(self.rate),
            f"{sum(per_client) / len(per_client):.0f}",
            f"{min(per_client):.0f}",
            f"{sum(self.counts) / self.seconds:.0f}",
            str(percentile(lags, 0.5)),
            str(percentile(lags, 0.99)),
            str(self.dropped),
        ]


async def ws_run(port: int, clients: int, rate: int, seconds: float, batch: bool) -> WsResult:
    url = f"ws://127.0.0.1:{port}/ws/prices?symbols=*" + ("&batch=true" if batch else "")
    counts = [0] * clients
    lags: list[int] = []
    measuring = asyncio.Event()
    stop = asyncio.Event()
    dropped = 0
    connected = 0
    gate = asyncio.Semaphore(50)

    async def client(index: int) -> None:
        nonlocal dropped, connected
        async with gate:
            ws = await connect(
                url, max_size=None, compression=None, open_timeout=60, ping_interval=None
            )
        connected += 1
        sample = index % 20 == 0  # lag from one client in twenty: parsing costs the client CPU
        try:
            await receive(ws, index, sample)
        except ConnectionClosed as closed:
            dropped += closed.rcvd is not None and closed.rcvd.code == 1013
        finally:
            await ws.close()

    async def receive(ws: ClientConnection, index: int, sample: bool) -> None:
        while not stop.is_set():
            frame = await ws.recv(decode=False)
            if not measuring.is_set() or not isinstance(frame, bytes):
                continue
            if frame.startswith(b"["):
                counts[index] += frame.count(b'"symbol"')
            elif frame.startswith(b'{"symbol"'):
                counts[index] += 1
            else:
                continue
            if sample:
                received = now_ms()
                # The oldest update of a frame: the worst lag, batching delay included.
                first = _TIMESTAMP.search(frame)
                if first:
                    lags.append(received - int(first.group(1)))

    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await asyncio.sleep(3 + clients / 200)  # connect and warm up
    measuring.set()
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - start
    measuring.clear()
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return WsResult(
        "batched" if batch else "per-update",
        clients,
        rate,
        elapsed,
        counts,
        lags,
        dropped,
        connected,
    )


# -- main -----------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> None:
    processes: list[subprocess.Popen[bytes]] = []
    upstream = args.upstream
    if upstream is None:
        upstream_port = free_port()
        processes.append(
            spawn(
                "--role", "upstream", "--port", str(upstream_port), "--ws-rate", str(args.ws_rate)
            )
        )
        upstream = f"127.0.0.1:{upstream_port}"
        await wait_until_up(upstream_port)
    gateway_port = free_port()
    processes.append(
        spawn(
            "--role",
            "gateway",
            "--port",
            str(gateway_port),
            "--upstream",
            upstream,
            "--workers",
            str(args.workers),
        )
    )
    try:
        await wait_until_up(gateway_port)
        await rest_run(gateway_port, 4, 500, "warm-up")
        await grpc_run(upstream, 4, 500, "warm-up")
        runs = [
            await grpc_run(upstream, args.concurrency, args.requests, "gRPC direct"),
            await rest_run(gateway_port, args.concurrency, args.requests, "REST via gateway"),
            await grpc_run(upstream, 1, args.sequential, "gRPC direct, sequential"),
            await rest_run(gateway_port, 1, args.sequential, "REST via gateway, sequential"),
        ]
        cores = os.cpu_count()
        print(f"\nGET /api/prices/{{symbol}} vs PriceService.GetPrice ({cores} cores, loopback)\n")
        header = ["path", "conc", "requests", "req/s", "p50 ms", "p99 ms", "errors"]
        print(table(header, [run.cells() for run in runs]))
        direct, gateway = sorted(runs[2].latencies), sorted(runs[3].latencies)
        for label, q in (("p50", 0.5), ("p99", 0.99)):
            overhead = (percentile(gateway, q) - percentile(direct, q)) * 1000
            print(f"gateway overhead {label} (sequential): {overhead:.2f} ms")
        if args.ws_clients:
            modes = {"batched": [True], "per-update": [False], "both": [True, False]}[args.ws_mode]
            results = [
                await ws_run(gateway_port, args.ws_clients, args.ws_rate, args.ws_seconds, b)
                for b in modes
            ]
            seconds = f"{args.ws_seconds:.0f} s"
            print(f"\n/ws/prices?symbols=*, upstream {args.ws_rate} updates/s, {seconds}\n")
            header = ["mode", "connected", "expected/s", "mean/s/client", "min/s/client"]
            header += ["updates/s", "lag p50 ms", "lag p99 ms", "dropped"]
            print(table(header, [result.cells() for result in results]))
            print("(lag: receipt minus the upstream's receive_timestamp, oldest update of a frame)")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--upstream", help="host:port of a running PriceService (default: start a fake)"
    )
    parser.add_argument("--requests", type=int, default=20_000, help="requests per throughput run")
    parser.add_argument("--sequential", type=int, default=3_000, help="requests per sequential run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="gateway uvicorn workers")
    parser.add_argument("--ws-clients", type=int, default=1_000, help="0 skips the WebSocket run")
    parser.add_argument("--ws-rate", type=int, default=1_000, help="fake upstream updates/s")
    parser.add_argument("--ws-seconds", type=float, default=10.0)
    parser.add_argument("--ws-mode", choices=["batched", "per-update", "both"], default="both")
    parser.add_argument(
        "--role", choices=["bench", "upstream", "gateway"], default="bench", help=argparse.SUPPRESS
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "upstream":
        uvloop.run(run_upstream(args.port, args.ws_rate))
    elif args.role == "gateway":
        run_gateway(args.port, args.upstream, args.workers)
    else:
        uvloop.run(bench(args))


if __name__ == "__main__":
    main()
