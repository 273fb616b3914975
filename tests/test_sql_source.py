"""`sql_source`: SQLite unit tests (no server), then integration tests on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("sqlalchemy")

from conftest import IN_CI, REPO, _free_port, service_missing
from sesa_fp.config.builder import build_job
from sesa_fp.config.spec import JobSpec, structure
from sesa_fp.errors import ConfigError
from sesa_fp.sources.sql import (
    SqlQueryError,
    SqlUnavailableError,
    sql_source,
    sql_value,
)
from sesa_fp.stream import merge


# -- SQLite --------------------------------------------------------------------------------------
def make_db(path: Path, n: int, *, step: int = 1) -> str:
    """A table ``t`` of ``n`` rows (ids with gaps when ``step`` > 1); returns its URL."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, raw BLOB, "
                "day TEXT, note TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)",
                    [(i * step, f"n{i:06d}", i / 4, bytes([i % 256]), f"2025-09-{1 + i % 28:02d}",
                      None if i % 3 else "x") for i in range(1, n + 1)])
    con.commit()
    con.close()
    return f"sqlite:///{path}"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return make_db(tmp_path / "t.db", 2500, step=3)


def test_types_and_mapping_sqlite(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "v.db")
    con.execute("CREATE TABLE v (id INTEGER, big INTEGER, f REAL, s TEXT, b BLOB, n TEXT)")
    con.execute("INSERT INTO v VALUES (1, ?, 1.5, 'é', x'00ff10', NULL)", (2**63 - 1,))
    con.commit()
    con.close()
    [rec] = list(sql_source(f"sqlite:///{tmp_path / 'v.db'}", "SELECT * FROM v"))
    assert rec == {"id": 1, "big": 2**63 - 1, "f": 1.5, "s": "é", "b": "AP8Q", "n": None}


def test_value_mapping_table() -> None:
    tz = dt.timezone(dt.timedelta(hours=2))
    assert sql_value(decimal.Decimal("1.10")) == decimal.Decimal("1.10")
    assert [sql_value(decimal.Decimal(x)) for x in ("NaN", "Infinity", "-Infinity")] == \
        ["NaN", "Infinity", "-Infinity"]
    assert [sql_value(float(x)) for x in ("nan", "inf", "-inf")] == \
        ["NaN", "Infinity", "-Infinity"]
    aware = dt.datetime(2025, 9, 6, 12, 0, tzinfo=tz)
    assert sql_value(aware) is aware and sql_value(dt.date(2025, 9, 6)) == dt.date(2025, 9, 6)
    assert sql_value(dt.time(1, 2, 3)) == dt.time(1, 2, 3)
    assert sql_value(dt.time(1, 2, 3, tzinfo=tz)) == "01:02:03+02:00"
    assert sql_value(dt.timedelta(0)) == "PT0S"
    assert sql_value(dt.timedelta(days=-1, seconds=-0.25)) == "P-1DT-0.25S"
    assert sql_value(uuid.UUID(int=5)) == "00000000-0000-0000-0000-000000000005"
    assert sql_value(memoryview(b"ab")) == "YWI="
    assert sql_value({"a": [1, 2.5, None]}) == {"a": [1, 2.5, None]}
    with pytest.raises(TypeError, match="no record mapping"):
        sql_value(object())


def test_chunked_fetches_and_laziness(db: str) -> None:
    src = sql_source(db, "SELECT * FROM t", chunk_size=1000)
    assert src.fetches == 0  # built: nothing ran
    it = iter(src)
    next(it)
    assert src.fetches == 1
    assert sum(1 for _ in it) == 2499
    assert src.fetches == 3  # 1000 + 1000 + 500
    assert src.stats.n_out == 2500
    assert len(list(src)) == 2500  # re-iterable


def test_bound_parameters_never_pasted(db: str) -> None:
    src = sql_source(db, "SELECT id FROM t WHERE name = :name OR day = :ds",
                     {"name": "x' OR 1=1; DROP TABLE t; --", "ds": "2025-09-02"})
    ids = [r["id"] for r in src]
    assert ids and len(ids) < 2500
    assert len(list(sql_source(db, "SELECT id FROM t"))) == 2500  # the table is still there


@pytest.mark.parametrize("key", ["id", "name"])  # an integer key (min/max), a text one (ntile)
def test_partitions_read_the_same_set_once(db: str, key: str) -> None:
    whole = list(sql_source(db, "SELECT * FROM t WHERE id % 2 = :odd", {"odd": 1}))
    src = sql_source(db, "SELECT * FROM t WHERE id % 2 = :odd", {"odd": 1}, partition_on=key,
                     partitions=4, chunk_size=100)
    parts = src.partitions()
    assert len(parts) == 4
    got = [[r["id"] for r in p] for p in parts]
    assert all(got), "every partition holds rows"
    flat = [i for g in got for i in g]
    assert len(flat) == len(set(flat)) == len(whole)
    assert sorted(flat) == sorted(r["id"] for r in whole)
    assert sorted(r["id"] for r in merge(*src.partitions())) == sorted(flat)
    keys = [[r[key] for r in p] for p in parts]
    assert all(k == sorted(k) for k in keys)  # each partition in key order
    assert [p.position for p in parts] == [k[-1] for k in keys]


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.sets(st.integers(-(2**62), 2**62), max_size=60), n=st.integers(1, 7),
       text=st.booleans())
def test_partitions_lose_nothing_and_read_once(tmp_path: Path, keys: set[int], n: int,
                                              text: bool) -> None:
    path = tmp_path / f"p{uuid.uuid4().hex}.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE k (id INTEGER PRIMARY KEY, s TEXT UNIQUE)")
    con.executemany("INSERT INTO k VALUES (?, ?)", [(k, f"s{k}") for k in keys])
    con.commit()
    con.close()
    src = sql_source(f"sqlite:///{path}", "SELECT * FROM k", partition_on="s" if text else "id",
                     partitions=n, chunk_size=7)
    got = [r["id"] for p in src.partitions() for r in p]
    assert sorted(got) == sorted(keys)
    path.unlink()


def test_partitions_of_an_empty_or_tiny_result(db: str) -> None:
    empty = sql_source(db, "SELECT * FROM t WHERE id < 0", partition_on="id", partitions=3)
    assert [list(p) for p in empty.partitions()] == [[], [], []]
    tiny = sql_source(db, "SELECT * FROM t WHERE id <= 6", partition_on="name", partitions=5)
    assert sorted(r["id"] for r in merge(*tiny.partitions())) == [3, 6]


def test_position_and_resume(db: str) -> None:
    src = sql_source(db, "SELECT id, name FROM t", partition_on="id", chunk_size=64)
    assert src.position is None
    it = iter(src)
    first = [next(it) for _ in range(300)]
    it.close()
    assert src.position == first[-1]["id"] == 900
    rest = list(sql_source(db, "SELECT id, name FROM t", partition_on="id", after=src.position))
    assert [r["id"] for r in first + rest] == [3 * i for i in range(1, 2501)]
    # a partition resumes after its own position
    parted = sql_source(db, "SELECT id FROM t", partition_on="id", partitions=3)
    p1 = parted.partitions()[1]
    it = iter(p1)
    head = [next(it)["id"] for _ in range(10)]
    it.close()
    tail = [r["id"] for r in parted.partition(1, after=p1.position)]
    assert head + tail == [r["id"] for r in parted.partitions()[1]]
    assert sql_source(db, "SELECT id FROM t").position is None  # no key: not resumable
    # a query ending in a comment (or a semicolon) is wrapped safely
    commented = sql_source(db, "SELECT id FROM t WHERE id <= 30 -- the first ten;\n;",
                           partition_on="id", partitions=2)
    assert sorted(r["id"] for r in merge(*commented.partitions())) == list(range(3, 31, 3))


def test_errors_are_clear(db: str, tmp_path: Path) -> None:
    with pytest.raises(SqlQueryError, match=r"refused to run the query 'SELECT nope FROM t'"):
        list(sql_source(db, "SELECT nope FROM t"))
    with pytest.raises(SqlQueryError, match="partition_on='id' must be a column of the query's result"):
        list(sql_source(db, "SELECT name FROM t", partition_on="id"))
    with pytest.raises(ConfigError, match="no value for bound parameter"):
        sql_source(db, "SELECT * FROM t WHERE id = :id")
    with pytest.raises(ConfigError, match="needs partition_on"):
        sql_source(db, "SELECT * FROM t", partitions=2)
    with pytest.raises(ConfigError, match="chunk_size must be a positive int"):
        sql_source(db, "SELECT * FROM t", chunk_size=0)
    with pytest.raises(ConfigError, match="not a database URL"):
        sql_source("not a url", "SELECT 1")
    with pytest.raises(ConfigError, match="unknown database URL scheme"):
        sql_source("nosuchdb://h/x", "SELECT 1")


def test_credentials_are_masked_and_outage_names_the_host() -> None:
    pytest.importorskip("psycopg")
    port = _free_port()  # nothing listens there
    src = sql_source(f"postgresql://etl:hunter2pw@127.0.0.1:{port}/crm", "SELECT 1 AS x",
                     max_retries=1, retry_backoff=0.01)
    other = sql_source(f"postgresql+psycopg://etl@127.0.0.1:{port}/crm", "SELECT 1 AS x",
                       password="hunter2pw", max_retries=0)
    for s in (src, other):
        assert "hunter2pw" not in repr(s) and "***" in repr(s)
    with pytest.raises(SqlUnavailableError) as info:
        list(src)
    msg = str(info.value)
    assert f"127.0.0.1:{port}" in msg and "hunter2pw" not in msg and "2 attempts" in msg
    assert src.stats.retries == 1
    with pytest.raises(SqlUnavailableError) as info:
        list(other)
    assert "hunter2pw" not in str(info.value)


# -- YAML ----------------------------------------------------------------------------------------
def job(extractor: dict[str, Any]) -> JobSpec:
    return structure({"job_name": "j", "extractor": extractor,
                      "loader": {"type": "files", "dataset": "d"}}, JobSpec)


@pytest.mark.parametrize("name", ["jdbc", "sql"])
def test_yaml_builds_what_python_builds(db: str, name: str) -> None:
    built = build_job(job({"type": name, "connection": {"url": db},
                           "query": "SELECT * FROM t WHERE day = :ds",
                           "params": {"ds": "2025-09-02"}, "chunk_size": 100}))
    by_hand = sql_source(db, "SELECT * FROM t WHERE day = :ds", {"ds": "2025-09-02"},
                         chunk_size=100)
    assert repr(built.pipeline.source) == repr(by_hand)
    assert list(built.pipeline.source) == list(by_hand)


def test_yaml_partitions_and_secret(db: str) -> None:
    spec = job({"type": "jdbc", "connection": {"url": "postgresql://etl@db.example/crm",
                                               "password": "hunter2pw"},
                "query": "SELECT * FROM t", "partition_on": "id", "slices": 3})
    assert "hunter2pw" not in repr(spec)
    source = build_job(spec).pipeline.source
    by_hand = sql_source("postgresql://etl@db.example/crm", "SELECT * FROM t",
                         password="hunter2pw", partition_on="id", partitions=3)
    assert repr(source) == repr(merge(*by_hand.partitions()))
    assert "hunter2pw" not in repr(source)
    with pytest.raises(ConfigError, match=r"extractor\.partitions"):
        build_job(job({"type": "sql", "connection": {"url": db}, "query": "SELECT 1",
                       "partitions": "four"}))


def test_cli_outage_exits_1_naming_the_host(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    port = _free_port()
    (tmp_path / "job.yaml").write_text(f"""
job_name: pg
extractor:
  type: jdbc
  connection: {{url: "postgresql://etl:hunter2pw@127.0.0.1:{port}/crm"}}
  query: "SELECT * FROM rfi WHERE day = :ds"
  params: {{ds: "{{{{ ds }}}}"}}
  max_retries: 1
loader: {{type: files, dataset: out, connection: {{root: "{tmp_path / 'out'}"}}}}
""")
    def sesa(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sesa_fp", *args, "--config",
                               str(tmp_path / "job.yaml"), "--set", "ds=2025-09-06"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(REPO)})

    explained = sesa("explain")  # builds without I/O, prints what Python would write
    assert explained.returncode == 0, explained.stderr
    assert (f"sql_source(url='postgresql+psycopg://etl:***@127.0.0.1:{port}/crm', "
            "query='SELECT * FROM rfi WHERE day = :ds', params={'ds': '2025-09-06'}, "
            "max_retries=1)") in explained.stdout
    proc = sesa("run")
    assert proc.returncode == 1, proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr and "SqlUnavailableError" in proc.stderr
    assert "hunter2pw" not in proc.stderr + proc.stdout + explained.stdout
    assert "Traceback" not in proc.stderr


# -- PostgreSQL ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_url(postgres_url: str) -> str:
    """The shared PostgreSQL server (conftest's ``postgres_url``), checked to answer."""
    pytest.importorskip("psycopg")
    import psycopg

    try:
        with psycopg.connect(_plain(postgres_url), connect_timeout=10):
            pass
    except Exception as exc:
        service_missing(f"PostgreSQL at {postgres_url} does not answer: {exc}")
    return postgres_url


def _plain(url: str) -> str:
    """The URL as libpq reads it (no SQLAlchemy driver suffix)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


ROWS = 200_000
_TYPES = """
    id bigint PRIMARY KEY, i int, big numeric(40,0), num numeric(20,6), nan_num numeric,
    f double precision, b boolean, t text, vc varchar(20), ts timestamp, tstz timestamptz,
    d date, tm time, iv interval, u uuid, by bytea, arr int[], tarr text[], j json,
    jb jsonb
"""
_COLUMNS = ["id", "i", "big", "num", "nan_num", "f", "b", "t", "vc", "ts", "tstz", "d", "tm",
            "iv", "u", "by", "arr", "tarr", "j", "jb"]
_FILL = """
INSERT INTO {table}
SELECT g, g % 1000 - 500,
       (10::numeric ^ 30 + g)::numeric(40,0),
       round((g * 1.000001)::numeric, 6),
       CASE WHEN g % 97 = 0 THEN 'NaN'::numeric ELSE g::numeric / 8 END,
       g::float8 / 3, g % 2 = 0, CASE WHEN g % 11 = 0 THEN NULL ELSE 'row é ' || g END,
       'v' || (g % 100),
       timestamp '2025-01-01' + g * interval '37 second' + (g % 1000) * interval '1 microsecond',
       timestamptz '2025-01-01 00:00+02' + g * interval '1 minute',
       date '2020-01-01' + (g % 2000),
       time '00:00' + (g % 86400) * interval '1 second',
       make_interval(days => g % 40, hours => g % 24, secs => (g % 60) / 4.0)
           * CASE WHEN g % 5 = 0 THEN -1 ELSE 1 END,
       md5(g::text)::uuid, decode(lpad(to_hex(g), 8, '0'), 'hex'),
       ARRAY[g, NULL, -g], ARRAY['a' || g, 'ü'],
       json_build_object('k', g, 'l', json_build_array(1, 'x', NULL)),
       jsonb_build_object('n', g % 7, 'nested', jsonb_build_object('z', g::text))
FROM generate_series(1, {n}) AS g
"""


@pytest.fixture(scope="module")
def pg_table(pg_url: str) -> Iterator[str]:
    import psycopg

    name = f"src_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_plain(pg_url), autocommit=True) as con:
        con.execute(f"CREATE TABLE {name} ({_TYPES})")
        con.execute(_FILL.format(table=name, n=ROWS))
        con.execute(f"ANALYZE {name}")
    try:
        yield name
    finally:
        with psycopg.connect(_plain(pg_url), autocommit=True) as con:
            con.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.mark.integration
def test_pg_every_type_maps(pg_url: str, pg_table: str) -> None:
    src = sql_source(pg_url, f"SELECT * FROM {pg_table} WHERE id IN (:a, :b, :c)",
                     {"a": 97, "b": 10, "c": 11})
    recs = {r["id"]: r for r in src}
    r = recs[10]
    assert r["big"] == decimal.Decimal(10**30 + 10) and r["num"] == decimal.Decimal("10.000010")
    assert recs[97]["nan_num"] == "NaN" and r["nan_num"] == decimal.Decimal("1.25")
    assert r["ts"] == dt.datetime(2025, 1, 1, 0, 6, 10, 10) and r["ts"].tzinfo is None
    assert r["tstz"].utcoffset() is not None
    assert r["tstz"] == dt.datetime(2025, 1, 1, 0, 10, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert r["d"] == dt.date(2020, 1, 11) and r["tm"] == dt.time(0, 0, 10)
    assert r["iv"] == "P-10DT-10H-2.5S" and recs[97]["iv"] == "P17DT1H9.25S"
    assert r["u"] == str(uuid.UUID(__import__("hashlib").md5(b"10").hexdigest()))
    assert r["by"] == "AAAACg==" and r["arr"] == [10, None, -10] and r["tarr"] == ["a10", "ü"]
    assert r["j"] == {"k": 10, "l": [1, "x", None]} and r["jb"] == {"n": 3, "nested": {"z": "10"}}
    assert r["b"] is True and r["t"] == "row é 10" and recs[11]["t"] is None
    assert r["f"] == 10 / 3.0 and r["i"] == -490 and r["vc"] == "v10"
    [extra] = list(sql_source(pg_url, "SELECT interval '1 year 2 months 3 days 4.5 seconds' AS iv, "
                              "'{\"n\": 123456789012345678901234567890}'::jsonb AS j, "
                              "'NaN'::float8 AS f, '-Infinity'::numeric AS m, "
                              "timetz '04:05:06+02' AS tz, '10.0.0.1/8'::inet AS ip"))
    assert extra == {"iv": "P1Y2M3DT4.5S", "j": {"n": 123456789012345678901234567890},
                     "f": "NaN", "m": "-Infinity", "tz": "04:05:06+02:00", "ip": "10.0.0.1/8"}
    with pytest.raises(SqlQueryError, match=r"column 'r': no record mapping .*r::text"):
        list(sql_source(pg_url, "SELECT 1 AS id, int4range(1, 5) AS r"))


@pytest.mark.integration
def test_pg_server_side_cursor_keeps_memory_flat(pg_url: str, pg_table: str) -> None:
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    src = sql_source(pg_url, f"SELECT id, t, ts, tstz, num, u, jb FROM {pg_table}",
                     chunk_size=2000)
    base, peak, n = proc.memory_info().rss, 0, 0
    for _ in src:
        n += 1
        if n % 10_000 == 0:
            peak = max(peak, proc.memory_info().rss - base)
    assert n == ROWS and src.fetches == ROWS // 2000
    # 200,000 such records held at once would take well over 100 MB; a chunk takes a few
    assert peak < 40 * 2**20, f"RSS grew by {peak / 2**20:.1f} MB while streaming"


@pytest.mark.integration
def test_pg_partitions_and_resume(pg_url: str, pg_table: str) -> None:
    q = f"SELECT id, t FROM {pg_table} WHERE id % :m <> 0"
    src = sql_source(pg_url, q, {"m": 13}, partition_on="id", partitions=4, chunk_size=3000)
    ids = [r["id"] for r in merge(*src.partitions())]
    assert len(ids) == len(set(ids)) == ROWS - ROWS // 13
    one = src.partitions()[2]
    it = iter(one)
    head = [next(it)["id"] for _ in range(5000)]
    it.close()
    tail = [r["id"] for r in src.partition(2, after=one.position)]
    assert head + tail == [r["id"] for r in src.partitions()[2]]


@pytest.mark.integration
def test_pg_bad_query_and_masked_password(pg_url: str) -> None:
    with pytest.raises(SqlQueryError, match="does not exist"):
        list(sql_source(pg_url, "SELECT * FROM no_such_table_here"))


def _load_sql() -> Any:
    try:
        from sesa_fp.loaders.sql import load_sql
    except ImportError:
        if IN_CI:
            pytest.fail("sesa_fp.loaders.sql.load_sql is missing")
        pytest.skip("load_sql is not there yet")
    return load_sql


@pytest.mark.integration
@pytest.mark.parametrize("partitions", [4])  # 4 key ranges read at once: the whole set, once
def test_pg_round_trip_through_load_sql_is_identical(pg_url: str, pg_table: str,
                                                     partitions: int) -> None:
    import psycopg

    from sesa_fp.report import run
    from sesa_fp.stream import pipe

    load_sql = _load_sql()
    dst = f"dst_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_plain(pg_url), autocommit=True) as con:
        con.execute(f"CREATE TABLE {dst} ({_TYPES})")
    try:
        src = sql_source(pg_url, f"SELECT * FROM {pg_table}", partition_on="id",
                         partitions=partitions, chunk_size=5000)
        source = merge(*src.partitions()) if partitions > 1 else src
        report = run(pipe(source, load_sql(pg_url, dst, key=["id"], mode="upsert")))
        assert (report.read, report.loaded, report.dead_letters) == (ROWS, ROWS, 0)
        with psycopg.connect(_plain(pg_url)) as con:
            # EXCEPT needs equality, which json lacks: it is compared as jsonb below
            cols = ", ".join(c for c in _COLUMNS if c != "j")
            for a, b in ((pg_table, dst), (dst, pg_table)):
                diff = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM {a} EXCEPT "
                                   f"SELECT {cols} FROM {b}) AS x").fetchone()
                assert diff == (0,), f"{a} EXCEPT {b}"
            diff = con.execute(f"SELECT count(*) FROM {pg_table} s JOIN {dst} d USING (id) "
                               "WHERE s.j::jsonb IS DISTINCT FROM d.j::jsonb").fetchone()
            assert diff == (0,)
            assert con.execute(f"SELECT count(*) FROM {dst}").fetchone() == (ROWS,)
    finally:
        with psycopg.connect(_plain(pg_url), autocommit=True) as con:
            con.execute(f"DROP TABLE IF EXISTS {dst}")


@pytest.mark.integration
def test_pg_lost_connection_resumes_after_the_last_key(pg_url: str, pg_table: str) -> None:
    import psycopg

    q = f"SELECT id, pg_backend_pid() AS pid FROM {pg_table} WHERE id <= 20000"
    src = sql_source(pg_url, q, partition_on="id", chunk_size=1000, retry_backoff=0.01)
    ids, killed = [], False
    for rec in src:
        ids.append(rec["id"])
        if len(ids) == 2500 and not killed:  # the server ends our session mid-read
            with psycopg.connect(_plain(pg_url), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (rec["pid"],))
            killed = True
    assert ids == list(range(1, 20001))  # nothing lost, nothing twice, in key order
    assert src.stats.retries >= 1
    # without a key there is no place to resume from: the loss is an error naming the host
    plain_src = sql_source(pg_url, q, chunk_size=1000)
    with pytest.raises(SqlUnavailableError, match=r"lost the connection to 127\.0\.0\.1"):
        for n, rec in enumerate(plain_src):
            if n == 2500:
                with psycopg.connect(_plain(pg_url), autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (rec["pid"],))


@pytest.mark.integration
def test_pg_position_survives_json(pg_url: str, pg_table: str) -> None:
    """A position written as JSON (a staging commit record) resumes in another process:
    a timestamptz key comes back as its ISO string and the server compares it as a time."""
    from sesa_fp import codec

    q = f"SELECT id, tstz FROM {pg_table} WHERE id <= :n"
    src = sql_source(pg_url, q, {"n": 3000}, partition_on="tstz", partitions=3, chunk_size=250)
    part = src.partitions()[1]
    it = iter(part)
    head = [next(it)["id"] for _ in range(400)]
    it.close()
    saved = codec.loads(codec.dumps({"position": part.position}))["position"]
    assert isinstance(saved, str) and saved[-6] in "+-"  # ISO-8601 with its offset
    again = sql_source(pg_url, q, {"n": 3000}, partition_on="tstz", partitions=3)
    tail = [r["id"] for r in again.partition(1, after=saved)]
    assert head + tail == [r["id"] for r in src.partitions()[1]]
