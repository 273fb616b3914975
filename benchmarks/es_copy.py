"""Index-to-index copy: ``es_source -> load_es`` against the engine's own ``_reindex``.

A source index of N RFI-like documents is seeded first; then it is copied into a fresh index
with ``es_source(fields=["_id", "*"]) -> load_es`` and into another with ``POST _reindex``
(run as a task, timed until the task completes, polled every 50 ms). Both copies are counted.
The last stdout line is JSON: ``docs``, ``sesa_docs_per_s``, ``reindex_docs_per_s``, ``ratio``
(sesa / reindex); ``--repeat`` takes the best of alternating runs.

    python benchmarks/es_copy.py --docs 100000 [--url http://127.0.0.1:PORT]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, emit, log, write_input
from es_load import client, count, create, drop, load_helpers, search_node


def copy_sesa(url: str, src: str, dst: str, batch: int, threads: int, slices: int) -> float:
    from sesa_fp import pipe, run
    from sesa_fp.loaders.search import load_es
    from sesa_fp.sources.search import es_source

    t0 = time.perf_counter()
    report = run(pipe(es_source(hosts=[url], index=src, fields=["_id", "*"], page_size=batch,
                                slices=slices),
                      load_es(hosts=[url], dataset=dst, actions_per_batch=batch,
                              concurrency=threads)), progress=False)
    elapsed = time.perf_counter() - t0
    if report.dead_letters:
        raise SystemExit(f"sesa: {report.dead_letters} dead letters")
    return elapsed


def copy_reindex(url: str, src: str, dst: str, batch: int, slices: int) -> float:
    c = client(url)
    t0 = time.perf_counter()
    # run as a task and wait on it: OpenSearch 2.19 answers a synchronous _reindex with one
    # TASK_RESOURCE_USAGE header per batch, more than an HTTP client accepts
    task = c.reindex(body={"source": {"index": src, "size": batch}, "dest": {"index": dst}},
                     params={"wait_for_completion": "false", "slices": str(slices)})["task"]
    while True:
        state = c.tasks.get(task_id=task)
        if state.get("completed"):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    resp = state.get("response") or {}
    if state.get("error") or resp.get("failures"):
        raise SystemExit(f"reindex failed: {state.get('error') or resp['failures'][:3]}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--url", default=None)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--slices", type=int, default=1)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs, order alternating")
    args = ap.parse_args(argv)
    src = f"bench-copy-src-{time.monotonic_ns()}"
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, search_node(args.url) as url:
        inp = write_input(Path(tmp) / "docs.jsonl", args.docs, compress=False)
        create(url, src, args.shards)
        try:
            log(f"seeding {src} with {args.docs:,} docs")
            load_helpers(url, inp, src, args.batch, args.threads)
            if count(url, src) != args.docs:
                raise SystemExit("seeding lost documents")
            for rep in range(args.repeat):
                order = ("reindex", "sesa") if rep % 2 == 0 else ("sesa", "reindex")
                for variant in order:
                    dst = f"bench-copy-{variant}-{time.monotonic_ns()}"
                    create(url, dst, args.shards)
                    try:
                        log(f"{variant}: copying into {dst}")
                        if variant == "sesa":
                            took = copy_sesa(url, src, dst, args.batch, args.threads,
                                             args.slices)
                        else:
                            took = copy_reindex(url, src, dst, args.batch, args.slices)
                        n = count(url, dst)
                        if n != args.docs:
                            raise SystemExit(f"{variant}: {n} docs in {dst}, "
                                             f"expected {args.docs}")
                    finally:
                        drop(url, dst)
                    log(f"{variant}: {took:.2f}s, {args.docs / took:,.0f} docs/s")
                    times[variant] = min(took, times.get(variant, took))
        finally:
            drop(url, src)
    sesa_dps = args.docs / times["sesa"]
    reindex_dps = args.docs / times["reindex"]
    emit({"docs": args.docs, "batch": args.batch, "threads": args.threads,
          "slices": args.slices, "repeat": args.repeat, "sesa_s": round(times["sesa"], 3),
          "reindex_s": round(times["reindex"], 3), "sesa_docs_per_s": round(sesa_dps),
          "reindex_docs_per_s": round(reindex_dps),
          "ratio": round(sesa_dps / reindex_dps, 3)})


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
