"""The recipes' transforms, tested the way users test theirs: with `sesa_fp.testing`."""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sesa_fp import stage
from sesa_fp.errors import RecordError
from sesa_fp.testing import check_transform, records, run_chain, value_strategy
from sesa_fp.transforms import CastError, cast, normalize, python_class, validate

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes"
sys.path.insert(0, str(RECIPES))

from rfi_transforms import RfiValidateCast  # noqa: E402

SAMPLE = [json.loads(line) for line in
          (RECIPES / "data/rfi-sample.jsonl").read_text().splitlines()[:300]
          if line.startswith("{") and line.endswith("}")]
RFI = records(example=SAMPLE[0], nullable=["rfi_number", "title", "responded_at"],
              optional=["rfi_number", "created_at"])


def test_rfi_validate_cast_obeys_the_laws_and_declares_that_it_mutates() -> None:
    result = check_transform(RfiValidateCast, RFI, mutates=True, max_examples=60)
    assert result.records == 60 and result.dropped > 0 and result.returned > 0
    with pytest.raises(AssertionError, match="changed its input in place"):
        check_transform(RfiValidateCast, SAMPLE[:5])  # it does change it: the law catches it


def test_rfi_validate_cast_on_the_sample_as_a_python_class_stage() -> None:
    result = check_transform(python_class(RfiValidateCast), SAMPLE, mutates=True)
    assert result.records == len(SAMPLE)
    assert result.dropped == sum(1 for r in SAMPLE if not r.get("rfi_number"))


def test_normalize_and_cast_obey_the_laws_on_generated_records() -> None:
    check_transform(normalize(), RFI, max_examples=60)
    dated = records(types={"created_at": "iso_datetime", "responded_at": st.one_of(
        st.just(""), st.text(max_size=5), value_strategy("iso_datetime"))})
    result = check_transform(cast(["created_at", "responded_at"], to="datetime"), dated,
                             errors=(CastError,), max_examples=80)
    assert result.returned > 0


def test_check_transform_names_each_broken_law() -> None:
    with pytest.raises(AssertionError, match="not a record or None"):
        check_transform(lambda r: [r], [{"a": 1}])
    with pytest.raises(AssertionError, match="not among its declared errors"):
        check_transform(lambda r: r["missing"], [{"a": 1}])
    calls = iter(range(1000))
    with pytest.raises(AssertionError, match="not deterministic"):
        check_transform(lambda r: {**r, "n": next(calls)}, [{"a": 1}])
    # a stage's own errors are the declared ones
    assert check_transform(stage(lambda r: int(r["a"]) and r, errors=(ValueError,)),
                           [{"a": "x"}, {"a": "1"}]).raised == 1


@settings(max_examples=30, deadline=None)
@given(records(example={"at": "2025-09-06T10:00:00Z", "n": 1, "o": {"x": 1.5}, "tags": ["a"]},
               types={"n": "str"}))
def test_records_follow_the_example_and_the_types(rec: dict[str, Any]) -> None:
    assert sorted(rec) == ["at", "n", "o", "tags"]
    assert _dt.datetime.fromisoformat(rec["at"])  # an ISO string stays an ISO string
    assert isinstance(rec["n"], str) and isinstance(rec["o"]["x"], float)
    assert all(isinstance(t, str) for t in rec["tags"])


def test_quickstart_chain_runs_in_memory() -> None:
    result = run_chain(RECIPES / "quickstart.yaml", SAMPLE, sets={"ds": "2025-09-06"})
    dropped = sum(1 for r in SAMPLE if not r.get("rfi_number"))
    assert result.dropped == dropped
    assert len(result.records) + len(result.dead_letters) + result.dropped == len(SAMPLE)
    assert all(isinstance(r["created_at"], _dt.datetime) and r["validated"]
               for r in result.records)
    assert {d.error_type for d in result.dead_letters} <= {"CastError"}


def test_recipe_chains_for_api_and_postgres_run_in_memory() -> None:
    """The other recipes' chains, with made-up connection settings nothing ever uses."""
    env = {"API_URL": "http://api.invalid/items", "API_TOKEN": "t", "SEARCH_URL":
           "http://search.invalid:9200", "AZURE_STORAGE_CONNECTION_STRING": "x",
           "POSTGRES_URL": "postgresql://u:p@db.invalid/db"}
    api = run_chain(RECIPES / "api_to_search.yaml", SAMPLE, sets={"ds": "2025-09-06"},
                    environ=env)
    bad_dates = sum(1 for r in SAMPLE if r["created_at"] == "last tuesday")
    assert bad_dates == 1  # the sample has one, so the chain is seen to catch it
    assert (len(api.records), len(api.dead_letters), api.dropped) == \
        (len(SAMPLE) - bad_dates, bad_dates, 0)
    pg = run_chain(RECIPES / "pg_to_search.yaml", SAMPLE, sets={"ds": "2025-09-06"},
                   environ=env)
    assert pg.dropped == sum(1 for r in SAMPLE if not r.get("rfi_number"))
    assert not pg.dead_letters and all(r["validated"] for r in pg.records)


def test_seed_chain_makes_dead_letters_of_records_without_created_at() -> None:
    """The seed job's extractor leaves out created_at: its chain shows what that does. Its
    staging is on S3 and its loader on a remote engine: neither is built, nothing is
    contacted."""
    rows: list[dict[str, Any]] = [{k: r[k] for k in ("_id", "project_id", "rfi_number",
                                                    "title", "question")} for r in SAMPLE[:5]]
    sys.path.insert(0, str(REPO / "tests/jobs"))
    result = run_chain(REPO / "tests/jobs/seed_job.yaml", rows, sets={"ds": "2025-09-06"})
    assert len(result.records) == 5  # cast leaves a missing field alone ...
    assert all("created_at" not in r for r in result.records)  # ... the loader cannot name it


def test_validate_transform_raises_only_record_errors() -> None:
    check_transform(validate(required=["rfi_number"], types={"rfi_number": "int"}), RFI,
                    errors=(RecordError,), max_examples=60)
