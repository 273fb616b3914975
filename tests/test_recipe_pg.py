"""recipes/pg_to_search.yaml run as a user runs it: PostgreSQL -> staging -> transforms ->
OpenSearch, on the real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sqlalchemy")
psycopg = pytest.importorskip("psycopg")

from test_sql_source import _plain, pg_url  # noqa: E402, F401  (pg_url: a fixture)

from conftest import REPO, SearchAdmin  # noqa: E402

RECIPE = REPO / "recipes" / "pg_to_search.yaml"
SAMPLE = REPO / "recipes" / "data" / "rfi-pg.sql"
DAY = "2025-09-06"
_WHERE = "created_at >= CAST(%s AS date) AND created_at < CAST(%s AS date)"


@pytest.fixture
def rfi_schema(pg_url: str) -> Iterator[str]:  # noqa: F811
    """A fresh schema holding the sample ``rfi`` table; the job finds it by search_path."""
    schema = f"recipe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_plain(pg_url), autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
        con.execute(f"SET search_path TO {schema}")
        con.execute(SAMPLE.read_text(encoding="utf-8"))
    try:
        yield schema
    finally:
        with psycopg.connect(_plain(pg_url), autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@pytest.mark.integration
def test_recipe_runs_pg_to_search(pg_url: str, rfi_schema: str, search_url: str,  # noqa: F811
                                  search_admin: SearchAdmin, tmp_path: Path) -> None:
    prefix = f"rfi-pg-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "SEARCH_URL": search_url,
           "POSTGRES_URL": with_search_path(pg_url, rfi_schema)}
    next_day = "2025-09-07"
    with psycopg.connect(_plain(pg_url)) as con:
        con.execute(f"SET search_path TO {rfi_schema}")
        read, no_number = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE rfi_number IS NULL) FROM rfi "
            f"WHERE {_WHERE}", (DAY, next_day)).fetchone()
    assert read > 500 and no_number > 0
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "sesa_fp", "run", "--config", str(RECIPE), "--set",
             f"ds={DAY}", "--set", f"index_prefix={prefix}"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        assert (report["read"], report["dropped"], report["dead_letters"]) == \
            (read, no_number, 0)
        assert report["loaded"] == read - no_number and report["conserved"] is True
        docs = search_admin.docs(f"{prefix}-*")
        assert len(docs) == read - no_number
        doc = next(d for d in docs.values() if d["rfi_number"] % 7 == 0 and
                   d["rfi_number"] % 3 == 0)
        assert doc["title"].startswith("Rebar spacing") and doc["question"] is None
        assert doc["validated"] is True and doc["responded_at"] is None
        assert doc["created_at"].startswith(DAY) and doc["created_at"].endswith("+00:00")
        assert isinstance(doc["amount"], float) and isinstance(doc["tags"], list)
        assert doc["meta"]["source"] == "pg"
        staged = list((tmp_path / "out/pg_to_search/staging").glob(
            f"run_date={DAY}/*/_manifest.json"))
        assert len(staged) == 1
        assert json.loads(staged[0].read_text())["totals"]["records"] == read
        assert "sesa:sesa@" not in proc.stderr  # the URL's password is masked in the logs
    finally:
        search_admin.drop(f"{prefix}-*")
