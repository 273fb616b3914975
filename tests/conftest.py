"""Shared fixtures: real services on loopback, started here unless the environment names them.

In CI (``CI=true``) a service that cannot be reached is a failure; elsewhere the tests that
need it are skipped with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from object_stores import AzureStore, GcsStore, ObjectStore, S3Store

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent

# gcsfs >= 2026.3 asks the Storage Control API (gRPC) for every bucket's layout (zonal, HNS);
# fake-gcs-server does not serve it, so each probe retries for about 60 s before falling back
# to the plain JSON API. gcsfs's own switch turns the probe off; it is read when gcsfs is
# imported, so it is set here, before any test imports it.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


def service_missing(what: str) -> None:
    """Fail in CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: a missing service is a failure)")
    pytest.skip(what)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.2)
    return False


@pytest.fixture(scope="session")
def s3_url() -> Iterator[str]:
    """A real S3 server (moto's) on 127.0.0.1: ``S3_URL`` if set, else started for the session."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    url = os.environ.get("S3_URL")
    if url:
        if not _wait_http(url, 10):
            service_missing(f"S3_URL={url} does not answer")
        yield url
        return
    try:
        import moto.server  # noqa: F401
    except ImportError:
        service_missing("no S3 server: install moto[server] (pip install -e '.[dev]')")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not _wait_http(url, 30):
            service_missing(f"moto S3 server did not start on {url}")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def s3_bucket(s3_url: str) -> Iterator[tuple[str, dict[str, object]]]:
    """A fresh bucket on the S3 server: ``(bucket_name, storage_options)``."""
    s3fs = pytest.importorskip("s3fs")
    opts: dict[str, object] = {
        "key": "testing", "secret": "testing",
        "client_kwargs": {"endpoint_url": s3_url},
    }
    fs = s3fs.S3FileSystem(**opts)
    name = f"b{time.monotonic_ns()}"
    fs.mkdir(name)
    yield name, opts
    fs.rm(name, recursive=True)


# --- Azure Blob (Azurite) and GCS (fake-gcs-server) on loopback ----------------------------

def _service_url(var: str, svc: str, probe: str = "") -> Iterator[str]:
    """``$var`` if set, else ``scripts/services.sh start svc`` (stopped again at the end unless
    it already ran)."""
    url = os.environ.get(var)
    if url:
        if not _wait_http_any(url + probe, 20):
            service_missing(f"{var}={url} does not answer")
        yield url.rstrip("/")
        return
    if not _SERVICES.exists():
        service_missing(f"{_SERVICES} not found")
    was_running = f"{var}=" in _services("status", svc).stdout
    proc = _services("start", svc)
    found = [ln.split("=", 1)[1] for ln in proc.stdout.splitlines() if ln.startswith(f"{var}=")]
    if proc.returncode != 0 or not found:
        service_missing(f"cannot start {svc}: {proc.stderr.strip()[-800:]}")
    try:
        yield found[0]
    finally:
        if not was_running:
            _services("stop", svc)


def _wait_http_any(url: str, seconds: float) -> bool:
    """True once anything answers HTTP at ``url`` (an error status counts: the server is up)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.2)
    return False


@pytest.fixture(scope="session")
def azure_url() -> Iterator[str]:
    """Azurite's blob endpoint on 127.0.0.1 (``http://127.0.0.1:PORT/devstoreaccount1``):
    ``AZURE_URL`` if set, else started with ``scripts/services.sh start azure``."""
    yield from _service_url("AZURE_URL", "azure")


@pytest.fixture(scope="session")
def gcs_url() -> Iterator[str]:
    """fake-gcs-server on 127.0.0.1: ``GCS_URL`` if set, else started with
    ``scripts/services.sh start gcs``."""
    yield from _service_url("GCS_URL", "gcs", "/storage/v1/b")


_STORES: dict[str, tuple[type[ObjectStore], str]] = {  # store -> (its class, its URL fixture)
    "s3": (S3Store, "s3_url"), "azure": (AzureStore, "azure_url"), "gcs": (GcsStore, "gcs_url"),
}


@pytest.fixture(params=list(_STORES))
def object_store(request: pytest.FixtureRequest) -> Iterator[ObjectStore]:
    """A fresh, empty bucket on each real object store in turn (S3, Azure Blob, GCS), made by
    the store's own client: sesa_fp's writers never create one."""
    cls, url_fixture = _STORES[request.param]
    url = request.getfixturevalue(url_fixture)
    store = cls(f"b{time.monotonic_ns()}", url)
    store.create_bucket(store.bucket)
    yield store
    store.delete_bucket(store.bucket)


# --- search engine (OpenSearch) on loopback -------------------------------------------------

_SERVICES = REPO / "scripts" / "services.sh"
_OS_TARGET = REPO / "scripts" / "opensearch" / "target"


def _services(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(_SERVICES), *args], capture_output=True, text=True, timeout=900,
                          check=False)


@pytest.fixture(scope="session")
def search_url() -> Iterator[str]:
    """A real OpenSearch node on 127.0.0.1: ``SEARCH_URL`` if set, else started with
    ``scripts/services.sh start search`` and stopped at the end (unless it already ran)."""
    url = os.environ.get("SEARCH_URL")
    if url:
        if not _wait_http(url, 30):
            service_missing(f"SEARCH_URL={url} does not answer")
        yield url.rstrip("/")
        return
    if not _SERVICES.exists():
        service_missing(f"{_SERVICES} not found")
    was_running = "SEARCH_URL=" in _services("status", "search").stdout
    proc = _services("start", "search")
    found = [ln.split("=", 1)[1] for ln in proc.stdout.splitlines()
             if ln.startswith("SEARCH_URL=")]
    if proc.returncode != 0 or not found:
        service_missing(f"cannot start the search node: {proc.stderr.strip()[-800:]}")
    try:
        yield found[0]
    finally:
        if not was_running:
            _services("stop", "search")


class LoopbackSearchNode:
    """A private OpenSearch node (the services script's Java launcher, run directly) with its
    own home, fixed ports and extra settings; it can be stopped and started again (its data
    survives), for fault tests that must not disturb the shared node."""

    def __init__(self, home: Path, settings: str = "", heap: str = "256m") -> None:
        self.home = home
        self.settings = settings
        self.heap = heap
        self.port = _free_port()
        self.transport_port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "node.log"

    def start(self, timeout: float = 120.0) -> str:
        if not (_OS_TARGET / "classes").is_dir():
            service_missing("the OpenSearch launcher is not built "
                            "(run scripts/services.sh start search once)")
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "tmp").mkdir(exist_ok=True)
        java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") \
            if os.environ.get("JAVA_HOME") else "java"
        cmd = [
            java, f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true", "-Dfile.encoding=UTF-8",
            "-Djava.net.preferIPv4Stack=true", f"-Djava.io.tmpdir={self.home / 'tmp'}",
            "-Dlog4j2.formatMsgNoLookups=true", "-Dlog4j.shutdownHookEnabled=false",
            "-Dlog4j2.disable.jmx=true", "-Dio.netty.noUnsafe=true",
            "-Dio.netty.noKeySetOptimization=true", "-Dio.netty.recycler.maxCapacityPerThread=0",
            "-cp", f"{_OS_TARGET / 'classes'}:{_OS_TARGET / 'lib'}/*", "sesa.opensearch.Launcher",
            "--home", str(self.home), "--http-port", str(self.port),
            "--transport-port", str(self.transport_port),
        ]
        env = {**os.environ, "SEARCH_EXTRA_SETTINGS": self.settings}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                service_missing(f"private search node exited during start-up; see {self.log}")
            try:
                with urllib.request.urlopen(
                        f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=5s",
                        timeout=10):
                    return self.url
            except OSError:
                time.sleep(0.3)
        self.stop()
        service_missing(f"private search node not healthy after {timeout} s; see {self.log}")
        return self.url

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class SearchNodeFactory:
    """Makes private `LoopbackSearchNode`s (started); `close` stops them all."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.nodes: list[LoopbackSearchNode] = []

    def __call__(self, settings: str = "", heap: str = "256m") -> LoopbackSearchNode:
        node = LoopbackSearchNode(self.tmp.mktemp("search-node"), settings, heap)
        self.nodes.append(node)
        node.start()
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def search_node_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchNodeFactory]:
    """Starts private search nodes on demand; all are stopped at the end of the session."""
    factory = SearchNodeFactory(tmp_path_factory)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def tiny_queue_search(search_node_factory: SearchNodeFactory) -> LoopbackSearchNode:
    """A private node whose write queue rejects bulk items with 429 under load, and whose
    HTTP request limit (256kb) makes a larger bulk body fail with 413."""
    return search_node_factory(
        "thread_pool.write.queue_size=2 thread_pool.write.size=1 http.max_content_length=256kb")


class SearchAdmin:
    """Test-side view of a search node through opensearch-py (independent of sesa_fp's code):
    seed an index, read every document back, list open points in time."""

    def __init__(self, url: str) -> None:
        opensearchpy = pytest.importorskip("opensearchpy")
        self.url = url
        self.client = opensearchpy.OpenSearch(hosts=[url], timeout=60)
        self.helpers = opensearchpy.helpers

    def new_index(self, prefix: str = "t", **settings: object) -> str:
        name = f"{prefix}-{time.monotonic_ns()}"
        if settings:
            self.client.indices.create(index=name, body={"settings": settings})
        return name

    def seed(self, index: str, docs: list[tuple[str, dict[str, object]]], **kw: object) -> None:
        actions = ({"_index": index, "_id": i, "_source": d} for i, d in docs)
        self.helpers.bulk(self.client, actions, chunk_size=2000, refresh=True, **kw)

    def docs(self, index: str) -> dict[str, dict[str, object]]:
        self.client.indices.refresh(index=index)
        return {h["_id"]: h["_source"]
                for h in self.helpers.scan(self.client, index=index, size=2000)}

    def count(self, index: str) -> int:
        self.client.indices.refresh(index=index)
        return int(self.client.count(index=index)["count"])

    def open_pits(self) -> set[str]:
        return {p["pit_id"] for p in
                self.client.transport.perform_request("GET", "/_search/point_in_time/_all")
                .get("pits", [])}

    def drop(self, pattern: str) -> None:
        self.client.indices.delete(index=pattern, ignore_unavailable=True)


@pytest.fixture(scope="session")
def search_admin(search_url: str) -> SearchAdmin:
    """A `SearchAdmin` on the shared search node."""
    return SearchAdmin(search_url)


@pytest.fixture(scope="session")
def search_admin_at() -> type[SearchAdmin]:
    """`SearchAdmin` itself, for tests that talk to a private node: ``search_admin_at(url)``."""
    return SearchAdmin


# --- PostgreSQL on loopback --------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1 as ``postgresql://user:pw@127.0.0.1:PORT/db``:
    ``POSTGRES_URL`` if set, else started with ``scripts/services.sh start postgres`` and
    stopped at the end (unless it already ran)."""
    url = os.environ.get("POSTGRES_URL")
    if url:
        yield url
        return
    if not _SERVICES.exists():
        service_missing(f"{_SERVICES} not found")
    was_running = "POSTGRES_URL=" in _services("status", "postgres").stdout
    proc = _services("start", "postgres")
    found = [ln.split("=", 1)[1] for ln in proc.stdout.splitlines()
             if ln.startswith("POSTGRES_URL=")]
    if proc.returncode != 0 or not found:
        service_missing(f"cannot start PostgreSQL: {proc.stderr.strip()[-800:]}")
    try:
        yield found[0]
    finally:
        if not was_running:
            _services("stop", "postgres")
