"""Sweeps and walk-forwards on a real Ray cluster: a head and a second node started on this
machine with `ray start`, the backtest service its driver (FINPLAT_BACKTEST_SWEEP_EXECUTOR=ray).

A sweep survives the second node killed in its middle with the result the service's own
threads compute; a cancel stops the cluster's tasks; a walk-forward's folds equal the local
executor's. The sweeps run a strategy *file* (the numpy example, 20 ms slower a combination, so
that a sweep lasts seconds whatever the engine's speed), which the workers get by value.
"""

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
import ray
from google.longrunning import operations_pb2  # type: ignore[import-untyped]
from google.protobuf.duration_pb2 import Duration

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.adapters.ray_executor import RayExecutor
from finplat.backtest.adapters.strategy_loader import load_user_strategies
from finplat.backtest.adapters.sweep_executor import LocalExecutor, SweepExecutor
from finplat.backtest.domain.strategies import REGISTRY
from finplat.backtest.service.runs import Limits
from finplat.stack.ray_nodes import LocalRayCluster, local_ray_cluster
from tests.paths import REPO_ROOT
from tests.support import eventually_async
from tests.unit.backtest.api_harness import (
    DAY_MS,
    NOV_1_MS,
    Harness,
    rpc_error,
    run_request,
    serve_harness,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

STRATEGY = "slow_numpy_sma_crossover"
FAILING_STRATEGY = "failing_strategy"
DELAY_S = 0.02
LIMITS = Limits(max_bars=100_000)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[LocalRayCluster]:
    """A head and a second node of one CPU each on this machine."""
    with local_ray_cluster(nodes=2, cpus_per_node=1, object_store_bytes=200_000_000) as cluster:
        yield cluster


FAILING = f'''"""A strategy whose signal always raises."""

from finplat.strategy import ParamSpec, StrategySpec


def fail(bars, params, indicators):
    raise ValueError("no signal today")


STRATEGY = StrategySpec(
    name="{FAILING_STRATEGY}",
    description="raises",
    schema=(ParamSpec("fast", int, 10, 1, 1000, "unused"),),
    signal_fn=fail,
)
'''


@pytest.fixture(scope="module")
def strategy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two strategy files: the numpy example renamed and 20 ms slower a combination, and one
    that fails."""
    text = (REPO_ROOT / "examples/strategies/numpy_sma_crossover.py").read_text()
    replacements = {
        "import numpy as np\n": "import time\n\nimport numpy as np\n",
        "    fast, slow = sma(": f"    time.sleep({DELAY_S})\n    fast, slow = sma(",
        'name="numpy_sma_crossover"': f'name="{STRATEGY}"',
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    directory = tmp_path_factory.mktemp("strategies")
    (directory / "slow_crossover.py").write_text(text)
    (directory / "failing.py").write_text(FAILING)
    return directory


@pytest.fixture
def user_strategies(strategy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The two strategy files in the process's registry, as the service loads its strategy
    dirs; removed afterwards."""
    monkeypatch.setattr(REGISTRY, "_entries", dict(REGISTRY._entries))
    load_user_strategies([strategy_dir])


@pytest_asyncio.fixture
async def on_ray(ray_cluster: LocalRayCluster, tmp_path: Path) -> AsyncIterator[Harness]:
    """The backtest service, its operations on the Ray cluster (closed with the service)."""
    async with serve_harness(tmp_path, LIMITS, RayExecutor(ray_cluster.address)) as harness:
        yield harness


def _sweep(
    strategy: str, fast: int, slow: int | None = None
) -> backtest_service_pb2.StartSweepRequest:
    """fast 2..`fast` x slow 20..`slow` over the harness's first day of BTCUSDT 1m."""
    base = run_request(end_ms=NOV_1_MS + DAY_MS)
    grid = {"fast": backtest_pb2.ParameterRange(start=2, stop=fast, step=1)}
    if slow is not None:
        grid["slow"] = backtest_pb2.ParameterRange(start=20, stop=slow, step=1)
    sweep = backtest_service_pb2.RunSweepRequest(
        strategy=strategy, grid=grid, data=base.data, config=base.config, rank_by="sharpe"
    )
    return backtest_service_pb2.StartSweepRequest(sweep=sweep)


def _progress(operation: Any) -> backtest_service_pb2.SweepProgress:
    progress = backtest_service_pb2.SweepProgress()
    assert operation.metadata.Unpack(progress)
    return progress


async def _wait(service: Harness, name: str, seconds: float) -> Any:
    timeout = Duration()
    timeout.FromMilliseconds(int(seconds * 1000))
    request = operations_pb2.WaitOperationRequest(name=name, timeout=timeout)
    return await service.operations.WaitOperation(request, timeout=seconds + 5)


async def _until_a_chunk_is_done(service: Harness, name: str) -> Any:
    async for operation in service.stub.WatchOperation(
        backtest_service_pb2.WatchOperationRequest(name=name)
    ):
        if _progress(operation).done_combinations > 0 or operation.done:
            return operation
    raise AssertionError("the watch ended before the operation was done")


def _results(sweep: backtest_pb2.Sweep) -> list[bytes]:
    # As bytes: a NaN metric equals itself there, and every field is compared.
    return [result.SerializeToString(deterministic=True) for result in sweep.results]


def _cpus() -> tuple[float, float]:
    """The cluster's CPUs: in all, and free now."""
    total: float = ray.cluster_resources().get("CPU", 0.0)  # type: ignore[no-untyped-call]
    free: float = ray.available_resources().get("CPU", 0.0)  # type: ignore[no-untyped-call]
    return total, free


def _every_cpu_busy() -> bool:
    total, free = _cpus()
    return total > 0 and free == 0


def _every_cpu_free() -> bool:
    total, free = _cpus()
    return total > 0 and free == total


@pytest.mark.usefixtures("user_strategies")
async def test_a_cancel_stops_the_clusters_tasks(on_ray: Harness) -> None:
    # 30 x 80 combinations of 20 ms: a minute of work for the two CPUs.
    started = await on_ray.stub.StartSweep(_sweep(STRATEGY, fast=31, slow=99))
    await _until_a_chunk_is_done(on_ray, started.name)
    await eventually_async(_every_cpu_busy, timeout_s=30, interval_s=0.05)

    await on_ray.operations.CancelOperation(
        operations_pb2.CancelOperationRequest(name=started.name)
    )
    ended = await _wait(on_ray, started.name, seconds=5)

    assert ended.error.code == grpc.StatusCode.CANCELLED.value[0]
    progress = _progress(ended)
    assert 0 < progress.done_combinations < progress.total_combinations
    # Its tasks are cancelled, not left to run: the cluster's CPUs are free again.
    await eventually_async(_every_cpu_free, timeout_s=10, interval_s=0.05)


@pytest.mark.usefixtures("user_strategies")
async def test_a_sweep_survives_a_node_killed_in_its_middle(
    ray_cluster: LocalRayCluster, on_ray: Harness
) -> None:
    request = _sweep(STRATEGY, fast=11, slow=49)  # 10 x 30 combinations of 20 ms
    started = await on_ray.stub.StartSweep(request)
    await _until_a_chunk_is_done(on_ray, started.name)
    # Both nodes at work, then the second one gone at once.
    await eventually_async(_every_cpu_busy, timeout_s=30, interval_s=0.05)
    killed_at = await on_ray.operations.GetOperation(
        operations_pb2.GetOperationRequest(name=started.name)
    )
    ray_cluster.kill_node(1)
    killed = time.monotonic()

    ended = await _wait(on_ray, started.name, seconds=120)
    recovered_s = time.monotonic() - killed
    local = (await on_ray.stub.RunSweep(request.sweep)).sweep  # the service's own threads

    assert not killed_at.done
    assert _progress(killed_at).done_combinations < _progress(killed_at).total_combinations
    assert ended.done
    assert not ended.HasField("error"), ended.error
    swept = backtest_pb2.Sweep()
    assert ended.response.Unpack(swept)
    assert _progress(ended).done_combinations == _progress(ended).total_combinations == 300
    assert len(swept.results) == 300
    assert _results(swept) == _results(local)
    assert recovered_s < 60


async def test_a_walk_forward_on_the_cluster_equals_the_local_one(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    base = run_request()
    request = backtest_service_pb2.StartWalkForwardRequest(
        strategy="sma_crossover",
        grid={"fast": backtest_pb2.ParameterRange(start=5, stop=15, step=5),
              "slow": backtest_pb2.ParameterRange(start=20, stop=60, step=20)},
        data=base.data, config=base.config, rank_by="sharpe", folds=3, in_sample_ratio=2,
    )  # fmt: skip
    ended = []
    executors: list[SweepExecutor] = [RayExecutor(ray_cluster.address), LocalExecutor(2)]
    for index, executor in enumerate(executors):
        async with serve_harness(tmp_path / str(index), LIMITS, executor) as service:
            started = await service.stub.StartWalkForward(request)
            operation = await _wait(service, started.name, seconds=60)
            result = backtest_service_pb2.WalkForward()
            assert operation.response.Unpack(result), operation.error
            result.ClearField("id")
            result.ClearField("create_time")
            ended.append(result.SerializeToString(deterministic=True))

    assert ended[0] == ended[1]


@pytest.mark.usefixtures("user_strategies")
async def test_a_strategys_error_on_the_cluster_fails_the_sweep_as_it_does_here(
    on_ray: Harness,
) -> None:
    request = _sweep(FAILING_STRATEGY, fast=5)

    started = await on_ray.stub.StartSweep(request)
    ended = await _wait(on_ray, started.name, seconds=60)
    here = await rpc_error(on_ray.stub.RunSweep(request.sweep))

    assert here[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert "ValueError: no signal today" in here[1]
    assert (ended.error.code, ended.error.message) == (here[0].value[0], here[1])
