"""`load_sql`: SQLite (no server) in unit tests, a real PostgreSQL on loopback for the rest.

The PostgreSQL tests use ``POSTGRES_URL`` (or start the services script's server); the fault
tests start a throwaway server of their own (own data dir and port) to stop and start it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, _free_port, service_missing
from sesa_fp import pipe, run
from sesa_fp.config.builder import build_job, load_job
from sesa_fp.errors import ConfigError
from sesa_fp.result import dead_letters

pytest.importorskip("sqlalchemy")
from sesa_fp.loaders.sql import SqlLoadError, SqlUnavailableError, load_sql

# -- SQLite ------------------------------------------------------------------------------------


def _sqlite(tmp_path: Path, ddl: str) -> tuple[str, Path]:
    path = tmp_path / "t.db"
    con = sqlite3.connect(path)
    con.executescript(ddl)
    con.close()
    return f"sqlite:///{path}", path


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _records(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"n{i} é", "score": i / 4, "ok": i % 2 == 0,
             "day": (dt.date(2025, 1, 1) + dt.timedelta(days=i % 300)).isoformat(),
             "doc": {"k": i, "l": [1, "x", None]}, "amount": Decimal(i) / 100,
             "raw": bytes([i % 256, 0, 255])} for i in range(n)]


_SQLITE_DDL = """CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
    score REAL CHECK (score >= 0), ok INTEGER, day TEXT, doc TEXT, amount TEXT, raw BLOB)"""


def test_sqlite_round_trip_and_upsert_rerun(tmp_path: Path) -> None:
    url, path = _sqlite(tmp_path, _SQLITE_DDL)
    recs = _records(3000)
    report = run(pipe(recs, load_sql(url, "t", key=["id"], batch_size=700)), progress=False)
    assert (report.read, report.loaded, report.dead_letters) == (3000, 3000, 0)
    rows = _rows(path, "SELECT * FROM t ORDER BY id")
    assert len(rows) == 3000
    assert rows[5] == (5, "n5 é", 1.25, 0, "2025-01-06", '{"k":5,"l":[1,"x",null]}', "0.05",
                       bytes([5, 0, 255]))
    before = _rows(path, "SELECT * FROM t ORDER BY id")
    again = run(pipe(recs, load_sql(url, "t", key=["id"])), progress=False)
    assert again.loaded == 3000 and _rows(path, "SELECT * FROM t ORDER BY id") == before
    # an upsert changes what it names and only that
    run(pipe([{**recs[7], "name": "changed"}], load_sql(url, "t", key=["id"])), progress=False)
    assert _rows(path, "SELECT name FROM t WHERE id = 7") == [("changed",)]
    assert _rows(path, "SELECT count(*) FROM t") == [(3000,)]


def test_sqlite_bad_rows_are_exactly_the_dead_letters(tmp_path: Path) -> None:
    url, path = _sqlite(tmp_path, _SQLITE_DDL)
    recs = _records(2000)
    bad = {13: {"name": None}, 400: {"score": -1.0}, 1999: {"name": None},
           777: {"extra": 1}, 1500: {"doc": object()}}
    for i, change in bad.items():
        recs[i] = {**recs[i], **change}
    loader = load_sql(url, "t", key=["id"], batch_size=500)
    out = list(loader(recs))
    assert len(out) == 2000
    dls = {d.record["id"]: d for d in dead_letters(out)}
    assert sorted(dls) == sorted(bad)
    assert "NOT NULL" in dls[13].error_message and "CHECK" in dls[400].error_message
    assert "extra" in dls[777].error_message and dls[777].error_type == "RecordError"
    assert dls[13].target == "t"
    assert loader.stats.committed == 1995 == _rows(path, "SELECT count(*) FROM t")[0][0]
    # order kept: the result at each position is that record or its dead letter
    assert [(r.failure().record if hasattr(r, "failure") else r)["id"] for r in out] \
        == list(range(2000))


def test_sqlite_insert_mode_duplicates_replace_and_template(tmp_path: Path) -> None:
    url, path = _sqlite(tmp_path, "")
    cols = {"id": "INTEGER", "day": "TEXT", "v": "TEXT"}
    recs = [{"id": i, "day": f"d{i % 3}", "v": str(i)} for i in range(30)]
    loader = load_sql(url, "ev_{day}", key=["id"], mode="insert", create=True, columns=cols)
    report = run(pipe(recs, loader), progress=False)
    assert report.loaded == 30 and loader.last_counts == {"ev_d0": 10, "ev_d1": 10, "ev_d2": 10}
    assert _rows(path, "SELECT count(*) FROM ev_d1") == [(10,)]
    out = list(load_sql(url, "ev_{day}", key=["id"], mode="insert")(recs[:4]))
    assert [d.error_type for d in dead_letters(out)] == ["IntegrityError"] * 4
    assert "UNIQUE" in next(dead_letters(out)).error_message
    replaced = run(pipe(recs[:2], load_sql(url, "ev_d0", mode="replace")), progress=False)
    assert replaced.loaded == 2
    assert _rows(path, "SELECT id, v FROM ev_d0 ORDER BY id") == [(0, "0"), (1, "1")]


def test_sqlite_missing_table_and_failures_pass_through(tmp_path: Path) -> None:
    from returns.result import Failure

    from sesa_fp.result import DeadLetter

    url, _ = _sqlite(tmp_path, "")
    with pytest.raises(SqlLoadError, match="does not exist"):
        list(load_sql(url, "nope", key=["id"])([{"id": 1}]))
    (tmp_path / "b").mkdir()
    url2, path2 = _sqlite(tmp_path / "b", "")
    dl = Failure(DeadLetter(record={"id": 9}, error_type="X", error_message="m", stage="s"))
    out = list(load_sql(url2, "n", key=["id"], create=True, infer_columns=True)(
        [{"id": 1, "x": 1.5}, dl, {"id": 2, "x": 2.5}]))
    assert out[1] is dl and out[0] == {"id": 1, "x": 1.5}
    assert _rows(path2, "SELECT id, x FROM n ORDER BY id") == [(1, 1.5), (2, 2.5)]


def test_config_errors_and_repr() -> None:
    loader = load_sql("postgresql://etl:hunter2pw@127.0.0.1:5432/db", "t", key=["id"])
    assert repr(loader) == \
        "load_sql('postgresql+psycopg://etl:***@127.0.0.1:5432/db', table='t', key=['id'])"
    assert "hunter2pw" not in repr(loader) + str(loader.describe()) + loader.name
    masked = load_sql("postgresql://etl@127.0.0.1/db", "t", key=["id"], password="hunter2pw")
    assert "hunter2pw" not in repr(masked) and "etl:***@" in repr(masked)
    for kwargs, msg in (({"mode": "merge", "key": ["id"]}, "mode must be"),
                        ({}, "needs key"),
                        ({"key": ["id"], "create": True}, "create=True needs columns"),
                        ({"key": ["id"], "columns": {"x": "int"}}, "must be among columns"),
                        ({"key": ["id"], "batch_size": 0}, "batch_size")):
        with pytest.raises(ConfigError, match=msg):
            load_sql("sqlite:///x.db", "t", **kwargs)
    with pytest.raises(ConfigError, match="needs PostgreSQL or SQLite"):
        load_sql("mysql://u:p@h/db", "t", key=["id"])


def test_yaml_builds_what_python_builds(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(f"""
job_name: sql
extractor: {{type: jsonl, path: "{tmp_path / 'in.jsonl'}"}}
loader:
  type: postgres
  connection: {{url: "postgresql://etl:hunter2pw@127.0.0.1:5432/db"}}
  dataset: "events_{{day}}"
  options: {{key: [id], mode: upsert, create: true, columns: {{id: bigint, day: text}},
             batch_size: 5000}}
""")
    built = build_job(load_job(job))
    loader = built.pipeline.stages[-1]
    same = load_sql("postgresql://etl:hunter2pw@127.0.0.1:5432/db", "events_{day}",
                    key=["id"], create=True, columns={"id": "bigint", "day": "text"},
                    batch_size=5000)
    assert repr(loader) == repr(same)
    assert "hunter2pw" not in built.pipeline.to_python()
    job.write_text(job.read_text().replace("type: postgres", "type: sql")
                   .replace('postgresql://etl:hunter2pw@127.0.0.1:5432/db', 'sqlite:///o.db')
                   .replace("url:", "password: s3cretpw, url:"))
    assert repr(build_job(load_job(job)).pipeline.stages[-1]).startswith(
        "load_sql('sqlite:///o.db'")
    bad = job.read_text().replace("type: sql", "type: postgres")
    job.write_text(bad)
    with pytest.raises(ConfigError, match="needs a postgresql:// URL"):
        build_job(load_job(job))


# -- PostgreSQL --------------------------------------------------------------------------------


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="module")
def pg(postgres_url: str) -> str:
    psycopg = pytest.importorskip("psycopg")
    try:
        with psycopg.connect(_plain(postgres_url), connect_timeout=10):
            pass
    except Exception as exc:
        service_missing(f"POSTGRES_URL={postgres_url} does not answer: {exc}")
    return postgres_url


def _sql(url: str, *statements: str) -> list[Any]:
    import psycopg

    out = []
    with psycopg.connect(_plain(url), autocommit=True) as con:
        for s in statements:
            cur = con.execute(s)
            out.append(cur.fetchall() if cur.description else None)
    return out


_TYPES = """id bigint PRIMARY KEY, i int NOT NULL, big numeric(40,0), num numeric(20,6),
    f double precision, b boolean, t text, vc varchar(12), ts timestamp, tstz timestamptz,
    d date, tm time, iv interval, u uuid, by bytea, arr int[], tarr text[], jb jsonb"""
_COLS = ["id", "i", "big", "num", "f", "b", "t", "vc", "ts", "tstz", "d", "tm", "iv", "u",
         "by", "arr", "tarr", "jb"]
_FILL = """
INSERT INTO {table}
SELECT g, g % 1000 - 500, (10::numeric ^ 30 + g)::numeric(40,0), round(g::numeric / 8, 6),
       g::float8 / 3, g % 2 = 0,
       CASE WHEN g % 11 = 0 THEN NULL ELSE E'row é\\t' || g || E'\\\\n' END,
       'v' || (g % 100),
       timestamp '2025-01-01' + g * interval '37 second' + (g % 1000) * interval '1 microsecond',
       timestamptz '2025-01-01 00:00+02' + g * interval '1 minute',
       date '2020-01-01' + (g % 2000), time '00:00' + (g % 86400) * interval '1 second',
       make_interval(months => g % 3, days => g % 40, secs => (g % 60) / 4.0)
           * CASE WHEN g % 5 = 0 THEN -1 ELSE 1 END,
       md5(g::text)::uuid, decode(lpad(to_hex(g), 8, '0'), 'hex'),
       ARRAY[g, NULL, -g], ARRAY['a' || g, 'ü', 'q"uo,te', NULL],
       jsonb_build_object('n', g % 7, 'nested', jsonb_build_object('z', g::text),
                          'l', jsonb_build_array(1, NULL, 'x'))
FROM generate_series(1, {n}) AS g
"""
# JSON-friendly records, as a source gives them: numbers, ISO strings (timestamps, dates,
# ISO-8601 durations), base64 for bytes, lists, dicts
_AS_RECORDS = """SELECT id, i, big, num, f, b, t, vc, to_json(ts) #>> '{{}}', to_json(tstz) #>> '{{}}',
       d::text, tm::text, iv::text, u::text, encode(by, 'base64'), arr, tarr, jb
FROM {table} ORDER BY id"""


def _source_records(url: str, table: str) -> list[dict[str, Any]]:
    import psycopg

    with psycopg.connect(_plain(url)) as con:
        con.execute("SET intervalstyle = iso_8601")
        rows = con.execute(_AS_RECORDS.format(table=table)).fetchall()
    return [dict(zip(_COLS, row, strict=True)) for row in rows]


def _except_both_ways(url: str, a: str, b: str) -> tuple[int, int]:
    cols = ", ".join(_COLS)
    res = _sql(url, f"SELECT count(*) FROM (SELECT {cols} FROM {a} EXCEPT "
                    f"SELECT {cols} FROM {b}) x",
               f"SELECT count(*) FROM (SELECT {cols} FROM {b} EXCEPT "
               f"SELECT {cols} FROM {a}) x")
    return res[0][0][0], res[1][0][0]


@pytest.mark.integration
def test_pg_200k_rows_of_every_type_arrive_identical_and_rerun_is_idempotent(pg: str) -> None:
    n = 200_000
    src, dst = f"src_{uuid.uuid4().hex[:8]}", f"dst_{uuid.uuid4().hex[:8]}"
    _sql(pg, f"CREATE TABLE {src} ({_TYPES})", f"CREATE TABLE {dst} ({_TYPES})")
    try:
        _sql(pg, _FILL.format(table=src, n=n))
        records = _source_records(pg, src)
        assert records[4]["iv"].startswith("P") and "T" in records[4]["tstz"]
        report = run(pipe(records, load_sql(pg, dst, key=["id"])), progress=False)
        assert (report.read, report.loaded, report.dead_letters) == (n, n, 0)
        assert _except_both_ways(pg, src, dst) == (0, 0)
        [[(count,)]] = _sql(pg, f"SELECT count(*) FROM {dst}")
        assert report.loaded == count == n
        # the same upsert again, over a part of the rows: nothing changes
        again = run(pipe(records[::4], load_sql(pg, dst, key=["id"])), progress=False)
        assert again.loaded == n // 4 and again.dead_letters == 0
        assert _except_both_ways(pg, src, dst) == (0, 0)
        assert _sql(pg, f"SELECT count(*) FROM {dst}") == [[(n,)]]
    finally:
        _sql(pg, f"DROP TABLE IF EXISTS {src}", f"DROP TABLE IF EXISTS {dst}")


@pytest.mark.integration
def test_pg_seven_bad_rows_among_50k_are_exactly_the_dead_letters(pg: str) -> None:
    n = 50_000
    table = f"bad_{uuid.uuid4().hex[:8]}"
    _sql(pg, f"CREATE TABLE {table} (id bigint PRIMARY KEY, name varchar(10) NOT NULL, "
             "qty int CHECK (qty >= 0), at timestamptz)")
    bad = {17: {"name": None}, 4_999: {"qty": -1}, 5_000: {"name": "x" * 11},
           23_456: {"name": None}, 31_000: {"qty": -5}, 49_999: {"name": "y" * 40},
           40_000: {"at": "not a time"}}
    recs = [{"id": i, "name": f"n{i}", "qty": i % 9, "at": "2025-09-06T10:00:00Z"}
            for i in range(n)]
    for i, change in bad.items():
        recs[i] = {**recs[i], **change}
    try:
        loader = load_sql(pg, table, key=["id"], batch_size=5000)
        collected: list[Any] = []
        from sesa_fp.stream import partition

        class Sink:
            def write(self, item: Any) -> None:
                collected.append(item)

            def commit(self) -> int:
                return len(collected)

            def abort(self) -> None:
                pass

        report = run(pipe(recs, loader, partition(Sink())), progress=False)
        dls = {d.record["id"]: d for d in collected}
        assert sorted(dls) == sorted(bad)
        assert all(d.error_message.startswith("SQLSTATE ") for d in dls.values())
        assert dls[17].error_type == "NotNullViolation" and "23502" in dls[17].error_message
        assert dls[4_999].error_type == "CheckViolation" and "23514" in dls[4_999].error_message
        assert "value too long for type character varying(10)" in dls[5_000].error_message
        assert "22007" in dls[40_000].error_message or "22008" in dls[40_000].error_message
        [[(count,)]] = _sql(pg, f"SELECT count(*) FROM {table}")
        assert count == n - 7 == report.loaded == loader.stats.committed
        assert report.dead_letters == 7 and report.conserved
    finally:
        _sql(pg, f"DROP TABLE IF EXISTS {table}")


# -- a throwaway PostgreSQL server to stop and start -------------------------------------------


class ThrowawayPostgres:
    """A private server (initdb into a temp dir, own port, password auth on 127.0.0.1) that
    a test can stop and start; as root it runs as the ``postgres`` system user."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            service_missing("no PostgreSQL server binaries (scripts/services.sh start postgres "
                            "installs them)")
        self.bin = bins[-1].parent
        self.home = Path(tempfile.mkdtemp(prefix="sesa-pg-fault-", dir="/tmp"))
        self.home.chmod(0o755)
        self.data = self.home / "data"
        self.port = _free_port()
        self.url = f"postgresql://etl:hunter2pw@127.0.0.1:{self.port}/postgres"
        self.root = os.geteuid() == 0

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        full = ["runuser", "-u", "postgres", "--", *cmd] if self.root else list(cmd)
        proc = subprocess.run(full, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)
        if check and proc.returncode != 0:
            service_missing(f"{cmd[0]} failed: {proc.stderr[-500:]}")
        return proc

    def init(self) -> None:
        (self.home / "pw").write_text("hunter2pw\n")
        if self.root:
            shutil.chown(self.home, "postgres", "postgres")
            shutil.chown(self.home / "pw", "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "etl",
                  f"--pwfile={self.home / 'pw'}", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                f"-c unix_socket_directories={self.home} -c fsync=off")
        self._run(str(self.bin / "pg_ctl"), "start", "-D", str(self.data), "-w", "-t", "60",
                  "-s", "-l", str(self.home / "log"), "-o", opts)

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w",
                  "-s", check=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def throwaway_pg() -> Iterator[ThrowawayPostgres]:
    pytest.importorskip("psycopg")
    if not shutil.which("runuser") and os.geteuid() == 0:
        service_missing("runuser is needed to run PostgreSQL as root")
    server = ThrowawayPostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


@pytest.mark.integration
def test_pg_server_restarted_mid_load_completes_counting_nothing_twice(
        throwaway_pg: ThrowawayPostgres) -> None:
    url = throwaway_pg.url
    _sql(url, "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)")
    n = 60_000
    # insert mode: a batch sent twice would be unique violations, i.e. dead letters
    loader = load_sql(url, "t", mode="insert", batch_size=1000, max_retries=10,
                      retry_backoff=0.3)
    restarted = threading.Event()

    def slow_records() -> Iterator[dict[str, Any]]:
        for i in range(n):
            if i % 1000 == 0:
                time.sleep(0.005)
            yield {"id": i, "v": f"value {i}"}

    def bounce() -> None:
        while loader.stats.committed < 5_000:
            time.sleep(0.01)
        throwaway_pg.stop()
        time.sleep(1.5)
        throwaway_pg.start()
        restarted.set()

    t = threading.Thread(target=bounce, daemon=True)
    t.start()
    report = run(pipe(slow_records(), loader), progress=False)
    t.join(60)
    assert restarted.is_set(), "the load finished before the server was stopped"
    assert report.dead_letters == 0 and report.retries >= 1
    [[(count,)]] = _sql(url, "SELECT count(*) FROM t")
    assert count == n == report.loaded == loader.stats.committed


@pytest.mark.integration
def test_pg_server_gone_for_good_raises_naming_the_host_and_cli_exits_1(
        throwaway_pg: ThrowawayPostgres, tmp_path: Path) -> None:
    url = throwaway_pg.url
    _sql(url, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    loader = load_sql(url, "t", key=["id"], batch_size=100, max_retries=2, retry_backoff=0.1)
    stream = loader({"id": i, "v": "x"} for i in range(1000))
    first = [next(stream) for _ in range(100)]
    assert len(first) == 100 and loader.stats.committed == 100
    throwaway_pg.stop()
    with pytest.raises(SqlUnavailableError) as err:
        list(stream)
    msg = str(err.value)
    assert f"127.0.0.1:{throwaway_pg.port}" in msg and "etl:***@" in msg
    assert "hunter2pw" not in msg and err.value.host.endswith(f":{throwaway_pg.port}/postgres")
    assert loader.stats.committed == 100

    (tmp_path / "in.jsonl").write_text("".join(f'{{"id": {i}}}\n' for i in range(10)))
    (tmp_path / "job.yaml").write_text(f"""
job_name: pg-out
extractor: {{type: jsonl, path: "{tmp_path / 'in.jsonl'}"}}
loader:
  type: postgres
  connection: {{url: "{url}"}}
  dataset: t
  options: {{key: [id], max_retries: 1, retry_backoff: 0.1}}
""")
    proc = subprocess.run([sys.executable, "-m", "sesa_fp", "run", "--config",
                           str(tmp_path / "job.yaml")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1, proc.stderr
    assert f"127.0.0.1:{throwaway_pg.port}" in proc.stderr
    assert "SqlUnavailableError" in proc.stderr
    assert "hunter2pw" not in proc.stderr + proc.stdout


def test_upsert_batch_with_repeated_keys_last_one_wins(tmp_path: Path) -> None:
    url, path = _sqlite(tmp_path, _SQLITE_DDL)
    recs = [{"id": i % 5, "name": f"v{i}"} for i in range(23)] + [{"id": 3, "name": None}]
    report = run(pipe(recs, load_sql(url, "t", key=["id"], batch_size=10)), progress=False)
    # per batch the last record of a key is written and the earlier ones share its outcome
    assert (report.read, report.loaded, report.dead_letters) == (24, 23, 1)
    assert report.conserved
    # a batch whose last record of a key is bad: only that one is a dead letter, the one
    # before it is written, as one by one
    two = run(pipe([{"id": 9, "name": "a"}, {"id": 9, "name": "b"}, {"id": 9, "name": None}],
                   load_sql(url, "t", key=["id"])), progress=False)
    assert (two.loaded, two.dead_letters) == (2, 1)
    assert _rows(path, "SELECT name FROM t WHERE id = 9") == [("b",)]
    assert _rows(path, "SELECT id, name FROM t WHERE id < 9 ORDER BY id") == \
        [(0, "v20"), (1, "v21"), (2, "v22"), (3, "v18"), (4, "v19")]


@pytest.mark.integration
def test_pg_upsert_batch_with_repeated_keys(pg: str) -> None:
    table = f"rep_{uuid.uuid4().hex[:8]}"
    _sql(pg, f"CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL)")
    try:
        recs = [{"id": i % 7, "name": f"v{i}"} for i in range(100)]
        report = run(pipe(recs, load_sql(pg, table, key=["id"], batch_size=40)),
                     progress=False)
        assert (report.loaded, report.dead_letters) == (100, 0)
        assert _sql(pg, f"SELECT id, name FROM {table} ORDER BY id") == \
            [[(i, f"v{93 + (i - 93) % 7}") for i in range(7)]]
    finally:
        _sql(pg, f"DROP TABLE IF EXISTS {table}")


@pytest.mark.integration
def test_pg_upsert_of_new_keys_meeting_a_concurrent_writer_still_upserts(pg: str) -> None:
    """A batch whose keys were all new when probed goes by plain COPY; a key written by
    someone else in between makes that a unique violation, and the batch is written again
    with ON CONFLICT: same result, nothing is a dead letter."""
    table = f"race_{uuid.uuid4().hex[:8]}"
    _sql(pg, f"CREATE TABLE {table} (id int PRIMARY KEY, name text)",
         f"INSERT INTO {table} VALUES (2, 'theirs')")
    try:
        loader = load_sql(pg, table, key=["id"])
        prepare = loader._prepare_pg

        def blind_probe(info: Any) -> None:
            prepare(info)
            info.probe = "SELECT %s::text[] IS NULL"  # "no key exists", as if probed earlier

        loader._prepare_pg = blind_probe  # type: ignore[method-assign]
        report = run(pipe([{"id": i, "name": f"n{i}"} for i in range(5)], loader),
                     progress=False)
        assert (report.loaded, report.dead_letters) == (5, 0)
        assert _sql(pg, f"SELECT id, name FROM {table} ORDER BY id") == \
            [[(i, f"n{i}") for i in range(5)]]
    finally:
        _sql(pg, f"DROP TABLE IF EXISTS {table}")


class CommitCutter:
    """A TCP proxy on loopback in front of PostgreSQL that cuts one connection at its
    ``nth`` COMMIT after a COPY: ``answer`` forwards the COMMIT, waits for the server's
    reply (the transaction has committed) and closes instead of passing it on; ``commit``
    closes without forwarding it (the transaction never commits). Every other connection,
    and that one until then, passes through untouched."""

    def __init__(self, host: str, port: int, lose: str, nth: int = 2) -> None:
        import socket

        self.target = (host, port)
        self.lose = lose
        self.nth = nth
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[Any] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, server]
            state = {"copies": 0, "commits": 0, "dropping": False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state),
                             daemon=True).start()

    @staticmethod
    def _close(*socks: Any) -> None:
        import socket

        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def _up(self, client: Any, server: Any, state: dict[str, Any]) -> None:
        """Client to server, message by message (the startup message has no type byte)."""
        buf = b""
        started = False
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buf += data
                out = b""
                while True:
                    head = 4 if not started else 5
                    if len(buf) < head:
                        break
                    size = int.from_bytes(buf[head - 4:head], "big") + head - 4
                    if len(buf) < size:
                        break
                    msg, buf = buf[:size], buf[size:]
                    started = True
                    kind = msg[:1]
                    if kind == b"c":  # CopyDone
                        state["copies"] += 1
                    elif kind == b"Q" and msg[5:].rstrip(b"\0") == b"COMMIT" \
                            and state["copies"] and not self.cut.is_set():
                        state["commits"] += 1
                        if state["commits"] == self.nth:
                            self.cut.set()
                            server.sendall(out)
                            if self.lose == "commit":
                                self._close(client, server)
                                return
                            state["dropping"] = True
                            server.sendall(msg)
                            return  # _down closes both once the server has answered
                    out += msg
                server.sendall(out)
        except OSError:
            pass
        if not state["dropping"]:
            self._close(client, server)

    def _down(self, server: Any, client: Any, state: dict[str, Any]) -> None:
        seen = b""
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                if state["dropping"]:
                    seen += data
                    if b"Z\0\0\0\5" in seen:  # ReadyForQuery: the COMMIT is done
                        break
                    continue
                client.sendall(data)
        except OSError:
            pass
        self._close(client, server)

    def close(self) -> None:
        self._close(self.listener)
        with self._lock:
            self._close(*self._open)


@pytest.mark.integration
@pytest.mark.parametrize("lose", ["answer", "commit"])
@pytest.mark.parametrize("path", ["streamed", "collected"])
def test_pg_commit_in_doubt_is_resolved_with_txid_status(pg: str, lose: str,
                                                         path: str) -> None:
    """The connection dies at a batch's COMMIT: after its answer was lost (the batch did
    commit: it must be counted and not sent again) or before the server saw it (it did not:
    it must be sent again). Insert mode: a batch sent twice would be unique violations."""
    from sqlalchemy.engine import make_url

    u = make_url(pg)
    table = f"doubt_{uuid.uuid4().hex[:8]}"
    _sql(pg, f"CREATE TABLE {table} (id int PRIMARY KEY, part text, v text NOT NULL)")
    cutter = CommitCutter(u.host or "127.0.0.1", u.port or 5432, lose)
    try:
        via = u.set(port=cutter.port, query={"sslmode": "disable", "gssencmode": "disable"})
        # a per-record table name takes the collected way (one batch collected, then sent)
        target = table if path == "streamed" else f"{table[:-1]}{{part}}"
        loader = load_sql(via.render_as_string(hide_password=False), target, mode="insert",
                          batch_size=100, retry_backoff=0.05)
        recs = [{"id": i, "part": table[-1], "v": f"v{i}"} for i in range(500)]
        report = run(pipe(recs, loader), progress=False)
        assert cutter.cut.is_set(), "no COMMIT was cut"
        assert (report.read, report.loaded, report.dead_letters) == (500, 500, 0)
        assert loader.stats.committed == 500
        assert _sql(pg, f"SELECT count(*), count(DISTINCT id) FROM {table}") == [[(500, 500)]]
    finally:
        cutter.close()
        _sql(pg, f"DROP TABLE IF EXISTS {table}")


@pytest.mark.integration
def test_pg_create_with_infer_columns_takes_types_from_the_first_record(pg: str) -> None:
    table = f"inferred_{uuid.uuid4().hex[:8]}"
    utc = dt.UTC
    first = {"id": 1, "ok": True, "f": 0.5, "amount": Decimal("12.34"),
             "at": dt.datetime(2025, 3, 1, 12, 30, tzinfo=utc),
             "naive": dt.datetime(2025, 3, 1, 12, 30), "day": dt.date(2025, 3, 1),
             "doc": {"k": [1, None]}, "tags": ["a", "b"], "raw": b"\x00\xff", "name": "é"}
    second = {**first, "id": 2, "ok": False, "doc": {}, "tags": [], "name": None}
    try:
        report = run(pipe([first, second], load_sql(pg, table, key=["id"], create=True,
                                                     infer_columns=True)), progress=False)
        assert (report.loaded, report.dead_letters) == (2, 0)
        [types] = _sql(pg, "SELECT a.attname, format_type(a.atttypid, a.atttypmod) "
                           "FROM pg_attribute a WHERE a.attrelid = "
                           f"'{table}'::regclass AND a.attnum > 0 ORDER BY a.attnum")
        assert types == [("id", "bigint"), ("ok", "boolean"), ("f", "double precision"),
                         ("amount", "numeric"), ("at", "timestamp with time zone"),
                         ("naive", "timestamp without time zone"), ("day", "date"),
                         ("doc", "jsonb"), ("tags", "jsonb"), ("raw", "bytea"),
                         ("name", "text")]
        [[(pkey,)]] = _sql(pg, "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                               f"WHERE conrelid = '{table}'::regclass AND contype = 'p'")
        assert pkey == "PRIMARY KEY (id)"
        [rows] = _sql(pg, f"SELECT * FROM {table} ORDER BY id")
        assert rows[0] == (1, True, 0.5, Decimal("12.34"), first["at"], first["naive"],
                           first["day"], {"k": [1, None]}, ["a", "b"], b"\x00\xff", "é")
        assert rows[1][1] is False and rows[1][7:9] == ({}, []) and rows[1][10] is None
    finally:
        _sql(pg, f"DROP TABLE IF EXISTS {table}")


@pytest.mark.integration
def test_pg_upsert_merge_meeting_a_concurrent_insert_of_one_of_its_keys(pg: str) -> None:
    """A batch with existing keys goes by MERGE; another transaction inserts one of its new
    keys meanwhile (uncommitted: MERGE waits on it; committed: a unique violation). The
    batch is written again with ON CONFLICT: the loader's values win, no dead letter, no
    bisection."""
    import psycopg

    table = f"merge_race_{uuid.uuid4().hex[:8]}"
    _sql(pg, f"CREATE TABLE {table} (id int PRIMARY KEY, name text)",
         f"INSERT INTO {table} SELECT g, 'old' FROM generate_series(0, 9) g")
    other = psycopg.connect(_plain(pg))
    try:
        other.execute(f"INSERT INTO {table} VALUES (100, 'theirs')")  # open transaction
        loader = load_sql(pg, table, key=["id"], batch_size=1000)
        result: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: result.update(report=run(
            pipe([{"id": i, "name": f"n{i}"} for i in range(200)], loader), progress=False)))
        worker.start()
        deadline = time.monotonic() + 60
        while True:  # until the loader's MERGE waits on the other transaction's key
            [waiting] = _sql(pg, "SELECT count(*) FROM pg_stat_activity WHERE "
                                 "wait_event_type = 'Lock' AND query LIKE 'MERGE INTO%'")
            if waiting[0][0] or not worker.is_alive() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert waiting[0][0] == 1, "the loader's MERGE never waited on the concurrent insert"
        other.commit()
        worker.join(60)
        report = result["report"]
        assert (report.loaded, report.dead_letters) == (200, 0) and loader._bisects == 0
        assert _sql(pg, f"SELECT count(*), count(*) FILTER (WHERE name = 'n' || id) "
                        f"FROM {table}") == [[(200, 200)]]
    finally:
        other.close()
        _sql(pg, f"DROP TABLE IF EXISTS {table}")


@pytest.mark.integration
def test_pg_upsert_violating_another_unique_constraint_is_a_dead_letter(pg: str) -> None:
    table = f"uniq_{uuid.uuid4().hex[:8]}"
    _sql(pg, f"CREATE TABLE {table} (id int PRIMARY KEY, email text UNIQUE)",
         f"INSERT INTO {table} VALUES (1, 'a@x')")
    try:
        recs = [{"id": 2, "email": "a@x"}, {"id": 3, "email": "b@x"}, {"id": 1, "email": "c@x"},
                *({"id": i, "email": f"{i}@x"} for i in range(10, 40))]
        out = list(load_sql(pg, table, key=["id"], batch_size=8)(recs))
        dead = list(dead_letters(out))
        assert [d.record for d in dead] == [recs[0]]
        assert dead[0].error_type == "UniqueViolation" and "email" in dead[0].error_message
        assert _sql(pg, f"SELECT id, email FROM {table} WHERE id < 10 ORDER BY id") == \
            [[(1, "c@x"), (3, "b@x")]]
        assert _sql(pg, f"SELECT count(*) FROM {table}") == [[(32,)]]
    finally:
        _sql(pg, f"DROP TABLE IF EXISTS {table}")


@pytest.mark.integration
def test_pg_upstream_failing_mid_batch_commits_nothing_of_that_batch(pg: str) -> None:
    """The streamed COPY of a batch is open while its records are read: an upstream error
    aborts it (the batches before it stay committed) and propagates."""
    table = f"abort_{uuid.uuid4().hex[:8]}"
    _sql(pg, f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")

    def records() -> Iterator[dict[str, Any]]:
        for i in range(150):
            if i == 110:  # batch 2's COPY opens once batch 1 has committed
                deadline = time.monotonic() + 30
                while _sql(pg, f"SELECT count(*) FROM {table}") != [[(100,)]]:
                    assert time.monotonic() < deadline, "batch 1 did not commit"
                    time.sleep(0.01)
            # a field the table lacks: a dead letter, of a batch that is then abandoned
            yield {"id": i, "v": "x", **({"zz": 1} if i == 120 else {})}
        raise ValueError("source broke")

    try:
        loader = load_sql(pg, table, key=["id"], batch_size=100)
        seen: list[Any] = []
        with pytest.raises(ValueError, match="source broke"):
            seen.extend(loader(records()))
        assert len(seen) == 100 and loader.stats.committed == 100
        # what the stage counts is what it passed on: the abandoned batch's dead letter
        # never reached a dead-letter queue, so it is not counted either
        assert (loader.stats.n_in, loader.stats.n_out, loader.stats.failed) == (100, 100, 0)
        assert _sql(pg, f"SELECT count(*), max(id) FROM {table}") == [[(100, 99)]]
        assert _sql(pg, "SELECT count(*) FROM pg_stat_activity WHERE state LIKE "
                        f"'idle in transaction%' AND query LIKE '%{table}%'") == [[(0,)]]
    finally:
        _sql(pg, f"DROP TABLE IF EXISTS {table}")


@pytest.mark.integration
def test_pg_a_resumed_insert_finds_its_own_rows_of_every_type(pg: str) -> None:
    """In a resumed insert, a duplicate counts as loaded only when the table holds it as it
    is: compared in every column the loader writes, whatever its type (json too), once per
    key, and only a row written before the run."""
    from returns.result import Failure

    src, dst = f"src_{uuid.uuid4().hex[:8]}", f"dst_{uuid.uuid4().hex[:8]}"
    _sql(pg, f"CREATE TABLE {src} ({_TYPES})",
         f"CREATE TABLE {dst} ({_TYPES}, js json, tz2 timestamptz(2), n2 numeric(8,2), "
         "fx numeric, sid bigserial, loaded_at timestamptz NOT NULL DEFAULT now())")
    # the loader writes these; sid and loaded_at are the table's own
    cols = {c: "-" for c in [*_COLS, "js", "tz2", "n2", "fx"]}
    try:
        _sql(pg, _FILL.format(table=src, n=60))
        records = [{**r, "js": {"b": [1, None], "a": r["id"]}, "tz2": r["tstz"],
                    "n2": r["id"] / 3, "fx": 0.1 + 0.2} for r in _source_records(pg, src)]
        first = run(pipe(records[:40], load_sql(pg, dst, key=["id"], mode="insert",
                                                 columns=cols)), progress=False)
        assert (first.loaded, first.dead_letters) == (40, 0)
        changed = [{**records[i], "t": "changed"} for i in (5, 6)]
        bad = {**records[35], "i": "not a number"}  # stored before, but not as it is
        # record 3 twice in one batch and record 10 again in a later one: the earlier row
        # is the first copy's alone; record 45 twice: its second copy meets the row this
        # run wrote, not an earlier one
        again = [*records[:5], records[3], *changed, *records[7:35], bad, *records[36:],
                 records[45], records[10]]
        loader = load_sql(pg, dst, key=["id"], mode="insert", batch_size=16, columns=cols)
        loader.resumed = True  # what sesa_fp.resume tells it in a resumed run
        out = list(loader(again))
        letters = {d.record["id"]: d for d in dead_letters(out)}
        assert sorted(letters) == sorted(records[i]["id"] for i in (3, 5, 6, 10, 35, 45))
        assert isinstance(out[3], dict) and isinstance(out[5], Failure)
        assert letters.pop(records[35]["id"]).error_type == "InvalidTextRepresentation"
        assert all(d.error_type == "UniqueViolation" for d in letters.values())
        assert loader.stats.committed == 57 and loader.resumed is False  # told per run
        assert _sql(pg, f"SELECT count(*), count(*) FILTER (WHERE t = 'changed') "
                        f"FROM {dst}") == [[(60, 0)]]
        # a batch stored before as a whole is looked up at once: no record is bisected out
        whole = load_sql(pg, dst, key=["id"], mode="insert", batch_size=16, columns=cols)
        whole.resumed = True
        assert not list(dead_letters(whole(records[16:32])))
        assert (whole.stats.committed, whole._bisects) == (16, 0)
        # not resumed: a duplicate is a dead letter, stored as it is or not
        plain = list(load_sql(pg, dst, key=["id"], mode="insert", columns=cols)(records[:3]))
        assert len(list(dead_letters(plain))) == 3
    finally:
        _sql(pg, f"DROP TABLE IF EXISTS {src}", f"DROP TABLE IF EXISTS {dst}")


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["insert", "upsert"])
def test_pg_each_item_of_a_streamed_chunk_is_written_its_own_way(pg: str, mode: str) -> None:
    """Records are read and written in chunks; one plain dict with every column goes into
    the COPY with the rest of its chunk, and any other item takes its own way within the same
    chunk: a failure from upstream passes through, a `Success` is unwrapped, a record with a
    renamed field (as many fields as columns) and a field the table lacks are dead letters,
    a missing field is NULL, a mapping that is not a dict is written by its keys."""
    from types import MappingProxyType

    from returns.result import Failure, Success

    from sesa_fp.result import DeadLetter

    table = f"chunk_{uuid.uuid4().hex[:8]}"
    _sql(pg, f"CREATE TABLE {table} (id int PRIMARY KEY, v text, n int)")
    upstream_letter = DeadLetter(record={"id": -1}, error_type="E", error_message="upstream",
                                 stage="before")

    def item(i: int) -> Any:
        rec = {"id": i, "v": f"v{i}", "n": i}
        special = {5: Failure(upstream_letter), 6: Success(rec),
                   7: {"id": i, "v": "w", "m": 1}, 8: {"id": i, "v": "w", "n": 1, "zz": 2},
                   9: {"id": i, "n": i}, 10: MappingProxyType(rec)}
        return special.get(i % 300, rec)

    try:
        items = [item(i) for i in range(1_000)]
        out = list(load_sql(pg, table, key=["id"], mode=mode, batch_size=600)(items))
        assert len(out) == len(items)
        passed = [x for x in out if isinstance(x, Failure)
                  and x.failure().error_message == "upstream"]
        assert len(passed) == 4
        bad = sorted(d.record["id"] for d in dead_letters(out) if d.stage != "before")
        assert bad == [7, 8, 307, 308, 607, 608, 907, 908]
        assert all(x == items[i] or isinstance(x, Failure) for i, x in enumerate(out)
                   if not isinstance(items[i], (Success, MappingProxyType)))
        assert _sql(pg, f"SELECT count(*), count(v), sum(n) FROM {table}") == \
            [[(988, 984, sum(range(1_000)) - sum(i for i in range(1_000)
                                                  if i % 300 in (5, 7, 8)))]]
        assert _sql(pg, f"SELECT v, n FROM {table} WHERE id IN (6, 9, 10) ORDER BY id") == \
            [[("v6", 6), (None, 9), ("v10", 10)]]
    finally:
        _sql(pg, f"DROP TABLE IF EXISTS {table}")


@pytest.mark.integration
@pytest.mark.parametrize(("mode", "other"), [("insert", "rollback"), ("insert", "commit"),
                                             ("upsert", "commit")])
def test_pg_next_batch_is_read_while_the_last_one_commits(pg: str, mode: str,
                                                          other: str) -> None:
    """While a batch's COPY ends and commits, the next batch's records are read, and written
    once the connection is free. Here batch 1 waits on another transaction holding key 50,
    and record 150 is read while batch 1 has not committed. That transaction then ends: rolled
    back, everything loads; committed, key 50 is a dead letter of batch 1 in insert mode and
    updated in upsert mode, and every other record, batch 2 included, commits."""
    import psycopg

    table = f"overlap_{uuid.uuid4().hex[:8]}"
    _sql(pg, f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
    blocker = psycopg.connect(_plain(pg))
    # a guard only: without the overlap the load would wait on the blocker for good
    guard = threading.Timer(60, blocker.rollback)
    seen: list[int] = []

    def records() -> Iterator[dict[str, Any]]:
        for i in range(300):
            if i == 150:
                seen.extend(r[0][0] for r in _sql(pg, f"SELECT count(*) FROM {table}"))
                blocker.rollback() if other == "rollback" else blocker.commit()
            # read while batch 1 ends, so kept and written later: a field the table
            # lacks (a dead letter), a field missing (NULL)
            yield {"id": i, "v": "x", "zz": 1} if i == 120 else {"id": i} if i == 130 \
                else {"id": i, "v": "x"}

    try:
        blocker.execute(f"INSERT INTO {table} VALUES (50, 'other')")
        guard.start()
        loader = load_sql(pg, table, key=["id"], mode=mode, batch_size=100)
        out = list(loader(records()))
        assert seen == [0]  # batch 1 had not committed when record 150 was read
        bad = list(dead_letters(out))
        assert "'zz'" in bad[-1].error_message and bad[-1].record["id"] == 120
        if mode == "insert" and other == "commit":
            assert [d.record["id"] for d in bad] == [50, 120] and "duplicate key" in \
                bad[0].error_message
            assert loader.stats.committed == 298
            assert _sql(pg, f"SELECT v FROM {table} WHERE id = 50") == [[("other",)]]
        else:
            assert len(bad) == 1 and loader.stats.committed == 299
            assert _sql(pg, f"SELECT v FROM {table} WHERE id = 50") == [[("x",)]]
        assert _sql(pg, f"SELECT v FROM {table} WHERE id = 130") == [[(None,)]]
        assert [r["id"] if isinstance(r, dict) else r.failure().record["id"] for r in out] \
            == list(range(300))
        assert _sql(pg, f"SELECT count(*), count(DISTINCT id) FROM {table}") == \
            [[(299, 299)]]
    finally:
        guard.cancel()
        blocker.close()
        _sql(pg, f"DROP TABLE IF EXISTS {table}")


def _resume_job(tmp: Path, url: str, mode: str, fail_at: int | None) -> Any:
    from sesa_fp import read_jsonl, stage, tee
    from sesa_fp.storage import dlq_sink, to_storage
    from sesa_fp.stream import partition

    def keep(rec: dict[str, Any]) -> dict[str, Any]:
        if rec["id"] == fail_at:
            raise RuntimeError("the job stops here")  # not a record error: the run fails
        return rec

    return pipe(read_jsonl(str(tmp / "in.jsonl")),
                tee(to_storage(str(tmp / "staging"), gzip=False, part_max_mb=0.002)),
                stage(keep, errors=(ValueError,)),
                load_sql(url, "t", key=["id"], mode=mode, batch_size=16),
                partition(dlq_sink(str(tmp / "dlq"))))


def _resume_case(tmp_path: Path, url: str, count: Any, mode: str,
                 seed: Any = None) -> None:
    n = 500
    (tmp_path / "in.jsonl").write_text("".join(f'{{"id": {i}, "v": "r{i}"}}\n'
                                               for i in range(n)))
    if mode == "insert":  # a row the input meets later with another value: a real duplicate
        seed()
    with pytest.raises(Exception, match="the job stops here"):
        # mid-part: batches of the part in flight commit before the run stops
        run(_resume_job(tmp_path, url, mode, fail_at=440), progress=False)
    first = count() - (mode == "insert")
    assert 0 < first < 440
    report = run(_resume_job(tmp_path, url, mode, None), progress=False)
    assert report.conserved and count() == n
    if mode == "replace":  # the table was emptied again: every part is loaded again
        assert report.dead_letters == 0
        assert report.skipped_parts == 0 and report.loaded == n
        return
    # the parts the ledger names as loaded are skipped, not written again
    assert report.skipped_parts > 0 and 0 < report.skipped_records <= first
    if mode == "upsert":
        assert report.dead_letters == 0 and report.loaded == n - report.skipped_records
        return
    # insert: the part in flight is read again; its records the first attempt committed
    # are found as they are and count as loaded; the real duplicate is a dead letter
    from sesa_fp import read_dead_letters

    assert first > report.skipped_records  # committed rows of the part in flight
    assert report.dead_letters == 1 and report.loaded == n - report.skipped_records - 1
    [letter] = read_dead_letters(str(tmp_path / "dlq"), letters=True)
    assert letter.record == {"id": 450, "v": "r450"}
    message = letter.letter["error_message"]
    assert "UNIQUE" in message or "duplicate key" in message


def test_sqlite_a_stopped_replay_of_staging_resumes_its_insert(tmp_path: Path) -> None:
    """A replay of a staged prefix (`from_storage`) that stops mid-part resumes past the
    parts it loaded; the records of the part in flight it had committed count as loaded."""
    from sesa_fp import from_storage, stage, tee
    from sesa_fp.storage import dlq_sink, to_storage
    from sesa_fp.stream import partition

    n, staging = 500, str(tmp_path / "staging")
    run(pipe([{"id": i, "v": f"r{i}"} for i in range(n)],
             tee(to_storage(staging, gzip=False, part_max_mb=0.002))), progress=False,
        dlq=str(tmp_path / "dlq0"))
    url, path = _sqlite(tmp_path, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")

    def job(fail_at: int | None) -> Any:
        def keep(rec: dict[str, Any]) -> dict[str, Any]:
            if rec["id"] == fail_at:
                raise RuntimeError("the replay stops here")
            return rec

        return pipe(from_storage(staging), stage(keep, errors=(ValueError,)),
                    load_sql(url, "t", key=["id"], mode="insert", batch_size=16),
                    partition(dlq_sink(str(tmp_path / "dlq"))))

    with pytest.raises(Exception, match="the replay stops here"):
        run(job(440), progress=False)
    [[first]] = _rows(path, "SELECT count(*) FROM t")
    report = run(job(None), progress=False)
    assert first > report.skipped_records > 0  # rows of the part in flight were committed
    assert (report.dead_letters, report.loaded) == (0, n - report.skipped_records)
    assert report.conserved and _rows(path, "SELECT count(*) FROM t") == [(n,)]


def test_sqlite_an_insert_stopped_before_its_first_part_resumes_cleanly(
        tmp_path: Path) -> None:
    """No staged part committed before the stop (one large part), but batches did: the
    resumed run reads from the top, and the rows the stopped attempt committed count as
    loaded."""
    url, path = _sqlite(tmp_path, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    n = 300
    (tmp_path / "in.jsonl").write_text("".join(f'{{"id": {i}, "v": "r{i}"}}\n'
                                               for i in range(n)))

    def job(fail_at: int | None) -> Any:
        from sesa_fp import read_jsonl, stage, tee
        from sesa_fp.storage import dlq_sink, to_storage
        from sesa_fp.stream import partition

        def keep(rec: dict[str, Any]) -> dict[str, Any]:
            if rec["id"] == fail_at:
                raise RuntimeError("the job stops here")
            return rec

        return pipe(read_jsonl(str(tmp_path / "in.jsonl")),
                    tee(to_storage(str(tmp_path / "staging"), gzip=False)),
                    stage(keep, errors=(ValueError,)),
                    load_sql(url, "t", key=["id"], mode="insert", batch_size=16),
                    partition(dlq_sink(str(tmp_path / "dlq"))))

    with pytest.raises(Exception, match="the job stops here"):
        run(job(100), progress=False)
    [[first]] = _rows(path, "SELECT count(*) FROM t")
    assert first == 96  # six batches of 16 committed; no part was
    report = run(job(None), progress=False)
    assert (report.skipped_records, report.dead_letters, report.loaded) == (0, 0, n)
    assert _rows(path, "SELECT count(*) FROM t") == [(n,)]
    # a fresh run is not a resumed one: every record meets its row and is a dead letter
    again = run(job(None), progress=False, fresh=True)
    assert (again.loaded, again.dead_letters) == (0, n)


@pytest.mark.parametrize("mode", ["upsert", "replace", "insert"])
def test_sqlite_a_failed_run_resumes_past_the_parts_it_loaded(tmp_path: Path,
                                                              mode: str) -> None:
    url, path = _sqlite(tmp_path, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")

    def seed() -> None:
        con = sqlite3.connect(path)
        con.execute("INSERT INTO t VALUES (450, 'other')")
        con.commit()
        con.close()

    _resume_case(tmp_path, url, lambda: _rows(path, "SELECT count(*) FROM t")[0][0], mode,
                 seed)


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["upsert", "replace", "insert"])
def test_pg_a_failed_run_resumes_past_the_parts_it_loaded(tmp_path: Path, pg: str,
                                                          mode: str) -> None:
    schema = f"resume_{uuid.uuid4().hex[:8]}"
    _sql(pg, f"CREATE SCHEMA {schema}", f"CREATE TABLE {schema}.t (id int PRIMARY KEY, v text)")
    url = f"{pg}{'&' if '?' in pg else '?'}options=-csearch_path%3D{schema}"
    try:
        _resume_case(tmp_path, url, lambda: _sql(pg, f"SELECT count(*) FROM {schema}.t")[0][0][0],
                     mode, lambda: _sql(pg, f"INSERT INTO {schema}.t VALUES (450, 'other')"))
    finally:
        _sql(pg, f"DROP SCHEMA {schema} CASCADE")
