"""`http_source` against a hand-written httpx loop reading the same pages of the same local API.

The test API (tests/http_api_server.py, uvicorn on 127.0.0.1, its own process) serves
``--records`` records in pages of ``--page-size`` with a ``next_cursor`` in the body. The sesa
variant iterates ``http_source(url, paginate=cursor(...))``; the baseline is a loop over one
``httpx.Client`` that GETs each page, decodes it with orjson and walks ``data.items``; both
count the records they get in the same plain ``for`` loop (what `run` and `pipe` add per
record is measured by overhead.py, not here).
Every run is a fresh subprocess; variants alternate; the best of ``--repeat`` runs each is
compared. ``ratio`` = baseline_s / sesa_s (throughput of sesa relative to the loop).

    python benchmarks/http_read.py --records 200000 --page-size 1000 --repeat 3
"""

from __future__ import annotations

import argparse
import sys

from _common import REPO, child_result, clock, emit, log, run_child

sys.path.insert(0, str(REPO / "tests"))


def sesa_read(url: str, page_size: int) -> None:
    from sesa_fp.sources.http import http_source
    from sesa_fp.sources.pagination import cursor

    start = clock()
    src = http_source(url, paginate=cursor(first_params={"limit": page_size}))
    n = 0
    for _rec in src:
        n += 1
    child_result(start, variant="sesa", records=n, pages=src.pages)


def baseline_read(url: str, page_size: int) -> None:
    import httpx
    import orjson

    start = clock()
    n = pages = 0
    params: dict[str, object] = {"limit": page_size}
    with httpx.Client(timeout=30.0) as client:
        while True:
            response = client.get(url, params=params)
            response.raise_for_status()
            body = orjson.loads(response.content)
            pages += 1
            for _rec in body["data"]["items"]:
                n += 1
            nxt = body.get("next_cursor")
            if not nxt:
                break
            params = {"limit": page_size, "cursor": nxt}
    child_result(start, variant="baseline", records=n, pages=pages)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--page-size", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each variant (best is kept)")
    ap.add_argument("--variant", choices=["sesa", "baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.variant:  # child process: one run of one variant
        read = sesa_read if args.variant == "sesa" else baseline_read
        read(args.url, args.page_size)
        return

    from http_api_server import serve

    with serve() as api:
        url = api.scenario("bench", total=args.records) + "/cursor"
        times: dict[str, list[float]] = {"sesa": [], "baseline": []}
        cpu: dict[str, list[float]] = {"sesa": [], "baseline": []}
        for i in range(args.repeat):
            order = ["sesa", "baseline"] if i % 2 == 0 else ["baseline", "sesa"]
            for variant in order:
                r = run_child("http_read.py", "--variant", variant, "--url", url,
                              "--page-size", str(args.page_size))
                if r["records"] != args.records:
                    raise SystemExit(f"{variant} read {r['records']} != {args.records}")
                times[variant].append(r["elapsed_s"])
                cpu[variant].append(r["cpu_s"])
                log(f"run {i + 1}/{args.repeat} {variant:<8} {r['elapsed_s']:.2f}s (CPU "
                    f"{r['cpu_s']:.2f}s) {r['pages']} pages")
    sesa_s, baseline_s = min(times["sesa"]), min(times["baseline"])
    emit({
        "records": args.records,
        "page_size": args.page_size,
        "sesa_s": sesa_s,
        "baseline_s": baseline_s,
        "sesa_records_per_s": round(args.records / sesa_s),
        "baseline_records_per_s": round(args.records / baseline_s),
        "ratio": round(baseline_s / sesa_s, 4),
        "cpu_ratio": round(min(cpu["baseline"]) / min(cpu["sesa"]), 4),
        "sesa_runs_s": times["sesa"],
        "baseline_runs_s": times["baseline"],
    })


if __name__ == "__main__":
    main()
