"""`sesa run` output: readable on a terminal, JSON lines for schedulers, `--log-format` wins."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from sesa_fp.logs import TextFormatter, configure_logging, logger, resolve_log_format

REPO = Path(__file__).resolve().parent.parent
JOB = """
job_name: tiny
extractor: {type: jsonl, path: "in.jsonl"}
transform: {chain: [{type: cast, fields: [n], to: int}]}
loader: {type: files, dataset: "out", connection: {root: "warehouse"}}
dlq: {backend: local, uri: "dlq/"}
"""


def _job(tmp_path: Path) -> Path:
    (tmp_path / "in.jsonl").write_text('{"n": "1"}\n{"n": "x"}\n{"n": "3"}\n')
    job = tmp_path / "job.yaml"
    job.write_text(JOB)
    return job


def _sesa(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "sesa_fp", "run", "--config",
                           str(_job(tmp_path)), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_not_a_terminal_gives_json_lines_and_the_json_report(tmp_path: Path) -> None:
    proc = _sesa(tmp_path)
    assert proc.returncode == 0, proc.stderr
    logs = proc.stderr.strip().splitlines()
    assert logs and all(_is_json(line) for line in logs)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (report["read"], report["loaded"], report["dead_letters"]) == (3, 2, 1)
    assert "read 3 = loaded 2" not in proc.stderr  # no summary for machines


def test_log_format_text_gives_readable_lines_and_the_summary(tmp_path: Path) -> None:
    proc = _sesa(tmp_path, "--log-format", "text")
    assert proc.returncode == 0, proc.stderr
    logs = proc.stderr.strip().splitlines()
    assert not any(_is_json(line) for line in logs)
    assert any(" INFO  run_started " in line for line in logs)
    assert "read 3 = loaded 2 + dropped 0 + dead letters 1" in proc.stderr
    # stdout is a pipe here: the JSON report is still there for whoever reads it
    assert json.loads(proc.stdout.strip().splitlines()[-1])["loaded"] == 2


def test_log_format_json_on_demand(tmp_path: Path) -> None:
    proc = _sesa(tmp_path, "--log-format", "json")
    assert proc.returncode == 0
    assert all(_is_json(line) for line in proc.stderr.strip().splitlines())


def test_bad_log_format_is_a_usage_error(tmp_path: Path) -> None:
    proc = _sesa(tmp_path, "--log-format", "yaml")
    assert proc.returncode == 2 and "yaml" in proc.stderr


def _on_a_terminal(tmp_path: Path) -> str:
    """Run the job with stdout and stderr on a pseudo-terminal; what the terminal shows."""
    main, secondary = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "sesa_fp", "run", "--config",
                             str(_job(tmp_path)), "--no-progress"], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary)
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            proc.kill()
            pytest.fail("the run printed nothing for 60 s")
        try:
            data = os.read(main, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(30) == 0
    return b"".join(chunks).decode()


def test_a_terminal_gets_readable_lines_and_the_summary_only(tmp_path: Path) -> None:
    screen = _on_a_terminal(tmp_path)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert not any(_is_json(line) for line in lines), screen
    assert any("run_finished" in line and "loaded=2" in line for line in lines), screen
    assert "read 3 = loaded 2 + dropped 0 + dead letters 1" in screen


def test_formatter_choice_follows_the_stream(tmp_path: Path) -> None:
    saved = list(logger.handlers)
    try:
        with (tmp_path / "log").open("w") as f:
            assert resolve_log_format("auto", f) == "json"
            assert configure_logging(stream=f, fmt="text") == "text"
            assert any(isinstance(h.formatter, TextFormatter) for h in logger.handlers)
            configure_logging(stream=f)
            assert not any(isinstance(h.formatter, TextFormatter) for h in logger.handlers)
    finally:
        logger.handlers[:] = saved
    with pytest.raises(ValueError, match="log format"):
        resolve_log_format("xml")
