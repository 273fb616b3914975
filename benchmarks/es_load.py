"""Bulk-load throughput: ``load_es`` against the client's own ``helpers.parallel_bulk``.

The same N RFI-like documents (a JSONL file written first) are loaded into two fresh indices of
the search node, once with ``read_jsonl -> load_es`` and once with opensearch-py's
``helpers.parallel_bulk`` (same batch size, same thread count). Both indices are then counted.
The last stdout line is JSON: ``docs``, ``sesa_docs_per_s``, ``helpers_docs_per_s``, ``ratio``
(sesa / helpers; >= 1 means sesa is as fast or faster), and the client's cost: each variant
runs in a fresh process, whose whole CPU time (user + system, all threads, interpreter start
and imports included) gives ``sesa_cpu_s``, ``helpers_cpu_s`` and ``cpu_ratio`` (sesa /
helpers; lower is cheaper); ``*_proc_s`` is that process's wall time. ``--repeat`` takes the
best of alternating runs.

    python benchmarks/es_load.py --docs 100000 [--url http://127.0.0.1:PORT]

Without ``--url`` the node is started with ``scripts/services.sh start search`` (and stopped
again at the end if this script started it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from _common import REPO, emit, log, run_measured, write_input

SERVICES = REPO / "scripts" / "services.sh"


@contextlib.contextmanager
def search_node(url: str | None, settings: str | None = None) -> Iterator[str]:
    """``url``, or a node started with the services script for the duration; ``settings``
    (``SEARCH_EXTRA_SETTINGS``) restart a running node with them, and stop it at the end."""
    if url:
        yield url.rstrip("/")
        return
    status = subprocess.run([str(SERVICES), "status", "search"], capture_output=True,
                            text=True, check=False)
    was_running = "SEARCH_URL=" in status.stdout and not settings
    env = {**os.environ, "SEARCH_EXTRA_SETTINGS": settings} if settings else None
    proc = subprocess.run([str(SERVICES), "start", "search"], capture_output=True, text=True,
                          env=env, check=False)
    found = [ln.split("=", 1)[1] for ln in proc.stdout.splitlines()
             if ln.startswith("SEARCH_URL=")]
    if proc.returncode != 0 or not found:
        raise SystemExit(f"cannot start the search node:\n{proc.stderr[-2000:]}")
    try:
        yield found[0]
    finally:
        if not was_running:
            subprocess.run([str(SERVICES), "stop", "search"], capture_output=True, check=False)


def client(url: str) -> Any:
    from opensearchpy import OpenSearch

    return OpenSearch(hosts=[url], timeout=600)


def count(url: str, index: str) -> int:
    c = client(url)
    c.indices.refresh(index=index)
    return int(c.count(index=index)["count"])


def create(url: str, index: str, shards: int) -> None:
    client(url).indices.create(index=index, body={"settings": {"number_of_shards": shards}})


def drop(url: str, *indices: str) -> None:
    client(url).indices.delete(index=",".join(indices), ignore_unavailable=True)


def load_sesa(url: str, inp: Path, index: str, batch: int, threads: int) -> float:
    from sesa_fp import pipe, read_jsonl, run
    from sesa_fp.loaders.search import load_es

    t0 = time.perf_counter()
    report = run(pipe(read_jsonl(str(inp)), load_es(hosts=[url], dataset=index,
                                                    actions_per_batch=batch,
                                                    concurrency=threads)), progress=False)
    elapsed = time.perf_counter() - t0
    if report.dead_letters:
        raise SystemExit(f"sesa: {report.dead_letters} dead letters")
    return elapsed


def load_helpers(url: str, inp: Path, index: str, batch: int, threads: int) -> float:
    from opensearchpy import helpers

    def actions() -> Iterator[dict[str, Any]]:
        with inp.open("rb") as f:
            for line in f:
                doc = orjson.loads(line)
                yield {"_index": index, "_id": doc.pop("_id"), "_source": doc}

    c = client(url)
    t0 = time.perf_counter()
    failed = 0
    for ok, _info in helpers.parallel_bulk(c, actions(), thread_count=threads,
                                           chunk_size=batch, raise_on_error=False):
        failed += not ok
    elapsed = time.perf_counter() - t0
    if failed:
        raise SystemExit(f"helpers: {failed} failed")
    return elapsed


VARIANTS = {"sesa": load_sesa, "helpers": load_helpers}


def child(args: argparse.Namespace) -> None:
    """One variant in this (fresh) process: the job's own wall time as JSON."""
    took = VARIANTS[args.variant](args.url, args.input, args.index, args.batch, args.threads)
    print(orjson.dumps({"job_s": round(took, 3)}).decode(), flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--url", default=None)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs, order alternating")
    ap.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--index", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.variant:
        return child(args)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp, search_node(args.url) as url:
        inp = write_input(Path(tmp) / "docs.jsonl", args.docs, compress=False)
        for rep in range(args.repeat):
            order = ("helpers", "sesa") if rep % 2 == 0 else ("sesa", "helpers")
            for variant in order:
                index = f"bench-load-{variant}-{time.monotonic_ns()}"
                create(url, index, args.shards)
                try:
                    log(f"{variant}: loading {args.docs:,} docs into {index}")
                    r = run_measured(["es_load.py", "--variant", variant, "--url", url,
                                      "--input", str(inp), "--index", index,
                                      "--batch", str(args.batch),
                                      "--threads", str(args.threads)])
                    n = count(url, index)
                    if n != args.docs:
                        raise SystemExit(f"{variant}: {n} docs in {index}, "
                                         f"expected {args.docs}")
                finally:
                    drop(url, index)
                r["job_s"] = r["child"]["job_s"]
                log(f"{variant}: {r['job_s']:.2f}s job, {r['proc_s']:.2f}s process, "
                    f"CPU {r['cpu_s']:.2f}s, {args.docs / r['job_s']:,.0f} docs/s")
                runs[variant].append(r)
    best = {v: min(rs, key=lambda r: r["job_s"]) for v, rs in runs.items()}
    cpu = {v: min(r["cpu_s"] for r in rs) for v, rs in runs.items()}
    sesa_dps = args.docs / best["sesa"]["job_s"]
    helpers_dps = args.docs / best["helpers"]["job_s"]
    emit({"docs": args.docs, "batch": args.batch, "threads": args.threads,
          "repeat": args.repeat,
          "sesa_s": best["sesa"]["job_s"], "helpers_s": best["helpers"]["job_s"],
          "sesa_proc_s": best["sesa"]["proc_s"], "helpers_proc_s": best["helpers"]["proc_s"],
          "sesa_cpu_s": cpu["sesa"], "helpers_cpu_s": cpu["helpers"],
          "sesa_docs_per_s": round(sesa_dps), "helpers_docs_per_s": round(helpers_dps),
          "ratio": round(sesa_dps / helpers_dps, 3),
          "cpu_ratio": round(cpu["sesa"] / cpu["helpers"], 3),
          "sesa_cpu_us_per_doc": round(cpu["sesa"] / args.docs * 1e6, 1),
          "helpers_cpu_us_per_doc": round(cpu["helpers"] / args.docs * 1e6, 1)})


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
