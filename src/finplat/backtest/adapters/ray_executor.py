"""Sweep chunks as tasks on a Ray cluster: the Ray adapter, the one module that imports ray.

The service is the cluster's driver. A job's bars, config and strategy go to the object store
once (`ray.put`); each chunk is one task (one CPU) that gets them from there. A worker process
builds the job (and its indicator memo, never shipped) the first time it sees those bars and
keeps it for the next chunks of the same job. A task lost with its worker or node is run again
elsewhere (`max_retries`); a stop cancels every task not handed over yet.

Strategies: a built-in, or one of an installed package's entry points, is found by name on the
workers, which need the same packages (finplat's image has them). A strategy *file* is loaded
under a module name that exists only in this process (`strategy_loader.FILE_MODULES`), so
its module is pickled by value: the spec travels with the job and is registered in the
worker. That works on any cluster, where loading the same directories in the worker would
need the files at the same paths on every node.
"""

import logging
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ray
from ray import cloudpickle
from ray.exceptions import RayTaskError

from finplat.backtest.adapters.strategy_loader import FILE_MODULES
from finplat.backtest.adapters.sweep_executor import OnChunk
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.domain.strategies import REGISTRY, Indicators, Params, Registered
from finplat.backtest.domain.sweep import SweepJob

logger = logging.getLogger(__name__)

# Ray's default for system failures (the worker or node died), kept explicit: a task of a lost
# node runs again on another. A strategy's own error is not retried.
TASK_RETRIES = 3
# How often the driver looks at the stop flag while it waits for chunks.
_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class _Shipment:
    """What a worker needs to build a job: put in the object store once per job."""

    bars: Bars
    config: EngineConfig
    strategy: Registered


# In each Ray worker process: the job of the last shipment it ran, by object id. Its memo of
# indicators serves every chunk of that job the worker gets.
_WORKER_JOB: dict[str, SweepJob] = {}


def _worker_job(shipped: "ray.ObjectRef[_Shipment]") -> SweepJob:
    key = shipped.hex()
    job = _WORKER_JOB.get(key)
    if job is None:
        shipment = ray.get(shipped)
        spec = shipment.strategy.spec
        if spec.name not in REGISTRY.names():  # a strategy file's, shipped by value
            REGISTRY.add(spec, shipment.strategy.source)
        job = SweepJob(shipment.bars, spec.name, shipment.config, Indicators(shipment.bars))
        _WORKER_JOB.clear()
        _WORKER_JOB[key] = job
    return job


class _ChunkFailedError(Exception):
    """A chunk's error on its way back to the driver. Pickle rebuilds an exception by calling
    its class with ``args``, which our domain errors (``StrategyFailedError(strategy, reason)``)
    do not take: this carries the class, the message and the attributes instead."""

    def __init__(self, kind: type[Exception], message: str, state: dict[str, object]) -> None:
        super().__init__(kind, message, state)

    def rebuilt(self) -> Exception:
        kind, message, state = self.args
        error: Exception = kind.__new__(kind)
        error.args = (message,)
        error.__dict__.update(state)
        return error


def _run_chunk(shipped: "list[ray.ObjectRef[_Shipment]]", chunk: list[Params]) -> list[Metrics]:
    # The reference comes in a list so that Ray hands it over unresolved: a worker that has
    # the job already does not fetch the bars again.
    try:
        return _worker_job(shipped[0]).run(chunk)
    except Exception as exc:
        raise _ChunkFailedError(type(exc), str(exc), dict(getattr(exc, "__dict__", {}))) from exc


_CHUNK_TASK = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_run_chunk)


def _shipment(job: SweepJob) -> _Shipment:
    (registered,) = [entry for entry in REGISTRY.entries() if entry.spec.name == job.strategy]
    spec = registered.spec
    for function in (spec.signal_fn, spec.check, spec.portfolio_fn):
        module = sys.modules.get(getattr(function, "__module__", "") or "")
        if module is not None and module.__name__.startswith(f"{FILE_MODULES}."):
            cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]
    return _Shipment(job.bars, job.config, registered)


class RayExecutor:
    """Chunks as tasks of the Ray cluster at ``address`` (`ray://host:10001`, `host:6379`, or
    `auto` for the one `ray start` runs on this machine), connected on first use."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._lock = threading.Lock()
        self._connected = False

    def _connect(self) -> None:
        with self._lock:
            if not self._connected:
                ray.init(
                    address=self._address,
                    ignore_reinit_error=True,
                    logging_level=logging.WARNING,
                    include_dashboard=False,
                )
                self._connected = True
                logger.info("connected to the Ray cluster at %s", self._address)

    def parallelism(self) -> int:
        """The cluster's CPUs now."""
        self._connect()
        cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
        return max(1, int(cpus))

    def run_chunks(
        self,
        job: SweepJob,
        chunks: Mapping[int, Sequence[Params]],
        stop: threading.Event,
        on_chunk: OnChunk,
    ) -> None:
        """See `SweepExecutor.run_chunks`; a stop cancels the tasks (their workers are killed)
        and returns at once."""
        if not chunks:
            return
        self._connect()
        shipped = ray.put(_shipment(job))
        pending = {
            _CHUNK_TASK.remote([shipped], list(chunks[index])): index for index in sorted(chunks)
        }
        try:
            while pending and not stop.is_set():
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=_POLL_S)
                for ref in ready:
                    index = pending.pop(ref)
                    try:
                        metrics: list[Metrics] = ray.get(ref)
                    except RayTaskError as exc:
                        # The strategy's or engine's own error, as the local executor raises it
                        # (so it maps to the same status), caused by Ray's (the worker's
                        # traceback).
                        cause = exc.cause
                        if isinstance(cause, _ChunkFailedError):
                            cause = cause.rebuilt()
                        raise cause from exc
                    if not stop.is_set():
                        on_chunk(index, metrics)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        with self._lock:
            if self._connected:
                ray.shutdown()
                self._connected = False
