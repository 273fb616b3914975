"""SIGTERM ends `sesa run` the way Ctrl-C does: the stream unwinds, committed output stays,
an exit code and one log line say it was interrupted, no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sesa_fp import partition, pipe, run, stage, tee
from sesa_fp.interrupt import Interrupted, stop_on_signals
from sesa_fp.storage import dlq_sink, from_storage, to_storage

REPO = Path(__file__).resolve().parent.parent

STOPPER = """
import os, signal
from sesa_fp.transforms import Transformer

class StopAt(Transformer):
    def __init__(self, at, sig):
        self.at, self.sig = at, sig

    def map_record(self, rec):
        if rec["k"] == self.at:  # the scheduler stops the task here
            os.kill(os.getpid(), getattr(signal, self.sig))
        return rec
"""


def _job(tmp: Path, sig: str) -> Path:
    lines = [json.dumps({"k": i}) for i in range(400)]
    lines.insert(3, "{not json")  # a dead letter before the stop: committed all the same
    (tmp / "in.jsonl").write_text("\n".join(lines) + "\n")
    (tmp / "stopper.py").write_text(STOPPER)
    job = tmp / "job.yaml"
    job.write_text(f"""
job_name: stopped
runtime: {{batch_size: 10, max_workers: 1, max_in_flight: 1}}
extractor: {{type: jsonl, path: "{tmp / 'in.jsonl'}"}}
storage: {{uri: "{tmp / 'staging'}"}}
transform:
  chain:
    - {{type: python_class, path: "stopper:StopAt", options: {{at: 250, sig: {sig}}}}}
loader: {{type: files, dataset: out, connection: {{root: "{tmp / 'out'}"}}}}
dlq: {{uri: "{tmp / 'dlq'}"}}
""")
    return job


@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_signal_stops_sesa_run_cleanly(tmp_path: Path, sig: str, code: int) -> None:
    job = _job(tmp_path, sig)
    proc = subprocess.run([sys.executable, "-m", "sesa_fp", "run", "--config", str(job)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    stops = [e for e in events if e.get("event") in ("run_interrupted", "run_failed")]
    assert len(stops) == 1 and stops[0]["event"] == "run_interrupted"
    assert sig in stops[0]["error"]
    partial = json.loads(proc.stdout.strip().splitlines()[-1])
    assert partial["status"] == "failed" and partial["dead_letters"] == 1
    # the stopped stream: staging not committed (no manifest, no stray part), dead letters are
    assert not (tmp_path / "staging" / "_manifest.json").exists()
    assert not list((tmp_path / "staging").glob("part-*"))
    letters = [d for m in (tmp_path / "dlq").rglob("_manifest.json")
               for d in from_storage(str(m.parent))]
    assert [d["error_type"] for d in letters] == ["JSONDecodeError"]


def test_stop_on_signals_unwinds_run_and_restores_handlers(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)

    def stop_here(r: dict[str, int]) -> dict[str, int]:
        if r["k"] == 5:
            signal.raise_signal(signal.SIGTERM)
        return r

    writer = to_storage(str(tmp_path / "staging"))

    with pytest.raises(Interrupted) as caught, stop_on_signals():
        run(pipe([{"k": i} for i in range(10)], tee(writer), stage(stop_here),
                 partition(dlq_sink(str(tmp_path / "dlq")))), progress=False)
    assert signal.getsignal(signal.SIGTERM) is before
    assert caught.value.report.read == 6  # type: ignore[attr-defined]
    assert not (tmp_path / "staging" / "_manifest.json").exists()


def test_stop_on_signals_outside_main_thread_is_a_no_op() -> None:
    seen = []

    def body() -> None:
        with stop_on_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [signal.getsignal(signal.SIGTERM)]
