"""Scale-out: a CPU-bound, pure-Python text transform on threads vs worker processes, and the
same job's partitions on a Dask LocalCluster of 1 vs 2 worker processes.

    python benchmarks/scale.py --records 40000

Threads and processes run ``map_concurrent(chain(stage(text_features)), workers=W)`` over
batches (W = the machine's cores); their outputs must be identical (sha256 over the records,
in order). The Dask runs split the input into 4 partitions, one task each, on a cluster
started before the clock starts. Last line: JSON with ``process_speedup`` (threads time /
processes time) and ``dask_speedup`` (1 worker / 2 workers), plus the load average, since
other work on the machine moves both. Input is generated before the clock starts; a warm-up
run starts the process pool's forkserver first (each timed pool still starts its workers).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Iterator
from typing import Any

import orjson
from _common import emit, log, records

ROUNDS = 6  # passes of the per-character loop: sets the CPU cost per record


def text_features(rec: dict[str, Any]) -> dict[str, Any]:
    """Pure-Python text work on one record: word counts, a rolling fingerprint, trigrams."""
    text = f"{rec['title']} {rec['question']}".lower()
    counts: dict[str, int] = {}
    for word in text.split():
        w = "".join(ch for ch in word if ch.isalnum())
        counts[w] = counts.get(w, 0) + 1
    fp = 0
    for _ in range(ROUNDS):
        for ch in text:
            fp = (fp * 31 + ord(ch)) & 0xFFFFFFFF
    grams = {text[i:i + 3] for i in range(len(text) - 2)}
    top = max(counts, key=counts.__getitem__) if counts else None
    return {"_id": rec["_id"], "words": len(counts), "top": top, "fp": fp, "grams": len(grams)}


class Slice:
    """Partition ``i`` of ``parts``: ``n // parts`` synthetic records (seeded by ``i``), made
    where it is read (a Dask task pickles this, not the records)."""

    def __init__(self, i: int, parts: int, n: int) -> None:
        self.i, self.parts, self.n = i, parts, n

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return records(self.n // self.parts, seed=self.i)

    def __repr__(self) -> str:
        return f"Slice({self.i}, {self.parts}, {self.n})"


def local_run(data: list[dict[str, Any]], workers: int, processes: bool
              ) -> tuple[float, str, int]:
    from sesa_fp import batched, chain, map_concurrent, pipe, run, stage, tee, unbatched

    n = len(data)
    digest = hashlib.sha256()

    def keep(rec: dict[str, Any]) -> None:
        digest.update(orjson.dumps(rec))

    t0 = time.perf_counter()
    report = run(pipe(data, batched(500),
                      map_concurrent(chain(stage(text_features)), workers=workers,
                                     window=workers * 2, processes=processes),
                      unbatched(), tee(keep)), progress=False)
    elapsed = time.perf_counter() - t0
    assert report.conserved and report.emitted == n, report
    return elapsed, digest.hexdigest(), report.emitted


def dask_run(n: int, workers: int, parts: int) -> float:
    import distributed

    from sesa_fp import merge, pipe, run, stage
    from sesa_fp.executors import DaskExecutor

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        # warm the workers (imports) before the clock starts
        with distributed.Client(cluster) as client:
            client.run(lambda: __import__("sesa_fp.executors.dask"))
        pipeline = pipe(merge(*(Slice(i, parts, n) for i in range(parts))),
                        stage(text_features))
        t0 = time.perf_counter()
        report = run(pipeline, progress=False,
                     executor=DaskExecutor(address=cluster.scheduler_address))
        elapsed = time.perf_counter() - t0
    assert report.conserved and report.read == n // parts * parts, report
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--skip-dask", action="store_true")
    args = ap.parse_args()
    n, w = args.records, args.workers
    load_before = os.getloadavg()
    log(f"{n} records, {w} workers; load average {load_before}")
    data = list(records(n))  # made before the clock starts
    # warm-up: the forkserver starts once per process and preloads sesa_fp; later pools fork
    # from it (a pool still starts its workers inside the timed run)
    local_run(data[:200], w, processes=True)
    t_threads, d_threads, _ = local_run(data, w, processes=False)
    log(f"threads: {t_threads:.2f}s")
    t_procs, d_procs, _ = local_run(data, w, processes=True)
    log(f"processes: {t_procs:.2f}s")
    assert d_threads == d_procs, "threads and processes gave different outputs"
    result: dict[str, Any] = {
        "benchmark": "scale", "records": n, "workers": w, "cpus": os.cpu_count(),
        "threads_s": round(t_threads, 3), "processes_s": round(t_procs, 3),
        "process_speedup": round(t_threads / t_procs, 3),
        "outputs_identical": d_threads == d_procs,
    }
    if not args.skip_dask:
        t1 = dask_run(n, 1, parts=4)
        log(f"dask, 1 worker: {t1:.2f}s")
        t2 = dask_run(n, 2, parts=4)
        log(f"dask, 2 workers: {t2:.2f}s")
        result.update(dask_1_worker_s=round(t1, 3), dask_2_workers_s=round(t2, 3),
                      dask_speedup=round(t1 / t2, 3))
    result["loadavg_before"] = [round(x, 2) for x in load_before]
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    emit(result)


if __name__ == "__main__":
    main()
