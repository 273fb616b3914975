"""Typed errors of the search-engine adapters."""

from __future__ import annotations

from sesa_fp.errors import SesaError

__all__ = [
    "RETRYABLE_ERROR_TYPES",
    "SearchError",
    "SearchRequestError",
    "SearchTransportError",
    "SearchUnavailableError",
]

#: engine error types that mean "try again later" whatever the HTTP status says
RETRYABLE_ERROR_TYPES = frozenset({
    "es_rejected_execution_exception",
    "rejected_execution_exception",
    "circuit_breaking_exception",
    "unavailable_shards_exception",
    "cluster_block_exception",
})


class SearchError(SesaError):
    """Base of the errors a search source or loader raises."""


class SearchUnavailableError(SearchError):
    """The search host does not answer (connection refused, timeouts) after the retries."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(message)
        self.host = host


class SearchRequestError(SearchError):
    """The engine refused a request (or kept failing it after the retries)."""

    def __init__(self, message: str, *, host: str, status: int | None,
                 error_type: str | None, reason: str | None) -> None:
        super().__init__(message)
        self.host = host
        self.status = status
        self.error_type = error_type
        self.reason = reason


class SearchTransportError(SearchError):
    """One failed call, translated from the client's exception; ``retryable`` says whether
    trying again may help (connection error, timeout, 429, 5xx, a rejected execution)."""

    def __init__(self, *, host: str, status: int | None, error_type: str, reason: str) -> None:
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{host}: {where}: {error_type}: {reason}")
        self.host = host
        self.status = status
        self.error_type = error_type
        self.reason = reason

    @property
    def retryable(self) -> bool:
        s = self.status
        return (s is None or s == 429 or s >= 500 or self.error_type in RETRYABLE_ERROR_TYPES)

    @property
    def unreachable(self) -> bool:
        """No HTTP response at all: the host is down or does not answer in time."""
        return self.status is None
