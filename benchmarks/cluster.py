"""The price of moving to a Dask cluster: the lesson's CPU-bound pipeline
stage and tiny tasks on a two-worker process pool (the stdlib's, cfutures')
and on a ClusterExecutor over a two-worker LocalCluster on this machine.

    python3 benchmarks/cluster.py               # 5 interleaved repetitions
    python3 benchmarks/cluster.py --repeat 3

Needs Dask's distributed (pip install 'cfutures[dask]').  The cluster is
started once (its start-up time is printed on its own), then every
repetition runs each workload on each executor, in an order that
alternates, so drift in load hits all alike.  Printed: medians with the
min-max over the repetitions.
    pipeline_stage2   exercise 3's CPU stage: map() of 6 calls of ~0.1 s
                      (sum of squares to 1,000,000), wall seconds
    per_task_overhead map() of 1,000 calls that do nothing (x + 1), wall
                      seconds per call: what a call costs beyond its work
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.dirname(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (HERE, os.environ.get("PYTHONPATH")) if p)

import bench_tasks  # noqa: E402


def pipeline_stage2(ex):
    t0 = time.perf_counter()
    results = list(ex.map(bench_tasks.sum_of_squares, range(6)))
    elapsed = time.perf_counter() - t0
    assert len(set(results)) == 1
    return elapsed


def per_task_overhead(ex, n=1000):
    t0 = time.perf_counter()
    results = list(ex.map(bench_tasks.tiny, range(n)))
    elapsed = time.perf_counter() - t0
    assert results == [i + 1 for i in range(n)]
    return elapsed / n


WORKLOADS = (pipeline_stage2, per_task_overhead)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import concurrent.futures
    import multiprocessing
    import cfutures
    from cfutures.distributed import ClusterExecutor

    fork = multiprocessing.get_context("fork")
    t0 = time.perf_counter()
    cluster = ClusterExecutor(max_workers=2)
    startup = time.perf_counter() - t0
    executors = {
        "stdlib ProcessPoolExecutor": concurrent.futures.ProcessPoolExecutor(2, mp_context=fork),
        "cfutures ProcessPoolExecutor": cfutures.ProcessPoolExecutor(2, mp_context=fork),
        "ClusterExecutor (LocalCluster)": cluster,
    }
    samples = {(w.__name__, name): [] for w in WORKLOADS for name in executors}
    try:
        for ex in executors.values():        # workers started, imports done
            list(ex.map(bench_tasks.tiny, range(20)))
        for rep in range(args.repeat):
            order = list(executors.items())
            if rep % 2:
                order.reverse()
            for workload in WORKLOADS:
                for name, ex in order:
                    samples[workload.__name__, name].append(workload(ex))
    finally:
        for ex in executors.values():
            ex.shutdown()

    print("LocalCluster of 2 workers: started in %.1f s" % startup)
    print("%-18s %-32s %12s %22s" % ("workload", "executor", "median", "min-max"))
    for workload in WORKLOADS:
        unit, scale = ("s", 1) if workload is pipeline_stage2 else ("us", 1e6)
        for name in executors:
            values = samples[workload.__name__, name]
            print("%-18s %-32s %9.3g %s %12.3g-%.3g" % (
                workload.__name__, name, statistics.median(values) * scale, unit,
                min(values) * scale, max(values) * scale))
    print("%d repetitions, interleaved; Python %s" % (args.repeat, sys.version.split()[0]))


if __name__ == "__main__":
    main()
