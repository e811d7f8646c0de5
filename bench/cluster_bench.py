"""Benchmark: the streaming side on a 3-node Kafka cluster: sharded ingest, a consumer group.

Starts a 3-node KRaft cluster of its own (`finplat stack up kafka` with FINPLAT_STACK_KAFKA_BROKERS
=3, a temporary data dir, brokers on 39092/39192/39292, no SASL_SSL listener), has it do its
first-client work (producer ids, the group offsets topic) and waits until it is idle, and stops it
at the end (`finplat stack down` on that data dir only). The default stack's registry, Redis and
InfluxDB are used as they are, so it must be up (`make bench` starts it first). Every topic is
created in the cluster's production shape: 3 replicas, min.insync.replicas 2, 6 partitions.

1. ingest: 1, 2 and 3 price services, each `finplat price serve` in a process of its own, shard
   i of N (FINPLAT_PRICE_FEED__SHARD_INDEX/_SHARD_COUNT) of the same six symbols, fed by one
   replay server (a process), all publishing to one fresh topic per N with their real sinks
   (Redis, InfluxDB, Kafka through the registry). With N > 1 each service also reads the other
   shards' updates back from the topic for its StreamPrices hub, as the service does. Processes
   rather than services on threads of one process: an interpreter runs Python on one core at a
   time (the GIL), so threads would measure one core however many shards; processes are what a
   deployment runs, and on 2 cores they show what a second and third shard really add.
   Fed as fast as the services take it, not as fast as the replay can send: the service reads
   its socket whatever its pipeline can do and drops what its hand-over queue cannot hold (so
   that Binance never cuts it off as a slow reader), so a replay at full speed measures the
   dropping (tried: nearly every update dropped, and the service starved its own pipeline so far
   that it no longer answered SIGTERM). As price_bench hands its replay jobs, the bench gives each
   shard credit: the replay sends a shard's frames only while fewer than `WINDOW` of them are
   unaccounted for (neither acknowledged by Kafka nor dropped) and no sink of it has more than
   `SINK_BACKLOG` items waiting, both read from the shard's /metrics every `PERIOD_S`: every
   stage stays busy, nothing is dropped, and every store keeps up, not Kafka alone. Once all
   shards are connected and `--warmup-s` has passed, the topic's high watermarks are read before
   and after `--window-s`: the updates Kafka acknowledged (acks=all, 2 of 3 replicas in sync) per
   second; per shard from each process's own delivery reports; the ratio to 1 shard.
   The data: the shared data (FINPLAT_DATA_DIR, read through ReplaySettings) has trades for
   BTCUSDT only (the 3,427 trades of 2017-08-17) and 1m klines for BTCUSDT and ETHUSDT only, so
   no stream kind covers three symbols. The replay here serves that one real trade file, looped,
   under six symbol names (BTC, ETH, SOL, BNB, XRP, DOGE against USDT): real rows, only the
   symbol differs, so each shard of 1, 2 or 3 gets the same load (the `trade` stream only, the
   busiest kind; the prices are BTC's of 2017 for all six).
2. consumer group: `--count` PriceUpdates (encoded as the service encodes them) spread evenly
   over a 6-partition topic, drained by a group of 1, then of 2 members: each the backtest
   statistics consumer as the service wires it (`build_consumer`, as consumer_bench runs it:
   decode, de-dup, count, state saved per batch, commit; cooperative-sticky assignment) in a
   process of its own with its own SQLite state file (SQLite is the one-instance store; a group
   that shares its state uses PostgreSQL, not measured here). The members join with their
   partitions paused and are released together once the assignment is complete, so the time is
   the drain alone, no rebalance in it: from the release until the group's committed offsets,
   read from its coordinator, reach the end of every partition.
Peers in the same run, on the same cluster: one producer of the pre-encoded values with the
service's producer settings (idempotent, acks=all, lz4, linger 5 ms) to a 1-partition topic and
round-robin to 6 partitions (the latter fills the consumers' topic), and a raw consume() of the 6
partitions without decoding. CPU is read from /proc for each group of processes.

A benchmark reports, it does not assert: the exit status stays 0. Load from other work on the
machine shows as "machine cores" beyond the listed processes'. Run with the stack up:

    .venv/bin/python bench/cluster_bench.py [--window-s 10] [--count 200000]
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from websockets.exceptions import ConnectionClosed

from finplat.binance import archive
from finplat.core.clock import SystemClock
from finplat.core.connections import KafkaSettings
from finplat.kafka.consumer import OnAssign, OnRevoke, PriceUpdateConsumer, Record
from finplat.price.domain.shards import owned_symbols
from finplat.price.service import eventloop
from finplat.replay.client import Client
from finplat.replay.market import Market
from finplat.replay.server import ReplayServer
from finplat.replay.settings import ReplaySettings
from finplat.stack.kafka import bootstrap_servers
from finplat.stack.process import StackDirs, running_pid
from finplat.stack.settings import StackSettings

# Far from the default stack's 9092.. and the cluster tests' 29092..; nodes step by 100.
FIRST_PORT = 39092
BROKERS = 3
REPLICAS = 3
MIN_INSYNC = 2
PARTITIONS = 6
# Six: 1, 2 and 3 shards each own as many of them (sorted, dealt round-robin).
SYMBOLS = ("BNBUSDT", "BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
SOURCE_SYMBOL = "BTCUSDT"
# Frames a shard may have unaccounted for: below its feed's hand-over queue (10,000), so none
# is dropped, and enough for PERIOD_S at any rate seen here. No more while a sink (Redis,
# InfluxDB ticks or candles, Kafka) has more than SINK_BACKLOG items waiting: the rate measured
# is one every store keeps up with, not Kafka's alone.
WINDOW = 6_000
SINK_BACKLOG = 12_000
PERIOD_S = 0.1
FINPLAT = Path(sys.executable).parent / "finplat"
REPO = Path(__file__).resolve().parent.parent


# -- the cluster ------------------------------------------------------------------------------


@dataclass
class Cluster:
    """The bench's own cluster: its `finplat stack` environment and its clients' settings."""

    environment: dict[str, str]
    kafka: KafkaSettings
    broker_pids: list[int] = field(default_factory=list)

    def stack(self, *arguments: str) -> None:
        """`finplat stack ARGUMENTS` on the cluster's data dir, never the default stack's."""
        assert Path(self.environment["FINPLAT_STACK_DATA_DIR"]).is_absolute()
        done = subprocess.run(
            [str(FINPLAT), "stack", *arguments],
            cwd=REPO,
            env={**os.environ, **self.environment},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"`finplat stack {' '.join(arguments)}` failed:\n{done.stderr}")


@contextlib.asynccontextmanager
async def kafka_cluster(data_dir: Path) -> AsyncIterator[Cluster]:
    environment = {
        "FINPLAT_STACK_DATA_DIR": str(data_dir),
        "FINPLAT_STACK_KAFKA_BROKERS": str(BROKERS),
        "FINPLAT_STACK_KAFKA_PORT": str(FIRST_PORT),
        "FINPLAT_STACK_KAFKA_CONTROLLER_PORT": str(FIRST_PORT + 1),
        "FINPLAT_STACK_KAFKA_SASL_SSL_PORT": "0",
    }
    settings = StackSettings(
        data_dir=data_dir,
        kafka_brokers=BROKERS,
        kafka_port=FIRST_PORT,
        kafka_controller_port=FIRST_PORT + 1,
        kafka_sasl_ssl_port=0,
    )
    # The registry is the default stack's, as for every service and bench.
    cluster = Cluster(environment, KafkaSettings(bootstrap_servers=bootstrap_servers(settings)))
    try:
        started = time.perf_counter()
        await asyncio.to_thread(cluster.stack, "up", "kafka")
        dirs = StackDirs(data_dir)
        pids = [running_pid(dirs, f"kafka-{index + 1}") for index in range(BROKERS)]
        cluster.broker_pids = [pid for pid in pids if pid is not None]
        note(f"{BROKERS} Kafka nodes up in {time.perf_counter() - started:.0f} s")
        yield cluster
    finally:
        note("stopping the cluster")
        await asyncio.to_thread(cluster.stack, "down")
        note("cluster stopped")


_STARTED = time.monotonic()


def note(text: str) -> None:
    """Progress on stderr, with the time since the start."""
    print(
        f"[cluster_bench +{time.monotonic() - _STARTED:.0f} s] {text}", file=sys.stderr, flush=True
    )


def create_topic(kafka: KafkaSettings, name: str, partitions: int) -> None:
    """A topic in the cluster's production shape: 3 replicas, 2 in sync for a write."""
    admin = AdminClient(kafka.client_config())
    new = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=REPLICAS,
        config={"min.insync.replicas": str(MIN_INSYNC)},
    )
    admin.create_topics([new], operation_timeout=30)[name].result(30)


def settle(cluster: Cluster) -> float:
    """Make a fresh cluster do its first-client work (producer ids, the group offsets topic's
    50 partitions) before anything is timed, then wait until its nodes are quiet; returns
    their idle CPU (cores)."""
    kafka, topic = cluster.kafka, f"bench-cluster-settle-{uuid.uuid4().hex[:12]}"
    create_topic(kafka, topic, 1)
    producer = Producer({**kafka.client_config(), "enable.idempotence": True, "acks": "all"})
    for index in range(10):
        producer.produce(topic, str(index).encode())
    producer.flush(120)
    consumer = Consumer({**kafka.client_config(), "group.id": topic, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    read = [m for m in consumer.consume(10, 30) if m.error() is None]
    deadline = time.monotonic() + 60
    while read:
        try:
            consumer.commit(message=read[-1], asynchronous=False)
            break
        except KafkaException:  # the group coordinator is still being elected or loaded
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    consumer.close()
    groups = {"brokers": cluster.broker_pids}
    deadline = time.monotonic() + 30
    while True:
        before, started = cpu_now(groups), time.perf_counter()
        time.sleep(1)
        idle = cores(before, cpu_now(groups), time.perf_counter() - started)["brokers"]
        if idle < 0.3 or time.monotonic() > deadline:
            return idle


def end_offsets(kafka: KafkaSettings, topic: str, partitions: int = PARTITIONS) -> list[int]:
    """Every partition's high watermark: what the in-sync replicas hold (acknowledged)."""
    consumer = Consumer({**kafka.client_config(), "group.id": "bench-watermarks"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def delete_subjects(topics: Sequence[str]) -> None:
    """The topics' value subjects in the shared registry (the serializer's topic-name strategy)."""
    # Imported where used: the replay and member processes need none of it (slow to import).
    from finplat.kafka.serde import registry_client  # noqa: PLC0415

    with registry_client(KafkaSettings()) as registry:
        existing = set(registry.get_subjects())
        for subject in (f"{topic}-value" for topic in topics):
            if subject in existing:
                registry.delete_subject(subject)
                registry.delete_subject(subject, permanent=True)


# -- CPU --------------------------------------------------------------------------------------


def cpu_now(groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """CPU seconds used so far by each group of processes, and by the whole machine ("")."""
    from price_bench import machine_cpu_s  # noqa: PLC0415 - the parent's alone, see above

    return {**{name: sum(map(_cpu_s, pids)) for name, pids in groups.items()}, "": machine_cpu_s()}


def _cpu_s(pid: int) -> float:
    from price_bench import process_cpu_s  # noqa: PLC0415 - the parent's alone, see above

    try:
        return process_cpu_s(pid)
    except FileNotFoundError:
        return 0.0


def cores(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
    return {name: (after[name] - before[name]) / wall_s for name in before}


def default_stack_pids() -> list[int]:
    """Redis, InfluxDB and the registry of the default stack: the sinks' other half."""
    from finplat.stack.stack import Stack  # noqa: PLC0415 - the parent's alone, see above

    statuses = Stack(StackSettings()).status()
    wanted = ("redis", "influxdb", "registry")
    return [s.pid for s in statuses if s.pid is not None and s.name in wanted]


# -- child processes: the replay and the group members, driven by lines on stdin --------------


class Child:
    """A process of this script in another role; commands in on stdin, lines out on stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def spawn(cls, role: str) -> "Child":
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--role",
            role,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    async def line(self, timeout_s: float) -> str:
        assert self.process.stdout is not None
        read = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        if not read:
            raise RuntimeError(f"a child process (pid {self.process.pid}) ended")
        return read.decode().strip()

    async def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def command_lines() -> AsyncIterator[str]:
    """This process's stdin, line by line, until the bench closes it."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        yield line.decode().strip()


_OUT = threading.Lock()


def say(line: str) -> None:
    """One whole line to the bench (from the consumer's thread or the loop)."""
    with _OUT:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


# -- the replay: one real trade file under six symbols, sent against credit -------------------


def shard_key(index: int, count: int) -> str:
    """How the replay tells shards apart: the first stream a shard's connection names."""
    return f"{owned_symbols(SYMBOLS, index, count)[0].lower()}@trade"


@dataclass
class Credit:
    frames: int = 0
    granted: asyncio.Event = field(default_factory=asyncio.Event)


class CreditReplay(ReplayServer):
    """The replay server, the source symbol's trades replayed under every symbol it serves, each
    connection's frames sent only as far as the bench has granted it (`grant KEY FRAMES`)."""

    def __init__(self, settings: ReplaySettings) -> None:
        super().__init__(settings)
        self.credits: dict[str, Credit] = {}

    def _load_market(self) -> Market:
        s = self.settings
        files = archive.trade_files(s.data_dir, SOURCE_SYMBOL)
        if not files:
            raise SystemExit(f"no {SOURCE_SYMBOL} trades in {s.data_dir} (FINPLAT_DATA_DIR)")
        return Market(
            {},
            {symbol: files for symbol in s.symbols},
            speed=s.speed,
            loop=s.loop,
            kline_intervals=s.kline_intervals,
            clock=SystemClock(),
        )

    def grant(self, key: str, frames: int) -> None:
        credit = self.credits.setdefault(key, Credit())
        credit.frames += frames
        credit.granted.set()

    async def _send(self, client: Client) -> None:
        # Replaces the server's sender: frames still come from the market through the client's
        # queue (at speed 0 the market waits while a queue is full), but leave against credit.
        credit = self.credits.setdefault(min(client.streams), Credit())
        try:
            while True:
                while credit.frames <= 0:
                    credit.granted.clear()
                    await credit.granted.wait()
                frame = await client.queue.get()
                await client.ws.send(frame, text=True)
                credit.frames -= 1
        except ConnectionClosed:
            pass
        finally:
            credit.frames = 0  # the next run's connection starts from nothing


async def serve_replay() -> None:
    settings = ReplaySettings(
        port=0,
        symbols=SYMBOLS,
        speed=0,
        loop=True,
        kline_intervals=("1m",),
        ping_interval_s=None,
        send_queue_size=50_000,
    )
    async with CreditReplay(settings) as server:
        say(f"port {server.port}")
        async for line in command_lines():
            _, key, frames = line.split()
            server.grant(key, int(frames))


# -- 1. ingest --------------------------------------------------------------------------------


@dataclass
class Row:
    path: str
    instances: int
    items: int
    seconds: float
    per_instance: list[float] = field(default_factory=list)
    lost: int | None = None
    cores: dict[str, float] = field(default_factory=dict)
    backlog: int | None = None

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Shard:
    key: str
    process: asyncio.subprocess.Process
    metrics_port: int
    log: Path


@dataclass(frozen=True)
class Sample:
    """One scrape of a shard's /metrics."""

    at: float
    delivered: float
    lost: float
    """Failed deliveries and frames dropped by the feed."""
    done: float
    """Frames accounted for: delivered, lost, refused, or not passed on (duplicates, ...)."""
    backlog: float
    """Items waiting in the fullest sink."""


_SAMPLE = re.compile(
    r"^(finplat_price_kafka_deliveries_total|finplat_price_feed_messages_total|"
    r'finplat_price_sink_refused_total|finplat_price_sink_buffered)\{\w+="(\w+)"\} (\S+)$',
    re.MULTILINE,
)


async def scrape(shard: Shard, http: httpx.AsyncClient) -> Sample:
    text = (await http.get(f"http://127.0.0.1:{shard.metrics_port}/metrics")).text
    at = time.perf_counter()
    values: dict[tuple[str, str], float] = {
        (name, label): float(value) for name, label, value in _SAMPLE.findall(text)
    }
    delivered = values.get(("finplat_price_kafka_deliveries_total", "delivered"), 0.0)
    failed = values.get(("finplat_price_kafka_deliveries_total", "failed"), 0.0)
    feed = {label: v for (name, label), v in values.items() if name.endswith("messages_total")}
    dropped = feed.get("dropped", 0.0)
    # Frames that never become a Kafka message: rejected or not passed on again.
    skipped = sum(v for label, v in feed.items() if label not in ("updates", "candles"))
    refused = values.get(("finplat_price_sink_refused_total", "kafka"), 0.0)
    buffered = [v for (name, _), v in values.items() if name == "finplat_price_sink_buffered"]
    return Sample(
        at, delivered, failed + dropped, delivered + failed + skipped + refused, max(buffered)
    )


class Driver:
    """Grants each shard frames while fewer than WINDOW of its frames are unaccounted for and
    no sink of it lags by more than SINK_BACKLOG."""

    def __init__(self, shards: Sequence[Shard], replay: Child, http: httpx.AsyncClient) -> None:
        self._shards = shards
        self._replay = replay
        self._http = http
        self._granted = [0] * len(shards)
        self.latest: list[Sample | None] = [None] * len(shards)
        # Why credit was held, per look at a shard: how far the driver itself is the limit.
        self.looks = self.held_by_window = self.held_by_backlog = 0

    async def run(self) -> None:
        while True:
            for index, shard in enumerate(self._shards):
                sample = await scrape(shard, self._http)
                self.latest[index] = sample
                outstanding = self._granted[index] - sample.done
                self.looks += 1
                if sample.backlog >= SINK_BACKLOG:
                    self.held_by_backlog += 1
                elif outstanding >= WINDOW // 2:
                    self.held_by_window += 1
                else:
                    grant = int(WINDOW - outstanding)
                    self._replay.send(f"grant {shard.key} {grant}")
                    self._granted[index] += grant
            await asyncio.sleep(PERIOD_S)

    def samples(self) -> list[Sample]:
        return [sample for sample in self.latest if sample is not None]


async def start_shards(
    count: int, replay_port: int, kafka: KafkaSettings, topic: str, scratch: str, logs: Path
) -> list[Shard]:
    shards = []
    for index in range(count):
        port = free_port()
        log = logs / f"price-{count}-{index}.log"
        environment = {
            **os.environ,
            "FINPLAT_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "FINPLAT_KAFKA_TOPIC": topic,
            "FINPLAT_REDIS_KEY_PREFIX": scratch,
            "FINPLAT_INFLUX_BUCKET": scratch,
            "FINPLAT_PRICE_GRPC_PORT": "0",
            "FINPLAT_PRICE_METRICS_PORT": str(port),
            "FINPLAT_PRICE_FEED__WS_BASE_URL": f"ws://127.0.0.1:{replay_port}",
            "FINPLAT_PRICE_FEED__REST__BASE_URL": f"http://127.0.0.1:{replay_port}",
            "FINPLAT_PRICE_FEED__SYMBOLS": json.dumps(SYMBOLS),
            "FINPLAT_PRICE_FEED__STREAM_KINDS": json.dumps(["trade"]),
            "FINPLAT_PRICE_FEED__SHARD_INDEX": str(index),
            "FINPLAT_PRICE_FEED__SHARD_COUNT": str(count),
        }
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                str(FINPLAT),
                "price",
                "serve",
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
            )
        shards.append(Shard(shard_key(index, count), process, port, log))
    return shards


async def stop_shards(shards: Sequence[Shard], timeout_s: float) -> None:
    for shard in shards:
        if shard.process.returncode is None:
            shard.process.send_signal(signal.SIGTERM)
    for shard in shards:
        try:
            await asyncio.wait_for(shard.process.wait(), timeout_s)
        except TimeoutError:
            # Nothing measured depends on a clean stop; the log is kept for whoever looks.
            shard.process.kill()
            await shard.process.wait()
            kept = REPO / "var" / "cluster_bench" / shard.log.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_bytes(shard.log.read_bytes())
            note(
                f"price service {shard.key} still stopping {timeout_s:.0f} s after SIGTERM: "
                f"killed, its log in {kept.relative_to(REPO)}"
            )


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; SystemExit after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if await condition():
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Ingest:
    """What every ingest run shares."""

    cluster: Cluster
    replay: Child
    replay_port: int
    scratch: str
    """Redis key prefix and InfluxDB bucket."""
    logs: Path
    stores: list[int]
    topics: list[str]


async def ingest_run(count: int, ingest: Ingest, args: argparse.Namespace) -> Row:
    topic = f"bench-cluster-ingest-{uuid.uuid4().hex[:12]}"
    ingest.topics.append(topic)
    kafka = ingest.cluster.kafka
    await asyncio.to_thread(create_topic, kafka, topic, PARTITIONS)
    shards = await start_shards(
        count, ingest.replay_port, kafka, topic, ingest.scratch, ingest.logs
    )
    try:
        async with httpx.AsyncClient(timeout=5) as http:

            async def connected() -> bool:
                for shard in shards:
                    if shard.process.returncode is not None:
                        tail = shard.log.read_text()[-3000:]
                        raise SystemExit(f"a price service exited:\n{tail}")
                    await scrape(shard, http)  # its metrics answer
                stats = await http.get(f"http://127.0.0.1:{ingest.replay_port}/control/stats")
                return bool(stats.json()["connections"] == count)

            await wait_for(connected, 90, f"{count} price services to connect")
            driver = Driver(shards, ingest.replay, http)
            driving = asyncio.create_task(driver.run())
            try:
                await asyncio.sleep(args.warmup_s)
                groups = {
                    "services": [shard.process.pid for shard in shards],
                    "replay": [ingest.replay.process.pid],
                    "brokers": ingest.cluster.broker_pids,
                    "stores": ingest.stores,
                }
                first = driver.samples()
                ends = await asyncio.to_thread(end_offsets, kafka, topic)
                cpu, started = cpu_now(groups), time.perf_counter()
                await asyncio.sleep(args.window_s)
                ends_after = await asyncio.to_thread(end_offsets, kafka, topic)
                wall_s = time.perf_counter() - started
                used = cores(cpu, cpu_now(groups), wall_s)
                last = driver.samples()
                looks = max(1, driver.looks)
                note(
                    f"credit held at {driver.held_by_window / looks:.0%} of looks for the window,"
                    f" {driver.held_by_backlog / looks:.0%} for a sink's backlog"
                )
                if driving.done():
                    driving.result()  # the driver failed: raise why
            finally:
                driving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await driving
    finally:
        await stop_shards(shards, 15)
    pairs = list(zip(first, last, strict=True))
    return Row(
        "ingest: price services -> topic, acknowledged",
        count,
        sum(ends_after) - sum(ends),
        wall_s,
        [(b.delivered - a.delivered) / (b.at - a.at) for a, b in pairs],
        int(sum(b.lost - a.lost for a, b in pairs)),
        used,
        int(sum(b.backlog for _, b in pairs)),
    )


@contextlib.asynccontextmanager
async def scratch_stores() -> AsyncIterator[str]:
    """A Redis key prefix and an InfluxDB bucket of this run's own (one name), removed after."""
    import redis.asyncio as aioredis  # noqa: PLC0415 - the parent's alone, see above

    from finplat.core.connections import InfluxSettings, RedisSettings  # noqa: PLC0415

    name = f"bench-cluster-{uuid.uuid4().hex[:12]}"
    influx, redis = InfluxSettings(), RedisSettings(key_prefix=name)
    headers = {"Authorization": f"Token {influx.token.get_secret_value()}"}
    async with httpx.AsyncClient(base_url=influx.url, headers=headers, timeout=30) as http:
        orgs = (await http.get("/api/v2/orgs", params={"org": influx.org})).raise_for_status()
        created = await http.post(
            "/api/v2/buckets",
            json={"name": name, "orgID": orgs.json()["orgs"][0]["id"], "retentionRules": []},
        )
        created.raise_for_status()
        try:
            yield name
        finally:
            (await http.delete(f"/api/v2/buckets/{created.json()['id']}")).raise_for_status()
            client = aioredis.Redis.from_url(redis.url)
            try:
                keys = [key async for key in client.scan_iter(match=f"{name}:*")]
                if keys:
                    await client.delete(*keys)
            finally:
                await client.aclose()


# -- 2. consumer group ------------------------------------------------------------------------


def produce(kafka: KafkaSettings, topic: str, values: list[bytes], partitions: int) -> Row:
    """Pre-encoded values round-robin over `partitions`, with the service's producer settings,
    timed from the first produce to the last acknowledgement."""
    producer = Producer(
        {
            **kafka.client_config(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    keys = [symbol.encode() for symbol in SYMBOLS]
    started = time.perf_counter()
    for index, value in enumerate(values):
        while True:
            try:
                producer.produce(
                    topic, value, key=keys[index % len(keys)], partition=index % partitions
                )
                break
            except BufferError:
                producer.poll(0.01)
    left: int = producer.flush(120)
    elapsed = time.perf_counter() - started
    where = f"{partitions} partition{'s' if partitions > 1 else ''}"
    return Row(
        f"peer: one producer -> {where}, acks=all", 1, len(values) - left, elapsed, lost=left
    )


def with_cpu(run: Callable[[], Row], cluster: Cluster) -> Row:
    """`run`'s row with the CPU of this process (the client) and of the brokers meanwhile."""
    groups = {"services": [os.getpid()], "brokers": cluster.broker_pids}
    before = cpu_now(groups)
    row = run()
    row.cores = cores(before, cpu_now(groups), row.seconds)
    return row


def raw_consume(kafka: KafkaSettings, topic: str, count: int) -> Row:
    consumer = Consumer({**kafka.client_config(), "group.id": f"bench-raw-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    got = 0
    started = time.perf_counter()
    while got < count and time.perf_counter() - started < 120:
        got += sum(1 for m in consumer.consume(10_000, 1.0) if m.error() is None)
    elapsed = time.perf_counter() - started
    consumer.close()
    return Row(f"peer: raw consume(), {PARTITIONS} partitions, no decoding", 1, got, elapsed)


class HeldSource(PriceUpdateConsumer):
    """PriceUpdateConsumer in a cooperative group whose partitions stay paused until released.

    Assigns and unassigns incrementally, as the cooperative protocol requires, pausing what it
    is given until `released` is set; every call is made on the consumer's thread (the
    callbacks run inside consume()).
    """

    def __init__(
        self, settings: KafkaSettings, group_id: str, config: Mapping[str, object] | None = None
    ) -> None:
        cooperative = {"partition.assignment.strategy": "cooperative-sticky"}
        super().__init__(settings, group_id, {**(config or {}), **cooperative})
        self.released = threading.Event()
        self._held = True
        self.assigned: set[int] = set()

    def subscribe(
        self, on_assign: OnAssign | None = None, on_revoke: OnRevoke | None = None
    ) -> None:
        def assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            numbers = [tp.partition for tp in partitions]
            starts = on_assign(numbers) if on_assign is not None else {}
            for tp in partitions:
                tp.offset = starts.get(tp.partition, OFFSET_BEGINNING)
            consumer.incremental_assign(partitions)
            if self._held:
                consumer.pause(partitions)
            self.assigned.update(numbers)
            self._report()

        def revoke(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            numbers = [tp.partition for tp in partitions]
            if on_revoke is not None:
                on_revoke(numbers)
            consumer.incremental_unassign(partitions)
            self.assigned.difference_update(numbers)
            self._report()

        self._consumer.subscribe([self.topic], on_assign=assign, on_revoke=revoke, on_lost=revoke)

    def _report(self) -> None:
        say(f"assigned {','.join(map(str, sorted(self.assigned))) or '-'}")

    def poll(self, max_messages: int, timeout_s: float) -> list[Record]:
        if self._held and self.released.is_set():
            self._consumer.resume(self._consumer.assignment())
            self._held = False
        return super().poll(max_messages, timeout_s)


async def serve_member() -> None:
    """A group member: `join BOOTSTRAP TOPIC GROUP STATE`, `go`, `leave`; says `ready`,
    `assigned P,P,...` as its assignment changes, and `left`."""
    # Imported here: the backtest service takes seconds to import, and only members need it.
    from unittest import mock  # noqa: PLC0415

    from finplat.backtest.service import app  # noqa: PLC0415
    from finplat.backtest.service.settings import BacktestSettings  # noqa: PLC0415

    say("ready")
    parts: Any = None
    running: asyncio.Task[None] | None = None
    sources: list[HeldSource] = []
    async for line in command_lines():
        words = line.split()
        if words[0] == "join":
            bootstrap, topic, group, state = words[1:]
            kafka = KafkaSettings(bootstrap_servers=bootstrap, topic=topic)
            settings = BacktestSettings(consumer_state_path=Path(state), consumer_group_id=group)

            def source(*arguments: Any) -> HeldSource:
                made = HeldSource(*arguments)
                sources.append(made)
                return made

            # The service's own wiring, with the held source in the stock one's place.
            with mock.patch.object(app, "PriceUpdateConsumer", source):
                parts = app.build_consumer(settings, kafka, threading.Lock())
            running = asyncio.create_task(parts.consumer.run())
        elif words[0] == "go":
            sources[-1].released.set()
        elif words[0] == "leave" and running is not None:
            parts.consumer.stop()
            await running
            parts.close(5.0)
            running = None
            say("left")


@dataclass
class Member:
    child: Child
    assigned: tuple[int, ...] = ()

    async def follow(self) -> None:
        while True:
            words = (await self.child.line(3600)).split()
            if words[0] == "assigned":
                self.assigned = tuple(int(p) for p in words[1].split(",") if p != "-")
            elif words[0] == "left":
                return


async def group_run(
    size: int, members: Sequence[Member], cluster: Cluster, topic: str, count: int, folder: Path
) -> Row:
    group = f"bench-cluster-{uuid.uuid4().hex[:12]}"
    joined = members[:size]
    followers = [asyncio.create_task(member.follow()) for member in joined]
    try:
        for index, member in enumerate(joined):
            state = folder / f"{group}-{index}.sqlite3"
            member.child.send(f"join {cluster.kafka.bootstrap_servers} {topic} {group} {state}")

        async def balanced() -> bool:
            for follower in followers:
                if follower.done():
                    follower.result()  # raises what ended it
                    raise RuntimeError("a group member left before it was released")
            shares = [len(m.assigned) for m in joined]
            return sum(shares) == PARTITIONS and min(shares) == PARTITIONS // size

        await wait_for(balanced, 120, f"{size} members to share {PARTITIONS} partitions")
        await asyncio.sleep(0.5)  # no rebalance left under way
        if not await balanced():
            raise SystemExit("the group's assignment changed after it was complete")
        watcher = Consumer({**cluster.kafka.client_config(), "group.id": group})
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        groups = {"members": [m.child.process.pid for m in joined], "brokers": cluster.broker_pids}
        shares = [m.assigned for m in joined]
        cpu, started = cpu_now(groups), time.perf_counter()
        for member in joined:
            member.child.send("go")
        offsets = [0] * PARTITIONS
        while sum(offsets) < count and time.perf_counter() - started < 300:
            await asyncio.sleep(0.02)
            found = await asyncio.to_thread(watcher.committed, partitions, 10)
            offsets = [max(0, tp.offset) for tp in found]
        seconds = time.perf_counter() - started
        used = cores(cpu, cpu_now(groups), seconds)
        watcher.close()
    finally:
        for member in joined:
            member.child.send("leave")
        await asyncio.wait_for(asyncio.gather(*followers), 60)
    return Row(
        "consumers: statistics consumer group, drained",
        size,
        sum(offsets),
        seconds,
        [sum(offsets[p] for p in share) / seconds for share in shares],
        None,
        used,
    )


async def consumers(
    cluster: Cluster, members: Sequence[Member], topics: list[str], args: argparse.Namespace,
    folder: Path,
) -> list[Row]:  # fmt: skip
    from kafka_security_bench import price_updates  # noqa: PLC0415 - the parent's alone

    from finplat.kafka.serde import PriceUpdateSerializer, registry_client  # noqa: PLC0415

    run = uuid.uuid4().hex[:12]
    topic, single = f"bench-cluster-group-{run}", f"bench-cluster-single-{run}"
    topics += [topic, single]
    create_topic(cluster.kafka, topic, PARTITIONS)
    create_topic(cluster.kafka, single, 1)
    note(f"encoding {args.count:,} PriceUpdates")
    with registry_client(cluster.kafka) as registry:
        encode = PriceUpdateSerializer(registry, topic)
        values = [encode(update) for update in price_updates(args.count)]
    note("peers: producer, raw consume()")
    peers = [
        with_cpu(lambda: produce(cluster.kafka, single, values, 1), cluster),
        with_cpu(lambda: produce(cluster.kafka, topic, values, PARTITIONS), cluster),
        with_cpu(lambda: raw_consume(cluster.kafka, topic, args.count), cluster),
    ]
    rows = []
    for size in args.members:
        note(f"consumer group of {size}")
        row = await group_run(size, members, cluster, topic, args.count, folder)
        note(f"{size} member(s): {row.rate:,.0f} msg/s")
        rows.append(row)
    return rows + peers


# -- main -------------------------------------------------------------------------------------


def cells(row: Row, reference: Row | None) -> list[str]:
    ratio = f"{row.rate / reference.rate:.2f}" if reference is not None and reference.rate else ""
    each = " / ".join(f"{rate:,.0f}" for rate in row.per_instance)
    used = row.cores

    def share(name: str) -> str:
        return f"{used[name]:.2f}" if name in used else ""

    def per_item(name: str) -> str:
        return f"{1e6 * used[name] / row.rate:.0f}" if name in used and row.rate else ""

    return [
        row.path,
        str(row.instances),
        f"{row.items:,}",
        f"{row.seconds:.2f}",
        f"{row.rate:,.0f}",
        f"{row.rate / row.instances:,.0f}",
        each if len(row.per_instance) > 1 else "",
        ratio,
        "" if row.lost is None else f"{row.lost:,}",
        "" if row.backlog is None else f"{row.backlog:,}",
        share("services") or share("members"),
        share("replay"),
        share("brokers"),
        share("stores"),
        share(""),
        per_item("services") or per_item("members"),
        per_item("brokers"),
    ]


async def bench(args: argparse.Namespace) -> None:
    from price_bench import table  # noqa: PLC0415 - the parent's alone, see above

    load = os.getloadavg()[0]
    topics: list[str] = []
    with tempfile.TemporaryDirectory(prefix="finplat-cluster-bench-") as scratch:
        folder = Path(scratch)
        (folder / "stack").mkdir()
        # Started first: they import while the cluster forms.
        replay = await Child.spawn("replay")
        children = [replay] + [await Child.spawn("member") for _ in range(max(args.members))]
        try:
            async with kafka_cluster(folder / "stack") as cluster:
                # Closed before the cluster stops: their clients would retry it, and say so.
                try:
                    port = int((await replay.line(120)).split()[1])
                    members = [Member(child) for child in children[1:]]
                    for member in members:
                        await member.child.line(120)  # ready
                    idle = await asyncio.to_thread(settle, cluster)
                    note(f"cluster settled: its {BROKERS} nodes idle at {idle:.2f} cores")
                    async with scratch_stores() as stores_name:
                        shared = Ingest(
                            cluster, replay, port, stores_name, folder, default_stack_pids(), topics
                        )
                        ingest_rows = []
                        for count in args.shards:
                            note(f"ingest with {count} shard(s)")
                            row = await ingest_run(count, shared, args)
                            note(f"{count} shard(s): {row.rate:,.0f} updates/s")
                            ingest_rows.append(row)
                    group_rows = await consumers(cluster, members, topics, args, folder)
                finally:
                    for child in children:
                        await child.close()
        finally:
            delete_subjects(topics)
    one_shard = next((r for r in ingest_rows if r.instances == 1), None)
    one_member = next((r for r in group_rows if r.instances == 1 and r.path[0] == "c"), None)
    rows = [cells(row, one_shard) for row in ingest_rows]
    rows += [cells(row, one_member if row.path[0] == "c" else None) for row in group_rows]
    print(
        f"\nStreaming on a {BROKERS}-node Kafka cluster ({PARTITIONS} partitions, {REPLICAS} "
        f"replicas, min.insync.replicas {MIN_INSYNC}), {os.cpu_count()} cores, loopback, load "
        f"average {load:.1f} at start; the {BROKERS} nodes idle: {idle:.2f} cores.\nIngest: "
        f"`trade` streams of {len(SYMBOLS)} symbols, {args.window_s:.0f} s after "
        f"{args.warmup_s:.0f} s warm-up. Consumers: {args.count:,} PriceUpdates.\n"
    )
    header = ["path", "N", "items", "s", "items/s", "per instance", "each instance"]
    header += ["ratio to N=1", "lost", "backlog", "N's cores", "replay cores", "broker cores"]
    header += ["stores cores", "machine cores", "N's CPU us/item", "broker CPU us/item"]
    print(table(header, rows))
    print(
        "(ingest items: how far the topic's high watermarks moved, i.e. acknowledged by 2 of 3\n"
        " replicas; each instance: its own delivery reports (ingest), its partitions' committed\n"
        " offsets (consumers); lost: failed deliveries and feed drops; backlog: items waiting in\n"
        " the fullest sink of each shard at the end, summed; cores: CPU over the measured time,\n"
        " 1.00 = one core busy; N's: the price services, the group members, or the peer's client\n"
        " (this process); stores: the default stack's Redis, InfluxDB and registry; CPU us/item:\n"
        " those cores over items/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window-s", type=float, default=10.0, help="ingest measurement")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="ingest warm-up")
    parser.add_argument("--count", type=int, default=200_000, help="messages the group drains")
    parser.add_argument("--shards", default="1,2,3", help="price-service shard counts")
    parser.add_argument("--members", default="1,2", help="consumer group sizes")
    parser.add_argument(
        "--role", choices=["bench", "replay", "member"], default="bench", help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    args.shards = [int(n) for n in args.shards.split(",")]
    args.members = [int(n) for n in args.members.split(",")]
    if args.role == "replay":
        eventloop.run(serve_replay())
    elif args.role == "member":
        eventloop.run(serve_member())
    else:
        eventloop.run(bench(args))


if __name__ == "__main__":
    main()
