"""Benchmark: the price service end to end on the real stack, beside peers measured in the same run.

Processes on loopback: the replay server (real Binance data from FINPLAT_DATA_DIR, sending only
what the bench asks for, at the rate it asks) in one, the price service with its real sinks
(Redis, InfluxDB, Kafka through the schema registry) in this one, and for the stream section
the StreamPrices subscribers in a third. Every run gets its own Kafka topic and registry
subject, Redis key prefix and InfluxDB bucket, all deleted at the end.

1. ingest: `--updates` frames replayed as fast as the service reads them, per stream mix
   (`--mix`, e.g. `trade` or `trade,kline_1m`, over BTCUSDT and ETHUSDT; only BTCUSDT has
   trades, the 2017-08-17 file looped). Timed from the order to send to the moment the
   pipeline accepted the last update and each sink had written it (Kafka: acknowledged).
   Peers on the same data: the replay to a bare WebSocket client (transport alone), the feed's
   per-frame path in memory, the sinks' encoders alone, and a raw confluent_kafka produce of
   the pre-encoded Avro values. Targets, as ratios to the bare WebSocket client's frame rate in
   the same run: accepted by the pipeline at least 0.95, acknowledged by Kafka at least 0.9,
   nothing lost (the absolute rates are printed as information).
   Our Avro encoding is timed beside Confluent's AvroSerializer on the same updates, their
   bytes compared: target, 5x as fast.
   The end-to-end run is repeated with Kafka through the stack's SASL_SSL listener (SCRAM-SHA-512
   over TLS), and the two are printed side by side with their ratio.
2. stream: `--rate` BTCUSDT trades/s to `--subscribers` StreamPrices subscribers, latency from
   the replay's send (time_ns taken just before the WebSocket write, by trade id) to the
   subscriber's receipt (time_ns as the gRPC read returns the message, before it is decoded).
   Each subscriber has its own connection and, by default, its own thread on gRPC's blocking
   API (`--client threads`): one grpc.aio loop for all of them (`--client aio`) serialises
   their receipts and becomes the bottleneck at 100. `--client go` runs them as goroutines of
   a Go process instead (bench/streamclient: grpc-go, no generated code, the receipt time taken
   as RecvMsg returns, before the event_id is read; built with the machine's Go on first use
   into ~/.cache/finplat/tools/streamclient-<hash of its sources>/): a subscriber that costs
   the machine far less CPU than a Python one, so the service is measured with the cores to
   itself that real, remote subscribers would leave it. A stock grpc-go client probes the
   bandwidth-delay product with a ping about every message on a sparse stream, which the server
   answers; `--go-window BYTES` fixes the client's windows and turns that off, to see what the
   pings cost. Peers: the same with one subscriber, and
   a bare grpc.aio server fanning out pre-built updates through the service's StreamHub, with
   its pre-encoded messages (the floor of gRPC Python on this machine, no feed and no sinks).
   Every process runs as `finplat price serve` does: on uvloop (`--loop asyncio` to compare)
   and with its quieter garbage collector (finplat.price.service.eventloop).
   Targets, as ratios to the bare fan-out with as many subscribers in the same run: p50 at most
   1.5x, p99 at most 2x, judged with `--client go` only (Python subscribers, 100 of them, are
   slower than the bare fan-out they read, so its latency is theirs). `--server-cpus 0`
   measures the two serving paths on one core each: the service (this process, all its
   threads), then the bare fan-out, on CPU 0, and the replay and the subscribers on the others
   (the stack's stores stay where the scheduler puts them); by default nothing is pinned and
   every process shares the machine's cores.

A benchmark reports, it does not assert: missed targets are printed, the exit status stays 0.

Run with the stack up (`make up`):
    .venv/bin/python bench/price_bench.py [--section ingest|stream|all] [--updates 200000]
"""

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from array import array
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.experimental
import httpx
import redis.asyncio as aioredis
from confluent_kafka import Producer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from finance.market.v1 import market_pb2, price_service_pb2
from finplat.binance.streams import build_streams
from finplat.contract import avro
from finplat.core.clock import SystemClock
from finplat.core.connections import InfluxSettings, KafkaSettings, RedisSettings
from finplat.kafka.admin import delete_topic, ensure_topic
from finplat.kafka.serde import PriceUpdateSerializer, registry_client
from finplat.platform.grpcurl import DEFAULT_CACHE_DIR
from finplat.price.adapters.binance.feed import BinanceFeed
from finplat.price.adapters.binance.settings import FeedSettings, RestSettings
from finplat.price.adapters.influx_market import tick_line
from finplat.price.service import eventloop
from finplat.price.service.api import SERVICE_NAME
from finplat.price.service.app import Infrastructure, PriceService
from finplat.price.service.settings import PriceSettings
from finplat.price.service.stream_hub import StreamHub
from finplat.replay.client import Client
from finplat.replay.server import ReplayServer
from finplat.replay.settings import ReplaySettings
from finplat.stack.kafka import sasl_ssl_client_settings
from finplat.stack.settings import StackSettings
from finplat.stack.stack import Stack

T = TypeVar("T")
U = TypeVar("U")
INGEST_SYMBOLS = ("BTCUSDT", "ETHUSDT")
STREAM_SYMBOL = "BTCUSDT"
# Targets are ratios to a part measured in the same run (issue #18): absolute rates differ from
# one machine to the next, while the part the service is built on shows where its time goes.
# Ingest: see INGEST_TARGET_RATIOS. StreamPrices with 100 subscribers at 2,000 updates/s: its
# latency over the bare fan-out's.
STREAM_TARGET_SUBSCRIBERS = 100
STREAM_TARGET_RATE = 2_000
STREAM_TARGET_P50_RATIO = 1.5
STREAM_TARGET_P99_RATIO = 2.0
# Our Avro encoding against Confluent's AvroSerializer on the same updates (issue #18).
ENCODE_TARGET_RATIO = 5
LOOP = "uvloop"
_TRADE_ID = re.compile(rb'"t":(\d+)')


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        # The first column is a label (left), the others numbers (right).
        numbers = zip(cells[1:], widths[1:], strict=True)
        padded = [cells[0].ljust(widths[0]), *(c.rjust(w) for c, w in numbers)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


# -- publishers: the replay server and the bare gRPC fan-out, driven by jobs on stdin ---------


@dataclass
class Job:
    """Send `count` items at `rate` per second (0: as fast as they go), recording send times."""

    count: int
    rate: float
    record: bool
    sent: list[tuple[int, int]] = field(default_factory=list)
    """(id, time_ns just before the write) of each item, when recording."""


async def pace(
    job: Job,
    take: Callable[[], Awaitable[T]],
    emit: Callable[[T], Awaitable[None]],
    key: Callable[[T], int],
) -> None:
    """Emit `job.count` items, the n-th not before n / rate seconds after the first."""
    start = time.perf_counter()
    for index in range(job.count):
        item = await take()
        if job.rate:
            delay = start + index / job.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if job.record:
            job.sent.append((key(item), time.time_ns()))
        await emit(item)


async def stdin_lines() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        yield line.decode().strip()


def _write_atomically(path: Path, text: str) -> None:
    # The subscribers read the file as soon as it exists: it must appear whole.
    scratch = path.with_suffix(".partial")
    scratch.write_text(text)
    scratch.replace(path)


async def serve_jobs(port: int, run: Callable[[Job], Awaitable[None]]) -> None:
    """The publisher side of the protocol: `port N` once, then `sent` after each job.

    A job is `send COUNT RATE PATH`; PATH (or `-`) receives the send times as JSON.
    """
    print(f"port {port}", flush=True)
    async for line in stdin_lines():
        _, count, rate, path = line.split()
        job = Job(int(count), float(rate), record=path != "-")
        await run(job)
        if job.record:
            await asyncio.to_thread(_write_atomically, Path(path), json.dumps(job.sent))
        print("sent", flush=True)


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll `condition` until it holds; TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{condition} still false after {timeout_s} s")
        await asyncio.sleep(0.05)


def trade_id(frame: bytes) -> int:
    found = _TRADE_ID.search(frame)
    return int(found.group(1)) if found else -1


class PacedReplay(ReplayServer):
    """The replay server, sending each client's frames only as jobs allow."""

    def __init__(self, settings: ReplaySettings) -> None:
        super().__init__(settings)
        self.jobs: asyncio.Queue[tuple[Job, asyncio.Future[None]]] = asyncio.Queue()

    async def run_job(self, job: Job) -> None:
        done = asyncio.get_running_loop().create_future()
        await self.jobs.put((job, done))
        await done

    async def _send(self, client: Client) -> None:
        # Replaces the server's sender: frames still come from the market through the client's
        # queue (which holds the market back at speed 0), but leave only when a job says so.
        # The clients here (the feed under test, the bare peer) use one connection at a time.
        try:
            while True:
                job, done = await self.jobs.get()
                await pace(job, client.queue.get, partial(client.ws.send, text=True), trade_id)
                done.set_result(None)
        except ConnectionClosed:
            pass


async def serve_replay(symbols: tuple[str, ...]) -> None:
    # Only 1m klines: coarser ones would be aggregated for nobody.
    settings = ReplaySettings(port=0, symbols=symbols, speed=0, loop=True, kline_intervals=("1m",))
    async with PacedReplay(settings) as server:
        await serve_jobs(server.port, server.run_job)


def stream_handler(
    stream: Callable[[Any, Any], AsyncIterator[bytes]],
) -> grpc.GenericRpcHandler:
    """StreamPrices alone, writing the encoded messages it is given as they are."""
    handler: grpc.RpcMethodHandler[Any, bytes] = grpc.unary_stream_rpc_method_handler(
        stream,
        request_deserializer=price_service_pb2.StreamPricesRequest.FromString,
        response_serializer=None,
    )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, {"StreamPrices": handler})


async def serve_floor(subscribers: int) -> None:
    hub = StreamHub()

    async def stream(request: Any, context: Any) -> AsyncIterator[bytes]:
        with hub.subscribe(request.symbols) as subscription:
            async for message in subscription.messages():
                yield message

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((stream_handler(stream),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    next_id = 0

    async def run(job: Job) -> None:
        nonlocal next_id
        await wait_until(lambda: hub.subscribers >= subscribers, 120)
        updates = iter(
            [
                market_pb2.PriceUpdate(
                    symbol=STREAM_SYMBOL,
                    price="4261.48000000",
                    timestamp=time.time_ns() // 1_000_000,
                    volume="0.07500000",
                    service="price-service",
                    kind=market_pb2.EVENT_KIND_TRADE,
                    event_id=str(next_id + i),
                    exchange="binance",
                    receive_timestamp=time.time_ns() // 1_000_000,
                )
                for i in range(job.count)
            ]
        )
        next_id += job.count

        async def take() -> market_pb2.PriceUpdate:
            return next(updates)

        async def publish(update: market_pb2.PriceUpdate) -> None:
            hub.publish(update)

        await pace(job, take, publish, lambda u: int(u.event_id))

    try:
        await serve_jobs(port, run)
    finally:
        await server.stop(1)


class Publisher:
    """A publisher process (replay or floor) seen from the bench."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, *args: str, cpus: frozenset[int] = frozenset()
    ) -> AsyncIterator["Publisher"]:
        process = await spawn(*args, stdin=True, cpus=cpus)
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 120)
            if not line.startswith(b"port "):
                raise RuntimeError(f"publisher {args} did not start: {line!r}")
            yield cls(process, int(line.split()[1]))
        finally:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def send(self, count: int, rate: float, record: Path | None = None) -> None:
        """Order a job and wait until it is sent."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"send {count} {rate} {record or '-'}\n".encode())
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if line.strip() != b"sent":
            raise RuntimeError(f"publisher failed: {line!r}")


async def spawn(
    *args: str, stdin: bool = False, cpus: frozenset[int] = frozenset()
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *on_cpus(cpus, sys.executable, __file__, *args, "--loop", LOOP),
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )


def on_cpus(cpus: frozenset[int], *command: str) -> tuple[str, ...]:
    """`command`, run on `cpus` alone (util-linux's taskset, so that every thread the process
    starts inherits them), or where the scheduler puts it when `cpus` is empty."""
    if not cpus:
        return command
    return ("taskset", "--cpu-list", _cpu_list(cpus), *command)


def _cpu_list(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def split_cpus(server_cpus: str | None) -> tuple[frozenset[int], frozenset[int]]:
    """The CPUs of the serving processes (`--server-cpus`) and the others'; both empty when
    nothing is pinned."""
    if server_cpus is None:
        return frozenset(), frozenset()
    machine = frozenset(os.sched_getaffinity(0))
    try:
        server = frozenset(int(cpu) for cpu in server_cpus.split(","))
    except ValueError:
        server = frozenset()
    if not server or not server <= machine or not machine - server:
        raise SystemExit(
            f"--server-cpus {server_cpus}: give some, not all, of this process's CPUs "
            f"({_cpu_list(machine)})"
        )
    return server, machine - server


def pin_this_process(cpus: frozenset[int]) -> None:
    """Every thread of this process on `cpus`; threads started later inherit them."""
    for task in os.listdir("/proc/self/task"):
        # A thread that ended since the listing (a closed client's) needs no CPU.
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task), cpus)


# -- the service and its scratch stores -------------------------------------------------------


@contextlib.asynccontextmanager
async def scratch_stores() -> AsyncIterator[Infrastructure]:
    """A topic, a Redis key prefix and an InfluxDB bucket of this run's own, removed after."""
    run = uuid.uuid4().hex[:12]
    kafka = KafkaSettings().model_copy(update={"topic": f"bench-price-{run}"})
    redis = RedisSettings(key_prefix=f"bench-price-{run}")
    influx = InfluxSettings()
    await asyncio.to_thread(ensure_topic, kafka, kafka.topic, 3)
    try:
        headers = {"Authorization": f"Token {influx.token.get_secret_value()}"}
        async with httpx.AsyncClient(base_url=influx.url, headers=headers, timeout=30) as http:
            orgs = (await http.get("/api/v2/orgs", params={"org": influx.org})).raise_for_status()
            bucket = f"bench-price-{run}"
            created = await http.post(
                "/api/v2/buckets",
                json={"name": bucket, "orgID": orgs.json()["orgs"][0]["id"], "retentionRules": []},
            )
            created.raise_for_status()
            try:
                yield Infrastructure(kafka, redis, influx.model_copy(update={"bucket": bucket}))
            finally:
                (await http.delete(f"/api/v2/buckets/{created.json()['id']}")).raise_for_status()
    finally:
        await _delete_redis_keys(redis)
        await asyncio.to_thread(_delete_topic, kafka)


async def _delete_redis_keys(settings: RedisSettings) -> None:
    client = aioredis.Redis.from_url(settings.url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{settings.key_prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _delete_topic(settings: KafkaSettings) -> None:
    delete_topic(settings, settings.topic)
    with registry_client(settings) as registry:
        subject = f"{settings.topic}-value"  # the serializer's topic-name strategy
        if subject in registry.get_subjects():
            registry.delete_subject(subject)
            registry.delete_subject(subject, permanent=True)


@contextlib.asynccontextmanager
async def running_service(
    infra: Infrastructure, replay: Publisher, symbols: Sequence[str], kinds: Sequence[str]
) -> AsyncIterator[PriceService]:
    settings = PriceSettings(
        grpc_port=0,
        metrics_port=0,
        feed=FeedSettings(
            ws_base_url=f"ws://127.0.0.1:{replay.port}",
            rest=RestSettings(base_url=f"http://127.0.0.1:{replay.port}"),
            symbols=tuple(symbols),
            stream_kinds=tuple(kinds),
            ping_interval_s=None,
        ),
    )
    service = PriceService(settings, infra, SystemClock())
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.serving.wait(), 30)
    try:
        yield service
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 60)
        except TimeoutError:
            # Reported, not raised: the measurements are taken, and the tables still print.
            pending = [t.get_coro() for t in asyncio.all_tasks() if not t.done()]
            print(f"the price service did not stop within 60 s: {pending}", file=sys.stderr)


# -- 1. ingest ------------------------------------------------------------------------------


@dataclass
class Row:
    path: str
    items: int
    seconds: float
    lost: int | None = None

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    def cells(self, reference: float) -> list[str]:
        """The row, its rate as a ratio to `reference` (the bare client's) and its target."""
        rate = self.rate
        ratio = rate / reference if reference else 0.0
        wanted = INGEST_TARGET_RATIOS.get(self.path)
        # Nothing lost is part of the target: a fast run that drops updates does not meet it.
        met = wanted is not None and ratio >= wanted and not self.lost
        return [
            self.path,
            f"{self.items:,}",
            f"{self.seconds:.2f}",
            f"{rate:,.0f}",
            f"{1e6 / rate:.1f}" if rate else "-",
            "" if self.lost is None else f"{self.lost:,}",
            f"{ratio:.2f}",
            "" if wanted is None else f">= {wanted}, none lost: {'met' if met else 'MISSED'}",
        ]


def _timed(run: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def _alternating(
    items: Sequence[T], one: Callable[[T], U], other: Callable[[T], U], slices: int = 20
) -> tuple[list[U], float, list[U], float]:
    """`one` and `other` over `items`, each result list with its seconds, timed in alternating
    slices: a burst of load elsewhere on the machine (the stores compacting what the run just
    wrote) then falls on both, where timing one after the other would charge it to one."""
    ones: list[U] = []
    others: list[U] = []
    one_s = other_s = 0.0
    size = max(1, -(-len(items) // slices))
    for start in range(0, len(items), size):
        part = items[start : start + size]
        done, seconds = _timed(partial(_mapped, one, part))
        ones += done
        one_s += seconds
        done, seconds = _timed(partial(_mapped, other, part))
        others += done
        other_s += seconds
    return ones, one_s, others, other_s


def _mapped(function: Callable[[T], U], items: Sequence[T]) -> list[U]:
    return [function(item) for item in items]


async def bare_websocket(replay: Publisher, streams: str, count: int) -> tuple[list[bytes], Row]:
    """The replay's frames read by a client that does nothing with them: the transport alone."""
    frames: list[bytes] = []
    url = f"ws://127.0.0.1:{replay.port}/stream?streams={streams}"
    async with connect(url, max_size=None, ping_interval=None) as ws:
        start = time.perf_counter()
        sending = asyncio.create_task(replay.send(count, 0))
        while len(frames) < count:
            frames.append(await ws.recv(decode=False))
        elapsed = time.perf_counter() - start
        await sending
    return frames, Row("replay -> bare WebSocket client (frames only)", count, elapsed)


async def feed_path(frames: list[bytes]) -> tuple[list[market_pb2.PriceUpdate], Row]:
    """`BinanceFeed.handle_frame` on the same frames: decode, de-duplicate, normalise, hand over."""
    feed = BinanceFeed(FeedSettings(queue_size=len(frames) * 2))
    start = time.perf_counter()
    for raw in frames:
        await feed.handle_frame(raw)
    elapsed = time.perf_counter() - start
    queued = [feed._queue.get_nowait() for _ in range(feed._queue.qsize())]
    updates = [item for item in queued if isinstance(item, market_pb2.PriceUpdate)]
    return updates, Row("feed path in memory (decode, normalise)", len(frames), elapsed)


def _avro_record(update: object, _: SerializationContext) -> dict[str, Any]:
    assert isinstance(update, market_pb2.PriceUpdate)
    return avro.to_record(update)


def encoders(
    updates: list[market_pb2.PriceUpdate], kafka: KafkaSettings
) -> tuple[list[tuple[bytes, bytes]], list[Row], str]:
    """The sinks' per-update encoding alone: Avro through the registry, InfluxDB lines.

    Our Avro encoder is timed beside Confluent's AvroSerializer (as PriceUpdateSerializer used it
    before, on a dict from `avro.to_record`), each registered before the clock starts, on the
    same updates, in alternating slices. Returns the Kafka (key, value) pairs as the service
    would produce them, the rows, and the line comparing the two Avro encoders.
    """
    schema = avro.schema_of(market_pb2.PriceUpdate.DESCRIPTOR)
    context = SerializationContext(kafka.topic, MessageField.VALUE)
    with registry_client(kafka) as registry:
        serialize = PriceUpdateSerializer(registry, kafka.topic)
        peer = AvroSerializer(registry, json.dumps(schema), _avro_record)
        for update in updates[:1]:  # registered before the clock starts, the ids kept
            serialize(update)
            peer(update, context)
        values, avro_s, peer_values, peer_s = _alternating(
            updates, serialize, partial(peer, ctx=context)
        )
    _, lines_s = _timed(lambda: [tick_line(u) for u in updates])
    messages = [(u.symbol.encode(), value) for u, value in zip(updates, values, strict=True)]
    ratio = peer_s / avro_s if avro_s else 0.0
    verdict = "met" if ratio >= ENCODE_TARGET_RATIO else "MISSED"
    same = "identical" if peer_values == values else "DIFFERENT"
    count = max(len(updates), 1)
    comparison = (
        f"Avro encoding: PriceUpdateSerializer {1e6 * avro_s / count:.2f} us/update,"
        f" Confluent's AvroSerializer {1e6 * peer_s / count:.2f} us/update:"
        f" {ratio:.1f}x ({verdict}, target >= {ENCODE_TARGET_RATIO}x); bytes {same}"
    )
    return (
        messages,
        [
            Row("Avro encode in memory (PriceUpdateSerializer)", len(updates), avro_s),
            Row("Avro encode in memory (peer: confluent AvroSerializer)", len(updates), peer_s),
            Row("InfluxDB tick lines in memory (tick_line)", len(updates), lines_s),
        ],
        comparison,
    )


def raw_produce(messages: list[tuple[bytes, bytes]], kafka: KafkaSettings) -> Row:
    """Pre-encoded values through confluent_kafka, the service's producer settings, until acked."""
    producer = Producer(
        {
            **kafka.client_config(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    start = time.perf_counter()
    for key, value in messages:
        while True:
            try:
                producer.produce(kafka.topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.01)
    left: int = producer.flush(60)
    return Row("raw confluent_kafka produce, pre-encoded", len(messages), _since(start), left)


def _since(start: float) -> float:
    return time.perf_counter() - start


@dataclass(frozen=True)
class SinkCount:
    accepted: int
    written: int
    lost: int
    """Dropped or rejected (Kafka: also failed deliveries and updates Avro cannot hold)."""

    def __sub__(self, other: "SinkCount") -> "SinkCount":
        return SinkCount(
            self.accepted - other.accepted, self.written - other.written, self.lost - other.lost
        )


def sink_counts(service: PriceService) -> dict[str, SinkCount]:
    counts = {
        name: SinkCount(s.stats.accepted, s.stats.written, s.stats.dropped + s.stats.rejected)
        for name, s in service.sinks.items()
    }
    kafka, producer = counts["kafka"], service.publisher.producer
    # Kafka's are written when the broker acknowledged them, not when librdkafka took them.
    counts["kafka"] = SinkCount(
        kafka.accepted,
        producer.delivered,
        kafka.lost + producer.failed + sum(service.publisher.refused.values()),
    )
    return counts


def feed_dropped(service: PriceService) -> int:
    value = service.metrics_registry.get_sample_value(
        "finplat_price_feed_messages_total", {"outcome": "dropped"}
    )
    return int(value or 0)


async def caught_up(service: PriceService, timeout_s: float) -> None:
    """Wait until every sink has written what it accepted (and Kafka acknowledged it)."""
    await wait_until(
        lambda: all(c.written + c.lost >= c.accepted for c in sink_counts(service).values()),
        timeout_s,
    )


_ACCEPTED = "service: accepted by the pipeline"
_SINK_LABELS = {
    "redis": "service: Redis latest written",
    "influxdb_ticks": "service: InfluxDB ticks written",
    "influxdb_candles": "service: InfluxDB candles written",
    "kafka": "service: Kafka acknowledged",
}
# Ingest targets: the row's rate over the bare WebSocket client's on the same replay.
INGEST_TARGET_RATIOS = {_ACCEPTED: 0.95, _SINK_LABELS["kafka"]: 0.9}


async def end_to_end(
    service: PriceService, replay: Publisher, count: int, timeout_s: float
) -> tuple[list[Row], float]:
    """Send `count` frames; time the pipeline's acceptance and each sink's writing of them."""
    base, base_dropped = sink_counts(service), feed_dropped(service)
    start = time.perf_counter()
    sending = asyncio.create_task(replay.send(count, 0))
    accepted_s = 0.0
    targets: dict[str, int] = {}
    done_s: dict[str, float] = {}
    while _since(start) < timeout_s:
        await asyncio.sleep(0.005)
        delta = {name: now - base[name] for name, now in sink_counts(service).items()}
        updates = delta["influxdb_ticks"].accepted  # every update is a tick
        if not targets and updates + feed_dropped(service) - base_dropped >= count:
            accepted_s = _since(start)
            # What each sink has to write: all it accepted by then (candles: those offered).
            targets = {name: d.accepted for name, d in delta.items()}
        for name, wanted in targets.items():
            if name not in done_s and delta[name].written + delta[name].lost >= wanted:
                done_s[name] = _since(start)
        if targets and len(done_s) == len(targets):
            break
    await sending
    elapsed = _since(start)
    delta = {name: now - base[name] for name, now in sink_counts(service).items()}
    updates = delta["influxdb_ticks"].accepted
    rows = [
        Row(
            _ACCEPTED,
            updates,
            accepted_s or elapsed,
            feed_dropped(service) - base_dropped,
        )
    ]
    rows += [
        Row(
            label,
            delta[name].written,
            done_s.get(name, elapsed),
            delta[name].lost,
        )
        for name, label in _SINK_LABELS.items()
    ]
    return rows, elapsed


# CPU time, from /proc: every process on the machine shares its cores, the stack's included.
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    # utime and stime, fields 14 and 15 of /proc/<pid>/stat (counted after the command name).
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_cpu_s() -> float:
    # user, nice, system, idle, iowait, irq, softirq, steal: all but idle and iowait are busy.
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _, _, irq, softirq, steal = (int(v) for v in first)
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def cpu_sample(pids: dict[str, int]) -> dict[str, float]:
    return {**{name: process_cpu_s(pid) for name, pid in pids.items()}, "": machine_cpu_s()}


def cpu_rows(before: dict[str, float], after: dict[str, float], wall_s: float) -> list[list[str]]:
    used = {name: after[name] - before[name] for name in before}
    machine = used.pop("")
    used["everything else on the machine"] = machine - sum(used.values())
    used[f"machine total ({os.cpu_count()} cores)"] = machine
    return [[name, f"{cpu:.2f}", f"{cpu / wall_s:.2f}"] for name, cpu in used.items()]


async def ingest_mix(mix: str, args: argparse.Namespace) -> None:
    kinds = mix.split(",")
    streams = "/".join(s.name for s in build_streams(INGEST_SYMBOLS, kinds))
    stack = {s.name: s.pid for s in Stack(StackSettings()).status() if s.pid is not None}
    async with Publisher.start("--role", "replay", "--symbols", ",".join(INGEST_SYMBOLS)) as replay:
        frames, transport = await bare_websocket(replay, streams, args.updates)
        updates, decode = await feed_path(frames)
        del frames
        async with scratch_stores() as infra:
            async with running_service(infra, replay, INGEST_SYMBOLS, kinds) as service:
                await replay.send(args.warmup, 0)
                await caught_up(service, 60)
                pids = {"price service": os.getpid(), "replay server": replay.process.pid, **stack}
                before = cpu_sample(pids)
                service_rows, wall_s = await end_to_end(
                    service, replay, args.updates, args.timeout_s
                )
                cpu = cpu_rows(before, cpu_sample(pids), wall_s)
            # The same run with Kafka through the stack's SASL_SSL listener (SCRAM over TLS).
            secured = replace(infra, kafka=sasl_ssl_client_settings(StackSettings(), infra.kafka))
            async with running_service(secured, replay, INGEST_SYMBOLS, kinds) as service:
                await replay.send(args.warmup, 0)
                await caught_up(service, 60)
                sasl_rows, _ = await end_to_end(service, replay, args.updates, args.timeout_s)
            messages, encode_rows, encode_comparison = encoders(updates, infra.kafka)
            produce = raw_produce(messages, infra.kafka)
    rows = [transport, decode, *encode_rows, produce, *service_rows]
    print(
        f"\nIngest: {' + '.join(kinds)} streams of {', '.join(INGEST_SYMBOLS)}, "
        f"{args.updates:,} frames sent as fast as read, {os.cpu_count()} cores, loopback\n"
    )
    header = ["path", "items", "s", "items/s", "us/item", "lost", "ratio to bare", "target"]
    print(table(header, [row.cells(transport.rate) for row in rows]))
    print(
        "(ratio to bare: the row's rate over the bare WebSocket client's on the same replay, the\n"
        " first row; the absolute rates are information, they differ from machine to machine)"
    )
    print(f"\n{encode_comparison}")
    updates_s = f"{service_rows[0].items:,} updates"
    print(f"\nCPU during the service run ({wall_s:.2f} s, {updates_s}; 1.00 = one core busy)\n")
    print(table(["process", "CPU s", "cores"], cpu))
    print(
        "\nThe same ingest with Kafka through SASL_SSL (SCRAM-SHA-512 over TLS) beside PLAINTEXT\n"
    )
    print(table(["listener", "path", "items", "s", "items/s", "ratio to PLAINTEXT"],
                listener_rows(service_rows, sasl_rows)))  # fmt: skip


def listener_rows(plaintext: list[Row], sasl_ssl: list[Row]) -> list[list[str]]:
    """The pipeline's acceptance and Kafka's acknowledgement, per listener, and their ratio."""
    wanted = (_ACCEPTED, _SINK_LABELS["kafka"])
    rows = []
    for path in wanted:
        plain, secure = (next(r for r in run if r.path == path) for run in (plaintext, sasl_ssl))
        plain_rate, secure_rate = (
            r.items / r.seconds if r.seconds else 0.0 for r in (plain, secure)
        )
        ratio = f"{secure_rate / plain_rate:.2f}" if plain_rate else "-"
        for name, row, rate, shown in (("PLAINTEXT", plain, plain_rate, ""),
                                        ("SASL_SSL", secure, secure_rate, ratio)):  # fmt: skip
            rows.append([name, path, f"{row.items:,}", f"{row.seconds:.2f}", f"{rate:,.0f}", shown])
    return rows


async def ingest(args: argparse.Namespace) -> None:
    for mix in args.mix:
        await ingest_mix(mix, args)


# -- 2. stream ------------------------------------------------------------------------------


@dataclass
class Receipts:
    """What one subscriber received: each update's id and the time_ns its message arrived."""

    ids: "array[int]" = field(default_factory=lambda: array("q"))
    times: "array[int]" = field(default_factory=lambda: array("q"))
    messages: int = 0
    error: str | None = None

    def add(self, received_ns: int, message: bytes) -> None:
        self.messages += 1
        for update in price_service_pb2.StreamPricesResponse.FromString(message).prices:
            self.ids.append(int(update.event_id))
            self.times.append(received_ns)


# A channel of its own per subscriber, and a subchannel pool of its own: one TCP connection per
# subscriber, as separate clients would have, instead of all streams multiplexed on one.
_OWN_CONNECTION = ("grpc.use_local_subchannel_pool", 1)
_STREAM_PRICES = f"/{SERVICE_NAME}/StreamPrices"
_REQUEST = price_service_pb2.StreamPricesRequest(symbols=[STREAM_SYMBOL])
_SERIALIZE_REQUEST = price_service_pb2.StreamPricesRequest.SerializeToString


def blocking_subscriber(address: str, expect: int, timeout_s: float, got: Receipts) -> None:
    """One subscriber on a thread of its own, with gRPC's blocking API: the message is
    timestamped as the read returns it, then decoded."""
    options = [_OWN_CONNECTION, (grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)]
    with grpc.insecure_channel(address, options=options) as channel:
        stream_prices: grpc.UnaryStreamMultiCallable[Any, bytes] = channel.unary_stream(
            _STREAM_PRICES, request_serializer=_SERIALIZE_REQUEST
        )
        call = stream_prices(_REQUEST, timeout=timeout_s)
        try:
            for message in call:
                got.add(time.time_ns(), message)
                if len(got.ids) >= expect:
                    call.cancel()
                    return
        except grpc.RpcError as exc:
            got.error = exc.code().name


async def async_subscriber(address: str, expect: int, got: Receipts) -> None:
    """One subscriber as a task of the process's grpc.aio event loop."""
    async with grpc.aio.insecure_channel(address, options=[_OWN_CONNECTION]) as channel:
        stream_prices: grpc.aio.UnaryStreamMultiCallable[Any, bytes] = channel.unary_stream(
            _STREAM_PRICES, request_serializer=_SERIALIZE_REQUEST
        )
        try:
            async for message in stream_prices(_REQUEST):
                got.add(time.time_ns(), message)
                if len(got.ids) >= expect:
                    return
        except grpc.aio.AioRpcError as exc:
            got.error = exc.code().name


async def run_subscribers(
    client: str, address: str, count: int, expect: int, timeout_s: float
) -> list[Receipts]:
    receipts = [Receipts() for _ in range(count)]
    if client == "threads":
        threads = [
            threading.Thread(target=blocking_subscriber, args=(address, expect, timeout_s, got))
            for got in receipts
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join)
    else:
        tasks = [asyncio.create_task(async_subscriber(address, expect, got)) for got in receipts]
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return receipts


async def serve_subscribers(args: argparse.Namespace) -> None:
    """`args.subscribers` StreamPrices subscribers until each got `args.expect` updates."""
    receipts = await run_subscribers(
        args.client, args.address, args.subscribers, args.expect, args.timeout_s
    )
    # The publisher writes its send times once the last update has left.
    await wait_until(args.sent_file.exists, 30)
    sent = dict(json.loads(await asyncio.to_thread(args.sent_file.read_text)))
    latencies = sorted(
        t - sent[i]
        for got in receipts
        for i, t in zip(got.ids, got.times, strict=True)
        if i in sent
    )
    print(
        "result "
        + json.dumps(
            {
                "expected": len(sent) * args.subscribers,
                "latencies_ns": [_percentile(latencies, q) for q in (0.5, 0.99, 1.0)],
                "received": len(latencies),
                "messages": sum(got.messages for got in receipts),
                "updates": sum(len(got.ids) for got in receipts),
                "errors": [got.error for got in receipts if got.error],
            }
        ),
        flush=True,
    )


def _percentile(ordered: list[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else -1


@dataclass
class StreamRow:
    path: str
    subscribers: int
    rate: float
    """Updates sent per second over the measured part."""
    result: dict[str, Any]
    cores: tuple[float, float, float]
    """CPU of the serving processes, of the subscribers' process and of the whole machine."""
    judged: bool = False
    """Whether the latency targets apply to this row."""
    floor: "StreamRow | None" = None
    """The bare fan-out with as many subscribers, measured in the same run."""

    def latencies_ms(self) -> tuple[float, float, float]:
        p50, p99, worst = (ns / 1e6 for ns in self.result["latencies_ns"])
        return p50, p99, worst

    def cells(self) -> list[str]:
        p50, p99, worst = self.latencies_ms()
        expected = self.result["expected"] or 1
        per_message = self.result["updates"] / max(1, self.result["messages"])
        ratios, verdict = ["", ""], ""
        if self.floor is not None:
            floor_p50, floor_p99, _ = self.floor.latencies_ms()
            p50_ratio, p99_ratio = p50 / floor_p50, p99 / floor_p99
            ratios = [f"{p50_ratio:.2f}", f"{p99_ratio:.2f}"]
            met = p50_ratio <= STREAM_TARGET_P50_RATIO and p99_ratio <= STREAM_TARGET_P99_RATIO
            verdict = ("met" if met else "MISSED") if self.judged else ""
        return [
            self.path,
            str(self.subscribers),
            f"{self.rate:,.0f}",
            f"{self.result['received'] / expected:.1%}",
            f"{p50:.2f}",
            f"{p99:.2f}",
            f"{worst:.2f}",
            *ratios,
            f"{per_message:.1f}",
            *(f"{cores:.2f}" for cores in self.cores),
            ",".join(sorted(set(self.result["errors"]))) or "-",
            verdict,
        ]


async def stream_phase(
    path: str,
    publisher: Publisher,
    address: str,
    subscribers: int,
    args: argparse.Namespace,
    subscribed: Callable[[], bool],
    server_pids: list[int],
    subscriber_cpus: frozenset[int],
) -> StreamRow:
    warm, measured = int(args.rate * args.warmup_s), int(args.rate * args.seconds)
    with tempfile.TemporaryDirectory() as scratch:
        sent_file = Path(scratch) / "sent.json"
        flags = [
            "--address",
            address,
            "--subscribers",
            str(subscribers),
            "--expect",
            str(warm + measured),
            "--sent-file",
            str(sent_file),
            "--timeout-s",
            str((warm + measured) / args.rate + 30),
        ]
        if args.client == "go":
            process = await asyncio.create_subprocess_exec(
                *on_cpus(
                    subscriber_cpus,
                    str(go_stream_client()),
                    *flags,
                    f"--symbol={STREAM_SYMBOL}",
                    f"--window={args.go_window}",
                ),
                stdout=PIPE,
                stdin=DEVNULL,
            )
        else:
            process = await spawn(
                "--role", "subscribers", *flags, "--client", args.client, cpus=subscriber_cpus
            )
        try:
            await wait_until(subscribed, 60)
            await publisher.send(warm, args.rate)
            pids = {str(pid): pid for pid in [*server_pids, process.pid]}
            before, start = cpu_sample(pids), time.perf_counter()
            await publisher.send(measured, args.rate, sent_file)
            after, wall_s = cpu_sample(pids), _since(start)
            used = {name: (after[name] - before[name]) / wall_s for name in pids}
            serving = sum(used[str(pid)] for pid in server_pids)
            machine = (after[""] - before[""]) / wall_s
            cores = (serving, used[str(process.pid)], machine)
            assert process.stdout is not None
            async for line in process.stdout:
                if line.startswith(b"result "):
                    result: dict[str, Any] = json.loads(line.removeprefix(b"result "))
                    return StreamRow(path, subscribers, measured / wall_s, result, cores)
            raise RuntimeError("the subscriber process gave no result")
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            await process.wait()


# The Go subscriber process (`--client go`, bench/streamclient): built on first use with the
# machine's Go, its modules from the Go module proxy, into the cache the Makefile's grpcurl uses,
# under a name keyed by its sources (so an edit rebuilds, and a fresh clone reuses the build).
_STREAM_CLIENT_DIR = Path(__file__).parent / "streamclient"
_STREAM_CLIENT_SOURCES = ("go.mod", "go.sum", "main.go")
_CACHE_DIR = DEFAULT_CACHE_DIR


def go_stream_client() -> Path:
    """The built Go subscriber client, building it first if this version is not cached."""
    digest = hashlib.sha256()
    for name in _STREAM_CLIENT_SOURCES:
        digest.update((_STREAM_CLIENT_DIR / name).read_bytes())
    binary = _CACHE_DIR / "tools" / f"streamclient-{digest.hexdigest()[:12]}" / "streamclient"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise SystemExit("--client go builds bench/streamclient with Go: install Go >= 1.25")
    print(f"[build] the Go stream client into {binary.parent}", file=sys.stderr, flush=True)
    # As the Makefile builds grpcurl: the installed Go only, a static binary, a deletable
    # module cache; built beside its place and renamed, so its presence means a whole build.
    env = {
        **os.environ,
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
        "GOFLAGS": "-modcacherw",
        "GOMODCACHE": str(_CACHE_DIR / "go" / "mod"),
        "GOCACHE": str(_CACHE_DIR / "go" / "build"),
    }
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial_binary = binary.with_suffix(".partial")
    subprocess.run(
        [go, "build", "-trimpath", "-o", str(partial_binary), "."],
        cwd=_STREAM_CLIENT_DIR,
        env=env,
        check=True,
    )
    partial_binary.replace(binary)
    return binary


_CLIENTS = {
    "threads": "Python, a thread each on gRPC's blocking API",
    "aio": "Python, one grpc.aio loop",
    "go": "Go (grpc-go), a goroutine each",
}


def _subscribed(hub: StreamHub, count: int) -> bool:
    return hub.subscribers >= count


async def stream(args: argparse.Namespace) -> None:
    if args.client == "go":
        go_stream_client()  # built before anything is timed
    rows: list[StreamRow] = []
    counts = sorted({args.subscribers, 1}, reverse=True)
    # Pinned, the service (this process) and the bare fan-out each have the same CPUs to
    # themselves, the replay and the subscribers the others: what each serving path costs
    # shows without the scheduler's sharing of the machine (issue #18: one core and two).
    server_cpus, other_cpus = split_cpus(args.server_cpus)
    if server_cpus:
        pin_this_process(server_cpus)
    async with (
        Publisher.start("--role", "replay", "--symbols", STREAM_SYMBOL, cpus=other_cpus) as replay,
        scratch_stores() as infra,
        running_service(infra, replay, [STREAM_SYMBOL], ["trade"]) as service,
    ):
        address = f"127.0.0.1:{service.grpc_port}"
        for count in counts:
            await wait_until(lambda: not service.hub.subscribers, 30)  # the last phase's are gone
            row = await stream_phase(
                "price service (replay -> feed -> hub -> gRPC)",
                replay,
                address,
                count,
                args,
                partial(_subscribed, service.hub, count),
                [os.getpid(), replay.process.pid],
                other_cpus,
            )
            # Python subscribers at 100 are the bare fan-out's bottleneck, not its server (their
            # process needs more than a core): its latency would not be a floor to judge by.
            row.judged = args.client == "go" and (count, args.rate) == (
                STREAM_TARGET_SUBSCRIBERS,
                STREAM_TARGET_RATE,
            )
            rows.append(row)
    if server_cpus:
        pin_this_process(server_cpus | other_cpus)  # off the bare fan-out's CPUs in its turn
    for count in counts:
        floor_args = ("--role", "floor", "--subscribers", str(count))
        async with Publisher.start(*floor_args, cpus=server_cpus) as floor:
            floor_row = await stream_phase(
                "bare grpc.aio fan-out (StreamHub, pre-encoded)",
                floor,
                f"127.0.0.1:{floor.port}",
                count,
                args,
                lambda: True,  # the floor waits for its subscribers itself
                [floor.process.pid],
                other_cpus,
            )
        for row in rows:
            if row.subscribers == count and row.floor is None:
                row.floor = floor_row
        rows.append(floor_row)
    print(
        f"\nStreamPrices: {args.rate:,.0f} trades/s of {STREAM_SYMBOL}, {args.seconds:.0f} s "
        f"after {args.warmup_s:.0f} s warm-up, {os.cpu_count()} cores, loopback; "
        + (
            f"the service and the bare fan-out on CPU {_cpu_list(server_cpus)}, the replay and "
            f"the subscribers on CPU {_cpu_list(other_cpus)}\n"
            if server_cpus
            else "no process pinned\n"
        )
    )
    header = ["path", "subs", "sent/s", "delivered", "p50 ms", "p99 ms", "max ms"]
    header += ["p50 / bare", "p99 / bare", "updates/msg"]
    header += ["server cores", "subscriber cores", "machine cores", "errors", "targets"]
    print(table(header, [row.cells() for row in rows]))
    print(
        "(latency: subscriber receipt minus the publisher's send, both time_ns; server cores: the\n"
        " service and the replay, or the bare server; subscribers: "
        f"{_CLIENTS[args.client]}"
        f"{f' with a fixed {args.go_window:,} B window' if args.go_window else ''}"
        f", one process, a connection each; loop: {args.loop}; / bare: the service's latency"
        " over the bare fan-out's with as many subscribers, in this run; targets p50 <= "
        f"{STREAM_TARGET_P50_RATIO}x, p99 <= {STREAM_TARGET_P99_RATIO}x the bare fan-out's at "
        f"{STREAM_TARGET_RATE:,} updates/s with {STREAM_TARGET_SUBSCRIBERS} subscribers, judged"
        " with Go subscribers only: Python ones are the bare fan-out's bottleneck at 100)"
    )


# -- main -----------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> None:
    # The tables are the output; the service's warnings (e.g. dropped updates) are counted there.
    logging.basicConfig(level=logging.ERROR)
    if args.section in ("ingest", "all"):
        await ingest(args)
    if args.section in ("stream", "all"):
        await stream(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", choices=["ingest", "stream", "all"], default="all")
    parser.add_argument("--updates", type=int, default=200_000, help="frames per ingest run")
    parser.add_argument("--warmup", type=int, default=5_000, help="ingest warm-up frames")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="ingest run bound")
    parser.add_argument(
        "--mix",
        action="append",
        help="comma-separated stream kinds per ingest run (repeatable; default: trade, and "
        "trade,kline_1m)",
    )
    parser.add_argument("--rate", type=float, default=2_000.0, help="stream updates/s")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="stream measurement")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="stream warm-up")
    parser.add_argument(
        "--server-cpus",
        help="stream: comma-separated CPUs for the service and for the bare fan-out, each in "
        "its turn, the replay and the subscribers on the others (default: nothing pinned)",
    )
    parser.add_argument(
        "--client",
        choices=["threads", "aio", "go"],
        default="threads",
        help="stream subscribers: a thread each with gRPC's blocking API (default), tasks "
        "of one grpc.aio event loop, or goroutines of a Go process (bench/streamclient, built "
        "with the machine's Go on first use)",
    )
    parser.add_argument(
        "--go-window",
        type=int,
        default=0,
        help="with --client go: a fixed HTTP/2 window in bytes for each subscriber, which turns "
        "off grpc-go's BDP pings (default 0: grpc-go's dynamic window, as a stock client has)",
    )
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="event loop of every process (the service's is uvloop)",
    )
    parser.add_argument(
        "--role",
        choices=["bench", "replay", "floor", "subscribers"],
        default="bench",
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--symbols", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sent-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global LOOP  # noqa: PLW0603 - the one setting every spawned process inherits
    LOOP = args.loop
    args.mix = args.mix or ["trade", "trade,kline_1m"]
    # Every process on the loop `finplat price serve` runs on, unless told otherwise.
    run = partial(eventloop.run, use_uvloop=args.loop == "uvloop")
    if args.role == "replay":
        run(serve_replay(tuple(args.symbols.split(","))))
    elif args.role == "floor":
        run(serve_floor(args.subscribers))
    elif args.role == "subscribers":
        run(serve_subscribers(args))
    else:
        run(bench(args))


if __name__ == "__main__":
    main()
