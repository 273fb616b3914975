"""Adaptive against fixed bulk concurrency on a search node with a tiny write queue.

The same N docs are loaded with ``load_es(concurrency=MAX)`` (fixed) and with
``load_es(concurrency=START, max_concurrency=MAX)`` (AIMD), alternating, ``--repeat`` times.
Per variant: wall time, items the engine answered 429 (each retry counts), retry rounds, and
for the adaptive run the limit's range and number of cuts. Both indices are counted.

Without ``--url`` the repository's node (services.sh) is (re)started with a tiny write queue
(``SEARCH_EXTRA_SETTINGS="thread_pool.write.queue_size=2 thread_pool.write.size=1"``) and
stopped at the end; a node started with other settings is restarted by the services script.

    python benchmarks/es_adaptive.py --docs 50000 [--max 8 --start 2] [--url URL]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from _common import REPO, emit, log
from es_load import count, create, drop, search_node

TINY = "thread_pool.write.queue_size=2 thread_pool.write.size=1"


def load(url: str, index: str, n: int, batch: int, start: int, maximum: int | None,
         retries: int) -> dict[str, Any]:
    from sesa_fp import pipe, run
    from sesa_fp.loaders.search import load_es

    docs = ({"k": f"k{i}", "n": i, "text": f"document {i} " * 8} for i in range(n))
    loader = load_es(hosts=[url], dataset=index, id_strategy={"type": "field", "field": "k"},
                     actions_per_batch=batch, concurrency=start, max_concurrency=maximum,
                     max_retries=retries, retry_backoff=0.1)
    t0 = time.perf_counter()
    report = run(pipe(docs, loader), progress=False)
    took = time.perf_counter() - t0
    if report.loaded != n or report.dead_letters:
        raise SystemExit(f"loaded {report.loaded} of {n}, {report.dead_letters} dead letters")
    out = next(o for o in report.outputs if o.get("kind") == "search")
    res: dict[str, Any] = {"s": round(took, 3), "throttled_items": out["throttled_items"],
                           "retry_rounds": report.retries,
                           "requests": out["bulk_latency"]["count"]}
    if "concurrency" in out:
        c = out["concurrency"]
        res.update(min_limit=c["min_seen"], max_limit=c["max_seen"], cuts=c["decreases"],
                   changes=len(c["timeline"]) - 1)
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=50_000)
    ap.add_argument("--url", default=None)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--max", type=int, default=8, help="fixed concurrency / adaptive maximum")
    ap.add_argument("--start", type=int, default=2, help="adaptive starting concurrency")
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--retries", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {"fixed": [], "adaptive": []}
    with search_node(args.url, None if args.url else TINY) as url:
        for rep in range(args.repeat):
            for variant in ("fixed", "adaptive") if rep % 2 == 0 else ("adaptive", "fixed"):
                index = f"bench-aimd-{variant}-{time.monotonic_ns()}"
                create(url, index, args.shards)
                try:
                    if variant == "fixed":
                        r = load(url, index, args.docs, args.batch, args.max, None,
                                 args.retries)
                    else:
                        r = load(url, index, args.docs, args.batch, args.start, args.max,
                                 args.retries)
                    if count(url, index) != args.docs:
                        raise SystemExit(f"{variant}: documents missing in {index}")
                finally:
                    drop(url, index)
                log(f"{variant}: {r}")
                runs[variant].append(r)
    best = {v: min(rs, key=lambda r: r["s"]) for v, rs in runs.items()}
    f429 = sum(r["throttled_items"] for r in runs["fixed"])
    a429 = sum(r["throttled_items"] for r in runs["adaptive"])
    emit({"docs": args.docs, "batch": args.batch, "max": args.max, "start": args.start,
          "repeat": args.repeat, "fixed_s": best["fixed"]["s"],
          "adaptive_s": best["adaptive"]["s"],
          "speed_ratio": round(best["fixed"]["s"] / best["adaptive"]["s"], 3),
          "fixed_429_items": f429, "adaptive_429_items": a429,
          "429_ratio": round(a429 / f429, 3) if f429 else None,
          "fixed_runs": runs["fixed"], "adaptive_runs": runs["adaptive"]})


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
