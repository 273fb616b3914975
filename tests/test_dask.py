"""Partitions as Dask tasks on a real LocalCluster (2 worker processes) and the real search
engine: the targets equal a single-process run's, even when a worker process is killed."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sesa_fp import partition, pipe, read_jsonl, run, stage, tee
from sesa_fp.loaders.search import load_es
from sesa_fp.sources.search import es_source
from sesa_fp.storage import dlq_sink, from_storage, read_manifest, to_storage

distributed = pytest.importorskip("distributed", reason="pip install 'sesa_fp[dask]'")
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests/

from sesa_fp.executors import DaskExecutor  # noqa: E402

pytestmark = pytest.mark.integration

ID = {"type": "sha256_concat", "fields": ["k"]}
N = 1200


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


def _doc(i: int) -> dict[str, Any]:
    return {"k": i, "title": f"  RFI {i} ", "group": i % 7}


def tidy(r: dict[str, Any]) -> dict[str, Any] | None:
    if r["k"] % 50 == 0:
        return None  # dropped on purpose
    if r["k"] % 97 == 0:
        raise ValueError("unlucky")  # a dead letter
    return {**r, "title": r["title"].strip()}


def kill_once(marker: str, at: int) -> Any:
    """A transform that kills its worker process the first time it meets record ``at``."""
    def step(r: dict[str, Any]) -> dict[str, Any]:
        if r["k"] == at and not os.path.exists(marker):
            Path(marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return r
    return step


def _copy(url: str, src: str, dst: str, tmp: Path, name: str, *extra: Any) -> Any:
    return pipe(es_source(hosts=[url], index=src, slices=4, page_size=100),
                tee(to_storage(str(tmp / name / "staging"))),
                *extra, stage(tidy),
                load_es(hosts=[url], dataset=dst, id_strategy=ID, actions_per_batch=200),
                partition(dlq_sink(str(tmp / name / "dlq"))))


@pytest.fixture(scope="module")
def source_index(search_admin: Any) -> str:
    name = search_admin.new_index("dask-src", number_of_shards=2)
    search_admin.seed(name, [(f"d{i}", _doc(i)) for i in range(N)])
    return name


@pytest.fixture(scope="module")
def single_copy(search_url: str, search_admin: Any, source_index: str,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Any]:
    """The same copy in one process: what the Dask runs must equal."""
    one = search_admin.new_index("dask-one")
    report = run(_copy(search_url, source_index, one, tmp_path_factory.mktemp("single"), "s"),
                 progress=False)
    return search_admin.docs(one), report


def test_es_copy_on_dask_equals_single_process(cluster: Any, search_url: str,
                                               search_admin: Any, source_index: str,
                                               single_copy: Any, tmp_path: Path) -> None:
    target, single = single_copy
    many = search_admin.new_index("dask-many")
    report = run(_copy(search_url, source_index, many, tmp_path, "dask"), progress=False,
                 executor=DaskExecutor(address=cluster.scheduler_address))
    assert search_admin.docs(many) == target
    for key in ("read", "loaded", "dropped", "dead_letters"):
        assert getattr(report, key) == getattr(single, key), key
    assert (report.read, report.conserved, report.unaccounted) == (N, True, 0)
    assert report.dead_letters > 0 and report.dropped > 0
    # one staging manifest over the four partitions' parts
    manifest = read_manifest(str(tmp_path / "dask" / "staging"))
    assert {p.path.split("/")[0] for p in manifest.parts} == {
        f"partition={i:04d}" for i in range(4)}
    assert sorted(r["k"] for r in from_storage(str(tmp_path / "dask" / "staging"))) == \
        list(range(N))


def test_jsonl_glob_to_search_on_dask(cluster: Any, search_url: str, search_admin: Any,
                                      tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    for f in range(4):
        lines = [f'{{"k": {f * 100 + i}, "title": " t{i} ", "group": {f}}}' for i in range(100)]
        lines.insert(5, "{not json")  # one bad line per file: a dead letter at the source
        (data / f"part-{f}.jsonl").write_text("\n".join(lines) + "\n")

    def job(dst: str, name: str) -> Any:
        return pipe(read_jsonl(str(data / "*.jsonl")), stage(tidy),
                    load_es(hosts=[search_url], dataset=dst, id_strategy=ID),
                    partition(dlq_sink(str(tmp_path / name / "dlq"))))

    one, many = search_admin.new_index("glob-one"), search_admin.new_index("glob-many")
    single = run(job(one, "single"), progress=False)
    report = run(job(many, "dask"), progress=False,
                 executor=DaskExecutor(address=cluster.scheduler_address))
    assert search_admin.docs(many) == search_admin.docs(one)
    assert (report.read, report.loaded, report.dead_letters, report.dropped) == \
        (single.read, single.loaded, single.dead_letters, single.dropped)
    assert report.read == 404 and report.conserved
    letters = list(tmp_path.glob("dask/dlq/partition=*/run_id=*/_manifest.json"))
    assert len(letters) == 4  # each partition's dead letters in its own folder


def test_worker_killed_mid_run_gives_the_same_target(cluster: Any, search_url: str,
                                                     search_admin: Any, source_index: str,
                                                     single_copy: Any, tmp_path: Path) -> None:
    target, single = single_copy
    many = search_admin.new_index("kill-many")
    marker = str(tmp_path / "killed")
    report = run(_copy(search_url, source_index, many, tmp_path, "dask",
                       stage(kill_once(marker, at=777))),
                 progress=False, executor=DaskExecutor(address=cluster.scheduler_address))
    assert os.path.exists(marker)  # a worker process did die mid-partition
    assert search_admin.docs(many) == target
    assert (report.read, report.loaded, report.dead_letters, report.dropped) == \
        (single.read, single.loaded, single.dead_letters, single.dropped)
    assert report.conserved and report.read == N  # nothing counted twice
    assert sorted(r["k"] for r in from_storage(str(tmp_path / "dask" / "staging"))) == \
        list(range(N))


def test_yaml_job_on_dask_from_the_command_line(cluster: Any, tmp_path: Path) -> None:
    """runtime.executor in YAML, overridden by --executor: the same counts and outputs."""
    import json
    import subprocess

    data = tmp_path / "in"
    data.mkdir()
    for f in range(3):
        (data / f"f{f}.jsonl").write_text(
            "".join(json.dumps({"k": f * 10 + i, "t": " x "}) + "\n" for i in range(10)))
    job = tmp_path / "job.yaml"
    job.write_text(f"""
job_name: glob
runtime: {{executor: {{type: dask, address: "tcp://127.0.0.1:1"}}}}
extractor: {{type: jsonl, path: "{data}/*.jsonl"}}
storage: {{uri: "{tmp_path / 'staging'}"}}
transform: {{chain: [{{type: normalize}}]}}
loader: {{type: files, dataset: out, connection: {{root: "{tmp_path / 'out'}"}}}}
""")
    address = cluster.scheduler_address.replace("tcp://", "dask://")
    proc = subprocess.run([sys.executable, "-m", "sesa_fp", "run", "--config", str(job),
                           "--executor", address, "--no-progress"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (report["read"], report["loaded"], report["conserved"]) == (30, 30, True)
    assert len(read_manifest(str(tmp_path / "staging")).parts) == 3
    loaded = [json.loads(line) for f in (tmp_path / "out").rglob("part-*.jsonl")
              for line in f.read_text().splitlines()]
    assert sorted(r["k"] for r in loaded) == list(range(30))
    assert {r["t"] for r in loaded} == {"x"}


def test_local_outputs_are_named_when_workers_run_on_other_machines(
        cluster: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Workers on this machine share its disk: no warning. Workers elsewhere would each
    keep their own staging and dead letters: the warning names the local paths (the
    default dead-letter queue among them) and not the ones on shared storage."""
    import logging

    from distributed import Client

    from sesa_fp import load_files
    from sesa_fp.executors.dask import _warn_local_outputs, _worker_hosts
    from sesa_fp.report import default_dlq_uri

    with Client(cluster) as client:
        hosts = _worker_hosts(client)
    assert hosts == ["127.0.0.1"]
    job = pipe(from_storage(str(tmp_path / "input")),  # read, not written: not named
               tee(to_storage(str(tmp_path / "staging"))),
               tee(to_storage("s3://shared/staging")),
               load_files(str(tmp_path / "out"), dataset="d"))
    with caplog.at_level(logging.WARNING, logger="sesa_fp"):
        _warn_local_outputs(job, None, hosts)
        assert not [r for r in caplog.records if "dask_local_outputs" in r.getMessage()]
        _warn_local_outputs(job, None, ["127.0.0.1", "10.1.2.3"])
    [fields] = [r.fields for r in caplog.records  # type: ignore[attr-defined]
                if r.getMessage() == "dask_local_outputs"]
    assert fields["hosts"] == ["10.1.2.3"]
    assert fields["paths"] == [str(tmp_path / "staging"), str(tmp_path / "out"),
                               default_dlq_uri()]


def test_a_rerun_on_dask_resumes_and_fresh_starts_over(cluster: Any, tmp_path: Path) -> None:
    """Each partition resumes what its sub-prefix committed, as `run` does in one process: a
    second run of a finished run reads nothing; ``fresh=True`` (``sesa run --fresh``) reads
    everything again."""
    data = tmp_path / "in"
    data.mkdir()
    for f in range(3):
        (data / f"part-{f}.jsonl").write_text("".join(f'{{"k": {f * 50 + i}}}\n'
                                                      for i in range(50)))

    def job() -> Any:
        return pipe(read_jsonl(str(data / "*.jsonl")),
                    tee(to_storage(str(tmp_path / "staging"), gzip=False)),
                    partition(dlq_sink(str(tmp_path / "dlq"))))

    dask = DaskExecutor(address=cluster.scheduler_address)
    first = run(job(), progress=False, executor=dask)
    again = run(job(), progress=False, executor=dask)
    fresh = run(job(), progress=False, executor=dask, fresh=True)
    assert (first.read, again.read, fresh.read) == (150, 0, 150)
    assert again.skipped_records == 150 and fresh.conserved
    assert sorted(r["k"] for r in from_storage(str(tmp_path / "staging"))) == list(range(150))
