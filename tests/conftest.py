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
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent


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
