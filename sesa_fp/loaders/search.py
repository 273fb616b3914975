"""`load_es`: bulk-load records into Elasticsearch or OpenSearch, one result per input record.

Records are encoded once (orjson) into NDJSON bulk bodies bounded by ``actions_per_batch``
and ``max_bytes_mb`` (`more_itertools.constrained_batches`); at most ``concurrency`` bulk
requests are in flight, each worker thread with its own client. Every item the engine
acknowledges is counted in ``stats.committed`` as its response is read, so the count is
exact even when the run stops halfway.

Per-item rejections (429, 5xx, rejected execution) are resent alone with exponential backoff
and jitter, up to ``max_retries`` times, then become dead letters; mapping and validation
errors (400/404/409...) become dead letters at once, carrying the engine's error type and
reason. A whole request that fails (connection, timeout, 429, 5xx) is retried, one too large
(413) is split in halves. An outage that outlasts the retries stops the load: no new batch
is taken, the batches in flight finish (their acknowledged records and dead letters pass
on), and `SearchUnavailableError` names the host. Records that were never sent are neither
loaded nor dead letters: the run fails instead of claiming them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import more_itertools
import orjson
from returns.result import Failure

from sesa_fp.codec import dumps_line
from sesa_fp.dataset import DatasetTemplate, Target
from sesa_fp.errors import ConfigError, RecordError
from sesa_fp.ids import id_strategy as make_id_fn
from sesa_fp.logs import log_event
from sesa_fp.marks import PartMark
from sesa_fp.result import DeadLetter, each_record
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
from sesa_fp.search.adaptive import AdaptiveLimit
from sesa_fp.search.base import give_up_error
from sesa_fp.search.config import kwargs_repr
from sesa_fp.search.errors import RETRYABLE_ERROR_TYPES
from sesa_fp.search.util import error_details
from sesa_fp.secrets import Secret
from sesa_fp.stats import Latencies, Stage, StageStats
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
    """Why an action was not acknowledged. ``request`` is the transport error when the whole
    bulk request failed (no per-item answer), None for a per-item rejection."""

    __slots__ = ("error_type", "reason", "request", "retryable", "status")

    def __init__(self, status: int | None, error_type: str, reason: str, retryable: bool,
                 request: SearchTransportError | None = None) -> None:
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.retryable = retryable
        self.request = request


class _Done:
    """A batch after loading: its items in input order (the record when acknowledged, a
    ``Failure``, or the `_Action` itself when it was never sent because the load stopped),
    the dead letters it made, and the outage that stopped it, if any."""

    __slots__ = ("error", "failed", "items")

    def __init__(self, items: list[Any], failed: int, error: Exception | None = None) -> None:
        self.items = items
        self.failed = failed
        self.error = error


def _throttled(resp: Any) -> bool:
    """True if a bulk answer (or the error in its place) says the engine is overloaded."""
    if isinstance(resp, SearchTransportError):
        return resp.status == 429
    if not isinstance(resp, Mapping) or resp.get("errors") is False:
        return False
    items = resp.get("items")
    return isinstance(items, list) and any(
        isinstance(it, dict) and any(isinstance(r, dict) and r.get("status") == 429
                                     for r in it.values()) for it in items)


def _action_bytes(item: Any) -> int:
    return len(item.data) if type(item) is _Action else 0


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"load_es: {name} must be a positive int, got {value!r}")
    return value


class SearchLoader(Stage):
    """The `load_es` stage: yields the record (loaded) or ``Failure(DeadLetter)`` per input
    item, in input order; input failures pass through unchanged. A sink: ``stats.committed``
    counts what the engine acknowledged, and one stream at a time runs through it."""

    kind = "loader"
    sink: ClassVar[bool] = True
    #: a record it yields is acknowledged by the engine: a resumed run may trust it
    resume_safe: ClassVar[bool] = True

    def __init__(self, *, config: SearchConfig, dataset: str,
                 id_spec: Mapping[str, Any] | str | None, actions_per_batch: int,
                 concurrency: int, max_bytes_mb: float, op_type: str, routing: str | None,
                 pipeline: str | None, max_retries: int, mappings: Mapping[str, Any] | None,
                 settings: Mapping[str, Any] | None, retry_backoff: float,
                 max_concurrency: int | None = None) -> None:
        self.config = config
        self.dataset = DatasetTemplate(dataset)
        super().__init__(f"load_es({dataset!r})")
        self.id_spec = id_spec
        self.id_fn = make_id_fn(id_spec) if id_spec is not None else None
        self.actions_per_batch = _positive_int("actions_per_batch", actions_per_batch)
        self.concurrency = _positive_int("concurrency", concurrency)
        self.max_concurrency = None if max_concurrency is None else \
            _positive_int("max_concurrency", max_concurrency)
        if self.max_concurrency is not None and self.max_concurrency < self.concurrency:
            raise ConfigError(f"load_es: max_concurrency ({self.max_concurrency}) must be >= "
                              f"concurrency ({self.concurrency})")
        self.latencies = Latencies()  # per bulk request, last run
        self.adaptive: AdaptiveLimit | None = None  # last run's limit, when adaptive
        if isinstance(max_bytes_mb, bool) or not isinstance(max_bytes_mb, (int, float)) \
                or max_bytes_mb <= 0:
            raise ConfigError(f"load_es: max_bytes_mb must be > 0, got {max_bytes_mb!r}")
        self.max_bytes_mb = float(max_bytes_mb)
        self.max_bytes = max(1, int(self.max_bytes_mb * 1024 * 1024))
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
        self.throttled = 0  # items the engine answered 429 (last run; each retry counts)
        self._prepared: set[str] = set()
        self._heads: dict[str, bytes] = {}  # per index: the action line up to the id
        self._lock = threading.Lock()
        # per stream (one at a time: `exclusive`): acknowledged records per index, records
        # whose index name the engine refused, and the flag that stops the load on an outage
        self._committed: Counter[str] = Counter()
        self._bad_names = 0
        self._stop = threading.Event()

    # -- presentation ---------------------------------------------------------------

    def __repr__(self) -> str:
        items = self.config.repr_items()
        opts: list[tuple[str, str]] = [("dataset", repr(self.dataset.template))]
        if self.id_spec is not None:
            opts.append(("id_strategy", repr(self.id_spec)))
        for name, value, default in (
            ("actions_per_batch", self.actions_per_batch, 1000),
            ("concurrency", self.concurrency, 2),
            ("max_concurrency", self.max_concurrency, None),
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
        out = {"kind": "search", "uri": self.config.host, "engine": self.engine,
               "records": sum(self.last_counts.values()), "indices": dict(self.last_counts),
               "throttled_items": self.throttled, "bulk_latency": self.latencies.as_dict()}
        if self.adaptive is not None:
            out["concurrency"] = self.adaptive.describe()
        return out

    # -- preparing actions ----------------------------------------------------------

    def target(self, rec: Mapping[str, Any]) -> Target:
        """The index, document id and routing ``rec`` would be loaded with (no I/O);
        `RecordError` when a field they need is missing.

        >>> load_es(dataset="rfi-{created_at:%Y.%m}", id_strategy={"type": "field",
        ...         "field": "n"}).target({"created_at": "2025-09-06", "n": 7})
        Target(dataset='rfi-2025.09', id='7', routing=None)
        """
        return Target(*self._resolve(rec))

    def _resolve(self, rec: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
        # a plain tuple: `_prepare` calls this once per record
        index = self.dataset.render(rec)
        if self.id_fn is not None:
            doc_id = self.id_fn(rec)
        else:
            raw = rec.get("_id")
            doc_id = None if raw is None else str(raw)
        if doc_id is None and self.op_type in ("update", "delete"):
            raise RecordError(f"op_type {self.op_type!r} needs a document id "
                              "(set id_strategy or give records an _id)")
        routing = None
        if self.routing_template is not None:
            routing = self.routing_template.render(rec)
        elif rec.get("_routing") is not None:
            routing = str(rec["_routing"])
        return index, doc_id, routing

    def _prepare(self, rec: Mapping[str, Any]) -> _Action:
        index, doc_id, routing = self._resolve(rec)
        if routing is None and doc_id is not None:
            # the common case, without a dict and a full encode per record: the action line's
            # head is built once per index, the id alone is encoded
            head = self._heads.get(index)
            if head is None:
                head = self._heads[index] = orjson.dumps(
                    {self.op_type: {"_index": index}})[:-2] + b',"_id":'
            action = head + orjson.dumps(doc_id) + b"}}\n"
        else:
            meta: dict[str, Any] = {"_index": index}
            if doc_id is not None:
                meta["_id"] = doc_id
            if routing is not None:
                meta["routing"] = routing
            action = orjson.dumps({self.op_type: meta}, option=_OPTS)
        if self.op_type == "delete":
            return _Action(rec, index, doc_id, action)
        if _META.isdisjoint(rec):
            doc = rec
        else:  # a C-level copy and at most three deletions beat a filtering comprehension
            doc = dict(rec)
            for key in _META:
                doc.pop(key, None)
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

    def _action_or_dead_letter(self, rec: Mapping[str, Any], admin: SearchClient) -> Any:
        """The record as an `_Action`, its index created first when ``mappings``/``settings``
        are given; a ``Failure`` when the engine refuses the index name the record makes."""
        act = self._prepare(rec)
        if act.index in self._prepared or (self.mappings is None and self.settings is None):
            return act
        try:
            self.prepare_target(act.index, admin)
        except SearchRequestError as exc:
            if exc.error_type != "invalid_index_name_exception":
                raise
            self._bad_names += 1
            return Failure(DeadLetter(
                record=rec, error_type=str(exc.error_type), error_message=str(exc.reason),
                stage=self.name, target=act.index, id=act.doc_id, status=exc.status))
        return act

    def _batches(self, upstream: Iterable[Any], admin: SearchClient,
                 counts: StageStats) -> Generator[tuple[Any, ...], None, None]:
        """Batches of actions and failures, in input order, bounded by count and bytes; no
        new batch once the load has stopped (the one taken when it stopped still goes out,
        so its failures pass on and its records are reported unsent)."""
        actions = each_record(upstream, lambda rec: self._action_or_dead_letter(rec, admin),
                              stage=self.name, errors=(TypeError, ValueError), stats=counts,
                              target=self.dataset.template)
        try:
            for batch in more_itertools.constrained_batches(
                    actions, self.max_bytes, max_count=self.actions_per_batch,
                    get_len=_action_bytes, strict=False):
                yield batch
                if self._stop.is_set():
                    return
        finally:
            getattr(actions, "close")()  # noqa: B009 - counts now, also when stopped early

    # -- loading --------------------------------------------------------------------

    def _send(self, client: SearchClient, actions: Sequence[_Action]) -> list[_ItemError | None]:
        """One bulk request for ``actions`` (split in halves on 413): per action None (done)
        or the error."""
        body = b"".join(a.data for a in actions)
        limit = self.adaptive
        resp: Any
        with limit.slot() if limit is not None else contextlib.nullcontext() as slot:
            t0 = time.perf_counter()
            try:
                resp = client.bulk(body, pipeline=self.pipeline)
            except SearchTransportError as failed:
                resp = failed
            latency = time.perf_counter() - t0
            self.latencies.observe(latency)
            if slot is not None:
                slot.latency = latency
                slot.throttled = _throttled(resp)
        if isinstance(resp, SearchTransportError):
            exc: SearchTransportError = resp
            if exc.status == 413 and len(actions) > 1:
                mid = len(actions) // 2
                with self._lock:
                    self.splits += 1
                log_event("search_bulk_split", logging.DEBUG, host=client.host,
                          actions=len(actions), bytes=len(body))
                return self._send(client, actions[:mid]) + self._send(client, actions[mid:])
            if exc.status in (401, 403):
                raise give_up_error(exc, "bulk", 1) from exc
            err = _ItemError(exc.status, exc.error_type, exc.reason, exc.retryable, exc)
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
        throttled = sum(1 for e in out if e is not None and e.status == 429)
        if throttled:
            with self._lock:
                self.throttled += throttled
        return out

    def _commit(self, acked: Counter[str]) -> None:
        n = sum(acked.values())
        if n:
            self.stats.add(committed=n)
            with self._lock:
                self._committed.update(acked)

    def _load(self, batch: Sequence[Any], client: SearchClient) -> _Done:
        items = list(batch)
        failed = 0
        todo = [i for i, x in enumerate(items) if type(x) is _Action]
        attempt = 1
        while todo and not self._stop.is_set():
            outcome = self._send(client, [items[i] for i in todo])
            acked: Counter[str] = Counter()
            retry: list[int] = []
            last: _ItemError | None = None
            outage: _ItemError | None = None
            for i, err in zip(todo, outcome, strict=True):
                act = items[i]
                if err is None:
                    items[i] = act.record
                    acked[act.index] += 1
                elif err.retryable and attempt <= self.max_retries:
                    retry.append(i)
                    last = err
                elif err.retryable and err.request is not None:
                    outage = err  # the request itself kept failing: the action stays unsent
                else:
                    failed += 1
                    items[i] = Failure(DeadLetter(
                        record=act.record, error_type=err.error_type,
                        error_message=err.reason, stage=self.name, attempt=attempt,
                        target=act.index, id=act.doc_id, status=err.status))
            self._commit(acked)
            if outage is not None and outage.request is not None:
                self._stop.set()
                error = give_up_error(outage.request, "bulk", attempt)
                error.__cause__ = outage.request
                return _Done(items, failed, error)
            if retry and last is not None:
                self.stats.add(retries=1)
                log_event("search_bulk_retry", logging.DEBUG, host=client.host,
                          actions=len(retry), attempt=attempt, status=last.status,
                          error_type=last.error_type)
                # the wait ends early when another batch gave up: the load is stopping
                self._stop.wait(backoff_delay(attempt, self.retry_backoff))
                attempt += 1
            todo = retry
        return _Done(items, failed)

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        with self.exclusive():
            config = resolve_config(self.config, max_retries=self.max_retries,
                                    backoff=self.retry_backoff,
                                    on_retry=lambda: self.stats.add(retries=1))
            self.engine = config.engine
            self._prepared = set()
            self._committed = Counter()
            self._bad_names = 0
            self._stop = threading.Event()
            self.last_counts = {}
            self.splits = 0
            self.throttled = 0
            self.latencies.reset()
            workers = self.concurrency
            self.adaptive = None
            if self.max_concurrency is not None and self.max_concurrency > self.concurrency:
                self.adaptive = AdaptiveLimit(self.concurrency, self.max_concurrency)
                workers = self.max_concurrency  # threads ready; the limit gates the requests
            admin = connect(config)  # no I/O; a missing client fails here
            counts = StageStats(self.name)  # what reached the loader, and bad records
            n_out = failed = unsent = 0
            error: Exception | None = None
            batches = self._batches(upstream, admin, counts)
            loaded = map_concurrent(self._load, workers=workers, window=2 * workers,
                                    setup=lambda: connect(config))(batches)
            try:
                for done in loaded:
                    failed += done.failed
                    for out in done.items:
                        t = type(out)
                        if t is _Action:  # never sent: the load stopped
                            unsent += 1
                        elif t is Failure and type(out.failure()) is PartMark:
                            if not unsent:  # a part with unsent records is not loaded
                                yield out
                        else:
                            n_out += 1
                            yield out
                    if error is None:
                        error = done.error
                if error is not None:
                    log_event("search_load_stopped", logging.ERROR, host=config.host,
                              committed=self.stats.committed, unsent=unsent,
                              error=str(error))
                    raise error
            finally:
                getattr(loaded, "close")()  # noqa: B009 - workers joined before counting
                batches.close()
                with self._lock:
                    self.last_counts = dict(sorted(self._committed.items()))
                self.stats.add(n_in=counts.n_in, n_out=n_out,
                               failed=failed + counts.failed + self._bad_names)
                admin.close()


def load_es(
    *,
    dataset: str,
    id_strategy: Mapping[str, Any] | str | None = None,
    actions_per_batch: int = 1000,
    concurrency: int = 2,
    max_concurrency: int | None = None,
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
    password: str | Secret | None = None,
    api_key: str | Secret | None = None,
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

    With ``max_concurrency`` above ``concurrency`` the number of bulk requests in flight
    adapts (AIMD, `sesa_fp.search.adaptive`): it starts at ``concurrency``, grows by one per
    round of answers without 429s while latency holds, halves on 429s, never leaves
    ``[1, max_concurrency]``; the report's output shows it over time.

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
                        settings=settings, retry_backoff=retry_backoff,
                        max_concurrency=max_concurrency)
