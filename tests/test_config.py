"""YAML jobs: templating, specs, plugins, and YAML = Python."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sesa_fp import ConfigError
from sesa_fp.cli import explain_source
from sesa_fp.config import build_job, load_job
from sesa_fp.config.templating import render_tree, template_vars

JOBS = Path(__file__).parent / "jobs"
SEED_VARS = {"ds": "2025-09-06", "ts_nodash": "20250906T000000Z"}


def seed_job(where: Path, search_url: str = "http://127.0.0.1:9200",
             bucket: str = "etl-bucket") -> Path:
    """The seed's job with only its hosts and bucket changed (``mycompany`` is in tests/jobs)."""
    text = (JOBS / "seed_job.yaml").read_text()
    assert text.count("https://es.example.com:9243") == 2 and text.count("my-bucket") == 2
    path = where / "seed_job.yaml"
    path.write_text(text.replace("https://es.example.com:9243", search_url)
                    .replace("my-bucket", bucket))
    return path


@pytest.fixture(autouse=True)
def _mycompany_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(JOBS))


def write_job(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "job.yaml"
    p.write_text(text)
    return p


MINIMAL = """
job_name: t
extractor: {type: jsonl, path: "in.jsonl"}
loader: {type: files, dataset: "d", connection: {root: "out"}}
"""


def test_ds_alone_derives_next_ds_and_friends() -> None:
    v = template_vars({"ds": "2025-09-06"}, environ={})
    assert v["next_ds"] == "2025-09-07"
    assert v["prev_ds"] == "2025-09-05"
    assert v["ds_nodash"] == "20250906"
    assert v["ts_nodash"] == "20250906T000000"
    # a given ts_nodash wins over the derived one (the seed's CLI sets both)
    assert template_vars({"ds": "2025-12-31", "ts_nodash": "X"}, {})["ts_nodash"] == "X"
    assert template_vars({"ds": "2025-12-31"}, {})["next_ds"] == "2026-01-01"


def test_env_is_explicit_only() -> None:
    v = template_vars({}, environ={"ES_PASSWORD": "s3cret"})
    assert render_tree("{{ env.ES_PASSWORD }}", v) == "s3cret"
    with pytest.raises(ConfigError, match="ES_PASSWORD"):
        render_tree({"p": "{{ ES_PASSWORD }}"}, v)


def test_structure_is_never_reparsed() -> None:
    v = template_vars({"x": "a: [1, 2]"}, {})
    assert render_tree({"k": "{{ x }}"}, v) == {"k": "a: [1, 2]"}


@pytest.mark.parametrize("expr", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ env.__class__.__base__.__subclasses__() }}",
])
def test_sandbox_refuses_python_internals(expr: str) -> None:
    with pytest.raises(ConfigError, match=r"sandbox|not defined"):
        render_tree({"a": expr}, template_vars({}, {}))


def test_seed_job_builds_the_expected_chain(tmp_path: Path) -> None:
    spec = load_job(seed_job(tmp_path), SEED_VARS)
    assert spec.extractor["query"] == {
        "range": {"@timestamp": {"gte": "2025-09-06", "lt": "2025-09-07"}}}
    built = build_job(spec)
    kinds = [type(s).__name__ for s in built.pipeline.stages]
    assert kinds == ["_Tee", "_Batched", "_MapConcurrent", "_Unbatched", "SearchLoader",
                     "_Partition"]
    text = built.pipeline.to_python()
    assert "s3://etl-bucket/etl/rfi/run_date=2025-09-06/run_id=20250906T000000Z/" in text
    assert "batched(2000)" in text and "workers=8, window=8" in text
    assert "python_class('mycompany.transforms:RfiValidateCast')" in text
    assert "dataset='rfi-enriched-{created_at:%Y.%m}'" in text
    assert "actions_per_batch=2000" in text and "concurrency=4" in text
    assert "partition(dlq_sink('s3://etl-bucket/etl/rfi/dlq/'" in text


@pytest.mark.parametrize("job", ["seed", "quickstart"])
def test_explain_executes_to_the_same_chain(job: str, tmp_path: Path) -> None:
    path = seed_job(tmp_path) if job == "seed" else JOBS / "../../recipes/quickstart.yaml"
    built = build_job(load_job(path, SEED_VARS))
    program = explain_source(built)
    namespace: dict[str, Any] = {}
    code = program.split("report = run(")[0]  # build, do not run
    exec(compile(code, "<explain>", "exec"), namespace)
    assert namespace["pipeline"].to_python() == built.pipeline.to_python()


def test_explain_masks_secrets(tmp_path: Path) -> None:
    job = write_job(tmp_path, MINIMAL.replace(
        'path: "in.jsonl"', 'path: "s3://u:{{ env.PW }}@b/in.jsonl"'))
    built = build_job(load_job(job, {}, environ={"PW": "hunter2"}))
    out = explain_source(built)
    assert "hunter2" not in out and "s3://***:***@b/in.jsonl" in out


@pytest.mark.parametrize(("yaml_text", "pattern"), [
    (MINIMAL + "runtime: {max_workers: four}\n", r"^runtime\.max_workers: expected int, got 'four'$"),
    (MINIMAL + "runtime: {max_wrkers: 4}\n", r"runtime\.max_wrkers: unknown key \(did you mean 'max_workers'\?\)"),
    (MINIMAL + "loaderz: {}\n", r"loaderz: unknown key \(did you mean 'loader'\?\)"),
    (MINIMAL.replace("type: jsonl", "type: kafka"), r"unknown extractor type 'kafka'; known: .*jsonl"),
    (MINIMAL + "transform: {chain: [{type: cast}]}\n", r"transform\.chain\[0\]\.fields: required field missing"),
    (MINIMAL + "transform: {chain: [{type: python_class, path: 'nope.mod:X'}]}\n",
     r"cannot import 'nope\.mod:X'"),
    (MINIMAL.replace('"d"', '"{{ region }}"'), r"'region' is undefined"),
    (MINIMAL + "storage: {backend: s3, uri: 'out/local'}\n", r"storage\.uri: backend 's3' needs a s3:// URI"),
])
def test_config_errors_name_the_problem(tmp_path: Path, yaml_text: str, pattern: str) -> None:
    job = write_job(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as err:
        build_job(load_job(job, {}))
    assert re.search(pattern, str(err.value)), str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_yaml_gives_line_and_column(tmp_path: Path) -> None:
    job = write_job(tmp_path, "job_name: t\nruntime: {batch_size: [1, 2}\n")
    with pytest.raises(ConfigError, match=r"job\.yaml:2:\d+: malformed YAML"):
        load_job(job, {})


def test_entry_point_plugins_resolve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A third-party package's entry points, as in the seed's pyproject example."""
    from importlib.metadata import EntryPoint

    import sesa_fp.config.registry as registry

    mod = tmp_path / "thirdparty.py"
    mod.write_text(
        "class Ext:\n"
        "    def __init__(self, n): self.n = n; self.state = []\n"
        "    def open(self): pass\n"
        "    def iter_records(self): return ({'i': i} for i in range(self.n))\n"
        "    def close(self): pass\n"
        "class Loader:\n"
        "    seen = []\n"
        "    def __init__(self, **conn): pass\n"
        "    def connect(self): pass\n"
        "    def prepare_target(self, dataset, options): pass\n"
        "    def upsert_batch(self, dataset, records, options):\n"
        "        if any(r['i'] == 3 for r in records): raise RuntimeError('bad batch')\n"
        "        Loader.seen.extend(records)\n"
        "    def finalize(self): pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = {
        "sesa.extractors": [EntryPoint("thing", "thirdparty:Ext", "sesa.extractors")],
        "sesa.loaders": [EntryPoint("sink", "thirdparty:Loader", "sesa.loaders")],
    }
    monkeypatch.setattr(registry, "entry_points", lambda group: eps.get(group, []))
    job = write_job(tmp_path, """
job_name: plug
runtime: {batch_size: 2}
extractor: {type: thing, n: 6}
loader: {type: sink, dataset: "x-{i}"}
""")
    from sesa_fp import run

    built = build_job(load_job(job, {}))
    report = run(built.pipeline, progress=False)
    assert (report.read, report.loaded, report.dead_letters) == (6, 5, 1)
    import thirdparty  # type: ignore[import-not-found]

    assert sorted(r["i"] for r in thirdparty.Loader.seen) == [0, 1, 2, 4, 5]

    # one result per input record, in input order, whatever failed where
    from sesa_fp import pipe
    from sesa_fp.config.plugins import plugin_loader
    from sesa_fp.result import is_failure

    out = list(pipe([{"i": 2}, {"i": 3}, {"j": 1}, {"i": 4}],
                    plugin_loader("sink", dataset="x-{i}", batch_size=4)))
    assert [is_failure(x) for x in out] == [False, True, True, False]
    assert (out[0]["i"], out[3]["i"]) == (2, 4)
    assert "bad batch" in out[1].failure().error_message


def test_known_but_missing_client_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    import sesa_fp.config.registry as registry

    real = registry.importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec",
                        lambda name: None if name == "opensearchpy" else real(name))
    job = write_job(tmp_path, MINIMAL.replace("type: files", "type: opensearch"))
    with pytest.raises(ConfigError, match=r"loader\.type: 'opensearch' needs the 'opensearchpy' "
                                          r"client: pip install 'sesa_fp\[opensearch\]'"):
        build_job(load_job(job, {}))


def test_unknown_storage_backend_lists_known(tmp_path: Path) -> None:
    job = write_job(tmp_path, MINIMAL + "storage: {backend: tape, uri: 'tape://x'}\n")
    with pytest.raises(ConfigError, match=r"storage\.backend: unknown storage backend 'tape'; "
                                          r"known: azure, gcs, local, memory, s3"):
        build_job(load_job(job, {}))


@pytest.mark.parametrize(("backend", "uri", "wrong"), [
    ("azure", "az://staging/etl/", "gs://staging/etl/"),
    ("azure", "abfs://staging/etl/", "s3://staging/etl/"),
    ("gcs", "gs://staging/etl/", "az://staging/etl/"),
])
def test_object_store_backends_build_fsspec_writers_with_masked_options(
        tmp_path: Path, backend: str, uri: str, wrong: str) -> None:
    pytest.importorskip("adlfs" if backend == "azure" else "gcsfs")
    secret_opts = (
        "{account_name: devacct, account_key: 'S3cr3tK3y==', "
        "connection_string: 'DefaultEndpointsProtocol=http;AccountKey=S3cr3tK3y==;'}"
        if backend == "azure" else "{endpoint_url: 'http://127.0.0.1:1', token: 'S3cr3tT0k3n'}")
    storage = (f"storage: {{backend: {backend}, uri: '{uri}', "
               f"options: {{gzip: false, storage_options: {secret_opts}}}}}\n")
    dlq = f"dlq: {{backend: {backend}, uri: '{uri}dlq/', options: {{storage_options: {secret_opts}}}}}\n"
    spec = load_job(write_job(tmp_path, MINIMAL + storage + dlq), {})
    built = build_job(spec)
    writers = [getattr(s, "writer", None) or getattr(s, "dlq", None)
               for s in built.pipeline.stages]
    writers = [w for w in writers if w is not None]
    assert [w.uri for w in writers] == [uri, f"{uri}dlq/"]
    # the filesystem gets the real values; every printed form shows them masked
    so = writers[0].storage_options
    assert "S3cr3t" in (so.get("account_key") or so.get("token"))
    for text in (repr(spec), repr(writers), built.pipeline.to_python()):
        assert "S3cr3t" not in text
    job = write_job(tmp_path, MINIMAL + storage.replace(uri, wrong))
    with pytest.raises(ConfigError, match=rf"storage\.uri: backend '{backend}' needs a "):
        build_job(load_job(job, {}))


def test_storage_entry_point_plugin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from importlib.metadata import EntryPoint

    import sesa_fp.config.registry as registry
    from sesa_fp import run

    mod = tmp_path / "tapestore.py"
    mod.write_text(
        "WRITTEN = []\n"
        "class Tape:\n"
        "    def __init__(self, uri, **kw): self.uri = uri; self.kw = kw\n"
        "    def write(self, rec): WRITTEN.append(rec)\n"
        "    def commit(self): WRITTEN.append('commit')\n"
        "    def abort(self): WRITTEN.append('abort')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = {"sesa.storage": [EntryPoint("tape", "tapestore:Tape", "sesa.storage")]}
    monkeypatch.setattr(registry, "entry_points", lambda group: eps.get(group, []))
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    job = write_job(tmp_path, MINIMAL.replace('"in.jsonl"', f'"{tmp_path}/in.jsonl"').replace(
        'root: "out"', f'root: "{tmp_path}/out"') + "storage: {backend: tape, uri: 'tape://x'}\n")
    report = run(build_job(load_job(job, {})).pipeline, progress=False)
    import tapestore  # type: ignore[import-not-found]

    assert report.loaded == 2 and tapestore.WRITTEN == [{"a": 1}, {"a": 2}, "commit"]


SEARCH_JOB = """
job_name: t
extractor:
  type: opensearch
  connection: {hosts: ["http://127.0.0.1:9200"]}
  index: rfi
  sort: SORT
loader: {type: files, dataset: "d", connection: {root: "out"}}
"""


def test_search_extractor_sort_makes_the_read_resumable(tmp_path: Path) -> None:
    # a field name stays one field (not split into characters); a list keeps its order
    for given, expected in (("created_at", ["created_at"]), ("[seq, created_at]",
                                                            ["seq", "created_at"])):
        built = build_job(load_job(write_job(tmp_path, SEARCH_JOB.replace("SORT", given)), {}))
        source = built.pipeline.source
        assert source.sort_fields == expected
        assert "sort=" in repr(source)
    built = build_job(load_job(write_job(tmp_path, SEARCH_JOB.replace("SORT", "created_at")
                                         .replace("index: rfi", "index: rfi\n  slices: 2")), {}))
    assert [p.sort_fields for p in built.pipeline.source.sources] == [["created_at"]] * 2
    with pytest.raises(ConfigError, match="sort must be a field name"):
        build_job(load_job(write_job(tmp_path, SEARCH_JOB.replace("SORT", "5")), {}))
