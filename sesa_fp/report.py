"""`run`: drain a stream, count what happened to every record, check nothing was lost."""

from __future__ import annotations

import datetime as _dt
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any, Literal

import attrs
import orjson
from returns.result import Failure

from sesa_fp.errors import ConservationError
from sesa_fp.logs import configure_logging, log_event, logger
from sesa_fp.result import _run_id
from sesa_fp.stream import Pipeline, _stats_of

__all__ = ["RunReport", "new_run_id", "run"]


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a random suffix.

    >>> len(new_run_id())
    23
    """
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@attrs.frozen(kw_only=True)
class RunReport:
    """What a run did: read = loaded + dropped + dead_letters, per-stage counts, time, bytes."""

    run_id: str
    job: str | None
    started_at: str
    elapsed_s: float
    read: int
    loaded: int
    dropped: int
    dead_letters: int
    retries: int
    bytes_staged: int
    conserved: bool
    stages: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (what the CLI prints as JSON)."""
        return attrs.asdict(self)

    def to_json(self) -> str:
        """The report as one JSON line."""
        return orjson.dumps(self.to_dict()).decode()

    def __str__(self) -> str:
        lines = [
            f"run {self.run_id}" + (f" ({self.job})" if self.job else ""),
            f"  read {self.read}  loaded {self.loaded}  dropped {self.dropped}  "
            f"dead letters {self.dead_letters}  retries {self.retries}  "
            f"{self.elapsed_s:.2f}s  staged {self.bytes_staged} bytes",
        ]
        for s in self.stages:
            lines.append(
                f"  {s['name'][:60]:<60} in {s['in']:>9} out {s['out']:>9}"
                f" dropped {s['dropped']:>7} failed {s['failed']:>7}"
            )
        for o in self.outputs:
            lines.append(f"  -> {o.get('kind', 'output')}: {o.get('uri')} ({o.get('records')} rec)")
        return "\n".join(lines)


def _progress_bar(progress: bool | Literal["auto"], job: str | None) -> Any:
    from tqdm.auto import tqdm

    disable = None if progress == "auto" else not progress
    return tqdm(desc=job or "sesa", unit=" rec", disable=disable, mininterval=0.5)


def run(
    stream: Iterable[Any],
    *,
    progress: bool | Literal["auto"] = "auto",
    run_id: str | None = None,
    job: str | None = None,
    check: bool = True,
) -> RunReport:
    """Drain ``stream`` and return a `RunReport`; raise `ConservationError` if records were lost.

    A progress bar shows on a terminal or in Jupyter (``progress="auto"``), never when output
    is not a TTY. Events are logged as JSON lines (``sesa_fp.logs``).

    >>> from sesa_fp import pipe, stage
    >>> r = run(pipe([{"n": 1}, {"n": 0}], stage(lambda r: r if r["n"] else None)),
    ...         progress=False)
    >>> (r.read, r.loaded, r.dropped, r.dead_letters, r.conserved)
    (2, 1, 1, 0, True)
    """
    if not logger.hasHandlers():
        configure_logging()
    run_id = run_id or new_run_id()
    token = _run_id.set(run_id)
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    log_event("run_started", run_id=run_id, job=job)
    bar = _progress_bar(progress, job)
    n = dead_at_end = 0
    try:
        for item in stream:
            n += 1
            if type(item) is Failure:
                dead_at_end += 1
            if not n & 4095:
                bar.update(4096)
        bar.update(n & 4095)
    except BaseException as exc:
        log_event("run_failed", logging.ERROR, run_id=run_id, job=job,
                  error=f"{type(exc).__name__}: {exc}", records_seen=n)
        raise
    finally:
        bar.close()
        _run_id.reset(token)
    report = _report(stream, run_id, job, started_at, time.perf_counter() - t0, n, dead_at_end)
    log_event("run_finished", run_id=run_id, job=job, read=report.read, loaded=report.loaded,
              dropped=report.dropped, dead_letters=report.dead_letters, retries=report.retries,
              elapsed_s=round(report.elapsed_s, 3), conserved=report.conserved)
    if check and not report.conserved:
        raise ConservationError(
            f"run {run_id}: read {report.read} != loaded {report.loaded} + dropped "
            f"{report.dropped} + dead letters {report.dead_letters}; per stage: "
            + "; ".join(f"{s['name']} in={s['in']} out={s['out']}" for s in report.stages)
        )
    return report


def _report(stream: Iterable[Any], run_id: str, job: str | None, started_at: str,
            elapsed: float, n: int, dead_at_end: int) -> RunReport:
    loaded = n - dead_at_end
    if isinstance(stream, Pipeline):
        stats = stream.stats()
        read = stream.source_stats.n_out
    else:
        stats = list(_stats_of(stream))
        read = None
    dropped = sum(s.dropped for s in stats)
    dead = dead_at_end + sum(s.failed for s in stats if s.kind == "partition")
    outputs = tuple(_outputs(stream))
    return RunReport(
        run_id=run_id,
        job=job,
        started_at=started_at,
        elapsed_s=elapsed,
        read=loaded + dropped + dead if read is None else read,
        loaded=loaded,
        dropped=dropped,
        dead_letters=dead,
        retries=sum(s.retries for s in stats),
        bytes_staged=sum(s.bytes for s in stats if s.kind == "staging"),
        conserved=read is None or read == loaded + dropped + dead,
        stages=tuple(s.as_dict() for s in stats if s.kind != "batch"),
        outputs=outputs,
    )


def _outputs(obj: Any) -> Any:
    describe = getattr(obj, "describe", None)
    if callable(describe):
        yield describe()
    if isinstance(obj, Pipeline):
        for st in obj.stages:
            yield from _outputs(st)
        return
    children = getattr(obj, "children", None)
    if callable(children):
        for child in children():
            yield from _outputs(child)
