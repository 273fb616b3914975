"""Reading a PostgreSQL table: ``sql_source`` against a hand-written psycopg server-side cursor.

A table of N RFI-like rows (bigint key, texts with non-ASCII and empty values, int, numeric,
two timestamptz with nulls, boolean) is filled on the server (``generate_series``). Each
variant runs in a fresh interpreter and turns every row into a record dict:

- ``sesa``: ``for rec in sql_source(url, "SELECT * FROM t", chunk_size=C)``;
- ``raw``: psycopg 3, one named (server-side) cursor, ``fetchmany(C)`` and
  ``dict(zip(names, row))`` per row — the least a hand-written extraction does.

Both check the row count and the sum of the keys. The last stdout line is JSON: ``rows``,
``sesa_s``, ``raw_s`` (best of ``--repeat``, order alternating), ``sesa_rows_per_s``,
``raw_rows_per_s``, ``ratio`` (sesa rows/s / raw rows/s), ``cpu_ratio`` (the least CPU time
of raw / of sesa), CPU times and peak RSS of each.

    python benchmarks/sql_read.py --rows 1000000 [--url postgresql://...] [--repeat 3]

Without ``--url`` (or ``POSTGRES_URL``) it starts PostgreSQL with ``scripts/services.sh start
postgres`` and stops it afterwards only if it was not running before.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import REPO, child_result, clock, emit, log, postgres, run_child

_TABLE = """
CREATE TABLE {t} (
    id bigint PRIMARY KEY, project_id text, rfi_number int, title text, question text,
    created_at timestamptz, responded_at timestamptz, status text, amount numeric(12, 2),
    urgent boolean)
"""
_FILL = """
INSERT INTO {t}
SELECT g, 'P' || (100 + g % 250), g,
       '  rebar spacing at level ' || (g % 40) || ' — façade détail ',
       CASE WHEN g % 17 = 0 THEN '' ELSE
            repeat('Please confirm the embed plate dimension on grid ', 1 + g % 3) || g END,
       timestamptz '2023-01-01 00:00+00' + g * interval '37 second',
       CASE WHEN g % 3 = 0 THEN NULL
            ELSE timestamptz '2023-01-01 00:00+00' + g * interval '37 second'
                 + (1 + g % 500) * interval '1 hour' END,
       (ARRAY['open', 'closed', 'answered', 'void'])[1 + g % 4],
       round((g % 100000) * 1.37, 2), g % 7 = 0
FROM generate_series(1, {n}) AS g
"""


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)



def read_sesa(url: str, table: str, chunk: int) -> tuple[int, int]:
    from sesa_fp.sources.sql import sql_source

    n = total = 0
    for rec in sql_source(url, f"SELECT * FROM {table}", chunk_size=chunk):
        n += 1
        total += rec["id"]
    return n, total


def read_raw(url: str, table: str, chunk: int) -> tuple[int, int]:
    import psycopg

    n = total = 0
    with psycopg.connect(plain(url)) as conn, conn.cursor(name="bench_raw") as cur:
        cur.itersize = chunk
        cur.execute(f"SELECT * FROM {table}")
        names = [d.name for d in cur.description or ()]
        while rows := cur.fetchmany(chunk):
            for row in rows:
                rec = dict(zip(names, row, strict=False))
                n += 1
                total += rec["id"]
    return n, total


def child(args: argparse.Namespace) -> None:
    # imports before the clock, as in the other benchmarks (psycopg for both)
    import psycopg  # noqa: F401

    if args.variant == "sesa":
        import sqlalchemy  # noqa: F401

        import sesa_fp.sources.sql  # noqa: F401
    start = clock()
    fn = read_sesa if args.variant == "sesa" else read_raw
    n, total = fn(args.url, args.table, args.chunk)
    child_result(start, rows=n, id_sum=total)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--url", default=None)
    ap.add_argument("--chunk", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs, order alternating")
    ap.add_argument("--variant", choices=("sesa", "raw"), help=argparse.SUPPRESS)
    ap.add_argument("--table", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.variant:
        child(args)
        return
    import psycopg

    table = f"bench_read_{time.monotonic_ns()}"
    best: dict[str, dict[str, float]] = {}
    cpu: dict[str, float] = {}  # least CPU time of each variant (steadier on shared cores)
    with postgres(args.url) as url:
        with psycopg.connect(plain(url), autocommit=True) as conn:
            log(f"filling {table} with {args.rows:,} rows")
            conn.execute(_TABLE.format(t=table))
            conn.execute(_FILL.format(t=table, n=args.rows))
            conn.execute(f"VACUUM ANALYZE {table}")
        expected = (args.rows, args.rows * (args.rows + 1) // 2)
        try:
            for rep in range(args.repeat):
                order = ("raw", "sesa") if rep % 2 == 0 else ("sesa", "raw")
                for variant in order:
                    res = run_child("sql_read.py", "--variant", variant, "--url", url,
                                    "--table", table, "--chunk", str(args.chunk))
                    if (res["rows"], res["id_sum"]) != expected:
                        raise SystemExit(f"{variant}: read {res['rows']} rows "
                                         f"(id sum {res['id_sum']}), expected {expected}")
                    log(f"{variant}: {res['elapsed_s']:.2f}s (cpu {res['cpu_s']:.2f}s), "
                        f"{args.rows / res['elapsed_s']:,.0f} rows/s")
                    if variant not in best or res["elapsed_s"] < best[variant]["elapsed_s"]:
                        best[variant] = res
                    cpu[variant] = min(res["cpu_s"], cpu.get(variant, res["cpu_s"]))
        finally:
            with psycopg.connect(plain(url), autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
    sesa, raw = best["sesa"], best["raw"]
    emit({"rows": args.rows, "chunk": args.chunk, "repeat": args.repeat,
          "sesa_s": sesa["elapsed_s"], "raw_s": raw["elapsed_s"],
          "sesa_cpu_s": sesa["cpu_s"], "raw_cpu_s": raw["cpu_s"],
          "sesa_rows_per_s": round(args.rows / sesa["elapsed_s"]),
          "raw_rows_per_s": round(args.rows / raw["elapsed_s"]),
          "sesa_peak_rss_mb": sesa["peak_rss_mb"], "raw_peak_rss_mb": raw["peak_rss_mb"],
          "cpu_ratio": round(cpu["raw"] / cpu["sesa"], 3),
          "ratio": round(raw["elapsed_s"] / sesa["elapsed_s"], 3)})


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
