"""Per-item cost of `map_concurrent`'s thread window against the standard library's executor.

Both map a trivial function over N integers on W threads with at most ``window`` items in
flight, in input order: sesa through ``map_concurrent(fn, workers=W, window=...)``, the
baseline as a hand-written loop over `concurrent.futures.ThreadPoolExecutor` with a deque of
futures (submit while fewer than ``window`` are pending, then yield the oldest's result). The
function does almost nothing, so the time is the window's own bookkeeping and the hand-offs
between threads. Every run is a fresh subprocess; the variants alternate; the best of
``--repeat`` runs each is compared.

    python benchmarks/window.py --items 200000 --repeat 5
"""

from __future__ import annotations

import argparse
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from _common import child_result, clock, emit, log, run_child

VARIANTS = ("sesa", "executor")


def work(x: int) -> int:
    return x * 2 + 1


def executor_map(items: range, workers: int, window: int) -> Iterator[int]:
    """The baseline: the same ordered, bounded window over ThreadPoolExecutor."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[int]] = deque()
        for x in items:
            if len(pending) >= window:
                yield pending.popleft().result()
            pending.append(pool.submit(work, x))
        while pending:
            yield pending.popleft().result()


def child(variant: str, items: int, workers: int, window: int) -> None:
    from sesa_fp import map_concurrent, pipe

    data = range(items)
    start = clock()
    if variant == "sesa":
        total = sum(pipe(data, map_concurrent(work, workers=workers, window=window)))
    else:
        total = sum(executor_map(data, workers, window))
    end = clock()
    if total != sum(map(work, data)):
        raise SystemExit(f"{variant}: wrong sum {total}")
    child_result(start, end, variant=variant, items=items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5, help="runs of each variant (best is kept)")
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.variant:  # child process: one run of one variant
        child(args.variant, args.items, args.workers, args.window)
        return

    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for i in range(args.repeat):
        for variant in VARIANTS if i % 2 == 0 else reversed(VARIANTS):
            r = run_child("window.py", "--variant", variant, "--items", str(args.items),
                          "--workers", str(args.workers), "--window", str(args.window))
            times[variant].append(r["elapsed_s"])
            cpu[variant].append(r["cpu_s"])
            log(f"run {i + 1}/{args.repeat} {variant:<8} {r['elapsed_s']:.2f}s "
                f"(CPU {r['cpu_s']:.2f}s)")
    sesa_s, base_s = min(times["sesa"]), min(times["executor"])
    emit({
        "items": args.items,
        "workers": args.workers,
        "window": args.window,
        "sesa_s": sesa_s,
        "executor_s": base_s,
        "ratio": round(sesa_s / base_s, 4),
        "cpu_ratio": round(min(cpu["sesa"]) / min(cpu["executor"]), 4),
        "sesa_us_per_item": round(sesa_s / args.items * 1e6, 2),
        "executor_us_per_item": round(base_s / args.items * 1e6, 2),
        "sesa_runs_s": times["sesa"],
        "executor_runs_s": times["executor"],
    })


if __name__ == "__main__":
    main()
