"""Dead letters and the `stage` lift: errors become data at the record boundary.

A stream carries records and ``Failure(DeadLetter)`` values. A bare record stands
for ``Success(record)``; a ``Success`` is accepted anywhere and unwrapped. Keeping
good records bare makes the per-record cost of a stage one type check.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import traceback as _tb
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
from returns.result import Failure, Result, Success

from sesa_fp.errors import SesaError, StageError
from sesa_fp.marks import PartMark
from sesa_fp.stats import Stage, StageStats, refuse_sinks

__all__ = [
    "DeadLetter",
    "Failure",
    "Result",
    "Success",
    "as_record",
    "bound_run_id",
    "current_run_id",
    "dead_letters",
    "each_record",
    "good_records",
    "is_failure",
    "split_results",
    "stage",
]

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("sesa_run_id", default=None)


def current_run_id() -> str | None:
    """The id of the run draining the stream in this context, if any."""
    return _run_id.get()


@contextlib.contextmanager
def bound_run_id(run_id: str) -> Iterator[None]:
    """Make ``run_id`` the current run id in this context (threads started from it inherit it).

    >>> with bound_run_id("r1"):
    ...     current_run_id()
    'r1'
    """
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


@attrs.frozen(kw_only=True)
class DeadLetter:
    """A record that could not be processed, with everything needed to replay or debug it.

    >>> dl = DeadLetter.from_exception({"a": 1}, ValueError("bad"), stage="cast")
    >>> (dl.error_type, dl.error_message, dl.stage, dl.record)
    ('ValueError', 'bad', 'cast', {'a': 1})
    """

    record: Any
    error_type: str
    error_message: str
    stage: str
    attempt: int = 1
    run_id: str | None = attrs.field(factory=current_run_id)
    time: str = attrs.field(factory=_now)
    traceback: str = ""
    target: str | None = None
    id: str | None = None
    status: int | None = None
    # the stored dead letter this one was replayed from (`sesa_fp.replay`), when it failed again
    replay_of: str | None = None

    @classmethod
    def from_exception(
        cls, record: Any, exc: BaseException, *, stage: str, **context: Any
    ) -> DeadLetter:
        """Build a dead letter from a caught exception, keeping a short traceback summary."""
        frames = _tb.extract_tb(exc.__traceback__)[-3:]
        summary = "".join(_tb.format_list(frames)).rstrip()
        return cls(
            record=record,
            error_type=type(exc).__name__,
            error_message=str(exc),
            stage=stage,
            traceback=summary,
            **context,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (what a DLQ part line holds)."""
        return attrs.asdict(self, recurse=False)


def is_failure(item: Any) -> bool:
    """True for a ``Failure`` flowing down a stream.

    >>> is_failure(Failure(1)), is_failure({"a": 1}), is_failure(Success({"a": 1}))
    (True, False, False)
    """
    return type(item) is Failure


def good_records(items: Iterable[Any]) -> Iterator[Any]:
    """The records of a stream, ``Success`` unwrapped, failures skipped.

    >>> list(good_records([{"a": 1}, Failure("x"), Success({"b": 2})]))
    [{'a': 1}, {'b': 2}]
    """
    for item in items:
        t = type(item)
        if t is Failure:
            continue
        yield item.unwrap() if t is Success else item


def as_record(item: Any) -> Any:
    """A good item as a bare record (``Success`` unwrapped); bare records come back as they are.

    >>> as_record(Success({"a": 1})), as_record({"a": 1})
    ({'a': 1}, {'a': 1})
    """
    return item.unwrap() if type(item) is Success else item


def split_results(items: Iterable[Any]) -> tuple[list[Any], list[Any]]:
    """A batch split into its records (``Success`` unwrapped) and its ``Failure`` items.

    >>> split_results([{"a": 1}, Failure("x"), Success({"b": 2})])
    ([{'a': 1}, {'b': 2}], [<Failure: x>])
    """
    records: list[Any] = []
    failures: list[Any] = []
    for item in items:
        t = type(item)
        if t is Failure:
            failures.append(item)
        else:
            records.append(item.unwrap() if t is Success else item)
    return records, failures


def each_record(
    upstream: Iterable[Any],
    fn: Callable[[Any], Any],
    *,
    stage: str,
    errors: tuple[type[BaseException], ...],
    stats: StageStats,
    passthrough: bool = False,
    **context: Any,
) -> Iterator[Any]:
    """The one record loop every stage, loader and adapter runs: a ``Failure`` passes on
    untouched; a record (``Success`` unwrapped) goes through ``fn``, whose ``None`` drops it on
    purpose and whose exception of a type in ``errors`` becomes ``Failure(DeadLetter)`` with
    ``context`` (``target=...``); any other exception stops the stream as a `StageError`
    naming the stage. With ``passthrough=True`` fn's result is ignored and the record itself
    goes on (a writer's ``write``). Counts go to ``stats`` once, when the loop ends.

    >>> st = StageStats("double")
    >>> out = list(each_record([{"n": 1}, {"n": "x"}, {"n": 0}],
    ...                        lambda r: {"n": r["n"] + 1} if r["n"] != 0 else None,
    ...                        stage="double", errors=(TypeError,), stats=st))
    >>> out[0], type(out[1]).__name__, (st.n_in, st.n_out, st.dropped, st.failed)
    ({'n': 2}, 'Failure', (3, 2, 1, 1))
    """
    n_in = n_out = dropped = failed = 0
    try:
        for item in upstream:
            n_in += 1
            t = type(item)
            if t is Failure:
                if type(item.failure()) is PartMark:
                    n_in -= 1  # a marker, not a record
                else:
                    n_out += 1
                yield item
                continue
            if t is Success:
                item = item.unwrap()
            try:
                out = fn(item)
                if passthrough:
                    out = item
            except SesaError:
                raise  # a broken pipeline (an unreachable target...), never a bad record
            except errors as exc:
                failed += 1
                n_out += 1
                yield Failure(DeadLetter.from_exception(item, exc, stage=stage, **context))
                continue
            except Exception as exc:
                raise StageError(f"stage {stage!r} failed: {type(exc).__name__}: {exc}") from exc
            if out is None:
                dropped += 1
                continue
            n_out += 1
            yield out
    finally:
        stats.add(n_in=n_in, n_out=n_out, dropped=dropped, failed=failed)


def dead_letters(items: Iterable[Any]) -> Iterator[DeadLetter]:
    """The dead letters of a stream.

    >>> dl = DeadLetter(record=1, error_type="E", error_message="m", stage="s")
    >>> [d.stage for d in dead_letters([{"a": 1}, Failure(dl)])]
    ['s']
    """
    for item in items:
        if type(item) is Failure:
            yield item.failure()


class _Lifted(Stage):
    """``stage(fn)``: a pure record function over a stream of records and failures."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        name: str,
        errors: tuple[type[BaseException], ...],
    ) -> None:
        super().__init__(name)
        self.fn = fn
        self.errors = errors

    def __repr__(self) -> str:
        return f"stage({self.name})"

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        return each_record(upstream, self.fn, stage=self.name, errors=self.errors,
                           stats=self.stats)


def _fn_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__stage_name__", None) or getattr(fn, "__name__", None) or repr(fn)


def stage(
    fn: Callable[[Any], Any],
    *,
    name: str | None = None,
    errors: tuple[type[BaseException], ...] = (Exception,),
) -> Stage:
    """Lift ``Record -> Record | None`` into a stage: ``None`` drops, a raised ``errors`` type
    becomes ``Failure(DeadLetter)``; any other exception stops the run naming the stage.

    >>> from sesa_fp import pipe
    >>> out = list(pipe([{"n": "1"}, {"n": "x"}, {"n": ""}],
    ...                 stage(lambda r: {"n": int(r["n"])} if r["n"] else None, name="to_int",
    ...                       errors=(ValueError,))))
    >>> out[0], out[1].failure().stage, len(out)
    ({'n': 1}, 'to_int', 2)
    """
    if not callable(fn):
        raise TypeError(f"stage() needs a callable, got {fn!r}")
    refuse_sinks(fn, "inside stage(), once per record")
    errors = tuple(errors)
    if not all(isinstance(e, type) and issubclass(e, BaseException) for e in errors):
        raise TypeError(f"stage(errors=...) must be exception types, got {errors!r}")
    return _Lifted(fn, name or _fn_name(fn), errors)
