"""An outage longer than the retries, on the real search node: the load stops naming the host.

The shared node must keep running for the other tests, so the outage is made by a loopback
TCP forwarder between `load_es` and the node that fails partway through a load, after a
number of bulk requests: from then on new connections are refused and each open one is cut
when the client next sends (a request already forwarded still gets its answer, as from a node
that drains while it shuts down) — or, in the ``503`` mode, every request is answered
``503 Service Unavailable`` without reaching the node. Either way the node never sees a
request that the loader does not hear back about, so the documents in the index can be
compared exactly with what the loader says was acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sesa_fp import pipe, run
from sesa_fp.loaders.search import load_es
from sesa_fp.result import DeadLetter
from sesa_fp.search import SearchUnavailableError
from sesa_fp.storage import from_storage
from sesa_fp.stream import partition

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
N = 10_000
BATCH = 100
ALLOW_BULKS = 20  # bulk requests forwarded before the forwarder closes
#: records the mapping rejects (a string in an integer field): early ones reach the node
#: before the outage, the last one never reaches the loader
BAD_EARLY = {3, 150, 420, 777}
BAD_LATE = {9_990}
MAPPINGS = {"properties": {"n": {"type": "integer"}, "k": {"type": "keyword"}}}


def _records() -> list[dict[str, Any]]:
    return [{"k": f"k{i}", "n": "not-a-number" if i in BAD_EARLY | BAD_LATE else i}
            for i in range(N)]


def _bad_keys(which: set[int]) -> set[str]:
    return {f"k{i}" for i in which}


class FlakyForwarder:
    """127.0.0.1:<port> forwarded to ``target`` (host, port) until ``allow_bulks`` bulk
    requests have gone through; the next one trips it (see the module docstring): ``mode``
    ``"refuse"`` closes it, ``"503"`` answers every request from then on with HTTP 503."""

    MARK = b"POST /_bulk"
    BODY_503 = (b'{"error":{"root_cause":[],"type":"cluster_block_exception",'
                b'"reason":"blocked by: [SERVICE_UNAVAILABLE/2/no cluster-manager];"},'
                b'"status":503}')

    def __init__(self, target: tuple[str, int], allow_bulks: int, mode: str = "refuse") -> None:
        self.target = target
        self.allow_bulks = allow_bulks
        self.mode = mode
        self.bulks = 0
        self.down = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        self.port = int(self.listener.getsockname()[1])
        self._spawn(self._accept)

    def _spawn(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self.down.is_set() or self.mode == "503":
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.down.is_set():
                self._spawn(self._answer_503, client, b"")
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._socks += [client, upstream]
            self._spawn(self._to_node, client, upstream)
            self._spawn(self._to_client, upstream, client)

    def _to_node(self, client: socket.socket, upstream: socket.socket) -> None:
        tail = b""
        pending: bytes | None = None  # what the client sent after the trip, not forwarded
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if self.down.is_set():
                    pending = data  # the client's next request after the trip
                    break
                window = tail + data
                seen = window.count(self.MARK)
                tail = window[-(len(self.MARK) - 1):]
                if seen:
                    with self._lock:
                        self.bulks += seen
                        over = self.bulks > self.allow_bulks
                    if over:
                        self.close()
                        pending = window[window.index(self.MARK):]
                        break
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)
            upstream.close()
        if pending is not None and self.mode == "503":
            self._answer_503(client, pending)
            return
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        client.close()

    def _answer_503(self, client: socket.socket, buf: bytes) -> None:
        """Read each HTTP request from ``client`` (headers, Content-Length body) and answer
        503, until the client goes away."""
        with self._lock:
            self._socks.append(client)
        head = f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n" \
            f"Content-Length: {len(self.BODY_503)}\r\n\r\n".encode()
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = client.recv(65536)
                    if not data:
                        return
                    buf += data
                headers, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in headers.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    data = client.recv(65536)
                    if not data:
                        return
                    rest += data
                buf = rest[length:]
                client.sendall(head + self.BODY_503)
        except OSError:
            pass
        finally:
            client.close()

    def _to_client(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Trip: refuse new connections from now on (open ones are cut when they next send),
        or in the ``503`` mode answer them all with 503."""
        self.down.set()
        if self.mode != "503":
            with contextlib.suppress(OSError):
                self.listener.close()

    def shutdown(self) -> None:
        self.down.set()
        self.mode = "refuse"
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self._threads:
            t.join(5)


@pytest.fixture(params=["refuse"])
def forwarder(request: pytest.FixtureRequest, search_url: str) -> Iterator[FlakyForwarder]:
    node = urllib.parse.urlsplit(search_url)
    fwd = FlakyForwarder((node.hostname or "127.0.0.1", int(node.port or 9200)), ALLOW_BULKS,
                         mode=request.param)
    yield fwd
    fwd.shutdown()


def _in_chain(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kind):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _check_index(admin: Any, target: str, pulled: set[str]) -> dict[str, Any]:
    docs = admin.docs(target)  # refreshed, read back through the node itself
    assert set(docs) <= pulled
    assert all(isinstance(d["n"], int) for d in docs.values())  # no rejected record got in
    return docs


@pytest.mark.parametrize("forwarder", ["refuse", "503"], indirect=True)
def test_outage_beyond_the_retries_stops_the_run_and_counts_what_was_acknowledged(
        forwarder: FlakyForwarder, search_admin: Any) -> None:
    target = search_admin.new_index("outage")
    url = f"http://127.0.0.1:{forwarder.port}"
    pulled: list[str] = []

    def source() -> Iterator[dict[str, Any]]:
        for rec in _records():
            pulled.append(rec["k"])
            yield rec

    dead: list[DeadLetter] = []
    loader = load_es(hosts=[url], dataset=target, id_strategy={"type": "field", "field": "k"},
                     mappings=MAPPINGS, actions_per_batch=BATCH, concurrency=2, max_retries=2,
                     retry_backoff=0.05, timeout=5)
    try:
        with pytest.raises(Exception) as info:  # the cause chain is checked below
            run(pipe(source(), loader, partition(dead.append)), progress=False)
        assert forwarder.down.is_set() and forwarder.bulks > ALLOW_BULKS
        down = _in_chain(info.value, SearchUnavailableError)
        assert isinstance(down, SearchUnavailableError), repr(info.value)
        how = "unreachable" if forwarder.mode == "refuse" else "unavailable"
        assert down.host == url and f"search host {url} {how} after 3 attempt(s) (bulk)" \
            in str(info.value)

        # the dead letters are the records the mapping rejected, nothing the outage touched
        assert {d.record["k"] for d in dead} == _bad_keys(BAD_EARLY)
        for d in dead:
            assert (d.error_type, d.status, d.target) == ("mapper_parsing_exception", 400,
                                                          target)
        # what the node holds is exactly what the loader counts as acknowledged
        docs = _check_index(search_admin, target, set(pulled))
        committed = loader.stats.committed
        assert len(docs) == committed >= (ALLOW_BULKS - 1) * BATCH - len(BAD_EARLY)
        assert loader.last_counts == {target: committed}
        assert not set(docs) & {d.record["k"] for d in dead}
        # read = acknowledged + dead letters + records taken but never sent, which are
        # neither; the rest of the source was never read
        unsent = len(pulled) - committed - len(dead)
        assert 0 < unsent <= 8 * BATCH
        assert len(pulled) < N and not _bad_keys(BAD_LATE) & set(pulled)
        assert loader.stats.failed == len(dead) and loader.stats.n_out == committed + len(dead)
        assert loader.stats.retries >= 2
    finally:
        search_admin.drop(target)


def test_cli_exits_1_naming_the_masked_host_and_the_dlq_holds_only_rejections(
        forwarder: FlakyForwarder, search_admin: Any, tmp_path: Path) -> None:
    target = search_admin.new_index("outage-cli")
    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    secret = "pw-0utage-s3cret"
    host = f"http://etl:{secret}@127.0.0.1:{forwarder.port}"
    # named with the credentials masked (``etl:***@``) or left out
    named = (f"http://etl:***@127.0.0.1:{forwarder.port}", f"http://127.0.0.1:{forwarder.port}")
    job = {
        "job_name": "outage",
        "runtime": {"batch_size": BATCH, "max_workers": 1},
        "extractor": {"type": "jsonl", "path": str(data)},
        "loader": {
            "type": "opensearch",
            "connection": {"hosts": [host], "timeout": 5},
            "dataset": target,
            "options": {"id_strategy": {"type": "field", "field": "k"},
                        "bulk": {"actions_per_batch": BATCH, "concurrency": 2},
                        "max_retries": 1, "mappings": MAPPINGS},
        },
        "dlq": {"backend": "local", "uri": str(tmp_path / "dlq") + "/"},
    }
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(job))  # JSON is YAML
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run([sys.executable, "-m", "sesa_fp", str(path)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert forwarder.down.is_set()
        assert proc.returncode == 1, proc.stderr[-2000:]
        lines = [ln for ln in proc.stderr.splitlines() if "unreachable" in ln]
        assert lines, proc.stderr[-2000:]
        last = lines[-1]
        assert f"search host {named[0]} unreachable" in last or \
            f"search host {named[1]} unreachable" in last, proc.stderr[-2000:]
        assert secret not in proc.stderr and secret not in proc.stdout

        docs = _check_index(search_admin, target, {r["k"] for r in _records()})
        assert docs and len(docs) < N
        # the DLQ (whatever the failed run committed of it) holds only per-record rejections
        dlq: list[dict[str, Any]] = []
        for manifest in sorted((tmp_path / "dlq").rglob("_manifest.json")):
            dlq += list(from_storage(str(manifest.parent) + "/"))
        keys = {d["record"]["k"] for d in dlq}
        assert keys <= _bad_keys(BAD_EARLY) and len(keys) == len(dlq)
        assert {(d["error_type"], d["status"]) for d in dlq} <= {("mapper_parsing_exception",
                                                                   400)}
        assert not keys & set(docs)
        assert secret not in json.dumps(dlq)
    finally:
        search_admin.drop(target)
