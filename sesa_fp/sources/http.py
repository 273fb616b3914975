"""`http_source`: records from a paginated JSON API over HTTP/1.1 (httpx, one client per read).

Each page's body is decoded exactly (`sesa_fp.codec`) and the list at ``records`` (a dotted
path) is yielded record by record. A strategy from `sesa_fp.sources.pagination` finds the
next page. 429 and 503 wait as ``Retry-After`` says; other 5xx, timeouts and dropped
connections are retried with exponential backoff and jitter; what is left is a typed error.
"""

from __future__ import annotations

import base64
import email.utils
import itertools
import logging
import operator
import re
import threading
import time
import urllib.parse
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any, NoReturn, cast

import httpx
import orjson
import tenacity

from sesa_fp import codec
from sesa_fp.concurrency import merge
from sesa_fp.errors import ConfigError, SesaError
from sesa_fp.logs import log_event
from sesa_fp.retrying import backoff_wait, retry_call
from sesa_fp.secrets import (
    Secret,
    mask_mapping,
    mask_url,
    redact,
    reveal,
    secret_strings,
)
from sesa_fp.sources.pagination import (
    Page,
    PageRequest,
    Paginator,
    as_paginator,
    get_path,
)
from sesa_fp.stats import StageStats

__all__ = [
    "HttpPageError",
    "HttpRequestError",
    "HttpSource",
    "HttpSourceError",
    "HttpUnavailableError",
    "PaginationLoopError",
    "RateLimiter",
    "api_key",
    "auth_from_dict",
    "basic",
    "bearer",
    "http_source",
]


# -- errors -------------------------------------------------------------------------------------
class HttpSourceError(SesaError):
    """Base of the errors `http_source` raises."""


class HttpUnavailableError(HttpSourceError):
    """The API did not answer, or kept answering "try later", until the retries ran out."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(message)
        self.host = host


class HttpRequestError(HttpSourceError):
    """The API refused a request (a 4xx other than 429): retrying will not help."""

    def __init__(self, message: str, *, url: str, status: int) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class HttpPageError(HttpSourceError):
    """A page's body is not JSON, or has no list of records at the ``records`` path."""


class PaginationLoopError(HttpSourceError):
    """The API sent the reader back to a page it had already read (a repeating cursor)."""


class _Transient(Exception):
    """One failed attempt that trying again may fix (internal to the retry loop)."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


# -- auth ---------------------------------------------------------------------------------------
class _Auth(httpx.Auth):
    """An httpx auth flow whose secret is a `Secret`: it prints as ``***`` everywhere."""

    def secrets(self) -> list[Secret]:
        return []


class bearer(_Auth):  # lower case: named like a call
    """``Authorization: Bearer <token>``.

    >>> bearer("tok-123")
    bearer(token='***')
    """

    def __init__(self, token: str | Secret) -> None:
        self.token = Secret(token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token.reveal()}"
        yield request

    def secrets(self) -> list[Secret]:
        return [self.token]

    def __repr__(self) -> str:
        return "bearer(token='***')"


class basic(_Auth):
    """HTTP basic auth.

    >>> basic("etl", "pw")
    basic(username='etl', password='***')
    """

    def __init__(self, username: str, password: str | Secret) -> None:
        if not isinstance(username, str):
            raise ConfigError(f"basic: username must be a string, got {type(username).__name__}")
        self.username = username
        self.password = Secret(password)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        pair = f"{self.username}:{self.password.reveal()}".encode()
        request.headers["Authorization"] = f"Basic {base64.b64encode(pair).decode('ascii')}"
        yield request

    def secrets(self) -> list[Secret]:
        return [self.password]

    def __repr__(self) -> str:
        return f"basic(username={self.username!r}, password='***')"


class api_key(_Auth):
    """An API key sent in a header (``X-API-Key`` unless named).

    >>> api_key("k-1", header="X-Token")
    api_key(key='***', header='X-Token')
    """

    def __init__(self, key: str | Secret, *, header: str = "X-API-Key") -> None:
        if not isinstance(header, str) or not header:
            raise ConfigError(f"api_key: header must be a header name, got {header!r}")
        self.key = Secret(key)
        self.header = header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.header] = self.key.reveal()
        yield request

    def secrets(self) -> list[Secret]:
        return [self.key]

    def __repr__(self) -> str:
        extra = "" if self.header == "X-API-Key" else f", header={self.header!r}"
        return f"api_key(key='***'{extra})"


_AUTHS: dict[str, Any] = {"bearer": bearer, "basic": basic, "api_key": api_key}


def auth_from_dict(options: Mapping[str, Any], where: str = "auth") -> _Auth:
    """The auth a YAML ``auth:`` mapping names (``type: bearer | basic | api_key``).

    >>> auth_from_dict({"type": "api_key", "key": Secret("k"), "header": "X-Key"})
    api_key(key='***', header='X-Key')
    >>> auth_from_dict({"type": "bearer"})
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: auth: bearer: missing token
    """
    kw = dict(options)
    name = kw.pop("type", None)
    factory = _AUTHS.get(name) if isinstance(name, str) else None
    if factory is None:
        raise ConfigError(f"{where}.type: unknown auth {name!r}; known: "
                          f"{', '.join(sorted(_AUTHS))}")
    try:
        return factory(**kw)
    except TypeError as exc:
        # the message names arguments only, never values
        text = re.sub(r".*missing 1 required positional argument: '(\w+)'", r"missing \1",
                      str(exc))
        raise ConfigError(f"{where}: {name}: {text}") from exc


# -- rate limit ---------------------------------------------------------------------------------
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*(?:\.\d+)?)\s*(s|sec|second|m|min|minute|"
                   r"h|hour)\s*$")
_UNIT = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
         "h": 3600.0, "hour": 3600.0}


class RateLimiter:
    """Requests spaced evenly at ``rate`` per second, thread-safe: the partitions of one
    source share it, so together they stay under the API's limit. A request takes the next
    free slot (no burst), so any window of T seconds holds at most ``rate * T + 1``.

    >>> RateLimiter.parse("10/s").rate, RateLimiter.parse("120/min").rate
    (10.0, 2.0)
    >>> RateLimiter.parse("5 per second")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: http_source: rate_limit must look like '10/s', '600/min' or '1/5s', got '5 per second'
    """  # noqa: E501

    def __init__(self, rate: float, text: str | None = None) -> None:
        if not rate > 0:
            raise ConfigError(f"http_source: rate_limit must be > 0, got {rate!r}")
        self.rate = float(rate)
        self.text = text or f"{rate:g}/s"
        self._interval = 1.0 / self.rate
        self._next = 0.0
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, value: str | float | RateLimiter) -> RateLimiter:
        if isinstance(value, RateLimiter):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(float(value))
        m = _RATE.match(value) if isinstance(value, str) else None
        if m is None:
            raise ConfigError("http_source: rate_limit must look like '10/s', '600/min' or "
                              f"'1/5s', got {value!r}")
        per = float(m.group(2) or 1) * _UNIT[m.group(3)]
        return cls(float(m.group(1)) / per, m.string.strip())

    def acquire(self) -> float:
        """Wait for this request's slot; returns the seconds waited."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        wait = slot - now
        if wait > 0:
            time.sleep(wait)
        return wait

    def __repr__(self) -> str:
        return repr(self.text)


# -- the source ---------------------------------------------------------------------------------
# bytes -> b"1" for an ASCII digit, b"0" for anything else
_DIGITS = bytes(0x31 if 0x30 <= b <= 0x39 else 0x30 for b in range(256))
#: orjson reads an integer beyond 64 bits as a float; such an integer has at least 19 digits
_LONG_RUN = b"1" * 19


def _decode(content: bytes) -> Any:
    """A page's body, exactly as `sesa_fp.codec.loads` reads it (integers beyond 64 bits stay
    ints), with its check made cheap for large bodies: one pass in C over the bytes for a run
    of 19 digits, without which orjson's result is already exact.

    >>> _decode(b'{"data": {"items": [{"id": 1}, {"id": 123456789012345678901234}]}}')
    {'data': {'items': [{'id': 1}, {'id': 123456789012345678901234}]}}
    >>> _decode(b'{"n": 12, "f": 0.5}')
    {'n': 12, 'f': 0.5}
    """
    if content.translate(_DIGITS).find(_LONG_RUN) >= 0:
        return codec.loads(content)  # maybe a wide integer (or a long string of digits)
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return codec.loads(content)  # refused the same way, or an integer beyond 1e308


def _first_line(body: bytes, limit: int = 200) -> str:
    text = body[:4096].decode("utf-8", "replace").strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[:limit] + "..."


def _retry_after(value: str | None, cap: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    >>> _retry_after("3", 60), _retry_after("600", 60), _retry_after("soon", 60)
    (3.0, 60.0, None)
    >>> _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 60)  # in the past: go now
    0.0
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), float(cap))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - time.time()), float(cap))


def _positive(name: str, value: Any, low: float = 0) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise ConfigError(f"http_source: {name} must be a number >= {low}, got {value!r}")
    return value


_DONE: dict[str, Any] = {"done": True}


class _Records(itertools.chain[Any]):
    """The records of one read, chained page by page in C (no Python frame per record);
    ``close()`` ends the read (the client is closed, the counts are taken)."""

    pages: Generator[Iterator[Any], None, None]

    def close(self) -> None:
        self.pages.close()


class HttpSource:
    """Iterate to read (lazy, re-iterable). ``position`` is the request of the page being
    read plus how many of its records were yielded (the next page's request once a page is
    done); pass it back as ``start=`` to resume there."""

    def __init__(self, url: str, *, params: Mapping[str, Any] | None,
                 headers: Mapping[str, Any] | None, records: str | None, paginate: Any,
                 rate_limit: str | float | RateLimiter | None, auth: Any,
                 timeout: float, max_retries: int, retry_backoff: float,
                 max_retry_after: float, start: Mapping[str, Any] | None,
                 partitions: Sequence[Mapping[str, Any]] | None = None,
                 label: str | None = None,
                 partition_params: Mapping[str, Any] | None = None) -> None:
        if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http",
                                                                                 "https"):
            raise ConfigError(f"http_source: url must be an http(s) URL, got "
                              f"{mask_url(url) if isinstance(url, str) else url!r}")
        for name, value in (("params", params), ("headers", headers)):
            if value is not None and not isinstance(value, Mapping):
                raise ConfigError(f"http_source: {name} must be a mapping, got "
                                  f"{type(value).__name__}")
        if records is not None and not isinstance(records, str):
            raise ConfigError(f"http_source: records must be a dotted path like 'data.items', "
                              f"got {records!r}")
        if auth is not None and not isinstance(auth, httpx.Auth):
            if not isinstance(auth, Mapping):
                raise ConfigError("http_source: auth must be bearer(...), basic(...), "
                                  "api_key(...) or a mapping with type:")
            auth = auth_from_dict(auth)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"http_source: max_retries must be an int >= 0, got "
                              f"{max_retries!r}")
        self.url = url
        self.params = dict(params or {})
        self.headers = dict(headers or {})
        self.records = records or None
        self.paginate: Paginator = as_paginator(paginate)
        self.limiter = None if rate_limit is None else RateLimiter.parse(rate_limit)
        self.auth = auth
        self.timeout = float(_positive("timeout", timeout, 0.001))
        self.max_retries = max_retries
        self.retry_backoff = float(_positive("retry_backoff", retry_backoff))
        self.max_retry_after = float(_positive("max_retry_after", max_retry_after))
        self.start = None if start is None else dict(start)
        if partitions is not None and (isinstance(partitions, (str, Mapping)) or not all(
                isinstance(p, Mapping) for p in partitions) or not partitions):
            raise ConfigError("http_source: partitions must be a non-empty list of params "
                              "mappings (one per partition)")
        self.partition_specs = None if partitions is None else [dict(p) for p in partitions]
        if self.start is not None and self.start != _DONE and partitions is None:
            PageRequest.from_position(self.start)  # checked now, not at the first page
        self.label = label
        self._backoff = backoff_wait(self.retry_backoff)
        # the params a partition adds to its source's (None: not a partition)
        self.partition_params = None if partition_params is None else dict(partition_params)
        self.host = mask_url(f"{urllib.parse.urlsplit(url).scheme}://"
                             f"{urllib.parse.urlsplit(url).netloc}")
        auth_secrets = auth.secrets() if isinstance(auth, _Auth) else []
        # what may appear in messages (a server echoing a header, an exception naming a URL)
        self._secrets = secret_strings(url, self.params, self.headers, auth_secrets)
        self.stats = StageStats(name=self._stats_name(), kind="http")
        self._req: PageRequest | None = None  # the page being read
        self._next: PageRequest | None = None  # the page after it (None: it is the last)
        # the records of the page being read, as an iterator: its length hint tells how
        # many were yielded without a counter per record
        self._it: Iterator[Any] = iter(())
        self._len = 0
        self._done = False
        self.pages = 0  # pages read in the last iteration
        self._parts: list[HttpSource] = []
        self._merge: Any = None
        if self.partition_specs is not None:
            starts: list[Any] = [None] * len(self.partition_specs)
            if self.start is not None:
                starts = list(self.start.get("partitions") or [])
                if len(starts) != len(self.partition_specs):
                    raise ConfigError(f"http_source: start={self.start!r} is not a position "
                                      f"of {len(self.partition_specs)} partitions")
            self._parts = [self.partition(params=p, start=st)
                           for p, st in zip(self.partition_specs, starts, strict=True)]

    def _stats_name(self) -> str:
        base = f"http_source({mask_url(self.url)!r})"
        return base if self.label is None else f"{base}[{self.label}]"

    def _kwargs(self) -> dict[str, Any]:
        return {"params": self.params, "headers": self.headers, "records": self.records,
                "paginate": self.paginate, "rate_limit": self.limiter, "auth": self.auth,
                "timeout": self.timeout, "max_retries": self.max_retries,
                "retry_backoff": self.retry_backoff, "max_retry_after": self.max_retry_after,
                "start": self.start}

    def partition(self, *, params: Mapping[str, Any] | None = None,
                  start: Mapping[str, Any] | None = None, label: str | None = None
                  ) -> HttpSource:
        """A partition: this source with ``params`` laid over its own (a region, a date
        range), sharing its rate limit; ``merge`` partitions to read them at once.

        >>> src = http_source("https://api.example/v1/items", rate_limit="10/s")
        >>> eu, us = src.partition(params={"region": "eu"}), src.partition(params={"region": "us"})
        >>> eu.limiter is us.limiter is src.limiter
        True
        >>> eu
        http_source('https://api.example/v1/items', rate_limit='10/s').partition(params={'region': 'eu'})
        """  # noqa: E501
        extra = dict(params or {})
        return HttpSource(self.url, **{**self._kwargs(), "params": {**self.params, **extra},
                                       "start": start, "partitions": None},
                          label=label or (",".join(f"{k}={v}" for k, v in extra.items())
                                          or None), partition_params=extra)

    def partitions(self) -> list[HttpSource]:
        """The partitions ``partitions=`` made (sharing this source's rate limit), or a list
        holding this source: iterate them in parallel (threads, ``merge``)."""
        return list(self._parts) if self._parts else [self]

    def children(self) -> tuple[Any, ...]:
        """The partitions, whose counters the report reads."""
        return tuple(self._parts)

    def __repr__(self) -> str:
        items = [repr(mask_url(self.url))]
        params = self.params if self.partition_params is None else {
            k: v for k, v in self.params.items() if k not in self.partition_params}
        if params:
            items.append(f"params={mask_mapping(params)!r}")
        if self.headers:
            items.append(f"headers={mask_mapping(self.headers)!r}")
        if self.records != "data.items":
            items.append(f"records={self.records!r}")
        if repr(self.paginate) != "single_page()":
            items.append(f"paginate={self.paginate!r}")
        if self.limiter is not None:
            items.append(f"rate_limit={self.limiter!r}")
        if self.auth is not None:
            items.append(f"auth={self.auth!r}")
        for name, default in (("timeout", 30.0), ("max_retries", 5), ("retry_backoff", 0.5),
                              ("max_retry_after", 120.0)):
            if getattr(self, name) != default:
                items.append(f"{name}={getattr(self, name)!r}")
        if self.partition_params is None:
            if self.partition_specs is not None:
                items.append(f"partitions={[mask_mapping(p) for p in self.partition_specs]!r}")
            if self.start is not None:
                items.append(f"start={self.start!r}")
            return f"http_source({', '.join(items)})"
        extra = [f"params={mask_mapping(self.partition_params)!r}"]
        if self.start is not None:
            extra.append(f"start={self.start!r}")
        return f"http_source({', '.join(items)}).partition({', '.join(extra)})"

    # -- position -------------------------------------------------------------------------
    @property
    def position(self) -> dict[str, Any] | None:
        """Where a resumed read starts: ``{"url", "params", "with_params", "skip"}`` (the
        request of a page and the records of it already yielded), ``{"done": True}`` after
        the last page, or the ``start`` given (None: the beginning) before the first."""
        if self._parts:
            # as of the last record the merge yielded (not what waits in its queue)
            at = self._merge.position if self._merge is not None else None
            return {"partitions": at if at is not None else
                    [p.position for p in self._parts]}
        if self._done:
            return dict(_DONE)
        req = self._req
        if req is None:
            return self.start
        yielded = self._len - operator.length_hint(self._it)
        if yielded >= self._len:
            nxt = self._next
            return dict(_DONE) if nxt is None else nxt.as_position(0)
        return req.as_position(yielded)

    def resume(self, start: Mapping[str, Any]) -> HttpSource:
        """This source resumed from ``start``, a saved `position` (`sesa_fp.position`)."""
        if self.partition_params is not None:
            return HttpSource(self.url, **{**self._kwargs(), "start": start,
                                           "partitions": None}, label=self.label,
                              partition_params=self.partition_params)
        return HttpSource(self.url, **{**self._kwargs(), "start": start,
                                       "partitions": self.partition_specs}, label=self.label)

    # -- reading --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        if self._parts:  # read at once, a thread each, under the one rate limit
            self._merge = merge(*self._parts)
            return iter(self._merge)
        return self._read()

    def _client(self) -> httpx.Client:
        headers = {k: str(reveal(v)) for k, v in self.headers.items()}
        return httpx.Client(headers=headers, auth=self.auth, timeout=self.timeout,
                            follow_redirects=True, http2=False)

    def _read(self) -> Iterator[Any]:
        pages = self._pages()
        records = cast(_Records, _Records.from_iterable(pages))
        records.pages = pages
        return records

    def _pages(self) -> Generator[Iterator[Any], None, None]:
        """The read, page by page: each page's records as the iterator `_Records` drains."""
        self._req, self._next, self._it, self._len, self._done = None, None, iter(()), 0, False
        self.pages = 0
        if self.start == _DONE:
            self._done = True
            return
        if self.start is not None:
            req, skip = PageRequest.from_position(self.start)
        else:
            req, skip = self.paginate.first(self.url), 0
        client = self._client()
        n = 0  # records of the pages done
        skipped = 0  # records of the page being read that a resumed read skipped
        seen: dict[tuple[Any, ...], int] = {}
        try:
            nxt: PageRequest | None = req
            while nxt is not None:
                req = nxt
                key = req.key()
                if key in seen:
                    raise PaginationLoopError(self._redact(
                        f"http_source: pagination loop on {self.host}: page {self.pages + 1} "
                        f"would request {req.describe()} again (page {seen[key]} did); the "
                        "API repeated a cursor or next link"))
                self.pages += 1
                seen[key] = self.pages
                page = self._page(client, req)
                nxt = self.paginate.next(page)
                items = page.records
                if set(map(type, items)) - {dict}:
                    bad = next(i for i, r in enumerate(items) if type(r) is not dict)
                    raise HttpPageError(self._redact(
                        f"http_source: page {self.pages} ({req.describe()}): record {bad} at "
                        f"{self.records or 'the body'!r} is a {type(items[bad]).__name__}, "
                        "not a JSON object"))
                it = iter(items)
                skipped = min(skip, len(items))
                if skipped:
                    next(itertools.islice(it, skipped, skipped), None)
                self._req, self._next, self._it, self._len = req, nxt, it, len(items)
                yield it  # its records pass through in C; the position reads it
                n += len(items) - skipped
                self._it, self._len, skipped, skip = iter(()), 0, 0, 0
            self._done = True
        finally:
            partial = self._len - operator.length_hint(self._it) - skipped
            self.stats.add(n_out=n + max(0, partial))
            client.close()

    def _redact(self, text: str) -> str:
        return redact(mask_url(text), self._secrets) if self._secrets else text

    def _page(self, client: httpx.Client, req: PageRequest) -> Page:
        response = self._get_with_retries(client, req)
        self.stats.add(bytes=len(response.content))
        try:
            body = _decode(response.content)
        except (codec.JSONDecodeError, ValueError) as exc:
            raise HttpPageError(self._redact(
                f"http_source: page {self.pages} ({req.describe()}) is not valid JSON "
                f"({exc}); body starts {_first_line(response.content, 80)!r}")) from exc
        try:
            records = get_path(body, self.records)
        except KeyError:
            keys = sorted(body)[:10] if isinstance(body, dict) else type(body).__name__
            raise HttpPageError(self._redact(
                f"http_source: page {self.pages} ({req.describe()}) has no "
                f"{self.records!r} (records=); its top-level keys: {keys}")) from None
        if not isinstance(records, list):
            raise HttpPageError(self._redact(
                f"http_source: page {self.pages} ({req.describe()}): "
                f"{self.records or 'the body'!r} is a {type(records).__name__}, not a list "
                "of records"))
        return Page(req, response, body, records)

    def _send(self, client: httpx.Client, req: PageRequest) -> httpx.Response:
        params = {**self.params, **req.params} if req.with_params else dict(req.params)
        params = {k: reveal(v) for k, v in params.items()}
        if self.limiter is not None:
            self.limiter.acquire()
        try:
            response = client.get(req.url, params=params or None)
        except httpx.TimeoutException as exc:
            raise _Transient(f"timed out ({type(exc).__name__})") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:  # a bad URL, an unsupported scheme: not transient
            raise HttpRequestError(self._redact(
                f"http_source: GET {req.describe()}: {type(exc).__name__}: {exc}"),
                url=mask_url(req.url), status=0) from exc
        status = response.status_code
        if status < 300:
            return response
        shown = self._redact(str(response.url))
        line = self._redact(_first_line(response.content))
        if status in (429, 503):
            wait = _retry_after(response.headers.get("Retry-After"), self.max_retry_after)
            raise _Transient(f"HTTP {status}: {line}", status=status, retry_after=wait)
        if status >= 500 or status == 408:
            raise _Transient(f"HTTP {status}: {line}", status=status)
        raise HttpRequestError(f"http_source: GET {shown} failed: HTTP {status}: {line}",
                               url=shown, status=status)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(state))

    def _get_with_retries(self, client: httpx.Client, req: PageRequest) -> httpx.Response:

        def before_sleep(state: tenacity.RetryCallState) -> None:
            self.stats.add(retries=1)
            exc = state.outcome.exception() if state.outcome is not None else None
            log_event("http_retry", logging.WARNING, source=self.stats.name,
                      page=self.pages, attempt=state.attempt_number,
                      error=self._redact(str(exc)),
                      wait_s=round(state.upcoming_sleep, 3))

        def give_up(exc: _Transient, attempts: int) -> NoReturn:
            raise HttpUnavailableError(self.host, self._redact(
                f"http_source: API host {self.host} unavailable after {attempts} attempt(s) "
                f"(page {self.pages}, {req.describe()}): {exc}")) from exc

        return retry_call(lambda: self._send(client, req), on=_Transient,
                          max_retries=self.max_retries, wait=self._wait,
                          before_sleep=before_sleep, give_up=give_up)


def http_source(
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, Any] | None = None,
    records: str | None = "data.items",
    paginate: Any = None,
    rate_limit: str | float | None = None,
    auth: Any = None,
    timeout: float = 30.0,
    max_retries: int = 5,
    retry_backoff: float = 0.5,
    max_retry_after: float = 120.0,
    start: Mapping[str, Any] | None = None,
    partitions: Sequence[Mapping[str, Any]] | None = None,
) -> HttpSource:
    """Records of a JSON API: each element of the list at ``records`` (a dotted path into the
    body; None for a body that is the list), page after page as ``paginate`` says
    (`page_number`, `offset_limit`, `cursor`, `next_url`, `link_header`, a function; None
    reads one page). Nothing is sent until iterated.

    ``rate_limit`` (``"10/s"``, ``"600/min"``) spaces requests, shared by the source's
    partitions. ``auth`` is `bearer`, `basic` or `api_key` (held as `Secret`). 429 and 503
    wait as ``Retry-After`` says (at most ``max_retry_after`` s); other 5xx, timeouts and
    dropped connections back off from ``retry_backoff`` s; ``max_retries`` per page.
    ``start`` is a saved ``.position``. ``partitions=[{"region": "eu"}, ...]`` reads one
    partition per params mapping at once (a thread each, one rate limit for all); each keeps
    its own position.

    >>> from sesa_fp.sources.pagination import cursor
    >>> http_source("https://api.example/v1/items", params={"status": "open"},
    ...             paginate=cursor("meta.next"), auth=bearer("tok-123"), rate_limit="10/s")
    http_source('https://api.example/v1/items', params={'status': 'open'}, paginate=cursor(path='meta.next'), rate_limit='10/s', auth=bearer(token='***'))
    """  # noqa: E501
    return HttpSource(url, params=params, headers=headers, records=records, paginate=paginate,
                      rate_limit=rate_limit, auth=auth, timeout=timeout,
                      max_retries=max_retries, retry_backoff=retry_backoff,
                      max_retry_after=max_retry_after, start=start, partitions=partitions)

