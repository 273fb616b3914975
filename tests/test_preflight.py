"""`sesa validate`: field warnings without I/O, and `--check-target` on the real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sesa_fp.config import build_job, load_job
from sesa_fp.config.preflight import check_target, field_warnings

REPO = Path(__file__).resolve().parent.parent
SEED_JOB = REPO / "tests" / "jobs" / "seed_job.yaml"


def sesa(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests/jobs")])}
    return subprocess.run([sys.executable, "-m", "sesa_fp", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_validate_warns_about_the_seed_jobs_missing_created_at(tmp_path: Path) -> None:
    proc = sesa("validate", "--config", str(SEED_JOB), "--set", "ds=2025-09-06", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("sesa: warning:")]
    assert ("sesa: warning: extractor.fields leaves out 'created_at', used by "
            "transform.chain[1] (cast): the cast never applies") in warnings
    assert any("'created_at', used by loader.dataset 'rfi-enriched-{created_at:%Y.%m}' "
               "(unless transform.chain[2] (python_class) adds it): every record would "
               "become a dead letter" in w for w in warnings), warnings
    assert any("'responded_at', used by transform.chain[1] (cast)" in w for w in warnings)
    assert not any("project_id" in w or "rfi_number" in w for w in warnings)  # they are read
    assert proc.stdout.strip() == "ok: rfi_pipeline: 6 stages (3 warnings)"
    assert not list(tmp_path.iterdir())


def test_no_warning_when_fields_are_read_or_not_listed(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("""
job_name: ok
extractor: {type: elasticsearch, index: i, fields: ["_id", "doc", "p*"]}
transform: {chain: [{type: derive, field: month, fn: "json:dumps"},
                    {type: cast, fields: [doc.created_at, project], to: str}]}
loader: {type: elasticsearch, dataset: "x-{month}", options: {routing: "{project}",
         id_strategy: {type: field, field: _id}}}
""")
    assert field_warnings(load_job(job)) == []
    quickstart = load_job(REPO / "recipes/quickstart.yaml", {"ds": "2025-09-06"})
    assert field_warnings(quickstart) == []  # a jsonl extractor reads every field


# -- --check-target, on the real search engine ---------------------------------------------------

def _job(tmp_path: Path, search_url: str, dataset: str, records: list[dict[str, Any]],
         mappings: dict[str, Any] | None = None) -> Path:
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    options = {"id_strategy": {"type": "field", "field": "k"}}
    if mappings is not None:
        options["mappings"] = mappings
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({
        "job_name": "preflight",
        "extractor": {"type": "jsonl", "path": str(data)},
        "storage": {"backend": "local", "uri": str(tmp_path / "staging")},
        "transform": {"chain": [{"type": "cast", "fields": ["n"], "to": "int"}]},
        "loader": {"type": "elasticsearch", "connection": {"hosts": [search_url]},
                   "dataset": dataset, "options": options},
        "dlq": {"backend": "local", "uri": str(tmp_path / "dlq")},
    }))
    return job


@pytest.mark.integration
def test_check_target_reports_conflicts_and_missing_indices_and_writes_nothing(
        search_url: str, search_admin: Any, tmp_path: Path) -> None:
    prefix = search_admin.new_index("preflight")
    existing = f"{prefix}-a"
    search_admin.client.indices.create(index=existing, body={"mappings": {"properties": {
        "title": {"type": "long"}, "n": {"type": "long"}}}})
    records = [{"k": i, "kind": "a" if i % 2 else "b", "n": str(i), "title": f"t{i}"}
               for i in range(10)] + [{"k": 99, "kind": "a", "n": "x", "title": "5"}]
    job = _job(tmp_path, search_url, prefix + "-{kind}", records)
    proc = sesa("validate", "--config", str(job), "--check-target", "--sample", "20",
                cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "sampled 11 records" in out
    assert f"target {existing}: 5 records\n" in out
    assert f"target {prefix}-b: 5 records (missing: it would be created)" in out
    assert (f"conflict: index {existing}: field 'title' is mapped as long, the sample has "
            "'t1'") in out
    assert "field 'n' is mapped" not in out  # cast made it an int: it fits
    assert "dead letter: record 11 at cast(['n'], to='int'): CastError" in out
    assert "mapping conflicts" in proc.stderr
    # nothing was written anywhere
    assert search_admin.count(existing) == 0
    assert not search_admin.client.indices.exists(index=f"{prefix}-b")
    assert not (tmp_path / "staging").exists() and not (tmp_path / "dlq").exists()
    search_admin.drop(prefix + "-*")


@pytest.mark.integration
def test_check_target_passes_a_clean_job_and_checks_declared_mappings(
        search_url: str, search_admin: Any, tmp_path: Path) -> None:
    prefix = search_admin.new_index("preflight")
    records = [{"k": i, "kind": "a", "n": str(i), "title": f"t{i}"} for i in range(5)]
    clean = _job(tmp_path, search_url, prefix + "-{kind}", records,
                 mappings={"properties": {"n": {"type": "long"}, "title": {"type": "text"}}})
    proc = sesa("validate", "--config", str(clean), "--check-target", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"target {prefix}-a: 5 records (missing: it would be created)" in proc.stdout
    assert proc.stdout.strip().endswith("ok: preflight: 6 stages")
    clash = _job(tmp_path, search_url, prefix + "-{kind}", records,
                 mappings={"properties": {"title": {"type": "date"}}})
    proc = sesa("validate", "--config", str(clash), "--check-target", cwd=tmp_path)
    assert proc.returncode == 1
    assert (f"conflict: loader mappings for new index {prefix}-a: field 'title' is mapped "
            "as date, the sample has 't0'") in proc.stdout
    assert not search_admin.client.indices.exists(index=f"{prefix}-a")


def test_check_target_on_an_unreachable_engine_fails_in_one_line(tmp_path: Path) -> None:
    job = _job(tmp_path, "http://127.0.0.1:9", "x", [{"k": 1, "n": "1"}])
    proc = sesa("validate", "--config", str(job), "--check-target", cwd=tmp_path)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sesa: error:")]
    assert len(errors) == 1 and "127.0.0.1:9" in errors[0]
    assert "Traceback" not in proc.stderr


# -- --check-target on SQL targets ---------------------------------------------------------------

def _sql_job(tmp_path: Path, url: str, kind: str, table: str, create: bool) -> Path:
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [
        {"k": 1, "kind": "a", "n": "1"}, {"k": 2, "kind": "b", "n": "2", "extra": "x"}]))
    job = tmp_path / "sql_job.yaml"
    job.write_text(json.dumps({
        "job_name": "preflight_sql",
        "extractor": {"type": "jsonl", "path": str(data)},
        "transform": {"chain": [{"type": "cast", "fields": ["n"], "to": "int"}]},
        "loader": {"type": kind, "connection": {"url": url}, "dataset": table,
                   "options": {"key": ["k"], "create": create,
                               **({"columns": {"k": "int", "kind": "text", "n": "int"}}
                                  if create else {})}},
    }))
    return job


def _target_lines(job: Path) -> tuple[bool, str]:
    """`check_target` in this process (what `validate --check-target` prints)."""
    found = check_target(build_job(load_job(job)).pipeline)
    return found.ok, "\n".join(found.lines()) + "\n"


def _check_sql(tmp_path: Path, url: str, kind: str, make_table: Any) -> None:
    make_table("CREATE TABLE pf_a (k int primary key, kind text, n int)")
    ok, out = _target_lines(_sql_job(tmp_path, url, kind, "pf_{kind}", False))
    assert not ok, out
    assert "target pf_a: 1 records\n" in out
    assert "target pf_b: 1 records (missing: it would be created)" in out
    assert "conflict: table pf_b does not exist and create is off: the run would fail" in out
    make_table("CREATE TABLE pf_b (k int primary key, kind text, n int)")
    ok, out = _target_lines(_sql_job(tmp_path, url, kind, "pf_{kind}", False))
    assert not ok
    assert ("conflict: table pf_b: the sample has fields the table lacks: extra (their "
            "records would be dead letters)") in out
    ok, out = _target_lines(_sql_job(tmp_path, url, kind, "pf_new", True))
    assert ok, out
    assert "target pf_new: 2 records (missing: it would be created)" in out


def test_check_target_on_sqlite_tables(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "t.db"

    def make_table(sql: str) -> None:
        with sqlite3.connect(db) as con:
            con.execute(sql)

    _check_sql(tmp_path, f"sqlite:///{db}", "sql", make_table)
    with sqlite3.connect(db) as con:  # nothing written, nothing created
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == [
            "pf_a", "sqlite_autoindex_pf_a_1", "pf_b", "sqlite_autoindex_pf_b_1"]
        assert con.execute("SELECT count(*) FROM pf_a").fetchone() == (0,)


@pytest.mark.integration
def test_check_target_on_postgres_tables(postgres_url: str, tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    schema = f"pf{os.getpid()}_{tmp_path.name[-6:]}".lower().replace("-", "_")
    with psycopg.connect(plain, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    url = plain + ("&" if "?" in plain else "?") + f"options=-csearch_path%3D{schema}"

    def make_table(sql: str) -> None:
        with psycopg.connect(plain, autocommit=True) as con:
            con.execute(f"SET search_path TO {schema}")
            con.execute(sql)

    try:
        _check_sql(tmp_path, url, "postgres", make_table)
        with psycopg.connect(plain) as con:
            tables = con.execute("SELECT table_name FROM information_schema.tables WHERE "
                                 "table_schema = %s ORDER BY 1", (schema,)).fetchall()
            assert tables == [("pf_a",), ("pf_b",)]  # pf_new was not created
    finally:
        with psycopg.connect(plain, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.integration
def test_check_target_finds_the_values_a_postgres_table_would_refuse(postgres_url: str,
                                                                    tmp_path: Path) -> None:
    """Each sample record is written into a temporary table of the target's shape: the ones
    the table would refuse are named with the server's error, and the table, its identity
    sequence and its trigger are not touched."""
    psycopg = pytest.importorskip("psycopg")
    from sesa_fp import pipe
    from sesa_fp.loaders.sql import load_sql

    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    schema = f"pv{os.getpid()}_{tmp_path.name[-6:]}".lower().replace("-", "_")
    url = plain + ("&" if "?" in plain else "?") + f"options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
        con.execute(f"SET search_path TO {schema}")
        con.execute("CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY, "
                    "k int PRIMARY KEY, name varchar(5) NOT NULL, qty int CHECK (qty >= 0), "
                    "at timestamptz, made timestamptz NOT NULL DEFAULT now())")
        con.execute("CREATE TABLE audit (n int)")
        con.execute("CREATE FUNCTION log_t() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$BEGIN INSERT INTO audit VALUES (1); RETURN NEW; END$$")
        con.execute("CREATE TRIGGER t_log BEFORE INSERT ON t FOR EACH ROW EXECUTE "
                    "FUNCTION log_t()")
    recs = [{"k": 1, "name": "ok", "qty": 1, "at": "2025-09-06T10:00:00Z"},
            {"k": 2, "name": None, "qty": 1, "at": None},
            {"k": 3, "name": "ok", "qty": -1, "at": None},
            {"k": 4, "name": "toolong", "qty": 1, "at": None},
            {"k": 5, "name": "ok", "qty": "many", "at": None},
            {"k": 6, "name": "ok", "qty": 2, "at": "not a time"},
            {"k": 7, "name": "ok", "qty": 3, "at": None}]
    cols = {"k": "int", "name": "text", "qty": "int", "at": "timestamptz"}
    try:
        for columns in (cols, None):
            # with columns, `id` and `made` are not written (their defaults apply); without,
            # every column is, and their NULLs are refused for every record
            pipeline = pipe(recs, load_sql(url, "t", key=["k"], columns=columns))
            found = check_target(pipeline)
            refused = {int(c.split("record ")[1].split(" ")[0]): c for c in found.conflicts
                       if " would be a dead letter: " in c}
            if columns is None:
                assert len(refused) == 5 and "2 more records" in found.conflicts[-1]
                assert "NotNullViolation" in refused[1] and ('"id"' in refused[1]
                                                             or '"made"' in refused[1])
                continue
            assert sorted(refused) == [2, 3, 4, 5, 6], found.conflicts  # numbered from 1
            assert "NotNullViolation" in refused[2] and "23502" in refused[2]
            assert "CheckViolation" in refused[3]
            assert "value too long for type character varying(5)" in refused[4]
            assert "InvalidTextRepresentation" in refused[5]
            assert "22007" in refused[6] or "22008" in refused[6]
            assert not found.ok
        with psycopg.connect(plain) as con:
            con.execute(f"SET search_path TO {schema}")
            assert con.execute("SELECT (SELECT count(*) FROM t), "
                               "(SELECT count(*) FROM audit)").fetchone() == (0, 0)
            seq = con.execute("SELECT pg_get_serial_sequence('t', 'id')").fetchone()[0]
            assert con.execute(f"SELECT is_called FROM {seq}").fetchone() == (False,)
    finally:
        with psycopg.connect(plain, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")
