"""The errors of `load_sql`, and the two it raises inside a batch (a lost connection, bad
rows)."""

from __future__ import annotations

from sesa_fp.errors import SesaError

try:  # one error family for both halves of SQL when the source module is there
    from sesa_fp.sources.sql import SqlError as _SqlBase
    from sesa_fp.sources.sql import SqlUnavailableError as _Unavailable
except ImportError:  # pragma: no cover - the source half is optional
    class _SqlBase(SesaError):  # type: ignore[no-redef]
        """Base of the SQL errors."""

    class _Unavailable(_SqlBase):  # type: ignore[no-redef]
        """The database does not answer."""


class SqlLoadError(_SqlBase):
    """`load_sql` cannot write: the table is missing or its shape does not fit (not a bad
    record, which becomes a dead letter)."""


class SqlUnavailableError(_Unavailable):
    """The database host did not answer, or lost every connection, for longer than the
    retries; ``host`` is the masked URL.

    >>> str(SqlUnavailableError("postgresql+psycopg://u:***@h:5432/db", "down"))
    'down'
    """

    def __init__(self, host: str, message: str) -> None:
        super().__init__(message)
        self.host = host


class _Disconnected(Exception):
    """A batch failed because the connection did (retried)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _RowsFailed(Exception):
    """A batch failed because of its data (bisected)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
