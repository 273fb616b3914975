"""`http_source` against a real HTTP server on loopback (uvicorn serving tests/http_api_server.py):
every pagination style over 100,000 records through injected faults, resume from a position,
the typed errors, the shared rate limit measured server-side, secrets masked, YAML = Python."""

from __future__ import annotations

import io
import itertools
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_api_server import ApiServer, free_port, record, serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sesa_fp import pipe, run, stage
from sesa_fp.errors import ConfigError, SesaError
from sesa_fp.logs import configure_logging
from sesa_fp.secrets import Secret
from sesa_fp.sources.http import (
    HttpPageError,
    HttpRequestError,
    HttpUnavailableError,
    PaginationLoopError,
    basic,
    bearer,
    http_source,
)
from sesa_fp.sources.pagination import (
    Page,
    PageRequest,
    cursor,
    link_header,
    next_url,
    offset_limit,
    page_number,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent
N = 100_000
SIZE = 5_000


@pytest.fixture(scope="module")
def api() -> Iterator[ApiServer]:
    with serve() as server:
        yield server


def source_for(api: ApiServer, scenario: str, style: str, **kw: Any) -> Any:
    """An http_source over ``style`` of a scenario configured beforehand."""
    base = f"{api.url}/s/{scenario}/{style}"
    paginate = {"page": page_number(size=SIZE), "offset": offset_limit(SIZE),
                "cursor": cursor(first_params={"limit": SIZE}), "next": next_url(),
                "link": link_header()}[style]
    params = {**({"limit": SIZE} if style in ("next", "link") else {}), **kw.pop("params", {})}
    return http_source(base, paginate=paginate, params=params or None, **kw)


STYLES = ["page", "offset", "cursor", "next", "link"]
# request number -> fault (each fires once, so its retry gets the page)
FAULTS = {"2": "429:1", "4": "500", "6": "slow:1.2", "8": "reset", "10": "503date:2",
          "12": "slow:0.3"}


@pytest.mark.parametrize("style", STYLES)
def test_every_record_once_in_order_through_faults(api: ApiServer, style: str) -> None:
    api.scenario(f"faults-{style}", total=N, faults=FAULTS)
    src = source_for(api, f"faults-{style}", style, timeout=0.6, retry_backoff=0.05)
    ids: list[int] = []
    report = run(pipe(src, stage(lambda r: ids.append(r["id"]) or r)), progress=False)
    assert ids == list(range(N))
    assert report.read == N and report.emitted == N
    # 429, 500, timeout, dropped connection, 503: one retry each; the 0.3 s answer is no fault
    assert report.retries == 5 and src.stats.retries == 5
    stats = api.stats(f"faults-{style}")
    pages = N // SIZE + (1 if style in ("page", "offset") else 0)  # the empty / short last page
    assert stats["requests"] == pages + 5
    times = stats["times"]
    assert times[2] - times[1] >= 0.95  # Retry-After: 1 (seconds) was honoured
    assert times[10] - times[9] >= 0.9  # Retry-After as an HTTP date (second resolution)
    assert src.position == {"done": True}


@pytest.mark.parametrize("style", ["page", "cursor", "link"])
def test_resume_from_a_saved_position(api: ApiServer, style: str) -> None:
    api.scenario(f"resume-{style}", total=N)
    first = source_for(api, f"resume-{style}", style)
    it = iter(first)
    head = [r["id"] for r in itertools.islice(it, 12_345)]
    position = first.position
    it.close()  # killed here
    assert position["skip"] == 12_345 - 2 * SIZE
    again = source_for(api, f"resume-{style}", style, start=position)
    rest = [r["id"] for r in again]
    assert head + rest == list(range(N))
    # at a page boundary the position is the next page's request, nothing to skip
    at_edge = source_for(api, f"resume-{style}", style)
    it = iter(at_edge)
    list(itertools.islice(it, SIZE))
    assert at_edge.position["skip"] == 0
    it.close()
    assert [r["id"] for r in source_for(api, f"resume-{style}", style,
                                        start=at_edge.position)][:1] == [SIZE]


def test_page_number_stops_on_an_empty_page_without_a_size(api: ApiServer) -> None:
    api.scenario("empty-stop", total=1_234)
    src = http_source(f"{api.url}/s/empty-stop/page", paginate=page_number(),
                      params={"per_page": 500})
    assert [r["id"] for r in src] == list(range(1_234))
    assert src.pages == 4  # 500, 500, 234, then an empty page


def test_a_function_can_paginate(api: ApiServer) -> None:
    api.scenario("fn", total=2_500)

    def by_offset(page: Page) -> PageRequest | None:
        if not page.records:
            return None
        return PageRequest(page.request.url, {"offset": page.records[-1]["id"] + 1,
                                              "limit": 1_000})

    src = http_source(f"{api.url}/s/fn/offset", paginate=by_offset, params={"limit": 1_000})
    assert [r["id"] for r in src] == list(range(2_500))


@pytest.mark.parametrize("style", ["cursor", "next"])
def test_a_repeating_cursor_is_a_typed_error(api: ApiServer, style: str) -> None:
    api.scenario(f"loop-{style}", total=N, loop_after=3)
    src = source_for(api, f"loop-{style}", style)
    with pytest.raises(PaginationLoopError, match=r"pagination loop on http://127\.0\.0\.1:\d+"
                       r": page 5 would request .* again \(page 3 did\)"):
        list(src)
    assert api.stats(f"loop-{style}")["requests"] == 4


@pytest.mark.parametrize(("fault", "match"), [
    ("malformed", r"page 3 \(.*/s/bad-malformed/cursor \{'limit': 5000, 'cursor': 'c10000'\}\) is "
                  r"not valid "
                  r"JSON"),
    ("missing", r"page 3 \(.*\) has no 'data\.items' \(records=\); its top-level keys: "
                r"\['result'\]"),
])
def test_a_bad_page_is_a_typed_error_naming_it(api: ApiServer, fault: str, match: str) -> None:
    api.scenario(f"bad-{fault}", total=N, faults={"3": fault})
    with pytest.raises(HttpPageError, match=match):
        list(source_for(api, f"bad-{fault}", "cursor"))
    assert api.stats(f"bad-{fault}")["requests"] == 3  # not retried, not skipped


def test_a_4xx_stops_at_once_with_the_url_and_first_line(api: ApiServer) -> None:
    api.scenario("gone", total=N, faults={"2": "404"})
    src = source_for(api, "gone", "offset", params={"api_key": Secret("planted-key-0042")})
    with pytest.raises(HttpRequestError) as info:
        list(src)
    text = str(info.value)
    assert "HTTP 404: no such collection" in text and "second line" not in text
    assert "/s/gone/offset?" in text and "offset=5000" in text and "api_key=***" in text
    assert "planted-key-0042" not in text and info.value.status == 404
    assert api.stats("gone")["requests"] == 2


def test_an_outage_outlasting_the_retries_names_the_host(api: ApiServer) -> None:
    api.scenario("down", total=N, faults={str(i): "500" for i in range(2, 10)})
    src = source_for(api, "down", "cursor", max_retries=2, retry_backoff=0.01)
    with pytest.raises(HttpUnavailableError, match=r"API host http://127\.0\.0\.1:\d+ "
                       r"unavailable after 3 attempt\(s\) \(page 2, .*HTTP 500: internal error"):
        list(src)
    assert src.stats.retries == 2 and src.stats.n_out == SIZE
    port = free_port()  # nothing listens there
    with pytest.raises(HttpUnavailableError, match=f"127.0.0.1:{port} unavailable") as info:
        list(http_source(f"http://127.0.0.1:{port}/items", max_retries=1, retry_backoff=0.01))
    assert isinstance(info.value, SesaError) and info.value.host == f"http://127.0.0.1:{port}"


def test_cli_exits_1_on_an_outage(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(f"""
job_name: api_down
extractor:
  type: api
  url: "http://127.0.0.1:{free_port()}/items"
  max_retries: 1
  retry_backoff: 0.01
loader: {{type: files, dataset: items, connection: {{root: "{tmp_path}/out"}}}}
""")
    proc = subprocess.run([sys.executable, "-m", "sesa_fp", "run", "--config", str(job)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1, proc.stderr
    assert "HttpUnavailableError: http_source: API host http://127.0.0.1:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rate_limit_is_shared_by_partitions_and_honoured(api: ApiServer) -> None:
    api.scenario("rate", total=10_000_000)
    src = http_source(f"{api.url}/s/rate/page", paginate=page_number(size=10),
                      rate_limit="20/s", partitions=[{"region": "eu"}, {"region": "us"}])
    assert all(p.limiter is src.limiter for p in src.partitions())
    it = iter(src)
    deadline = time.monotonic() + 6.0
    for _ in it:
        if time.monotonic() > deadline:
            break
    it.close()
    stats = api.stats("rate")
    times = stats["times"]
    start = times[0] + 0.5  # measured over 5 s, away from the first request
    in_window = sum(1 for t in times if start <= t < start + 5.0)
    assert 90 <= in_window <= 110, in_window  # 20/s * 5 s within 10 %
    regions = {p.rsplit("region=", 1)[1].split("&")[0] for p in stats["paths"]}
    assert regions == {"eu", "us"}  # both partitions drew from the one limit
    positions = src.position["partitions"]
    assert len(positions) == 2 and all(p["params"]["page"] > 1 for p in positions)


def test_secrets_never_appear(api: ApiServer) -> None:
    token = "planted-T0KEN-7f3a9c"
    api.scenario("auth", total=30_000, token=token, faults={"2": "500"})
    log = io.StringIO()
    configure_logging(logging.INFO, log)
    try:
        good = source_for(api, "auth", "cursor", auth=bearer(token), retry_backoff=0.01)
        report = run(pipe(good, stage(lambda r: r)), progress=False)
        assert report.read == 30_000 and report.retries == 1
        wrong = source_for(api, "auth", "cursor", auth=bearer(Secret(token + "-old")),
                           headers={"X-Trace": "t1"})
        with pytest.raises(HttpRequestError) as info:
            list(wrong)
        assert "HTTP 401: unauthorized: got 'Bearer ***'" in str(info.value)
        shown = [repr(good), repr(wrong), str(info.value), log.getvalue(), str(report),
                 repr(basic("etl", token)), str(report.as_dict() if hasattr(report, "as_dict")
                                                 else report)]
    finally:
        configure_logging()
    assert "http_retry" in log.getvalue()
    for text in shown:
        assert token not in text


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="url must be an http"):
        http_source("ftp://example/x")
    with pytest.raises(ConfigError, match="rate_limit must look like"):
        http_source("http://x/", rate_limit="lots")
    with pytest.raises(ConfigError, match="limit must be an int >= 1"):
        offset_limit(0)
    with pytest.raises(ConfigError, match="is not a position of this source"):
        http_source("http://x/", start={"cursor": "c1"})


def test_yaml_api_extractor_is_the_python_source(tmp_path: Path) -> None:
    from sesa_fp.config import build_job, load_job

    job = tmp_path / "job.yaml"
    job.write_text("""
job_name: api_yaml
extractor:
  type: api
  url: "https://api.example/v1/items"
  params: {status: open}
  records: results
  paginate: {type: cursor, path: meta.next, param: after}
  auth: {type: bearer, token: "{{ env.API_TOKEN }}"}
  rate_limit: 5/s
  partitions: [{region: eu}, {region: us}]
loader: {type: files, dataset: items}
""")
    built = build_job(load_job(job, environ={"API_TOKEN": "planted-yaml-tok"}))
    by_hand = http_source("https://api.example/v1/items", params={"status": "open"},
                          records="results", paginate=cursor("meta.next", param="after"),
                          auth=bearer("x"), rate_limit="5/s",
                          partitions=[{"region": "eu"}, {"region": "us"}])
    assert repr(built.pipeline.source) == repr(by_hand)
    assert built.pipeline.source.auth.token == Secret("planted-yaml-tok")
    assert "planted-yaml-tok" not in built.pipeline.to_python()
    bad = job.read_text().replace("type: cursor", "type: cursors")
    job.write_text(bad)
    with pytest.raises(ConfigError, match=r"extractor\.paginate\.type: unknown strategy 'cursors'"):
        build_job(load_job(job, environ={"API_TOKEN": "t"}))


def test_records_match_the_server(api: ApiServer) -> None:
    api.scenario("shape", total=3)
    assert list(source_for(api, "shape", "cursor")) == [record(i) for i in range(3)]


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(style=st.sampled_from(STYLES), total=st.integers(0, 60), size=st.integers(1, 9),
       cut=st.integers(0, 70))
def test_law_stopping_anywhere_and_resuming_reads_each_record_once(
        api: ApiServer, style: str, total: int, size: int, cut: int) -> None:
    api.scenario("law", total=total)
    base = f"{api.url}/s/law/{style}"

    def source(**kw: Any) -> Any:
        paginate = {"page": page_number(size=size), "offset": offset_limit(size),
                    "cursor": cursor(first_params={"limit": size}), "next": next_url(),
                    "link": link_header()}[style]
        params = {"limit": size} if style in ("next", "link") else None
        return http_source(base, paginate=paginate, params=params, **kw)

    first = source()
    it = iter(first)
    head = [r["id"] for r in itertools.islice(it, cut)]
    position = first.position
    it.close()
    rest = [r["id"] for r in source(start=position)]  # None: from the beginning
    assert head + rest == list(range(total))
