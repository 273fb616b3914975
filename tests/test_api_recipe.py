"""recipes/api_to_search.yaml end to end, as a user runs it: the test API (uvicorn on loopback)
-> Azure Blob staging (Azurite) -> normalize, cast -> OpenSearch, through `sesa run`."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from http_api_server import serve

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "api_to_search.yaml"
TOTAL = 20_000
# Azurite's well-known development account (published in its documentation; not a secret)
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _staging(azure_url: str) -> tuple[dict[str, str], Any, str]:
    """The recipe's environment for staging on Azurite, a filesystem to read the staged
    prefix back with, and the (new, empty) container."""
    adlfs = pytest.importorskip("adlfs")
    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={azure_url};")
    container = f"etl{time.monotonic_ns()}"
    fs = adlfs.AzureBlobFileSystem(connection_string=conn)
    fs.mkdir(container)
    return {"AZURE_STORAGE_CONNECTION_STRING": conn, "STAGING_CONTAINER": container}, fs, \
        container


def test_api_to_search_recipe_end_to_end(azure_url: str, search_url: str,
                                         tmp_path: Path) -> None:
    token = "planted-recipe-T0K3N"
    env, fs, root = _staging(azure_url)
    prefix = f"recipe{time.monotonic_ns()}"
    with serve() as api:
        url = api.scenario("recipe", total=TOTAL, token=token,
                           faults={"3": "429:1", "5": "500", "7": "reset"}) + "/cursor"
        proc = subprocess.run(
            [sys.executable, "-m", "sesa_fp", "run", "--config", str(RECIPE), "--set",
             "ds=2025-09-06"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
            env={**os.environ, **env, "PYTHONPATH": str(REPO), "API_URL": url,
                 "API_TOKEN": token, "SEARCH_URL": search_url, "INDEX_PREFIX": prefix})
        served = api.stats("recipe")["requests"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert token not in proc.stdout + proc.stderr
    assert AZURITE_KEY not in proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["read"] == TOTAL and report["loaded"] == TOTAL
    assert report["dead_letters"] == 0 and report["retries"] >= 3
    assert served == TOTAL // 1000 + 3  # each page once, plus one retry per fault
    # staged: the committed prefix on the object store holds every record once
    manifests = [p for p in fs.find(root) if p.endswith("_manifest.json")
                 and "/staging/" in p]
    assert len(manifests) == 1
    manifest = json.loads(fs.cat(manifests[0]))
    assert sum(p["records"] for p in manifest["parts"]) == TOTAL
    base = manifests[0].rsplit("/", 1)[0]
    staged = [json.loads(line)["id"] for p in manifest["parts"]
              for line in gzip.decompress(fs.cat(f"{base}/{p['path']}")).splitlines()]
    assert staged == list(range(TOTAL))
    # loaded: one document per record, transformed
    _get(f"{search_url}/{prefix}-*/_refresh")
    assert _get(f"{search_url}/{prefix}-*/_count")["count"] == TOTAL
    doc = _get(f"{search_url}/{prefix}-2025.09/_doc/7")["_source"]
    assert doc["title"] == "Item 7" and doc["created_at"].startswith("2025-09-08T07:00:00")
