"""Run metrics in Prometheus' text format: the textfile written atomically with the report's
counters, and a push to a Pushgateway-shaped HTTP server on loopback that records what it got."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from sesa_fp import ConfigError, partition, pipe, run, stage
from sesa_fp.cli import app
from sesa_fp.metrics import export_metrics, metrics_text


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _report() -> Any:
    dead: list[Any] = []
    recs = [{"x": str(i)} for i in range(9)] + [{"x": "bad"}, {"x": "0"}]
    return run(pipe(recs, stage(lambda r: {"x": int(r["x"])}),
                    stage(lambda r: r if r["x"] else None, name="drop_zero"),
                    partition(dead.append)), progress=False, job="demo")


def test_metrics_text_holds_the_reports_counters() -> None:
    report = _report()
    s = _samples(metrics_text(report))
    job = (("job", "demo"),)
    assert s[("sesa_run_records_read", job)] == report.read == 11
    assert s[("sesa_run_records_emitted", job)] == report.emitted == 8
    assert s[("sesa_run_records_dropped", job)] == report.dropped == 2
    assert s[("sesa_run_dead_letters", job)] == report.dead_letters == 1
    assert s[("sesa_run_success", job)] == 1.0
    by_stage = {dict(k[1])["stage"]: v for k, v in s.items()
                if k[0] == "sesa_stage_records_out"}
    assert by_stage == {st["name"]: st["out"] for st in report.stages}
    dropped = {dict(k[1])["stage"]: v for k, v in s.items()
               if k[0] == "sesa_stage_records_dropped"}
    assert dropped["drop_zero"] == 2


def test_textfile_is_written_whole_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "sesa.prom"
    path.write_text("old\n")
    export_metrics(_report(), file=path)
    text = path.read_text()
    assert 'sesa_run_records_read{job="demo"} 11.0' in text
    assert os.listdir(tmp_path) == ["sesa.prom"]  # no temporary file left beside it
    with pytest.raises(ConfigError, match="does not exist"):
        export_metrics(_report(), file=tmp_path / "missing" / "x.prom")


class _Gateway(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    _Gateway.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_push_sends_the_metrics_to_the_gateway_job_group(gateway: str) -> None:
    export_metrics(_report(), pushgateway=gateway, grouping={"instance": "etl-1"})
    ((method, path, body),) = _Gateway.received
    assert (method, path) == ("PUT", "/metrics/job/demo/instance/etl-1")
    s = _samples(body.decode())
    assert s[("sesa_run_records_read", ())] == 11  # job comes from the group, not a label


def test_push_to_a_closed_port_raises_and_bad_url_is_a_config_error() -> None:
    with pytest.raises(OSError):
        export_metrics(_report(), pushgateway="http://127.0.0.1:9", timeout=2)
    with pytest.raises(ConfigError, match="pushgateway must be a URL"):
        export_metrics(_report(), pushgateway="localhost:9091")


def test_cli_run_writes_the_file_and_pushes(tmp_path: Path, gateway: str) -> None:
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    job = tmp_path / "job.yaml"
    job.write_text(
        "job_name: cli-metrics\n"
        f"extractor: {{type: jsonl, path: '{tmp_path}/in.jsonl'}}\n"
        f"loader: {{type: files, dataset: d, connection: {{root: '{tmp_path}/out'}}}}\n"
        f"metrics: {{file: '{tmp_path}/from-yaml.prom'}}\n")
    prom = tmp_path / "run.prom"
    result = CliRunner().invoke(app, ["run", "--config", str(job), "--metrics-file", str(prom),
                                      "--pushgateway", gateway])
    assert result.exit_code == 0, result.output
    assert 'sesa_run_records_loaded{job="cli-metrics"} 2.0' in prom.read_text()
    assert not (tmp_path / "from-yaml.prom").exists()  # the flag wins over the YAML
    assert [p for _, p, _ in _Gateway.received] == ["/metrics/job/cli-metrics"]
    # without flags the job's metrics: section is used
    result = CliRunner().invoke(app, ["run", "--config", str(job)])
    assert result.exit_code == 0, result.output
    assert "sesa_run_records_loaded" in (tmp_path / "from-yaml.prom").read_text()
