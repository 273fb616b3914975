"""Search engines behind one small interface: Elasticsearch (elasticsearch-py) and OpenSearch
(opensearch-py). The paging, bulk and retry logic of `es_source` / `load_es` is written once
against `SearchClient`; each adapter only maps its client's calls and errors.

>>> connect(SearchConfig(engine="auto"))
Traceback (most recent call last):
sesa_fp.errors.ConfigError: connect() needs a resolved engine; call SearchConfig.resolve() first
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sesa_fp.errors import ConfigError
from sesa_fp.lazy import lazy_attribute as _lazy_attribute
from sesa_fp.lazy import lazy_dir as _lazy_dir
from sesa_fp.search.base import SearchClient, backoff_delay, call_with_retries
from sesa_fp.search.config import SearchConfig, mask_url
from sesa_fp.search.errors import (
    SearchError,
    SearchRequestError,
    SearchTransportError,
    SearchUnavailableError,
)

__all__ = [
    "SearchClient",
    "SearchConfig",
    "SearchError",
    "SearchRequestError",
    "SearchTransportError",
    "SearchUnavailableError",
    "backoff_delay",
    "call_with_retries",
    "connect",
    "mask_url",
    "resolve_config",
]


#: submodules `import sesa_fp` loaded before it was made lazy: still reachable as attributes
_SUBMODULES = ("adaptive", "util")


def __getattr__(name: str) -> object:
    return _lazy_attribute(__name__, name, {}, _SUBMODULES)


def __dir__() -> list[str]:
    return _lazy_dir(globals(), __all__, _SUBMODULES)


def connect(config: SearchConfig) -> SearchClient:
    """A client of the adapter for ``config.engine`` (no I/O; the client connects lazily)."""
    if config.engine == "opensearch":
        from sesa_fp.search.opensearch import OpenSearchClient

        return OpenSearchClient(config)
    if config.engine == "elasticsearch":
        from sesa_fp.search.elasticsearch import ElasticsearchClient

        return ElasticsearchClient(config)
    raise ConfigError("connect() needs a resolved engine; call SearchConfig.resolve() first")


def resolve_config(config: SearchConfig, *, max_retries: int, backoff: float,
                   on_retry: Callable[[], None] | None = None) -> SearchConfig:
    """``config`` with its engine detected from ``GET /`` on the first host, retried on
    connection errors; `SearchUnavailableError` naming the host when it never answers."""
    def probe(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return call_with_retries(fn, what="GET /", max_retries=max_retries, backoff=backoff,
                                 on_retry=on_retry)

    return config.resolve(probe)
