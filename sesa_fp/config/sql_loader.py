"""YAML for `load_sql`: ``loader: {type: postgres | sql, connection: {url, password},
dataset: "table or template", options: {key, mode, create, columns, ...}}``.

``type: postgres`` takes a ``postgresql://`` URL (or ``postgresql+psycopg://``); ``type: sql``
any SQLAlchemy 2 URL (``sqlite:///out.db``...). The URL's password, or ``password:``, is a
`Secret` from here on: reprs, errors and ``sesa explain`` show ``***``.
"""

from __future__ import annotations

from typing import Any

import attrs

from sesa_fp.config.registry import Plugin, register
from sesa_fp.config.spec import JobSpec
from sesa_fp.errors import ConfigError
from sesa_fp.secrets import Secret, mask_url, masked_repr

__all__ = ["SqlConnection", "SqlLoaderOptions", "SqlLoaderSpec"]


@attrs.define
class SqlConnection:
    url: str = attrs.field(repr=masked_repr)
    password: Secret | None = None
    connect_timeout: float = 10.0


@attrs.define
class SqlLoaderOptions:
    key: list[str] = attrs.Factory(list)
    mode: str = "upsert"
    create: bool = False
    columns: dict[str, str] | None = None
    infer_columns: bool = False
    batch_size: int = 10_000
    max_retries: int = 5
    retry_backoff: float = 0.5


@attrs.define
class SqlLoaderSpec:
    dataset: str
    connection: SqlConnection
    options: SqlLoaderOptions = attrs.Factory(SqlLoaderOptions)


def _url_secret(url: str) -> Secret:
    """The URL as a `Secret` (it may hold a password); `load_sql` shows it masked."""
    return Secret(url)


def _build(postgres: bool) -> Any:
    def build(s: SqlLoaderSpec, job: JobSpec) -> Any:
        from sesa_fp.loaders.sql import load_sql

        scheme = s.connection.url.partition("://")[0].lower()
        if postgres and not scheme.startswith(("postgresql", "postgres")):
            raise ConfigError(f"loader.connection.url: type 'postgres' needs a postgresql:// "
                              f"URL, got {mask_url(s.connection.url)!r} (type 'sql' takes "
                              f"any SQLAlchemy URL)")
        o = s.options
        kw: dict[str, Any] = {}
        defaults = SqlLoaderOptions()
        for name in ("mode", "create", "columns", "infer_columns", "batch_size",
                     "max_retries", "retry_backoff"):
            value = getattr(o, name)
            if value != getattr(defaults, name):
                kw[name] = value
        if s.connection.password is not None:
            kw["password"] = s.connection.password
        if s.connection.connect_timeout != 10.0:
            kw["connect_timeout"] = s.connection.connect_timeout
        return load_sql(_url_secret(s.connection.url), s.dataset, key=o.key, **kw)
    return build


register("loader", Plugin("postgres", SqlLoaderSpec, _build(True), requires="psycopg",
                          extra="sql"))
register("loader", Plugin("sql", SqlLoaderSpec, _build(False), requires="sqlalchemy",
                          extra="sql"))
