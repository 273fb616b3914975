"""Airflow (in .venv-airflow, built by scripts/airflow_venv.sh): the fan-out DAG of
recipes/airflow_fanout_dag.py run with ``dag.test()`` over the real search engine, and a bad
configuration failing its task with the configuration error in the log."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

# Airflow reads its home when first imported: a metadata database of this module's own
_HOME = tempfile.mkdtemp(prefix="sesa-airflow-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(_HOME, "dags"))

pytest.importorskip("airflow", reason="Airflow runs in its own environment: "
                                      "scripts/airflow_venv.sh (scripts/test.sh calls it)")

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
DS = "2025-09-06"


@pytest.fixture(scope="module")
def airflow_home() -> Path:
    """The metadata database (SQLite under AIRFLOW_HOME), migrated once for this module."""
    Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    proc = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True,
                          timeout=300, env={**os.environ})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Path(os.environ["AIRFLOW_HOME"])


def _load_dag(source: Path | str, name: str) -> Any:
    """A DAG file put in the DAGs folder (dag.test() runs what the folder serialises)."""
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{name}.py"
    path.write_text(source.read_text() if isinstance(source, Path) else source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def _states(dag_run: Any) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}


def test_fanout_dag_one_mapped_task_per_slice(airflow_home: Path, search_url: str,
                                               search_admin: Any, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    index = search_admin.new_index("af-rfi-src", number_of_shards=2)
    docs = [(f"r{i}", {"@timestamp": f"{DS}T{i % 24:02d}:00:00Z", "project_id": f"P{i % 3}",
                       "rfi_number": None if i == 5 else i, "title": f"  RFI {i} ",
                       "question": "Which?", "created_at": f"2025-09-{1 + i % 20:02d}T10:00:00Z"})
            for i in range(120)]
    search_admin.seed(index, docs)
    prefix = f"af-enriched-{index.rsplit('-', 1)[1]}"
    job = tmp_path / "rfi_fanout.yaml"
    job.write_text((REPO / "recipes/rfi_fanout.yaml").read_text()
                   .replace('"rfi-*"', f'"{index}"').replace("rfi-enriched-", f"{prefix}-")
                   .replace('"question"]', '"question","created_at"]'))  # the dataset's date
    (tmp_path / "rfi_transforms.py").write_text((REPO / "recipes/rfi_transforms.py").read_text())
    monkeypatch.setenv("SESA_FANOUT_JOB", str(job))
    monkeypatch.setenv("SEARCH_URL", search_url)
    monkeypatch.setenv("SESA_OUT", str(tmp_path / "out"))

    dag = _load_dag(REPO / "recipes/airflow_fanout_dag.py", "fanout_dag")
    dag_run = dag.test(logical_date=dt.datetime(2025, 9, 6, tzinfo=dt.UTC))
    states = _states(dag_run)
    assert str(dag_run.state) == "success", states
    assert sorted(m for (t, m) in states if t == "load_partition") == [0, 1, 2, 3]
    assert set(states.values()) == {"success"}

    merged = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "sesa_merge")
    report = _xcom(merged)
    assert report["conserved"] is True and report["read"] == 120, report
    assert (report["loaded"], report["dropped"], report["dead_letters"]) == (118, 2, 0)
    search_admin.client.indices.refresh(index=f"{prefix}-*")
    assert int(search_admin.client.count(index=f"{prefix}-*")["count"]) == report["loaded"] > 0
    # the staging manifest over the four slices' parts, written by the merge task
    from sesa_fp.storage import read_manifest

    staging = next((tmp_path / "out/rfi/staging").rglob("run_id=*"))
    manifest = read_manifest(str(staging))
    assert manifest.records == 120
    assert {p.path.split("/")[0] for p in manifest.parts} <= {
        f"partition={i:04d}" for i in range(4)}


def _xcom(ti: Any) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(
            dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, key="return_value").one()
        value = XComModel.deserialize_value(row)
    assert isinstance(value, dict)
    return value


def test_bad_config_fails_the_task_with_the_error_in_the_log(
        airflow_home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "bad.yaml"
    job.write_text("job_name: bad\nruntime: {max_wrkers: 2}\n"
                   "extractor: {type: jsonl, path: x.jsonl}\n"
                   "loader: {type: files, dataset: out}\n")
    dag = _load_dag(f"""
import datetime as dt
from airflow.sdk import DAG
from sesa_fp.airflow import SesaOperator

with DAG(dag_id="sesa_bad_config", schedule=None,
         start_date=dt.datetime(2025, 9, 1, tzinfo=dt.UTC)) as dag:
    SesaOperator(task_id="run_job", config={str(job)!r}, retries=3)
""", "bad_config_dag")
    dag_run = dag.test()
    out = capfd.readouterr()
    assert str(dag_run.state) == "failed"
    assert _states(dag_run) == {("run_job", -1): "failed"}  # no retry: it would fail again
    log = out.out + out.err
    assert "configuration error: runtime.max_wrkers: unknown key (did you mean " \
           "'max_workers'?)" in log


STOPPER = """
import os, signal
from sesa_fp.transforms import Transformer

class StopAt(Transformer):
    def map_record(self, rec):
        if rec["k"] == 250:  # Airflow's supervisor stops the task here
            os.kill(os.getpid(), signal.SIGTERM)
        return rec
"""


def test_on_kill_stops_the_in_process_run_cleanly(tmp_path: Path) -> None:
    """Airflow's task runner answers SIGTERM by calling ``on_kill`` in its signal handler."""
    import json
    import signal

    from airflow.sdk.exceptions import AirflowException

    from sesa_fp.airflow import SesaOperator
    from sesa_fp.storage import from_storage

    lines = [json.dumps({"k": i}) for i in range(400)]
    lines.insert(3, "{not json")
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "stopper_af.py").write_text(STOPPER)
    job = tmp_path / "job.yaml"
    job.write_text(f"""
job_name: killed
runtime: {{batch_size: 10, max_workers: 1, max_in_flight: 1}}
extractor: {{type: jsonl, path: "{tmp_path / 'in.jsonl'}"}}
storage: {{uri: "{tmp_path / 'staging'}"}}
transform: {{chain: [{{type: python_class, path: "stopper_af:StopAt"}}]}}
loader: {{type: files, dataset: out, connection: {{root: "{tmp_path / 'out'}"}}}}
dlq: {{uri: "{tmp_path / 'dlq'}"}}
""")
    op = SesaOperator(task_id="killed", config=str(job))
    previous = signal.signal(signal.SIGTERM, lambda *_: op.on_kill())  # as the runner does
    try:
        with pytest.raises(AirflowException, match="interrupted by SIGTERM"):
            op.execute({"run_id": "scheduled__2025-09-06"})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not (tmp_path / "staging" / "_manifest.json").exists()  # not committed...
    assert not list((tmp_path / "staging").glob("part-*"))  # ...and nothing left half-written
    letters = [d for m in (tmp_path / "dlq").rglob("_manifest.json")
               for d in from_storage(str(m.parent))]
    assert [d["error_type"] for d in letters] == ["JSONDecodeError"]  # committed all the same


def test_import_sesa_fp_never_imports_airflow() -> None:
    code = ("import sys, sesa_fp, sesa_fp.cli, sesa_fp.fanout, sesa_fp.partitions; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
