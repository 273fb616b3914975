"""Index-to-index copy: ``es_source -> load_es`` against the engine's own ``_reindex``.

A source index of N RFI-like documents is seeded first; then it is copied into a fresh index
with ``es_source(fields=["_id", "*"]) -> load_es`` and into another with ``POST _reindex``
(run as a task, timed until the task completes, polled every 50 ms). Both copies are counted.
A third copy runs ``elasticdump`` (npm; installed into .services/tools/ on first use, or
``$ELASTICDUMP``) with ``--limit`` = ``--batch``. Every variant runs in a fresh process whose
whole CPU time (user + system, start-up and imports included) is ``<variant>_cpu_s``; for
``_reindex`` that is only the client that starts and polls the task. The last stdout line is
JSON: per variant ``_s`` (the copy), ``_proc_s`` (the whole process), ``_cpu_s`` and
``_docs_per_s``; ``ratio`` (sesa / reindex docs/s), ``ratio_vs_elasticdump`` (whole process
against whole process) and ``cpu_ratio_vs_elasticdump`` (sesa CPU / elasticdump CPU; lower is
cheaper). ``--repeat`` takes the best of alternating runs.

    python benchmarks/es_copy.py --docs 100000 [--url http://127.0.0.1:PORT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, emit, log, run_measured, write_input
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


ELASTICDUMP_VERSION = "6.125.1"
ELASTICDUMP_PREFIX = REPO / ".services" / "tools" / "elasticdump"


def elasticdump_bin() -> str:
    """``$ELASTICDUMP``, or elasticdump installed (once) with npm into .services/tools/."""
    if os.environ.get("ELASTICDUMP"):
        return os.environ["ELASTICDUMP"]
    path = ELASTICDUMP_PREFIX / "node_modules" / ".bin" / "elasticdump"
    if not path.exists():
        if not shutil.which("npm"):
            raise SystemExit("elasticdump needs Node.js with npm (apt-get install -y nodejs npm)")
        log(f"installing elasticdump@{ELASTICDUMP_VERSION} into {ELASTICDUMP_PREFIX} (npm)")
        subprocess.run(["npm", "install", "--prefix", str(ELASTICDUMP_PREFIX), "--no-audit",
                        "--no-fund", "--loglevel=error", f"elasticdump@{ELASTICDUMP_VERSION}"],
                       check=True, stdout=sys.stderr)
    return str(path)


def elasticdump_cmd(url: str, src: str, dst: str, batch: int) -> list[str]:
    # --limit: documents per scroll page and per bulk request, as --batch is for the others
    return [elasticdump_bin(), f"--input={url}/{src}", f"--output={url}/{dst}", "--type=data",
            f"--limit={batch}", "--quiet"]


VARIANTS = ("sesa", "reindex", "elasticdump")


def child(args: argparse.Namespace) -> None:
    """One variant in this (fresh) process: the copy's own wall time as JSON."""
    if args.variant == "sesa":
        took = copy_sesa(args.url, args.src, args.dst, args.batch, args.threads, args.slices)
    else:
        took = copy_reindex(args.url, args.src, args.dst, args.batch, args.slices)
    print(json.dumps({"job_s": round(took, 3)}), flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--url", default=None)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--slices", type=int, default=1)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs, order alternating")
    ap.add_argument("--skip", action="append", default=[], choices=VARIANTS,
                    help="leave a variant out (repeatable)")
    ap.add_argument("--variant", choices=("sesa", "reindex"), help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--dst", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.variant:
        return child(args)
    variants = [v for v in VARIANTS if v not in args.skip]
    src = f"bench-copy-src-{time.monotonic_ns()}"
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp, search_node(args.url) as url:
        inp = write_input(Path(tmp) / "docs.jsonl", args.docs, compress=False)
        create(url, src, args.shards)
        try:
            log(f"seeding {src} with {args.docs:,} docs")
            load_helpers(url, inp, src, args.batch, args.threads)
            if count(url, src) != args.docs:
                raise SystemExit("seeding lost documents")
            for rep in range(args.repeat):
                order = variants if rep % 2 == 0 else variants[::-1]
                for variant in order:
                    dst = f"bench-copy-{variant}-{time.monotonic_ns()}"
                    create(url, dst, args.shards)
                    try:
                        log(f"{variant}: copying into {dst}")
                        if variant == "elasticdump":
                            r = run_measured(elasticdump_cmd(url, src, dst, args.batch))
                            r["job_s"] = r["proc_s"]
                        else:
                            r = run_measured(["es_copy.py", "--variant", variant, "--url", url,
                                              "--src", src, "--dst", dst,
                                              "--batch", str(args.batch),
                                              "--threads", str(args.threads),
                                              "--slices", str(args.slices)])
                            r["job_s"] = r["child"]["job_s"]
                        n = count(url, dst)
                        if n != args.docs:
                            raise SystemExit(f"{variant}: {n} docs in {dst}, "
                                             f"expected {args.docs}")
                    finally:
                        drop(url, dst)
                    log(f"{variant}: {r['job_s']:.2f}s job, {r['proc_s']:.2f}s process, "
                        f"CPU {r['cpu_s']:.2f}s, {args.docs / r['job_s']:,.0f} docs/s")
                    runs[variant].append(r)
        finally:
            drop(url, src)
    best = {v: min(rs, key=lambda r: r["job_s"]) for v, rs in runs.items()}
    cpu = {v: min(r["cpu_s"] for r in rs) for v, rs in runs.items()}
    out: dict[str, Any] = {"docs": args.docs, "batch": args.batch, "threads": args.threads,
                           "slices": args.slices, "repeat": args.repeat}
    for v in variants:
        out[f"{v}_s"] = best[v]["job_s"]
        out[f"{v}_proc_s"] = best[v]["proc_s"]
        out[f"{v}_cpu_s"] = cpu[v]
        out[f"{v}_docs_per_s"] = round(args.docs / best[v]["job_s"])
    if "sesa" in runs and "reindex" in runs:
        out["ratio"] = round(best["reindex"]["job_s"] / best["sesa"]["job_s"], 3)
    if "sesa" in runs and "elasticdump" in runs:
        # elasticdump's time is its whole process; compare sesa's whole process with it
        out["ratio_vs_elasticdump"] = round(
            best["elasticdump"]["proc_s"] / best["sesa"]["proc_s"], 3)
        out["cpu_ratio_vs_elasticdump"] = round(cpu["sesa"] / cpu["elasticdump"], 3)
    emit(out)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
