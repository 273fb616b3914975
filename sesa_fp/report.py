"""`run`: drain a stream, count what every sink committed, check nothing was lost."""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import attrs
import orjson

from sesa_fp.errors import ConservationError
from sesa_fp.logs import configure_logging, log_event, logger
from sesa_fp.result import bound_run_id
from sesa_fp.secrets import mask_url
from sesa_fp.stats import Stage, run_scope, walk
from sesa_fp.storage.location import check_location, join_path, normalized
from sesa_fp.stream import Pipeline, partition, pipe

__all__ = ["RunReport", "default_dlq_uri", "new_run_id", "run"]


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a random suffix.

    >>> len(new_run_id())
    23
    """
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@attrs.frozen(kw_only=True)
class RunReport:
    """What a run did, from what the sinks committed: ``read = loaded + dropped +
    dead_letters`` (``emitted`` in place of ``loaded`` for a stream without a loader).

    ``loaded`` is what the last loader's target acknowledged (or committed, for files);
    ``dead_letters`` what the dead-letter writers committed; ``emitted`` the good records
    that reached the end of the stream. ``read`` is None where the source cannot be counted
    (a plain iterator handed to `run`), and then ``conserved`` is None too: unknown, not true.
    ``unaccounted`` is read minus what the sinks account for: 0 for a conserved run; for a
    failed run, the records that were read but in flight (neither committed nor dead-lettered)
    when it stopped — a rerun with deterministic ids loads them.
    """

    run_id: str
    job: str | None
    status: str
    started_at: str
    elapsed_s: float
    read: int | None
    loaded: int
    emitted: int
    dropped: int
    dead_letters: int
    retries: int
    bytes_staged: int
    has_loader: bool
    unaccounted: int | None
    conserved: bool | None
    error: str | None
    stages: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    #: dead letters sent to the dead-letter writers, by stage and error type, most first
    dead_letter_kinds: tuple[dict[str, Any], ...] = ()
    #: a resumed run (`sesa_fp.resume`): committed parts replayed from staging instead of
    #: extracted again, and their records (counted in ``read``); parts an earlier attempt
    #: already loaded, skipped, and their records (not counted in ``read``)
    resumed_parts: int = 0
    resumed_records: int = 0
    skipped_parts: int = 0
    skipped_records: int = 0

    @property
    def accounted(self) -> int:
        """Records the sinks account for: loaded (or emitted) + dropped + dead letters."""
        delivered = self.loaded if self.has_loader else self.emitted
        return delivered + self.dropped + self.dead_letters

    def balance(self) -> str:
        """The conservation sum in words, as checked."""
        delivered = (f"loaded {self.loaded}" if self.has_loader
                     else f"emitted {self.emitted} (no loader)")
        read = "unknown" if self.read is None else str(self.read)
        sign = {True: "=", False: "!=", None: "?="}[self.conserved]
        text = (f"read {read} {sign} {delivered} + dropped {self.dropped} + "
                f"dead letters {self.dead_letters}")
        if self.unaccounted:
            text += f" ({self.unaccounted} unaccounted" + (
                ": in flight when the run stopped)" if self.status == "failed" else ")")
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (what the CLI prints as JSON)."""
        return attrs.asdict(self)

    def to_json(self) -> str:
        """The report as one JSON line."""
        return orjson.dumps(self.to_dict()).decode()

    def _repr_html_(self) -> str:
        from sesa_fp.display import report_html

        return report_html(self)

    def __str__(self) -> str:
        lines = [
            f"run {self.run_id}" + (f" ({self.job})" if self.job else "")
            + ("" if self.status == "ok" else f" {self.status.upper()}: {self.error}"),
            f"  {self.balance()}  retries {self.retries}  "
            f"{self.elapsed_s:.2f}s  staged {self.bytes_staged} bytes",
        ]
        for s in self.stages:
            lines.append(
                f"  {s['name'][:60]:<60} in {s['in']:>9} out {s['out']:>9}"
                f" dropped {s['dropped']:>7} failed {s['failed']:>7}"
            )
        if self.resumed_parts or self.skipped_parts:
            lines.append(f"  resumed: {self.resumed_parts} parts ({self.resumed_records} rec) "
                         f"replayed from staging, {self.skipped_parts} parts "
                         f"({self.skipped_records} rec) already loaded")
        for o in self.outputs:
            lines.append(f"  -> {o.get('kind', 'output')}: {o.get('uri')} ({o.get('records')} rec)")
        return "\n".join(lines)


def _progress_bar(progress: bool | Literal["auto"], job: str | None) -> Any:
    from tqdm.auto import tqdm

    disable = None if progress == "auto" else not progress
    return tqdm(desc=job or "sesa", unit=" rec", disable=disable, mininterval=0.5)


def default_dlq_uri() -> str:
    """Where dead letters go when a stream reaches `run` with no `partition`: ``$SESA_DLQ``,
    else ``sesa-dlq`` under the working directory (one ``run_id=...`` folder per run).

    >>> import os
    >>> default_dlq_uri() == (os.environ.get("SESA_DLQ") or "sesa-dlq")
    True
    """
    return os.environ.get("SESA_DLQ") or "sesa-dlq"


class _LazyDlq:
    """The default dead-letter writer: made on the first dead letter, so a clean run writes
    nothing (not even a directory)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.writer: Any = None
        self._journal: tuple[int | None] | None = None  # (adopt,) once in journal mode

    def enable_journal(self, *, position: Any = None, adopt: int | None = None) -> None:
        """Journal mode for the writer made later (see `PartsWriter.enable_journal`)."""
        self._journal = (adopt,)
        if self.writer is not None:
            self.writer.enable_journal(adopt=adopt)

    def checkpoint(self) -> int:
        """Make the dead letters so far durable; the parts committed."""
        if self.writer is None:
            return max((self._journal or (0,))[0] or 0, 0)
        return int(self.writer.checkpoint())

    def _make(self) -> None:
        from sesa_fp.storage import dlq_sink

        self.writer = dlq_sink(self.uri)
        if self._journal is not None:
            self.writer.enable_journal(adopt=self._journal[0])
        prepare = getattr(self.writer, "prepare", None)
        if callable(prepare):
            prepare()

    def __repr__(self) -> str:
        return f"dlq_sink({mask_url(self.uri)!r})"

    def location(self) -> str:
        return join_path(normalized(self.uri), "run_id=*")

    def prepare(self) -> None:
        """Check the place before any record is read (a missing bucket fails now), without
        creating anything: a clean run leaves no trace."""
        import fsspec

        fs, path = fsspec.core.url_to_fs(self.uri)
        check_location(fs, path, f"dead-letter queue {mask_url(self.uri)}")

    def write(self, item: Any) -> None:
        if self.writer is None:
            self._make()
        self.writer.write(item)

    def commit(self) -> int:
        if self.writer is None and self._journal is not None and (self._journal[0] or 0) > 0:
            self._make()  # dead letters of an earlier attempt need their manifest
        if self.writer is None:
            return 0
        n = self.writer.commit()
        return n if isinstance(n, int) else 0

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()

    def describe(self) -> dict[str, Any] | None:
        if self.writer is None:
            return None
        return {**self.writer.describe(), "default": True}


def run(
    stream: Iterable[Any],
    *,
    progress: bool | Literal["auto"] = "auto",
    run_id: str | None = None,
    job: str | None = None,
    check: bool = True,
    dlq: Any = None,
    executor: Any = None,
    fresh: bool = False,
) -> RunReport:
    """Drain ``stream`` and return a `RunReport` built from what the sinks committed; raise
    `ConservationError` if the sum does not hold.

    A dead letter that reaches the end of the stream (no `partition` after the stage that
    made it) is never discarded: it goes to ``dlq`` (a `Writer`, a callable or a URI),
    by default a local dead-letter queue at `default_dlq_uri`, named in the report's outputs
    and in a warning log line. If the run fails, the exception carries the partial report
    (``exc.report``): what was committed before the failure stays committed and counted.

    A pipeline staged right after a source with a lasting position resumes a killed run
    over the same staging prefix (`sesa_fp.resume`): its committed parts are not extracted
    again, the parts already loaded are skipped, and the source continues where the last
    committed part ends; ``fresh=True`` starts over. Replaying a prefix with `from_storage`
    skips what was loaded the same way.

    A progress bar shows on a terminal or in Jupyter (``progress="auto"``), never when output
    is not a TTY. Events are logged as JSON lines (``sesa_fp.logs``).

    >>> from sesa_fp import pipe, stage
    >>> r = run(pipe([{"n": 1}, {"n": 0}], stage(lambda r: r if r["n"] else None)),
    ...         progress=False)
    >>> (r.read, r.emitted, r.dropped, r.dead_letters, r.conserved)
    (2, 1, 1, 0, True)

    ``executor`` runs the stream elsewhere: ``DaskExecutor(address=...)``
    (`sesa_fp.executors`) runs each partition of the source as a Dask task and returns the
    merged report.
    """
    if executor is not None:
        return executor.run(stream, progress=progress, run_id=run_id, job=job, check=check,
                            dlq=dlq, fresh=fresh)
    if not logger.hasHandlers():
        configure_logging()
    run_id = run_id or new_run_id()
    default = dlq is None
    counted = isinstance(stream, Pipeline)
    ends_with_partition = isinstance(stream, Pipeline) and bool(stream.stages) \
        and getattr(stream.stages[-1], "kind", None) == "partition"
    last: Stage | None = None
    pipeline: Pipeline
    if default and ends_with_partition:
        # nothing after the pipeline's own partition can make a dead letter
        pipeline = stream  # type: ignore[assignment]
    else:
        last = partition(_LazyDlq(default_dlq_uri()) if default else
                         _LazyDlq(dlq) if isinstance(dlq, str) else dlq)
        pipeline = pipe(stream, last)
    resume = None
    if counted:
        from sesa_fp.resume import plan_resume

        resume = plan_resume(pipeline, fresh=fresh, run_id=run_id)
        if resume is not None:
            pipeline, run_id = resume.pipeline, resume.run_id
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    log_event("run_started", run_id=run_id, job=job)
    bar = _progress_bar(progress, job)
    n = 0
    try:
        with bound_run_id(run_id), run_scope():
            for _ in pipeline:
                n += 1
                if not n & 4095:
                    bar.update(4096)
        bar.update(n & 4095)
    except BaseException as exc:
        bar.close()
        report = _report(pipeline, counted, last, run_id, job, started_at,
                         time.perf_counter() - t0, n, error=exc, resume=resume)
        stopped = isinstance(exc, KeyboardInterrupt)  # SIGTERM, Ctrl-C: committed work kept
        log_event("run_interrupted" if stopped else "run_failed",
                  logging.WARNING if stopped else logging.ERROR, run_id=run_id, job=job,
                  error=report.error or "interrupted", read=report.read, loaded=report.loaded,
                  emitted=report.emitted, dropped=report.dropped,
                  dead_letters=report.dead_letters, unaccounted=report.unaccounted)
        with contextlib.suppress(AttributeError, TypeError):
            exc.report = report  # type: ignore[attr-defined]
        raise
    bar.close()
    report = _report(pipeline, counted, last, run_id, job, started_at,
                     time.perf_counter() - t0, n, resume=resume)
    if resume is not None and report.conserved is not False:
        resume.finished()
    if last is not None and last.stats.committed:
        log_event("dead_letters_at_end", logging.WARNING, run_id=run_id, job=job,
                  dead_letters=last.stats.committed, dlq=repr(last.children()[0]),
                  hint="add partition(dlq_sink(uri)) to the pipeline (YAML: dlq:) to choose "
                       "where they go")
    log_event("run_finished", run_id=run_id, job=job, read=report.read, loaded=report.loaded,
              emitted=report.emitted, dropped=report.dropped,
              dead_letters=report.dead_letters, retries=report.retries,
              elapsed_s=round(report.elapsed_s, 3), conserved=report.conserved)
    if report.conserved is None:
        log_event("conservation_unknown", logging.WARNING, run_id=run_id,
                  reason="run() got a plain iterator: the records read cannot be counted; "
                         "wrap it in pipe(...) to count them")
    if check and report.conserved is False:
        error = ConservationError(
            f"run {run_id}: {report.balance()}; per stage: "
            + "; ".join(f"{s['name']} in={s['in']} out={s['out']} dropped={s['dropped']} "
                        f"failed={s['failed']} committed={s['committed']}"
                        for s in report.stages)
        )
        error.report = attrs.evolve(report, status="failed", error=str(error))
        raise error
    return report


def _report(pipeline: Pipeline, counted: bool, last: Stage | None, run_id: str, job: str | None,
            started_at: str, elapsed: float, emitted: int,
            error: BaseException | None = None, resume: Any = None) -> RunReport:
    stats = pipeline.stats()
    loaders = [st for st in pipeline.stages if isinstance(st, Stage) and st.kind == "loader"]
    loaded = loaders[-1].stats.committed if loaders else 0
    dropped = sum(s.dropped for s in stats)
    dead = sum(st.stats.committed for st in pipeline.stages
               if isinstance(st, Stage) and st.kind == "partition")
    read = pipeline.read_count() if counted else None
    if read is not None and resume is not None:
        read += resume.resumed_records - resume.marks_read
    delivered = loaded if loaders else emitted
    unaccounted = None if read is None else read - (delivered + dropped + dead)
    conserved = None if unaccounted is None else unaccounted == 0
    hidden = None if last is None else last.stats  # the default partition, shown when used
    shown = [s for s in stats if s.kind not in ("batch", "source")
             and (s is not hidden or s.failed)]
    return RunReport(
        run_id=run_id,
        job=job,
        status="ok" if error is None else "failed",
        started_at=started_at,
        elapsed_s=elapsed,
        read=read,
        loaded=loaded,
        emitted=emitted,
        dropped=dropped,
        dead_letters=dead,
        retries=sum(s.retries for s in stats),
        bytes_staged=sum(s.bytes for s in stats if s.kind == "staging"),
        has_loader=bool(loaders),
        unaccounted=unaccounted,
        conserved=conserved,
        error=None if error is None else f"{type(error).__name__}: {error}",
        stages=tuple(s.as_dict() for s in shown),
        outputs=tuple(o for o in _outputs(pipeline) if o),
        dead_letter_kinds=_dead_letter_kinds(pipeline),
        resumed_parts=0 if resume is None else resume.resumed_parts,
        resumed_records=0 if resume is None else resume.resumed_records,
        skipped_parts=0 if resume is None else resume.skipped_parts,
        skipped_records=0 if resume is None else resume.skipped_records,
    )


def _dead_letter_kinds(pipeline: Pipeline) -> tuple[dict[str, Any], ...]:
    kinds: Counter[tuple[str, str]] = Counter()
    for st in pipeline.stages:
        if getattr(st, "kind", None) == "partition":
            kinds.update(getattr(st, "kinds", None) or {})
    return kinds_as_rows(kinds)


def kinds_as_rows(kinds: Counter[tuple[str, str]]) -> tuple[dict[str, Any], ...]:
    """Dead letters counted by ``(stage, error type)`` as the report's rows, most first.

    >>> kinds_as_rows(Counter({("cast", "CastError"): 2}))
    ({'stage': 'cast', 'error_type': 'CastError', 'count': 2},)
    """
    return tuple({"stage": stage, "error_type": etype, "count": n}
                 for (stage, etype), n in kinds.most_common())


def _outputs(obj: Any) -> Iterator[dict[str, Any] | None]:
    for node in walk(obj):
        describe = getattr(node, "describe", None)
        if callable(describe) and not isinstance(node, Pipeline):
            yield describe()
