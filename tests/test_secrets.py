"""Secrets are masked where they are made: the Secret type, URL and option masking, and
planted secrets that must not come out of any repr, error, report, log line or DLQ file."""

from __future__ import annotations

import gzip
import os
import pickle
import socket
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import fsspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sesa_fp import ConfigError
from sesa_fp.config import load_job
from sesa_fp.config.spec import ConnectionSpec, structure
from sesa_fp.imports import import_object
from sesa_fp.search.config import SearchConfig
from sesa_fp.secrets import (
    MASK,
    Secret,
    mask_mapping,
    mask_url,
    redact,
    reveal_tree,
    secret_strings,
)

REPO = Path(__file__).resolve().parent.parent

# -- the Secret type ---------------------------------------------------------------------------
# a value made only of the characters the masked forms print could be found in them by chance
texts = st.text(min_size=1, max_size=40).filter(lambda t: not set(t) <= set("'*[]{}: k"))


@given(texts)
def test_secret_never_prints_its_value(value: str) -> None:
    s = Secret(value)
    shown = [repr(s), str(s), f"{s}", f"{s!r}", f"{s:>20}", format(s, "<5"), repr([s]), repr({"k": s})]
    assert all(value not in text for text in shown), shown
    assert repr(s) == "'***'" and str(s) == MASK


@given(texts, texts)
def test_secret_equality_hash_and_pickle_go_by_value(a: str, b: str) -> None:
    assert (Secret(a) == Secret(b)) == (a == b)
    assert hash(Secret(a)) == hash(Secret(a))
    assert Secret(a) != a  # a Secret is not a string
    back = pickle.loads(pickle.dumps(Secret(a)))
    assert back == Secret(a) and back.reveal() == a


def test_secret_is_immutable_and_string_only() -> None:
    s = Secret("pw")
    with pytest.raises(AttributeError):
        s._value = "other"  # type: ignore[misc]
    with pytest.raises(TypeError, match="got int") as err:
        Secret(12345)  # type: ignore[arg-type]
    assert "12345" not in str(err.value)
    assert Secret(Secret("pw")) == s and not Secret("")


# -- mask_url -------------------------------------------------------------------------------------
_SAFE = string.ascii_letters + string.digits
users = st.text(_SAFE + "._-", min_size=1, max_size=12)
# secrets: any printable except the URL delimiters that end a netloc in a valid URL
passwords = st.text(_SAFE + "-._~!$&'()*+,;=/%", min_size=4, max_size=30).map(lambda p: "PW" + p)
hosts = st.sampled_from(["es.example.com", "127.0.0.1:9200", "bucket", "my-bucket.eu"])
paths = st.sampled_from(["", "/", "/x.jsonl", "/etl/run_date=2025-09-06/", "/a@b/c"])


@given(st.sampled_from(["http", "https", "s3", "gs", "abfs", "memory"]), users, passwords,
       hosts, paths)
def test_mask_url_hides_the_password_and_keeps_host_and_path(
        scheme: str, user: str, password: str, host: str, path: str) -> None:
    url = f"{scheme}://{user}:{password}@{host}{path}"
    masked = mask_url(url)
    assert password not in masked
    assert masked.endswith(f":{MASK}@{host}{path}")
    object_store = scheme in ("s3", "gs", "abfs")
    assert masked.startswith(f"{scheme}://{MASK if object_store else user}:")
    assert mask_url(masked) == masked  # idempotent


@given(users.map(lambda u: "tok" + u), hosts, paths)
def test_mask_url_treats_a_lone_user_as_a_token(token: str, host: str, path: str) -> None:
    assert mask_url(f"https://{token}@{host}{path}") == f"https://{MASK}@{host}{path}"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9200", "out/dlq/", "/tmp/a@b/x.jsonl", "s3://bucket/run@2025/x",
    "memory://doc/in.jsonl", "file:///tmp/x.jsonl",
])
def test_mask_url_leaves_urls_without_credentials_alone(url: str) -> None:
    assert mask_url(url) == url


def test_mask_url_signatures_and_chains() -> None:
    url = ("simplecache::https://acct.blob.core.windows.net/c/x?sv=2022&sig=SIGSECRET1"
           "&X-Amz-Credential=AKIASECRET2")
    masked = mask_url(url)
    assert "SIGSECRET1" not in masked and "AKIASECRET2" not in masked
    assert masked.startswith("simplecache::https://acct.blob.core.windows.net/c/x?sv=2022&")


def test_mask_mapping_and_secret_strings() -> None:
    so = {"key": "AKIAKEY1", "Secret": "SECRETVAL2", "anon": False, "token": None,
          "client_kwargs": {"endpoint_url": "http://u:EPPASS3@127.0.0.1:9000",
                            "aws_session_token": "SESSTOK4"},
          "account_key": Secret("ACCTKEY5")}
    masked = repr(mask_mapping(so))
    for value in ("AKIAKEY1", "SECRETVAL2", "EPPASS3", "SESSTOK4", "ACCTKEY5"):
        assert value not in masked
        assert value in secret_strings(so)
    assert "'anon': False" in masked and "'token': None" in masked
    assert redact(f"error at {so['key']}/x", secret_strings(so)) == "error at ***/x"
    assert reveal_tree(so)["account_key"] == "ACCTKEY5"


# -- parsing: SearchConfig, YAML specs, templating, imports --------------------------------------
def test_search_config_moves_url_credentials_out_of_the_hosts() -> None:
    c = SearchConfig(hosts=["https://etl:pw123abc@es:9200", "https://es2:9200"])
    assert c.hosts == ("https://es:9200", "https://es2:9200")
    assert c.username == "etl" and c.password == Secret("pw123abc")
    assert "pw123abc" not in repr(c) and "pw123abc" not in str(c.repr_items())
    assert c.auth_headers()["Authorization"].startswith("Basic ")
    with pytest.raises(ConfigError, match="differ") as err:
        SearchConfig(hosts=["https://etl:pwAAAA@es:9200"], password="pwBBBB")
    assert "pwAAAA" not in str(err.value) and "pwBBBB" not in str(err.value)


@pytest.mark.parametrize(("data", "message"), [
    ({"password": 73915286}, "extractor.connection.password: expected a string, got int"),
    ({"api_key": ["KEYINLIST9"]}, "extractor.connection.api_key: expected a string, got list"),
    ({"hosts": [7.5], "password": "x"}, "extractor.connection.hosts[0]: expected string, got 7.5"),
])
def test_config_errors_never_echo_a_secret_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        structure(data, ConnectionSpec, "extractor.connection")
    assert str(err.value) == message


def test_env_values_in_secret_fields_are_secrets_from_the_start(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("""
job_name: t
extractor:
  type: jsonl
  path: "in.jsonl"
  storage_options: {key: "{{ env.K }}", secret: "{{ env.S }}"}
loader: {type: files, dataset: "d"}
storage: {uri: "out/", options: {storage_options: {token: "{{ env.T }}"}}}
""")
    spec = load_job(job, {}, environ={"K": "ENVKEY111", "S": "ENVSEC222", "T": "ENVTOK333"})
    assert spec.extractor["storage_options"] == {"key": Secret("ENVKEY111"),
                                                 "secret": Secret("ENVSEC222")}
    assert spec.storage is not None
    assert spec.storage.options.storage_options == {"token": Secret("ENVTOK333")}
    assert not {"ENVKEY111", "ENVSEC222", "ENVTOK333"} & set(repr(spec).split("'"))


def test_import_object_uses_resolve_name_with_clear_errors() -> None:
    assert import_object("os.path:join") is os.path.join
    with pytest.raises(ConfigError, match=r"os\.path has no 'nope'"):
        import_object("os.path:nope")
    with pytest.raises(ConfigError, match=r"expected 'package\.module:Name'"):
        import_object("os.path")
    with pytest.raises(ConfigError, match="No module named 'no_such_pkg'"):
        import_object("no_such_pkg:X")


# -- planted secrets: the Python API -------------------------------------------------------------
def test_python_api_reprs_and_dead_letters_hold_no_secret(tmp_path: Path) -> None:
    from sesa_fp import dlq_sink, from_storage, load_files, read_jsonl, to_storage
    from sesa_fp.loaders.search import load_es
    from sesa_fp.sources.search import es_source

    planted = {name: f"PLANTED{name.upper()}{i}x" for i, name in enumerate(
        ["hostpw", "password", "apikey", "s3ak", "srcsk", "srckey", "stgak", "stgsk",
         "stgsecret", "dlqtoken", "rootpw", "filesopt"])}
    p = planted
    objs = [
        es_source(hosts=[f"https://etl:{p['hostpw']}@es:9200"], index="rfi-*", slices=2),
        es_source(hosts=["https://es:9200"], index="rfi-*", api_key=p["apikey"]),
        load_es(hosts=["https://es:9200"], dataset="d", username="u", password=p["password"]),
        read_jsonl(f"memory://etl:{p['srcsk']}@bucket/in.jsonl",
                   storage_options={"key": p["srckey"]}),
        to_storage(f"gs://{p['stgak']}:{p['stgsk']}@bucket/staging/",
                   storage_options={"secret": p["stgsecret"]}),
        dlq_sink(str(tmp_path / "dlq"), storage_options={"token": p["dlqtoken"]}),
        from_storage(f"s3://{p['s3ak']}:{p['stgsk']}@bucket/staging/"),
        load_files(f"memory://u:{p['rootpw']}@w/out", dataset="d",
                   storage_options={"password": p["filesopt"]}),
    ]
    objs.append(objs[0].partitions()[1])
    text = "\n".join(repr(o) for o in objs)
    assert "***" in text
    for name, value in planted.items():
        assert value not in text, (name, text)

    fsspec.filesystem("memory").pipe(f"/etl:{p['srcsk']}@bucket/in.jsonl",
                                     b'{"a": 1}\n{not json\n')
    items = list(objs[3])
    letter = items[1].failure()
    shown = repr(letter)
    assert "read_jsonl(" in letter.stage
    for value in planted.values():
        assert value not in shown, shown

    missing = read_jsonl(f"memory://etl:{p['srcsk']}@bucket/nope-*.jsonl")
    with pytest.raises(Exception) as err:
        list(missing)
    assert p["srcsk"] not in str(err.value)


# -- planted secrets: the command line -----------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PLANTED = {  # environment variables -> values; each value appears nowhere but its source
    "PLANT_HOST_PW": "hostPwZq81x",
    "PLANT_LOADER_PW": "loaderPwKk29",
    "PLANT_API_KEY": "apiKeyVv47Q",
    "PLANT_SRC_KEY": "srcKeyMm55R",
    "PLANT_STG_SECRET": "stgSecretTt66",
    "PLANT_DLQ_TOKEN": "dlqTokenYy13",
    "PLANT_MEM_SK": "memUrlSkPp90",
}
LITERALS = {  # written into the YAML itself
    "src_secret": "srcSecretLitAa11",
    "stg_key": "stgKeyLitBb22",
    "files_pw": "filesPwLitDd44",
    "numeric_pw": "73915286",
}
ALL_SECRETS = {**PLANTED, **LITERALS}

JOB = """
job_name: planted
runtime: {{batch_size: 2, max_workers: 1}}
extractor:
  type: jsonl
  path: "{{{{ job_dir }}}}/in.jsonl"
  storage_options: {{key: "{{{{ env.PLANT_SRC_KEY }}}}", secret: "srcSecretLitAa11"}}
storage:
  backend: memory
  uri: "memory://etl:{{{{ env.PLANT_MEM_SK }}}}@bucket/staging/"
  options: {{storage_options: {{key: "stgKeyLitBb22", secret: "{{{{ env.PLANT_STG_SECRET }}}}"}}}}
transform:
  chain:
    - {{type: validate, required: [title]}}
loader:
{loader}
dlq:
  backend: local
  uri: "{{{{ job_dir }}}}/dlq/"
  options: {{storage_options: {{token: "{{{{ env.PLANT_DLQ_TOKEN }}}}"}}}}
"""

LOADERS = {
    "search_url_credentials": """
  type: elasticsearch
  connection: {{hosts: ["http://etl:{{{{ env.PLANT_HOST_PW }}}}@127.0.0.1:{port}"], timeout: 2}}
  dataset: "rfi"
  options: {{max_retries: 1}}""",
    "search_password": """
  type: opensearch
  connection: {{hosts: ["http://127.0.0.1:{port}"], username: etl,
               password: "{{{{ env.PLANT_LOADER_PW }}}}", timeout: 2}}
  dataset: "rfi"
  options: {{max_retries: 1}}""",
    "search_api_key": """
  type: elasticsearch
  connection: {{hosts: ["http://127.0.0.1:{port}"], api_key: "{{{{ env.PLANT_API_KEY }}}}",
               timeout: 2}}
  dataset: "rfi"
  options: {{max_retries: 1}}""",
    "files": """
  type: files
  dataset: "rfi"
  connection: {{root: "{{{{ job_dir }}}}/warehouse", storage_options: {{password: filesPwLitDd44}}}}""",
    "numeric_password": """
  type: elasticsearch
  connection: {{hosts: ["http://127.0.0.1:{port}"], username: etl, password: 73915286}}
  dataset: "rfi\"""",
}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **PLANTED}
    return subprocess.run([sys.executable, "-m", "sesa_fp", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def _leaks(text: str | bytes) -> list[str]:
    """Each planted secret found in ``text``, with what surrounds it."""
    data = text.encode() if isinstance(text, str) else text
    out = []
    for name, value in ALL_SECRETS.items():
        at = data.find(value.encode())
        if at >= 0:
            out.append(f"{name}: ...{data[max(0, at - 200):at + 40]!r}...")
    return out


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_planted_secrets_never_leave_the_process(loader: str, tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(JOB.format(loader=LOADERS[loader].format(port=_closed_port())))
    (tmp_path / "in.jsonl").write_text(
        '{"title": "a", "n": 1}\n{"n": 2}\n{"title": "c", "n": 3}\n{broken\n')
    outputs = []
    for command in ("validate", "explain", "run"):
        proc = _cli(command, "--config", str(job), cwd=tmp_path)
        outputs.append((command, proc))
        assert not _leaks(proc.stdout), (command, proc.stdout)
        assert not _leaks(proc.stderr), (command, proc.stderr)
    run = outputs[-1][1]
    if loader == "numeric_password":
        assert all(p.returncode == 2 for _, p in outputs), outputs
        assert "loader.connection.password: expected a string, got int" in run.stderr
    elif loader == "files":
        assert run.returncode != 2, run.stderr  # the job is valid; dead letters reach the DLQ
        assert "***" in outputs[1][1].stdout  # explain shows where secrets were
    else:
        assert run.returncode == 1, run.stderr
        assert "127.0.0.1" in run.stderr
    files = {p: _content(p) for p in tmp_path.rglob("*") if p.is_file() and p.name != "job.yaml"}
    if loader == "files":
        dlq = {p: data for p, data in files.items() if "dlq" in p.parts}
        assert any(p.name == "_manifest.json" for p in dlq), files
        assert any(b"read_jsonl(" in data for data in dlq.values())
        assert any(b"validate" in data for data in dlq.values())
    for path, data in files.items():
        assert not _leaks(data), path


def _content(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data
