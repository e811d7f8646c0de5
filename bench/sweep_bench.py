"""Sweep benchmark: a 10,000-combination SMA crossover grid on 1,000,000 one-minute bars.

Rows, each in a fresh process (so peak memory is the row's own): our sweep kernel on the
whole grid (both cores), our kernel on a 100-combination slice of it, and vectorbt on the same
slice (it cannot hold the whole grid: each of its (bars x combinations) arrays is 8 MB per
combination), compared per combination; then the whole grid through the Ray executor on a
local two-node cluster (one CPU a node, started for the row), against the kernel row, which is
the local executor's way (threads of one process). Figures are ratios within one run; absolute
rates depend on the machine.
"""

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import vectorbt as vbt  # type: ignore[import-untyped]
from backtest_bench import million_bars

from finplat.backtest.adapters.ray_executor import RayExecutor
from finplat.backtest.adapters.sweep_executor import run_sweep, split
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import EngineConfig
from finplat.backtest.domain.metrics import Metrics
from finplat.backtest.domain.strategies import Params
from finplat.backtest.domain.sweep import SweepJob, plan_sweep, rank_key
from finplat.stack.ray_nodes import LocalRayCluster, group_and_descendants, local_ray_cluster

FEE = 0.001
GRID = {"fast": list(range(2, 102)), "slow": list(range(110, 1110, 10))}
SLICE = {"fast": list(range(2, 102, 10)), "slow": list(range(110, 1110, 100))}
# vectorbt takes the slice in batches of this many columns, to stay within memory.
VBT_BATCH = 10
# The Ray row: nodes of one CPU each, and the grid cut into as many chunks (tasks) as the
# service's operations cut a sweep into (`_CHUNKS` of backtest/service/operations.py).
RAY_NODES = 2
RAY_CHUNKS = 200


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _shifted(state: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    out = np.zeros_like(state)
    out[1:] = state[:-1]
    return out


def _vectorbt_batch(bars: Bars, pairs: list[tuple[int, int]]) -> npt.NDArray[np.float64]:
    """vectorbt's best form: every pair a column of one portfolio, our fill convention
    (decided at a close, filled at the next open), its stats per column; total returns back."""
    index = pd.to_datetime(bars.open_time_ms, unit="ms")
    close = pd.Series(bars.close, index=index)
    fast = vbt.MA.run(close, [f for f, _ in pairs]).ma.to_numpy()
    slow = vbt.MA.run(close, [s for _, s in pairs]).ma.to_numpy()
    columns = pd.Index([f"{f}/{s}" for f, s in pairs])
    frame = pd.DataFrame
    pf = vbt.Portfolio.from_signals(
        frame(np.broadcast_to(bars.close[:, None], fast.shape), index, columns),
        entries=frame(_shifted(fast > slow), index, columns),
        short_entries=frame(_shifted(fast < slow), index, columns),
        price=frame(np.broadcast_to(bars.open[:, None], fast.shape), index, columns),
        fees=FEE,
        init_cash=1e40,
        freq="1min",
    )
    pf.sharpe_ratio()
    pf.max_drawdown()
    pf.trades.win_rate()
    returns: npt.NDArray[np.float64] = pf.total_return().to_numpy()
    return returns


def _pairs(grid: dict[str, list[int]]) -> list[tuple[int, int]]:
    return [(f, s) for f in grid["fast"] for s in grid["slow"]]


def _summary(results: Iterable[tuple[Params, Metrics]]) -> dict[str, Any]:
    """The combinations, the best by Sharpe (the first of equals in the order given: a report's
    ranked order, or the grid's), and a hash of every metric of every combination by (fast,
    slow): equal results, equal digests (repr writes each float exactly, NaN included)."""
    pairs = list(results)
    key = rank_key("sharpe")
    best_params, best = min(pairs, key=lambda pair: key(pair[1]))
    by_pair = {(int(params.fast), int(params.slow)): astuple(m) for params, m in pairs}
    text = repr([(pair, by_pair[pair]) for pair in sorted(by_pair)])
    return {
        "combos": len(pairs),
        "best": f"{best_params.as_dict()} sharpe {best.sharpe:.3f}",
        "digest": hashlib.sha256(text.encode()).hexdigest()[:16],
    }


def _run_on_ray(
    executor: RayExecutor, job: SweepJob, chunks: Mapping[int, Sequence[Params]]
) -> list[Metrics]:
    """The chunks as the service's operations run them, their metrics collected by index; each
    combination's metrics, in the chunks' order."""
    done: dict[int, list[Metrics]] = {}
    lock = threading.Lock()

    def on_chunk(index: int, metrics: list[Metrics]) -> None:
        with lock:
            done[index] = metrics

    executor.run_chunks(job, chunks, threading.Event(), on_chunk)
    if sorted(done) != sorted(chunks):
        raise RuntimeError(f"{len(chunks) - len(done)} of {len(chunks)} chunks were not returned")
    return [m for index in sorted(done) for m in done[index]]


def _worker_peaks_mib(cluster: LocalRayCluster) -> list[float]:
    """Peak resident memory (VmHWM) of each of the cluster's worker processes (`ray::IDLE`,
    `ray::_run_chunk`; not its agents, `ray::DashboardAgent` and `ray::RuntimeEnvAgent`)."""
    peaks = []
    for group in cluster.groups:
        for pid in group_and_descendants(group):
            proc = Path("/proc") / str(pid)
            try:
                name = (proc / "cmdline").read_bytes().split(b"\0")[0].strip()
                if not name.startswith(b"ray::") or name.endswith(b"Agent"):
                    continue
                status = (proc / "status").read_text().splitlines()
            except OSError:  # ended meanwhile
                continue
            peaks += [int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")]
    return sorted(peaks, reverse=True)


def measure_ray(bars: Bars, config: EngineConfig) -> dict[str, Any]:
    """The whole grid on a local cluster of `RAY_NODES` nodes of one CPU, timed from the chunks'
    submission (the bars put in the object store included) to the last chunk's metrics; the
    cluster's start, the connection and a warm-up sweep not."""
    with local_ray_cluster(nodes=RAY_NODES, cpus_per_node=1) as cluster:
        executor = RayExecutor(cluster.address)
        try:
            cpus = executor.parallelism()  # connects
            # Warm-up: a sweep of the slice on a few bars, in several chunks a CPU so that
            # every node runs some, starts its worker and loads the compiled kernels (numba's
            # cache) before the timed sweep.
            start = time.perf_counter()
            warm = plan_sweep(bars.slice(0, 5_000), "sma_crossover", SLICE, config)
            _run_on_ray(executor, warm.job, split(warm.combos, 4 * cpus))
            warmup_seconds = time.perf_counter() - start
            # As the service's operations cut a sweep: `RAY_CHUNKS` chunks, one task each.
            plan = plan_sweep(bars, "sma_crossover", GRID, config)
            chunks = split(plan.combos, RAY_CHUNKS)
            start = time.perf_counter()
            metrics = _run_on_ray(executor, plan.job, chunks)
            seconds = time.perf_counter() - start
            workers_mib = _worker_peaks_mib(cluster)
        finally:
            executor.close()
    return {
        "seconds": seconds,
        "peak_mib": _peak_mib(),  # the driver's
        "workers_peak_mib": workers_mib,
        "cpus": cpus,
        "warmup_seconds": warmup_seconds,
        **_summary(zip(plan.combos, metrics, strict=True)),
    }


def measure(part: str, bars_n: int) -> dict[str, Any]:
    warnings.simplefilter("ignore")  # third-party deprecation chatter, not results
    bars, note = million_bars(bars_n)
    config = EngineConfig(1e40, fee_bps=FEE * 1e4)
    if part == "ray":
        return {**measure_ray(bars, config), "note": note}
    if part == "vectorbt":
        pairs = _pairs(SLICE)
        _vectorbt_batch(bars.slice(0, 5_000), pairs[:2])  # compile its numba functions
        start = time.perf_counter()
        batches = [pairs[i : i + VBT_BATCH] for i in range(0, len(pairs), VBT_BATCH)]
        returns = np.concatenate([_vectorbt_batch(bars, batch) for batch in batches])
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "combos": len(pairs), "peak_mib": _peak_mib(),
                "returns": returns.tolist()}  # fmt: skip
    grid = GRID if part == "kernel" else SLICE
    run_sweep(bars.slice(0, 5_000), "sma_crossover", SLICE, config, workers=2)  # JIT warm-up
    start = time.perf_counter()
    report = run_sweep(bars, "sma_crossover", grid, config, workers=2)
    seconds = time.perf_counter() - start
    by_pair = {(int(r.params.fast), int(r.params.slow)): r.metrics for r in report.results}
    return {
        "seconds": seconds,
        "peak_mib": _peak_mib(),
        "note": note,
        **_summary((r.params, r.metrics) for r in report.results),
        "returns": [by_pair[p].total_return for p in _pairs(SLICE)] if part != "kernel" else [],
    }


PARTS = ("kernel", "kernel-slice", "vectorbt", "ray")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--only", choices=PARTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.only, args.bars)))
        return
    rows: dict[str, dict[str, Any]] = {}
    for part in PARTS:
        cmd = [sys.executable, __file__, "--only", part, *sys.argv[1:]]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows[part] = json.loads(out.strip().splitlines()[-1])
    grid_n = len(GRID["fast"]) * len(GRID["slow"])
    print(f"data: {rows['kernel']['note']}")
    print(
        f"workload: SMA crossover long/short, fee {FEE * 1e4:.0f} bps a side, next-open fills, "
        f"all metrics; grid fast {GRID['fast'][0]}..{GRID['fast'][-1]} x slow "
        f"{GRID['slow'][0]}..{GRID['slow'][-1]} step 10 = {grid_n:,} combinations; slice "
        f"fast {SLICE['fast'][0]}..{SLICE['fast'][-1]} step 10 x slow {SLICE['slow'][0]}.."
        f"{SLICE['slow'][-1]} step 100 = {len(_pairs(SLICE))}; each row in a fresh process"
    )
    print(f"  kernel best: {rows['kernel']['best']}")
    ours, theirs = np.array(rows["kernel-slice"]["returns"]), np.array(rows["vectorbt"]["returns"])
    # Final equity: ours closes the last position at the last close and pays its exit fee,
    # vectorbt's total return marks it open; so they differ by about one fee. Combinations the
    # fees wiped out (under 1% of the capital left) are left out of the relative figure.
    alive = (1.0 + theirs) > 0.01
    gap = float(np.max(np.abs(ours[alive] - theirs[alive]) / (1.0 + theirs[alive])))
    print(
        f"  slice, same targets: final equity ours vs vectorbt differs by at most {gap:.2e} of "
        f"vectorbt's (ours pays the last exit's fee, {FEE:g}; vectorbt leaves it open), over the "
        f"{int(alive.sum())} combinations with 1% of the capital left"
    )
    print(f"\n{'row':<34} {'seconds':>9} {'ms/combo':>9} {'bar-combos/s':>15} {'peak MiB':>9}")
    per_combo = {}
    for part, label in zip(PARTS, LABELS, strict=True):
        row = rows[part]
        per_combo[part] = row["seconds"] / row["combos"]
        rate = args.bars * row["combos"] / row["seconds"]
        print(
            f"{label:<34} {row['seconds']:>9.2f} {per_combo[part] * 1e3:>9.3f} {rate:>15.3g} "
            f"{row['peak_mib']:>9.0f}"
        )
    print(
        f"\nper combination: whole-grid kernel {per_combo['vectorbt'] / per_combo['kernel']:.1f}x "
        f"faster than vectorbt, slice kernel "
        f"{per_combo['vectorbt'] / per_combo['kernel-slice']:.1f}x (targets: whole grid <= 20 s, "
        ">= 10x vectorbt, peak <= 1024 MiB)"
    )
    ray, local = rows["ray"], rows["kernel"]
    same = (ray["combos"], ray["best"], ray["digest"]) == (
        local["combos"], local["best"], local["digest"]
    )  # fmt: skip
    ratio, overhead = ray["seconds"] / local["seconds"], ray["seconds"] - local["seconds"]
    workers = ", ".join(f"{mib:.0f}" for mib in ray["workers_peak_mib"])
    print(
        f"\nRay executor, whole grid: {ray['seconds']:.2f} s, {ratio:.2f}x the local executor's "
        f"{local['seconds']:.2f} s (the kernel row; overhead {overhead:+.2f} s)"
        f"\n  both on {ray['cpus']} CPUs: local, {ray['cpus']} threads of one process sharing one "
        f"indicator memo; Ray, {RAY_NODES} nodes of one CPU each on this same machine, a worker "
        f"process each with its own memo, the grid in {RAY_CHUNKS} chunks (tasks) as the service "
        "cuts it, the bars through the object store: above 1x is what Ray costs"
        "\n  timed from the chunks' submission (the bars' `ray.put` included) to the last "
        "chunk's metrics; not counted: the cluster's start, the connection, and a warm-up sweep "
        f"({ray['warmup_seconds']:.1f} s: worker start-up, numba cache loading)"
        f"\n  peak memory: the driver's in the table; the workers' {workers} MiB"
    )
    print(
        f"  Ray's results {'equal' if same else 'DIFFER FROM'} the local kernel's: best "
        f"{ray['best']}; digest of all {ray['combos']:,} combinations' metrics {ray['digest']}"
        + ("" if same else f" vs {local['digest']}, best {local['best']}")
    )
    if not same:
        sys.exit(1)


LABELS = (
    f"kernel, {len(GRID['fast']) * len(GRID['slow']):,} combos, 2 threads",
    f"kernel, {len(_pairs(SLICE))}-combo slice, 2 threads",
    f"vectorbt, {len(_pairs(SLICE))}-combo slice, {VBT_BATCH} a batch",
    f"Ray, {len(GRID['fast']) * len(GRID['slow']):,} combos, {RAY_NODES} nodes x 1 CPU",
)


if __name__ == "__main__":
    main()
