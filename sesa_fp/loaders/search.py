"""`load_es`: bulk-load records into Elasticsearch or OpenSearch, one result per input record.

Records are encoded once (orjson) into NDJSON bulk bodies bounded by ``actions_per_batch``
and ``max_bytes_mb``; at most ``concurrency`` bulk requests are in flight, each worker thread
with its own client. Per-item rejections (429, 5xx, rejected execution) are resent alone with
exponential backoff and jitter; mapping and validation errors (400/404/409...) become dead
letters carrying the engine's error type and reason; a whole request that fails (connection,
timeout, 429, 5xx) is retried, one too large (413) is split in halves. After ``max_retries``
every record still unsent becomes a dead letter, so nothing is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from returns.result import Failure, Success

from sesa_fp.codec import dumps_line
from sesa_fp.dataset import DatasetTemplate
from sesa_fp.errors import ConfigError, RecordError
from sesa_fp.ids import id_strategy as make_id_fn
from sesa_fp.logs import log_event
from sesa_fp.result import DeadLetter
from sesa_fp.search import (
    SearchClient,
    SearchConfig,
    SearchRequestError,
    SearchTransportError,
    backoff_delay,
    call_with_retries,
    connect,
    resolve_config,
)
from sesa_fp.search.base import give_up_error
from sesa_fp.search.config import kwargs_repr
from sesa_fp.search.errors import RETRYABLE_ERROR_TYPES
from sesa_fp.search.util import error_details
from sesa_fp.stats import Stage
from sesa_fp.stream import map_concurrent

__all__ = ["OP_TYPES", "SearchLoader", "load_es"]

OP_TYPES = ("index", "create", "update", "delete")
_META = frozenset({"_id", "_index", "_routing"})
_OPTS = orjson.OPT_APPEND_NEWLINE


class _Action:
    """One prepared bulk action: the record, where it goes and its encoded NDJSON lines."""

    __slots__ = ("data", "doc_id", "index", "record")

    def __init__(self, record: Any, index: str, doc_id: str | None, data: bytes) -> None:
        self.record = record
        self.index = index
        self.doc_id = doc_id
        self.data = data


class _ItemError:
    __slots__ = ("error_type", "reason", "retryable", "status")

    def __init__(self, status: int | None, error_type: str, reason: str,
                 retryable: bool) -> None:
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.retryable = retryable


class _Done:
    """A batch after loading: its output items (in input order) and tallies."""

    __slots__ = ("counts", "failed", "items")

    def __init__(self, items: list[Any], counts: Counter[str], failed: int) -> None:
        self.items = items
        self.counts = counts
        self.failed = failed


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"load_es: {name} must be a positive int, got {value!r}")
    return value


class SearchLoader(Stage):
    """The `load_es` stage: yields the record (loaded) or ``Failure(DeadLetter)`` per input
    item, in input order; input failures pass through unchanged."""

    kind = "loader"

    def __init__(self, *, config: SearchConfig, dataset: str,
                 id_spec: Mapping[str, Any] | str | None, actions_per_batch: int,
                 concurrency: int, max_bytes_mb: float, op_type: str, routing: str | None,
                 pipeline: str | None, max_retries: int, mappings: Mapping[str, Any] | None,
                 settings: Mapping[str, Any] | None, retry_backoff: float) -> None:
        self.config = config
        self.dataset = DatasetTemplate(dataset)
        super().__init__(f"load_es({dataset!r})")
        self.id_spec = id_spec
        self.id_fn = make_id_fn(id_spec) if id_spec is not None else None
        self.actions_per_batch = _positive_int("actions_per_batch", actions_per_batch)
        self.concurrency = _positive_int("concurrency", concurrency)
        if isinstance(max_bytes_mb, bool) or not isinstance(max_bytes_mb, (int, float)) \
                or max_bytes_mb <= 0:
            raise ConfigError(f"load_es: max_bytes_mb must be > 0, got {max_bytes_mb!r}")
        self.max_bytes_mb = float(max_bytes_mb)
        self.max_bytes = int(self.max_bytes_mb * 1024 * 1024)
        if op_type not in OP_TYPES:
            raise ConfigError(f"load_es: op_type must be one of {', '.join(OP_TYPES)}, "
                              f"got {op_type!r}")
        self.op_type = op_type
        self.routing = routing
        self.routing_template = DatasetTemplate(routing) if routing else None
        self.pipeline = pipeline
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"load_es: max_retries must be an int >= 0, got {max_retries!r}")
        self.max_retries = max_retries
        self.retry_backoff = float(retry_backoff)
        self.mappings = dict(mappings) if mappings is not None else None
        self.settings = dict(settings) if settings is not None else None
        self.engine: str | None = None
        self.last_counts: dict[str, int] = {}
        self.splits = 0  # bulk requests split in halves after HTTP 413 (last run)
        self._prepared: set[str] = set()
        self._lock = threading.Lock()

    # -- presentation ---------------------------------------------------------------

    def __repr__(self) -> str:
        items = self.config.repr_items()
        opts: list[tuple[str, str]] = [("dataset", repr(self.dataset.template))]
        if self.id_spec is not None:
            opts.append(("id_strategy", repr(self.id_spec)))
        for name, value, default in (
            ("actions_per_batch", self.actions_per_batch, 1000),
            ("concurrency", self.concurrency, 2),
            ("max_bytes_mb", self.max_bytes_mb, 10.0),
            ("op_type", self.op_type, "index"),
            ("routing", self.routing, None),
            ("pipeline", self.pipeline, None),
            ("max_retries", self.max_retries, 5),
            ("mappings", self.mappings, None),
            ("settings", self.settings, None),
            ("retry_backoff", self.retry_backoff, 0.5),
        ):
            if value != default:
                opts.append((name, repr(value)))
        return kwargs_repr("load_es", items[:1] + opts + items[1:])

    def describe(self) -> dict[str, Any]:
        """Where the records went (for the run report)."""
        return {"kind": "search", "uri": self.config.host, "engine": self.engine,
                "records": sum(self.last_counts.values()), "indices": dict(self.last_counts)}

    # -- preparing actions ----------------------------------------------------------

    def _prepare(self, rec: Mapping[str, Any]) -> _Action:
        index = self.dataset.render(rec)
        if self.id_fn is not None:
            doc_id = self.id_fn(rec)
        else:
            raw = rec.get("_id")
            doc_id = None if raw is None else str(raw)
        if doc_id is None and self.op_type in ("update", "delete"):
            raise RecordError(f"op_type {self.op_type!r} needs a document id "
                              "(set id_strategy or give records an _id)")
        meta: dict[str, Any] = {"_index": index}
        if doc_id is not None:
            meta["_id"] = doc_id
        if self.routing_template is not None:
            meta["routing"] = self.routing_template.render(rec)
        elif rec.get("_routing") is not None:
            meta["routing"] = str(rec["_routing"])
        action = orjson.dumps({self.op_type: meta}, option=_OPTS)
        if self.op_type == "delete":
            return _Action(rec, index, doc_id, action)
        doc = {k: v for k, v in rec.items() if k not in _META} \
            if not _META.isdisjoint(rec) else rec
        if self.op_type == "update":
            data = action + dumps_line({"doc": doc, "doc_as_upsert": True})
        else:
            data = action + dumps_line(doc)
        return _Action(rec, index, doc_id, data)

    def prepare_target(self, index: str, client: SearchClient) -> None:
        """Create ``index`` with ``mappings``/``settings`` unless it exists (once per run)."""
        if index in self._prepared or (self.mappings is None and self.settings is None):
            return
        body: dict[str, Any] = {}
        if self.mappings is not None:
            body["mappings"] = self.mappings
        if self.settings is not None:
            body["settings"] = self.settings
        created = call_with_retries(lambda: client.create_index(index, body),
                                    what=f"create index {index!r}",
                                    max_retries=self.max_retries, backoff=self.retry_backoff,
                                    on_retry=lambda: self.stats.add(retries=1))
        self._prepared.add(index)
        log_event("search_index_prepared", host=client.host, index=index, created=created)

    def _batches(self, upstream: Iterable[Any], tally: dict[str, int],
                 admin: list[SearchClient]) -> Iterator[list[Any]]:
        apb, max_bytes = self.actions_per_batch, self.max_bytes
        limit_items = 2 * apb
        prepare, name = self._prepare, self.name
        needs_target = self.mappings is not None or self.settings is not None
        items: list[Any] = []
        n_actions = size = 0
        for item in upstream:
            tally["n_in"] += 1
            t = type(item)
            if t is Failure:
                items.append(item)
            else:
                rec = item._inner_value if t is Success else item
                try:
                    act = prepare(rec)
                except (RecordError, TypeError, ValueError) as exc:
                    tally["failed"] += 1
                    items.append(Failure(DeadLetter.from_exception(
                        rec, exc, stage=name, target=self.dataset.template)))
                else:
                    if n_actions and size + len(act.data) > max_bytes:
                        yield items
                        items, n_actions, size = [], 0, 0
                    if needs_target and act.index not in self._prepared:
                        try:
                            self.prepare_target(act.index, admin[0])
                        except SearchRequestError as exc:
                            if exc.error_type != "invalid_index_name_exception":
                                raise
                            tally["failed"] += 1  # the record named an impossible index
                            items.append(Failure(DeadLetter(
                                record=rec, error_type=str(exc.error_type),
                                error_message=str(exc.reason), stage=name,
                                target=act.index, id=act.doc_id, status=exc.status)))
                            continue
                    items.append(act)
                    n_actions += 1
                    size += len(act.data)
            if n_actions >= apb or size >= max_bytes or len(items) >= limit_items:
                yield items
                items, n_actions, size = [], 0, 0
        if items:
            yield items

    # -- loading --------------------------------------------------------------------

    def _send(self, client: SearchClient, actions: Sequence[_Action]) -> list[_ItemError | None]:
        """One bulk request for ``actions`` (split in halves on 413): per action None (done)
        or the error."""
        body = b"".join(a.data for a in actions)
        try:
            resp = client.bulk(body, pipeline=self.pipeline)
        except SearchTransportError as exc:
            if exc.status == 413 and len(actions) > 1:
                mid = len(actions) // 2
                with self._lock:
                    self.splits += 1
                log_event("search_bulk_split", logging.DEBUG, host=client.host,
                          actions=len(actions), bytes=len(body))
                return self._send(client, actions[:mid]) + self._send(client, actions[mid:])
            if exc.status in (401, 403):
                raise give_up_error(exc, "bulk", 1) from exc
            err = _ItemError(exc.status, exc.error_type, exc.reason, exc.retryable)
            return [err] * len(actions)
        items = resp.get("items")
        if not isinstance(items, list) or len(items) != len(actions):
            err = _ItemError(None, "bad_response",
                             f"bulk response has {len(items or [])} items for "
                             f"{len(actions)} actions", True)
            return [err] * len(actions)
        if resp.get("errors") is False:
            return [None] * len(actions)
        out: list[_ItemError | None] = []
        delete = self.op_type == "delete"
        for item in items:
            result = next(iter(item.values())) if isinstance(item, dict) and item else {}
            status = int(result.get("status") or 0)
            error = result.get("error")
            if error is None and (200 <= status < 300 or (delete and status == 404)):
                out.append(None)
                continue
            etype, reason = error_details({"error": error} if error is not None else result,
                                          f"http_{status}")
            retryable = status == 429 or status >= 500 or etype in RETRYABLE_ERROR_TYPES
            out.append(_ItemError(status or None, etype, reason, retryable))
        return out

    def _load(self, batch: list[Any], client: SearchClient) -> _Done:
        items = list(batch)
        counts: Counter[str] = Counter()
        failed = 0
        todo = [i for i, x in enumerate(items) if type(x) is _Action]
        attempt = 1
        while todo:
            outcome = self._send(client, [items[i] for i in todo])
            retry: list[int] = []
            last: _ItemError | None = None
            for i, err in zip(todo, outcome, strict=True):
                act = items[i]
                if err is None:
                    items[i] = act.record
                    counts[act.index] += 1
                elif err.retryable and attempt <= self.max_retries:
                    retry.append(i)
                    last = err
                else:
                    failed += 1
                    items[i] = Failure(DeadLetter(
                        record=act.record, error_type=err.error_type,
                        error_message=err.reason, stage=self.name, attempt=attempt,
                        target=act.index, id=act.doc_id, status=err.status))
            if retry and last is not None:
                self.stats.add(retries=1)
                log_event("search_bulk_retry", logging.DEBUG, host=client.host,
                          actions=len(retry), attempt=attempt, status=last.status,
                          error_type=last.error_type)
                time.sleep(backoff_delay(attempt, self.retry_backoff))
                attempt += 1
            todo = retry
        return _Done(items, counts, failed)

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        config = resolve_config(self.config, max_retries=self.max_retries,
                                backoff=self.retry_backoff,
                                on_retry=lambda: self.stats.add(retries=1))
        self.engine = config.engine
        self._prepared = set()
        self.last_counts = {}
        self.splits = 0
        counts: Counter[str] = Counter()
        tally = {"n_in": 0, "failed": 0}
        admin: list[SearchClient] = [connect(config)]  # no I/O; a missing client fails here
        n_out = failed = 0
        workers = map_concurrent(self._load, workers=self.concurrency,
                                 window=2 * self.concurrency, setup=lambda: connect(config))
        try:
            for done in workers(self._batches(upstream, tally, admin)):
                counts.update(done.counts)
                failed += done.failed
                for out in done.items:
                    n_out += 1
                    yield out
        finally:
            self.last_counts = dict(sorted(counts.items()))
            self.stats.add(n_in=tally["n_in"], n_out=n_out, failed=failed + tally["failed"])
            for client in admin:
                client.close()


def load_es(
    *,
    dataset: str,
    id_strategy: Mapping[str, Any] | str | None = None,
    actions_per_batch: int = 1000,
    concurrency: int = 2,
    max_bytes_mb: float = 10.0,
    op_type: str = "index",
    routing: str | None = None,
    pipeline: str | None = None,
    max_retries: int = 5,
    mappings: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    engine: str = "auto",
    hosts: Sequence[str] = ("http://127.0.0.1:9200",),
    username: str | None = None,
    password: str | None = None,
    api_key: str | None = None,
    verify_certs: bool = True,
    ca_certs: str | None = None,
    timeout: float = 30.0,
    retry_backoff: float = 0.5,
) -> SearchLoader:
    """A loader stage writing records to the index named by ``dataset`` (a per-record
    template like ``rfi-enriched-{created_at:%Y.%m}``) with the id from ``id_strategy``
    (default: the record's ``_id`` if any, else the engine assigns one). The keys ``_id``,
    ``_index`` and ``_routing`` are never written into documents. ``routing`` is a template
    or a literal; ``op_type`` one of index, create, update (upsert), delete.

    >>> load_es(hosts=["http://127.0.0.1:9200"], dataset="rfi-enriched-{created_at:%Y.%m}",
    ...         id_strategy={"type": "sha256_concat", "fields": ["project_id", "rfi_number"]},
    ...         actions_per_batch=2000, concurrency=4, api_key="k")
    load_es(hosts=['http://127.0.0.1:9200'], dataset='rfi-enriched-{created_at:%Y.%m}', id_strategy={'type': 'sha256_concat', 'fields': ['project_id', 'rfi_number']}, actions_per_batch=2000, concurrency=4, api_key='***')
    """  # noqa: E501
    config = SearchConfig(engine=engine, hosts=list(hosts) if not isinstance(hosts, str)
                          else hosts, username=username, password=password, api_key=api_key,
                          verify_certs=verify_certs, ca_certs=ca_certs, timeout=timeout)
    return SearchLoader(config=config, dataset=dataset, id_spec=id_strategy,
                        actions_per_batch=actions_per_batch, concurrency=concurrency,
                        max_bytes_mb=max_bytes_mb, op_type=op_type, routing=routing,
                        pipeline=pipeline, max_retries=max_retries, mappings=mappings,
                        settings=settings, retry_backoff=retry_backoff)
