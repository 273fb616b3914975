"""How `http_source` walks an API's pages: small named strategies a user can also write.

A strategy has ``first(url) -> PageRequest`` and ``next(page) -> PageRequest | None`` (None:
that was the last page); a plain function ``page -> PageRequest | None`` works too. The
request a strategy returns is also the source's position, so it holds only what the next
page needs (a page number, an offset, a cursor, a URL) and stays JSON-serialisable.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from sesa_fp.errors import ConfigError
from sesa_fp.secrets import mask_url

__all__ = [
    "Page",
    "PageRequest",
    "Paginator",
    "cursor",
    "get_path",
    "link_header",
    "next_url",
    "offset_limit",
    "page_number",
    "paginator_from_dict",
    "single_page",
]

_MISSING = object()


def get_path(body: Any, path: str | None, default: Any = _MISSING) -> Any:
    """The value at a dotted ``path`` of a decoded JSON body (``None`` or ``""``: the body).

    >>> get_path({"data": {"items": [1, 2]}}, "data.items")
    [1, 2]
    >>> get_path({"data": [{"id": 7}]}, "data.0.id"), get_path([1], None)
    (7, [1])
    >>> get_path({"data": {}}, "data.items", None) is None
    True
    >>> get_path({"data": {}}, "data.items")
    Traceback (most recent call last):
    KeyError: 'data.items'
    """
    # not toolz.get_in: a JSON path indexes lists by digit strings ("data.0.id") and objects
    # by any string, including "0"
    node = body
    for part in path.split(".") if path else ():
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            if default is _MISSING:
                raise KeyError(path)
            return default
    return node


def _as_dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen
class PageRequest:
    """One page's request: the URL and the pagination parameters (laid over the source's own
    ``params`` unless ``with_params`` is False, as for a URL the server built in full)."""

    url: str
    params: dict[str, Any] = attrs.field(factory=dict, converter=_as_dict)
    with_params: bool = True

    def key(self) -> tuple[Any, ...]:
        """What makes two requests the same one (a pagination loop repeats a key)."""
        return (self.url, tuple(sorted((k, repr(v)) for k, v in self.params.items())),
                self.with_params)

    def describe(self) -> str:
        """The request for messages, credentials in the URL masked.

        >>> PageRequest("https://u:pw@api.example/v1/items", {"cursor": "c2"}).describe()
        "https://u:***@api.example/v1/items {'cursor': 'c2'}"
        """
        return f"{mask_url(self.url)} {dict(self.params)!r}" if self.params else \
            mask_url(self.url)

    def as_position(self, skip: int = 0) -> dict[str, Any]:
        """This request as a source position: read it, skip ``skip`` records, go on."""
        return {"url": self.url, "params": dict(self.params), "with_params": self.with_params,
                "skip": skip}

    @classmethod
    def from_position(cls, position: Mapping[str, Any]) -> tuple[PageRequest, int]:
        """``(request, skip)`` from a saved `as_position` value."""
        if not isinstance(position, Mapping) or not isinstance(position.get("url"), str):
            raise ConfigError(f"http_source: start={position!r} is not a position of this "
                              "source (pass a saved .position back)")
        skip = position.get("skip", 0)
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise ConfigError(f"http_source: start skip must be an int >= 0, got {skip!r}")
        params = position.get("params") or {}
        if not isinstance(params, Mapping):
            raise ConfigError(f"http_source: start params must be a mapping, got {params!r}")
        return cls(position["url"], params, bool(position.get("with_params", True))), skip


@attrs.frozen
class Page:
    """What a strategy sees of a page: its request, the response, the decoded body, the
    records found at the source's ``records`` path."""

    request: PageRequest
    response: Any  # httpx.Response
    body: Any
    records: list[Any]


@runtime_checkable
class Paginator(Protocol):
    def first(self, url: str) -> PageRequest: ...

    def next(self, page: Page) -> PageRequest | None: ...


class _Strategy:
    """Base of the built-in strategies: a repr that reads as the call that made it."""

    _defaults: ClassVar[dict[str, Any]] = {}

    def __repr__(self) -> str:
        args = [f"{k}={getattr(self, k)!r}" for k, default in self._defaults.items()
                if getattr(self, k) != default]
        return f"{type(self).__name__}({', '.join(args)})"


def _name(kind: str, what: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{kind}: {what} must be a non-empty string, got {value!r}")
    return value


def _count(kind: str, what: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{kind}: {what} must be an int >= {low}, got {value!r}")
    return value


class single_page(_Strategy):  # lower case: named like a call
    """No pagination: one request.

    >>> single_page().first("https://api.example/v1/items")
    PageRequest(url='https://api.example/v1/items', params={}, with_params=True)
    """

    def first(self, url: str) -> PageRequest:
        return PageRequest(url)

    def next(self, page: Page) -> PageRequest | None:
        return None


class page_number(_Strategy):
    """``?page=1``, ``?page=2``, ... until a page is empty, or shorter than ``size`` when the
    page size is set (sent as ``size_param``).

    >>> p = page_number(size=500)
    >>> p, p.first("https://api.example/items").params
    (page_number(size=500), {'page': 1, 'per_page': 500})
    """

    _defaults: ClassVar[dict[str, Any]] = {"param": "page", "start": 1, "size": None,
                                           "size_param": "per_page"}

    def __init__(self, param: str = "page", *, start: int = 1, size: int | None = None,
                 size_param: str = "per_page") -> None:
        self.param = _name("page_number", "param", param)
        self.start = _count("page_number", "start", start, 0)
        self.size = None if size is None else _count("page_number", "size", size, 1)
        self.size_param = _name("page_number", "size_param", size_param)

    def first(self, url: str) -> PageRequest:
        params: dict[str, Any] = {self.param: self.start}
        if self.size is not None:
            params[self.size_param] = self.size
        return PageRequest(url, params)

    def next(self, page: Page) -> PageRequest | None:
        n = len(page.records)
        if n == 0 or (self.size is not None and n < self.size):
            return None
        number = page.request.params.get(self.param, self.start)
        return attrs.evolve(page.request,
                            params={**page.request.params, self.param: int(number) + 1})


class offset_limit(_Strategy):
    """``?offset=0&limit=100``, then ``offset=100``, ... until a page is shorter than ``limit``
    (an empty page included).

    >>> offset_limit(1000).first("https://api.example/items").params
    {'offset': 0, 'limit': 1000}
    """

    _defaults: ClassVar[dict[str, Any]] = {"limit": 100, "offset_param": "offset",
                                           "limit_param": "limit", "start": 0}

    def __init__(self, limit: int = 100, *, offset_param: str = "offset",
                 limit_param: str = "limit", start: int = 0) -> None:
        self.limit = _count("offset_limit", "limit", limit, 1)
        self.offset_param = _name("offset_limit", "offset_param", offset_param)
        self.limit_param = _name("offset_limit", "limit_param", limit_param)
        self.start = _count("offset_limit", "start", start, 0)

    def first(self, url: str) -> PageRequest:
        return PageRequest(url, {self.offset_param: self.start, self.limit_param: self.limit})

    def next(self, page: Page) -> PageRequest | None:
        n = len(page.records)
        if n < self.limit:
            return None
        offset = int(page.request.params.get(self.offset_param, self.start)) + n
        return attrs.evolve(page.request,
                            params={**page.request.params, self.offset_param: offset})


class cursor(_Strategy):
    """A cursor in the body (at ``path``) sent back as ``param``; stops when it is missing,
    null or empty. Pages already carrying a cursor ``first_params`` can seed (``limit``).

    >>> c = cursor("meta.next_cursor", param="after")
    >>> c
    cursor(path='meta.next_cursor', param='after')
    """

    _defaults: ClassVar[dict[str, Any]] = {"path": "next_cursor", "param": "cursor",
                                           "first_params": {}}

    def __init__(self, path: str = "next_cursor", *, param: str = "cursor",
                 first_params: Mapping[str, Any] | None = None) -> None:
        self.path = _name("cursor", "path", path)
        self.param = _name("cursor", "param", param)
        if first_params is not None and not isinstance(first_params, Mapping):
            raise ConfigError(f"cursor: first_params must be a mapping, got {first_params!r}")
        self.first_params = dict(first_params or {})

    def first(self, url: str) -> PageRequest:
        return PageRequest(url, self.first_params)

    def next(self, page: Page) -> PageRequest | None:
        value = get_path(page.body, self.path, None)
        if value is None or value == "":
            return None
        return attrs.evolve(page.request, params={**page.request.params, self.param: value})


def _absolute(page: Page, url: Any, what: str) -> str:
    if not isinstance(url, str):
        from sesa_fp.sources.http import HttpPageError  # the error of the page that said it

        raise HttpPageError(f"{what} of page {page.request.describe()} is not a URL: "
                            f"{type(url).__name__}")
    return urllib.parse.urljoin(str(page.response.url), url)


class next_url(_Strategy):
    """The next page's full URL in the body (at ``path``, relative URLs allowed); stops when
    it is missing, null or empty. The URL is requested as given.

    >>> next_url("links.next")
    next_url(path='links.next')
    """

    _defaults: ClassVar[dict[str, Any]] = {"path": "next"}

    def __init__(self, path: str = "next") -> None:
        self.path = _name("next_url", "path", path)

    def first(self, url: str) -> PageRequest:
        return PageRequest(url)

    def next(self, page: Page) -> PageRequest | None:
        value = get_path(page.body, self.path, None)
        if value is None or value == "":
            return None
        return PageRequest(_absolute(page, value, f"{self.path!r}"), with_params=False)


class link_header(_Strategy):
    """RFC 8288 ``Link: <...>; rel="next"`` response header (as GitHub's API sends it),
    parsed by httpx; stops when there is no such link. The URL is requested as given.

    >>> link_header()
    link_header()
    """

    _defaults: ClassVar[dict[str, Any]] = {"rel": "next"}

    def __init__(self, rel: str = "next") -> None:
        self.rel = _name("link_header", "rel", rel)

    def first(self, url: str) -> PageRequest:
        return PageRequest(url)

    def next(self, page: Page) -> PageRequest | None:
        link = page.response.links.get(self.rel)
        if not link or not link.get("url"):
            return None
        return PageRequest(_absolute(page, link["url"], f"Link rel={self.rel!r}"),
                           with_params=False)


class _FunctionPaginator:
    """A user's ``page -> PageRequest | None`` function as a strategy."""

    def __init__(self, fn: Callable[[Page], PageRequest | None]) -> None:
        self.fn = fn

    def first(self, url: str) -> PageRequest:
        return PageRequest(url)

    def next(self, page: Page) -> PageRequest | None:
        return self.fn(page)

    def __repr__(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))


PAGINATORS: dict[str, Callable[..., Any]] = {
    "none": single_page,
    "page_number": page_number,
    "offset": offset_limit,
    "offset_limit": offset_limit,
    "cursor": cursor,
    "next_url": next_url,
    "link_header": link_header,
}


def as_paginator(value: Any) -> Paginator:
    """A strategy from what ``http_source(paginate=...)`` accepts: None (one page), a strategy,
    a ``page -> request`` function, or a mapping with ``type:`` (the YAML form)."""
    if value is None:
        return single_page()
    if isinstance(value, Mapping):
        return paginator_from_dict(value)
    if isinstance(value, Paginator):
        return value
    if callable(value):
        return _FunctionPaginator(value)
    raise ConfigError(f"http_source: paginate must be a strategy (page_number(), cursor(), "
                      f"...), a function or a mapping with type:, got {value!r}")


def paginator_from_dict(options: Mapping[str, Any], where: str = "paginate") -> Paginator:
    """The strategy a YAML ``paginate:`` mapping names.

    >>> paginator_from_dict({"type": "cursor", "path": "meta.next", "param": "after"})
    cursor(path='meta.next', param='after')
    >>> paginator_from_dict({"type": "pages"})
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: paginate.type: unknown strategy 'pages'; known: cursor, link_header, next_url, none, offset, offset_limit, page_number
    """  # noqa: E501
    kw = dict(options)
    name = kw.pop("type", None)
    factory = PAGINATORS.get(name) if isinstance(name, str) else None
    if factory is None:
        raise ConfigError(f"{where}.type: unknown strategy {name!r}; known: "
                          f"{', '.join(sorted(PAGINATORS))}")
    try:
        return factory(**kw)
    except TypeError as exc:
        raise ConfigError(f"{where}: {name}: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
