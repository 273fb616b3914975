"""What every engine adapter offers, and the engine-agnostic retry policy."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn, TypeVar

import tenacity

from sesa_fp.retrying import backoff_delay, backoff_wait, retry_call
from sesa_fp.search.config import SearchConfig
from sesa_fp.search.errors import (
    SearchRequestError,
    SearchTransportError,
    SearchUnavailableError,
)

__all__ = [
    "SearchClient",
    "backoff_delay",
    "backoff_wait",
    "call_with_retries",
    "give_up_error",
]

T = TypeVar("T")


class SearchClient(abc.ABC):
    """One engine client (not thread-safe to share across workers: make one per worker).

    Every method raises `SearchTransportError` for a failed call; retrying is the caller's
    business (`call_with_retries`), the client itself does not retry.
    """

    engine: ClassVar[str]
    #: sort that makes ``search_after`` over a point in time a total order
    pit_sort: ClassVar[list[Any]]
    #: a cheaper sort that is a total order only within one shard per index (or None)
    pinned_sort: ClassVar[list[Any] | None] = None

    def __init__(self, config: SearchConfig) -> None:
        self.config = config
        self.host = config.host
        self.client: Any = self._make()

    @abc.abstractmethod
    def _make(self) -> Any: ...

    @abc.abstractmethod
    def _translate(self, exc: Exception) -> SearchTransportError | None:
        """The client's exception as a `SearchTransportError`, or None to let it propagate."""

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except SearchTransportError:
            raise
        except Exception as exc:
            err = self._translate(exc)
            if err is None:
                raise
            raise err from exc

    def info(self) -> dict[str, Any]:
        return dict(self._call(self.client.info))

    @abc.abstractmethod
    def open_pit(self, index: str, keep_alive: str) -> str: ...

    @abc.abstractmethod
    def close_pit(self, pit_id: str) -> None: ...

    def search(self, body: dict[str, Any], *, index: str | None = None,
               scroll: str | None = None) -> dict[str, Any]:
        params = {"scroll": scroll} if scroll else None
        return dict(self._call(self._search, body, index, params))

    @abc.abstractmethod
    def _search(self, body: dict[str, Any], index: str | None,
                params: dict[str, Any] | None) -> Any: ...

    @abc.abstractmethod
    def scroll(self, scroll_id: str, keep_alive: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def clear_scroll(self, scroll_id: str) -> None: ...

    @abc.abstractmethod
    def bulk(self, body: bytes, *, pipeline: str | None = None,
             refresh: str | None = None) -> dict[str, Any]:
        """Send a raw NDJSON bulk body (already encoded)."""

    def index_exists(self, name: str) -> bool:
        return bool(self._call(self.client.indices.exists, index=name))

    def create_index(self, name: str, body: dict[str, Any]) -> bool:
        """Create ``name``; False when it already exists."""
        try:
            self._call(self._create_index, name, body)
        except SearchTransportError as exc:
            if exc.error_type == "resource_already_exists_exception":
                return False
            raise
        return True

    @abc.abstractmethod
    def _create_index(self, name: str, body: dict[str, Any]) -> Any:
        """The client's own create call (the clients spell the body differently)."""

    def mapping(self, index: str) -> dict[str, Any]:
        """The mappings of ``index`` (of the first concrete index it names); {} if none."""
        resp = self._call(self.client.indices.get_mapping, index=index)
        body = getattr(resp, "body", resp)
        for value in body.values():
            return dict(value.get("mappings") or {})
        return {}

    def refresh(self, index: str) -> None:
        self._call(self.client.indices.refresh, index=index)

    def shard_counts(self, index: str) -> dict[str, int]:
        """Primary shards per concrete index that ``index`` (a pattern, alias) resolves to."""
        raise NotImplementedError

    def count(self, index: str) -> int:
        return int(self._call(self.client.count, index=index)["count"])

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}>"


def give_up_error(err: SearchTransportError, what: str, attempts: int) -> Exception:
    """The typed error raised when ``err`` is final: `SearchUnavailableError` when the host
    did not answer or kept answering "try later" (429, 5xx) until the retries ran out (an
    outage), `SearchRequestError` when it refused the request itself.

    >>> down = SearchTransportError(host="http://u:***@h:9200", status=503,
    ...                             error_type="http_503", reason="busy")
    >>> str(give_up_error(down, "bulk", 3))
    'search host http://u:***@h:9200 unavailable after 3 attempt(s) (bulk): HTTP 503 http_503: busy'
    """
    if err.unreachable:
        return SearchUnavailableError(
            err.host,
            f"search host {err.host} unreachable after {attempts} attempt(s) ({what}): "
            f"{err.error_type}: {err.reason}",
        )
    if err.retryable:
        return SearchUnavailableError(
            err.host,
            f"search host {err.host} unavailable after {attempts} attempt(s) ({what}): "
            f"HTTP {err.status} {err.error_type}: {err.reason}",
        )
    return SearchRequestError(
        f"{what} failed on {err.host} after {attempts} attempt(s): HTTP {err.status} "
        f"{err.error_type}: {err.reason}",
        host=err.host, status=err.status, error_type=err.error_type, reason=err.reason,
    )


def call_with_retries(fn: Callable[[], T], *, what: str, max_retries: int, backoff: float,
                      on_retry: Callable[[], None] | None = None) -> T:
    """``fn()``, retried on retryable `SearchTransportError` up to ``max_retries`` times with
    exponential backoff and jitter (`backoff_wait`); a final failure becomes
    `give_up_error`'s `SearchUnavailableError` (an outage) or `SearchRequestError`."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None:
            on_retry()

    def give_up(err: SearchTransportError, attempts: int) -> NoReturn:
        raise give_up_error(err, what, attempts) from err

    return retry_call(fn, on=SearchTransportError, retryable=lambda e: e.retryable,
                      max_retries=max_retries, wait=backoff_wait(backoff),
                      before_sleep=before_sleep, give_up=give_up)
