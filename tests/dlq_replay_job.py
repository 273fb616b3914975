"""A YAML job whose transform fails on some records until a ``--set mode=lenient`` "fixes"
it, for the dead-letter replay tests (the CLI and the integration one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

TRANSFORM = '''
from sesa_fp import Transformer


class ParseQty(Transformer):
    """strict: qty must be an int; lenient (the fix): "n/a" means unknown."""

    def __init__(self, mode="strict"):
        self.mode = mode

    def map_record(self, rec):
        q = rec["qty"]
        if self.mode == "lenient" and q == "n/a":
            return {**rec, "qty": None}
        return {**rec, "qty": int(q)}
'''

JOB = '''
job_name: dlq_replay
runtime: {{ batch_size: 7, max_workers: 2 }}
extractor: {{ type: jsonl, path: "{source}" }}
{storage}
transform:
  chain:
    - type: normalize
    - type: python_class
      path: "qty_fix:ParseQty"
      options: {{ mode: "{{{{ mode }}}}" }}
loader:
{loader}
dlq: {{ backend: {backend}, uri: "{dlq}" }}
'''


def records(n: int = 30) -> list[dict[str, Any]]:
    """``n`` items: qty "n/a" for k % 7 == 3 (fixed by lenient), "broken" for k in (5, 20)
    (failing whatever the mode), a number otherwise."""
    out = []
    for k in range(n):
        qty = "n/a" if k % 7 == 3 else "broken" if k in (5, 20) else str(k)
        out.append({"k": str(k), "name": f"  item {k} ", "qty": qty})
    return out


def write_job(tmp: Path, *, source: str, loader: str, dlq: str, backend: str = "local",
              storage: str = "") -> Path:
    (tmp / "qty_fix.py").write_text(TRANSFORM)
    job = tmp / "job.yaml"
    job.write_text(JOB.format(source=source, loader=loader, dlq=dlq, backend=backend,
                              storage=storage))
    return job


def sesa(*args: str, cwd: Path, env: dict[str, str] | None = None
         ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run ``python -m sesa_fp`` and return the process and its JSON report (or {})."""
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "sesa_fp", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    try:
        return proc, json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:  # not a run: `sesa dlq` prints indented JSON
        return proc, {}


def outputs(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in report.get("outputs", ())}
