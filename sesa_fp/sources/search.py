"""`es_source`: records from an Elasticsearch or OpenSearch index, read over a point in time.

Pages are read with ``search_after`` over a point in time (PIT) whose keep-alive is renewed
by every page; the PIT is closed when the iteration ends, fails or is abandoned. Where PIT is
not available the source falls back to a scroll. ``slices=N`` splits the read into N
independent partitions (``.partitions()``) that can be read in parallel.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any

from sesa_fp.errors import ConfigError
from sesa_fp.logs import log_event
from sesa_fp.search import (
    SearchClient,
    SearchConfig,
    SearchRequestError,
    call_with_retries,
    connect,
    resolve_config,
)
from sesa_fp.search.config import kwargs_repr
from sesa_fp.secrets import Secret
from sesa_fp.stats import StageStats

__all__ = ["META_FIELDS", "SearchSource", "es_source"]

#: hit metadata returned as record keys when named in ``fields``
META_FIELDS = ("_id", "_index", "_routing")
#: errors of "open point in time" that are real problems, not "PIT is not supported here"
_PIT_ERRORS_TO_RAISE = {"index_not_found_exception", "invalid_index_name_exception",
                        "security_exception", "action_request_validation_exception"}


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"es_source: {name} must be a positive int, got {value!r}")
    return value


class SearchSource:
    """Iterate to read (lazy, re-iterable). ``position`` holds the sort values of the last
    record yielded; pass them back as ``search_after=`` to resume a partition."""

    def __init__(self, *, config: SearchConfig, index: str, query: Mapping[str, Any] | None,
                 fields: Sequence[str] | None, page_size: int, slices: int, keep_alive: str,
                 search_after: Sequence[Any] | None, slice_id: int | None = None,
                 max_retries: int = 5, retry_backoff: float = 0.5,
                 resolved: dict[str, SearchConfig] | None = None,
                 sort: str | Sequence[str] | None = None) -> None:
        if not isinstance(index, str) or not index:
            raise ConfigError(f"es_source: index must be a non-empty string, got {index!r}")
        if query is not None and not isinstance(query, Mapping):
            raise ConfigError(f"es_source: query must be a dict (the query clause), got "
                              f"{type(query).__name__}")
        if fields is not None and (isinstance(fields, str) or
                                   not all(isinstance(f, str) for f in fields)):
            raise ConfigError(f"es_source: fields must be a list of field names, got {fields!r}")
        if not isinstance(keep_alive, str) or not keep_alive:
            raise ConfigError(f"es_source: keep_alive must be a duration like '5m', got "
                              f"{keep_alive!r}")
        if isinstance(sort, str):
            sort = [sort]
        if sort is not None and (not isinstance(sort, (list, tuple)) or not sort
                                 or not all(isinstance(f, str) and f for f in sort)):
            raise ConfigError(f"es_source: sort must be a field name or a list of them, got "
                              f"{sort!r}")
        self.sort_fields = None if sort is None else list(sort)
        self.config = config
        self.index = index
        self.query = dict(query) if query is not None else None
        self.fields = list(fields) if fields is not None else None
        self.page_size = _positive("page_size", page_size)
        self.slices = _positive("slices", slices)
        self.keep_alive = keep_alive
        self.search_after = list(search_after) if search_after is not None else None
        if slice_id is not None and not 0 <= slice_id < self.slices:
            raise ConfigError(f"es_source: slice {slice_id} out of range(0, {self.slices})")
        if self.search_after is not None and self.slices > 1 and slice_id is None:
            raise ConfigError("es_source: search_after resumes one partition; with slices > 1 "
                              "pass it to one of .partitions() (a partition's position)")
        self.slice_id = slice_id
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"es_source: max_retries must be an int >= 0, got {max_retries!r}")
        self.max_retries = max_retries
        self.retry_backoff = float(retry_backoff)
        self._last: Mapping[str, Any] | None = None  # the last hit yielded
        self._tag: int | None = None  # the pinned read it came from
        self.pit_ids: list[str] = []  # every PIT this source opened (closed when done)
        self.engine: str | None = None  # the engine that served the last iteration
        self.sort: list[Any] | None = None  # the sort the last iteration read in
        # the detected engine, shared with this source's partitions (detected once)
        self._resolved: dict[str, SearchConfig] = {} if resolved is None else resolved
        label = "es_source" if slice_id is None else f"es_source[{slice_id}/{self.slices}]"
        self.stats = StageStats(name=f"{label}({index!r})", kind="search")

    # -- construction helpers -------------------------------------------------------

    def _kwargs(self) -> dict[str, Any]:
        return {
            "config": self.config, "index": self.index, "query": self.query,
            "fields": self.fields, "page_size": self.page_size, "slices": self.slices,
            "keep_alive": self.keep_alive, "search_after": self.search_after,
            "max_retries": self.max_retries, "retry_backoff": self.retry_backoff,
            "resolved": self._resolved, "sort": self.sort_fields,
        }

    def partitions(self) -> list[SearchSource]:
        """``slices`` independent sources, one per slice, each with its own point in time;
        iterate them in parallel (threads, processes) and together they read every document
        once. With ``slices=1`` the list holds one source equal to this one."""
        if self.slice_id is not None:
            return [self]
        kw = self._kwargs()
        if self.slices == 1:
            return [SearchSource(**kw)]
        return [SearchSource(**{**kw, "search_after": None}, slice_id=i)
                for i in range(self.slices)]

    def partition(self, slice_id: int, *, search_after: Sequence[Any] | None = None
                  ) -> SearchSource:
        """One partition, optionally resumed after ``search_after`` (a saved ``position``)."""
        if self.slices == 1:
            return SearchSource(**{**self._kwargs(), "search_after": search_after})
        return SearchSource(**{**self._kwargs(), "search_after": search_after},
                            slice_id=slice_id)

    def __repr__(self) -> str:
        conn = self.config.repr_items()
        items = [conn[0], ("index", repr(self.index))]
        if self.query is not None:
            items.append(("query", repr(self.query)))
        if self.fields is not None:
            items.append(("fields", repr(self.fields)))
        if self.page_size != 1000:
            items.append(("page_size", repr(self.page_size)))
        if self.slices != 1:
            items.append(("slices", repr(self.slices)))
        if self.keep_alive != "5m":
            items.append(("keep_alive", repr(self.keep_alive)))
        if self.max_retries != 5:
            items.append(("max_retries", repr(self.max_retries)))
        if self.retry_backoff != 0.5:
            items.append(("retry_backoff", repr(self.retry_backoff)))
        if self.sort_fields is not None:
            items.append(("sort", repr(self.sort_fields if len(self.sort_fields) > 1
                                       else self.sort_fields[0])))
        items.extend(conn[1:])
        if self.slice_id is None:
            if self.search_after is not None:
                items.append(("search_after", repr(self.search_after)))
            return kwargs_repr("es_source", items)
        base = kwargs_repr("es_source", items)
        extra = "" if self.search_after is None else f", search_after={self.search_after!r}"
        return f"{base}.partition({self.slice_id}{extra})"

    # -- reading --------------------------------------------------------------------

    def _retry(self, fn: Any, what: str) -> Any:
        return call_with_retries(fn, what=what, max_retries=self.max_retries,
                                 backoff=self.retry_backoff,
                                 on_retry=lambda: self.stats.add(retries=1))

    def _body_base(self) -> dict[str, Any]:
        body: dict[str, Any] = {"size": self.page_size,
                                "query": self.query if self.query is not None
                                else {"match_all": {}},
                                "track_total_hits": False}
        if self.fields is not None:
            source = [f for f in self.fields if f not in META_FIELDS]
            if "*" not in source:  # "*" = the whole _source, which needs no filtering
                body["_source"] = source or False
        return body

    @property
    def position(self) -> list[Any] | None:
        """The sort values of the last record yielded (a tagged list when the read is pinned
        to shards); pass it as ``search_after=`` to resume after that record."""
        hit = self._last
        if hit is None:
            return self.search_after
        pos = hit.get("sort")
        return pos if self._tag is None or pos is None else [self._tag, *pos]

    @property
    def resumable(self) -> bool:
        """True with ``sort=``: the position is then the sort values of a field order plus
        ``_id``, meaningful to any later read; without it the order is the point in time's
        own, which dies with the process. A source of several slices read one after the
        other is resumed per partition (``merge(*source.partitions())``)."""
        return self.sort_fields is not None and (self.slices == 1 or self.slice_id is not None)

    def resume(self, start: Sequence[Any]) -> SearchSource:
        """This source (a partition, or a source of one slice) resumed after ``start``."""
        if not self.resumable:
            raise ConfigError("es_source: only a source with sort= (and one slice, or a "
                              "partition) can be resumed in another process")
        return self.partition(self.slice_id or 0, search_after=start)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._read()

    def _read(self) -> Iterator[dict[str, Any]]:
        self._last, self._tag = None, None
        config = self._resolved.get("config")
        if config is None:
            config = self._resolved["config"] = resolve_config(
                self.config, max_retries=self.max_retries, backoff=self.retry_backoff,
                on_retry=lambda: self.stats.add(retries=1))
        self.engine = config.engine
        client = connect(config)
        n = 0
        pages: Generator[tuple[int | None, list[dict[str, Any]]], None, None] | None = None
        try:
            pit_id = self._open_pit(client)
            if pit_id is None:
                pages = self._scroll_pages(client)
            else:
                pages = self._pit_pages(client, pit_id)
            meta = [m for m in META_FIELDS if m in self.fields] if self.fields else []
            for tag, hits in pages:
                self._tag = tag
                for hit in hits:
                    n += 1
                    self._last = hit
                    rec = hit.get("_source")
                    rec = {} if rec is None else rec  # decoded just now: ours to hand out
                    for m in meta:
                        if m in hit:
                            rec[m] = hit[m]
                    yield rec
        finally:
            self.stats.add(n_out=n)
            try:
                if pages is not None:
                    pages.close()  # closes the PIT or scroll before the client
            finally:
                client.close()

    def _open_pit(self, client: SearchClient) -> str | None:
        try:
            return str(self._retry(lambda: client.open_pit(self.index, self.keep_alive),
                                   f"open point in time on {self.index!r}"))
        except SearchRequestError as exc:
            if exc.status in (400, 404, 405) and exc.error_type not in _PIT_ERRORS_TO_RAISE:
                log_event("search_pit_unavailable", logging.WARNING, host=client.host,
                          index=self.index, error=f"{exc.error_type}: {exc.reason}",
                          fallback="scroll")
                if self.search_after is not None:
                    raise ConfigError("es_source: search_after needs point-in-time support, "
                                      f"which {client.host} lacks") from exc
                return None
            raise

    def _slice_ids(self) -> list[int | None]:
        if self.slice_id is not None:
            return [self.slice_id]
        if self.slices == 1:
            return [None]
        return list(range(self.slices))

    def _plan(self, client: SearchClient) -> tuple[list[Any], list[tuple[dict[str, int] | None,
                                                                     int | None]]]:
        """The sort and the ``(slice clause, tag)`` reads of this source over a PIT.

        Elasticsearch: ``_shard_doc`` and the user's slices. OpenSearch (no ``_shard_doc``):
        when every target index has the same number of shards k >= slices, each read is pinned
        to one shard per index (``slice: {id: j, max: k}`` selects whole shards), where
        ``[_index, _doc]`` is a total order and cheap; the tag j goes into ``position``.
        Otherwise ``[_index, _id]`` (exact, but the engine sorts on ids: slower).
        """
        plain: list[tuple[dict[str, int] | None, int | None]] = [
            (None if sid is None else {"id": sid, "max": self.slices}, None)
            for sid in self._slice_ids()]
        if not client.pinned_sort:
            return client.pit_sort, plain
        k = self._shards_per_index(client)
        if k is None or self.slices > k:
            return client.pit_sort, plain
        if k == 1:
            return client.pinned_sort, [(None, 0)]
        mine = range(self.slices) if self.slice_id is None else [self.slice_id]
        reads: list[tuple[dict[str, int] | None, int | None]] = [
            ({"id": j, "max": k}, j) for i in mine for j in range(k) if j % self.slices == i]
        return client.pinned_sort, reads

    def _shards_per_index(self, client: SearchClient) -> int | None:
        try:
            counts = self._retry(lambda: client.shard_counts(self.index),
                                 f"shard counts of {self.index!r}")
        except Exception as exc:  # no permission to read settings: use the exact id order
            log_event("search_shard_counts_unavailable", logging.INFO, host=client.host,
                      index=self.index, error=f"{type(exc).__name__}: {exc}")
            return None
        values = set(counts.values())
        return values.pop() if len(values) == 1 else None

    def _pit_pages(self, client: SearchClient, pit_id: str
                   ) -> Generator[tuple[int | None, list[dict[str, Any]]], None, None]:
        self.pit_ids.append(pit_id)
        current = pit_id
        try:
            if self.sort_fields is not None:
                sort = [{f: "asc"} for f in self.sort_fields]
                if "_id" not in self.sort_fields:
                    sort.append({"_id": "asc"})  # ties broken by id: a total order
                reads: list[tuple[dict[str, int] | None, int | None]] = [
                    (None if sid is None else {"id": sid, "max": self.slices}, None)
                    for sid in self._slice_ids()]
            else:
                sort, reads = self._plan(client)
            self.sort = sort
            resume = self.search_after
            if resume is not None and reads[0][1] is not None:
                # a tagged position: [read tag, *sort values]; skip the reads before it
                tags = [tag for _, tag in reads]
                if len(resume) < 2 or resume[0] not in tags:
                    raise ConfigError(f"es_source: search_after={resume!r} is not a position "
                                      "of this source (pass a partition's .position back)")
                reads = reads[tags.index(resume[0]):]
                resume = list(resume[1:])
            for slice_clause, tag in reads:
                after, resume = resume, None
                while True:
                    body = self._body_base()
                    body["sort"] = sort
                    body["pit"] = {"id": current, "keep_alive": self.keep_alive}
                    if slice_clause is not None:
                        body["slice"] = slice_clause
                    if after is not None:
                        body["search_after"] = after
                    resp = self._retry(lambda body=body: client.search(body),
                                       f"search {self.index!r}")
                    current = resp.get("pit_id") or current
                    hits = (resp.get("hits") or {}).get("hits") or []
                    if hits:
                        yield tag, hits
                    if len(hits) < self.page_size:
                        break
                    after = hits[-1]["sort"]
        finally:
            self._close_pit(client, current)
            if current != pit_id:
                self._close_pit(client, pit_id)

    def _close_pit(self, client: SearchClient, pit_id: str) -> None:
        try:
            call_with_retries(lambda: client.close_pit(pit_id), what="close point in time",
                              max_retries=min(self.max_retries, 2), backoff=self.retry_backoff)
        except Exception as exc:  # closing is best effort: the keep-alive expires anyway
            log_event("search_pit_close_failed", logging.WARNING, host=client.host,
                      error=f"{type(exc).__name__}: {exc}")

    def _scroll_pages(self, client: SearchClient
                      ) -> Generator[tuple[int | None, list[dict[str, Any]]], None, None]:
        for sid in self._slice_ids():
            body = self._body_base()
            body["sort"] = ["_doc"]
            if sid is not None:
                body["slice"] = {"id": sid, "max": self.slices}
            resp = self._retry(lambda body=body: client.search(body, index=self.index,
                                                               scroll=self.keep_alive),
                               f"search {self.index!r}")
            scroll_id = resp.get("_scroll_id")
            try:
                while True:
                    hits = (resp.get("hits") or {}).get("hits") or []
                    if not hits:
                        break
                    yield None, hits
                    sid_now = str(scroll_id)
                    resp = self._retry(lambda s=sid_now: client.scroll(s, self.keep_alive),
                                       f"scroll {self.index!r}")
                    scroll_id = resp.get("_scroll_id") or scroll_id
            finally:
                if scroll_id:
                    try:
                        client.clear_scroll(str(scroll_id))
                    except Exception as exc:  # best effort, like closing a PIT
                        log_event("search_scroll_clear_failed", logging.WARNING,
                                  host=client.host, error=f"{type(exc).__name__}: {exc}")


def es_source(
    *,
    index: str,
    query: Mapping[str, Any] | None = None,
    fields: Sequence[str] | None = None,
    page_size: int = 1000,
    slices: int = 1,
    keep_alive: str = "5m",
    engine: str = "auto",
    hosts: Sequence[str] = ("http://127.0.0.1:9200",),
    username: str | None = None,
    password: str | Secret | None = None,
    api_key: str | Secret | None = None,
    verify_certs: bool = True,
    ca_certs: str | None = None,
    timeout: float = 30.0,
    search_after: Sequence[Any] | None = None,
    max_retries: int = 5,
    retry_backoff: float = 0.5,
    sort: str | Sequence[str] | None = None,
    start: Sequence[Any] | None = None,
) -> SearchSource:
    """Records of ``index`` (a name, pattern or comma list) matching ``query`` (the query
    clause, e.g. ``{"range": {"@timestamp": {"gte": ...}}}``); nothing is read until iterated.

    ``fields`` filters ``_source`` (dotted paths ok, ``"*"`` for all); the meta fields
    ``_id``, ``_index``, ``_routing`` named there become record keys. Transient errors
    (connection, 429, 5xx) are retried ``max_retries`` times with exponential backoff
    starting at ``retry_backoff`` seconds.

    ``sort`` (a field, or a list) makes the read resumable in another process: hits come in
    that order, ties broken by ``_id``, and ``position`` is the sort values of the last hit;
    ``start=`` (or ``search_after=``) continues after such a position. Each attempt reads
    its own point in time, so a resumed read sees the index as it is when it resumes:
    documents whose sort values lie after the position are read whether they were there
    before or not; a document changed or added before the position is not read again, and
    one deleted after it is not read. The sort field should not change while a job runs
    (an ingestion time, a sequence number): a document whose sort value moves across the
    position can be read twice or missed. Slices come from the engine's slicing by id,
    the same in every attempt, so each partition resumes on its own.

    >>> src = es_source(hosts=["http://127.0.0.1:9200"], index="rfi-*", password="pw",
    ...                 username="etl", fields=["_id", "title"], slices=2)
    >>> src
    es_source(hosts=['http://127.0.0.1:9200'], index='rfi-*', fields=['_id', 'title'], slices=2, username='etl', password='***')
    >>> src.partitions()[1]
    es_source(hosts=['http://127.0.0.1:9200'], index='rfi-*', fields=['_id', 'title'], slices=2, username='etl', password='***').partition(1)
    """  # noqa: E501
    config = SearchConfig(engine=engine, hosts=list(hosts) if not isinstance(hosts, str)
                          else hosts, username=username, password=password, api_key=api_key,
                          verify_certs=verify_certs, ca_certs=ca_certs, timeout=timeout)
    return SearchSource(config=config, index=index, query=query, fields=fields,
                        page_size=page_size, slices=slices, keep_alive=keep_alive,
                        search_after=search_after if start is None else start,
                        max_retries=max_retries, retry_backoff=retry_backoff, sort=sort)
