"""A JSON API written for the tests: an ASGI app served by uvicorn on 127.0.0.1 in its own process.

Every pagination style of `http_source` over the same records, under ``/s/<scenario>/<style>``:

- ``page?page=N&per_page=K`` (1-based; an empty page after the last),
- ``offset?offset=O&limit=L`` (a short page at the end),
- ``cursor?cursor=C&limit=L`` with ``next_cursor`` in the body (null at the end),
- ``next?after=O&limit=L`` with a relative ``next`` URL in the body,
- ``link?offset=O&limit=L`` with an RFC 8288 ``Link: <...>; rel="next"`` header.

Records are ``{"data": {"items": [...]}}`` of `record(i)` for i in ``range(total)``. A scenario
is configured with ``PUT /_scenario/<name>`` (JSON: ``total``, ``faults``, ``token``,
``loop_after``) and counted: ``GET /_scenario/<name>`` gives the requests it served and when
(the server's monotonic clock). ``faults`` maps a request number (1-based, retries included)
to what that request gets instead of its page: ``"429"`` / ``"429:S"`` (Retry-After S
seconds), ``"503date:S"`` (Retry-After as an HTTP date S seconds ahead), ``"500"``,
``"slow:S"`` (answers after S seconds), ``"reset"`` (the connection drops mid-body),
``"malformed"`` (a 200 whose body is not JSON), ``"missing"`` (a 200 without
``data.items``), ``"404"``. With ``token`` set, a request without ``Authorization: Bearer
<token>`` gets a 401 whose body echoes the header it sent. ``loop_after=k``: the cursor and
next-URL styles send page k's successor back to page k-1 (a repeating cursor).

Run: ``python tests/http_api_server.py --port 8765`` (prints ``READY <url>``), or use `serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson

_STATUSES = ("open", "closed", "answered", "void")


def record(i: int) -> dict[str, Any]:
    """The i-th record every style serves."""
    return {"id": i, "title": f"  Item {i} ", "status": _STATUSES[i % 4],
            "created_at": f"2025-09-{1 + i % 28:02d}T{i % 24:02d}:00:00",
            "amount": i * 7 % 1000}


class _Scenario:
    def __init__(self, total: int = 100_000, faults: dict[str, str] | None = None,
                 token: str | None = None, loop_after: int | None = None) -> None:
        self.total = total
        self.faults = {int(k): v for k, v in (faults or {}).items()}
        self.token = token
        self.loop_after = loop_after
        self.requests = 0
        self.times: list[float] = []
        self.paths: list[str] = []


SCENARIOS: dict[str, _Scenario] = {"default": _Scenario()}


def _page(start: int, limit: int, total: int) -> list[dict[str, Any]]:
    return [record(i) for i in range(max(0, start), min(start + limit, total))]


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
                | None = None, ctype: bytes = b"application/json") -> None:
    hdrs = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
            *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _fault(kind: str, send: Any) -> bool:
    """Answer with the fault; False when the fault only delays the real answer."""
    name, _, arg = kind.partition(":")
    if name == "429":
        await _send(send, 429, b'{"error": "slow down"}',
                    [(b"retry-after", (arg or "1").encode())])
    elif name == "503date":
        when = email.utils.formatdate(time.time() + float(arg or 2), usegmt=True)
        await _send(send, 503, b"service unavailable\n", [(b"retry-after", when.encode())],
                    b"text/plain")
    elif name == "500":
        await _send(send, 500, b"internal error: try again\n", ctype=b"text/plain")
    elif name == "404":
        await _send(send, 404, b"no such collection\nsecond line\n", ctype=b"text/plain")
    elif name == "slow":
        await asyncio.sleep(float(arg or 1))
        return False
    elif name == "reset":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"100000")]})
        await send({"type": "http.response.body", "body": b'{"data": {"items": [',
                    "more_body": True})
        raise ConnectionAbortedError("dropping the connection mid-body (a fault asked for)")
    elif name == "malformed":
        await _send(send, 200, b'{"data": {"items": [{"id": 1}, {"id": ')
    elif name == "missing":
        await _send(send, 200, b'{"result": "nothing here"}')
    else:
        raise ValueError(f"unknown fault {kind!r}")
    return True


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path: str = scope["path"]
    query = dict(urllib.parse.parse_qsl(scope["query_string"].decode()))
    if path == "/_health":
        await _send(send, 200, b'{"ok": true}')
        return
    if path.startswith("/_scenario/"):
        name = path.rsplit("/", 1)[1]
        if scope["method"] == "PUT":
            SCENARIOS[name] = _Scenario(**orjson.loads(await _read_body(receive)))
            await _send(send, 200, b'{"ok": true}')
        else:
            sc = SCENARIOS[name]
            await _send(send, 200, orjson.dumps({"requests": sc.requests, "times": sc.times,
                                                 "paths": sc.paths}))
        return
    parts = path.strip("/").split("/")
    if len(parts) != 3 or parts[0] != "s" or parts[1] not in SCENARIOS:
        await _send(send, 404, b"not found\n", ctype=b"text/plain")
        return
    sc, style = SCENARIOS[parts[1]], parts[2]
    sc.requests += 1
    sc.times.append(time.monotonic())
    sc.paths.append(path + ("?" + scope["query_string"].decode() if query else ""))
    if sc.token is not None:
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        if auth != f"Bearer {sc.token}":
            await _send(send, 401, f"unauthorized: got {auth!r}\n".encode(),
                        ctype=b"text/plain")
            return
    fault = sc.faults.get(sc.requests)
    if fault is not None and await _fault(fault, send):
        return
    base = f"/s/{parts[1]}/{style}"
    headers: list[tuple[bytes, bytes]] = []
    body: dict[str, Any]
    if style == "page":
        size = int(query.get("per_page", 100))
        number = int(query.get("page", 1))
        body = {"data": {"items": _page((number - 1) * size, size, sc.total)},
                "page": number}
    elif style == "offset":
        limit = int(query.get("limit", 100))
        body = {"data": {"items": _page(int(query.get("offset", 0)), limit, sc.total)}}
    elif style in ("cursor", "next", "link"):
        limit = int(query.get("limit", 100))
        key = {"cursor": "cursor", "next": "after", "link": "offset"}[style]
        raw = query.get(key) or ("c0" if style == "cursor" else "0")
        start = int(raw[1:] if style == "cursor" else raw)
        items = _page(start, limit, sc.total)
        nxt: int | None = start + limit if start + limit < sc.total else None
        if nxt is not None and sc.loop_after is not None and start >= sc.loop_after * limit:
            nxt = start - limit  # back to the page before: a repeating cursor
        body = {"data": {"items": items}}
        if style == "cursor":
            body["next_cursor"] = None if nxt is None else f"c{nxt}"
        elif style == "next":
            body["next"] = None if nxt is None else f"{base}?after={nxt}&limit={limit}"
        elif nxt is not None:
            host = dict(scope["headers"]).get(b"host", b"127.0.0.1").decode()
            headers.append((b"link", f'<http://{host}{base}?offset={nxt}&limit={limit}>; '
                                     f'rel="next", <http://{host}{base}>; rel="first"'
                                     .encode()))
    else:
        await _send(send, 404, b"unknown style\n", ctype=b"text/plain")
        return
    await _send(send, 200, orjson.dumps(body), headers)


# -- running it ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiServer:
    """A running server: its URL, and helpers to configure and count scenarios."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, method: str, path: str, body: bytes | None = None) -> Any:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def scenario(self, name: str, **options: Any) -> str:
        """Configure scenario ``name`` (counts reset); returns its base URL."""
        self._call("PUT", f"/_scenario/{name}", json.dumps(options).encode())
        return f"{self.url}/s/{name}"

    def stats(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/_scenario/{name}"))


@contextlib.contextmanager
def serve(port: int | None = None) -> Iterator[ApiServer]:
    """Run the server in a child process on 127.0.0.1 until the block ends."""
    port = port or free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, __file__, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"test API server did not start: {line!r}")
        yield ApiServer(line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="critical",
                            access_log=False, lifespan="on", http="h11")
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        print(f"READY http://127.0.0.1:{args.port}", flush=True)
        await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
