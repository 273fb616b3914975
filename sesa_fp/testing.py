"""Helpers for testing transforms: record strategies, the transform laws, a job's chain.

- `records(example=..., types=...)`: a hypothesis strategy of records shaped like an example
  record or a ``field -> type`` mapping.
- `check_transform(fn, records)`: asserts the laws every transform obeys — it returns a
  record or None, or raises one of its declared errors; it leaves its input alone unless it
  says it changes it; the same input gives the same output.
- `run_chain(job, records)`: a YAML job's ``transform.chain`` on a list of records, in
  memory: no source read, nothing staged or loaded.

Needs ``hypothesis`` (``pip install 'sesa_fp[testing]'``).

>>> from sesa_fp.transforms import normalize
>>> check_transform(normalize(), records(example={"title": " a ", "n": 1}), max_examples=20)
TransformCheck(records=20, returned=20, dropped=0, raised=0)
"""

from __future__ import annotations

import copy
import datetime as _dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.strategies import SearchStrategy
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("sesa_fp.testing needs hypothesis: pip install 'sesa_fp[testing]'") from exc

from sesa_fp.errors import ConfigError, RecordError
from sesa_fp.result import DeadLetter

__all__ = ["ChainResult", "TransformCheck", "check_transform", "records", "run_chain",
           "value_strategy"]

_SIMPLE: dict[Any, Callable[[], SearchStrategy[Any]]] = {
    str: st.text,
    "str": st.text,
    int: st.integers,
    "int": st.integers,
    float: lambda: st.floats(allow_nan=False, allow_infinity=False),
    "float": lambda: st.floats(allow_nan=False, allow_infinity=False),
    bool: st.booleans,
    "bool": st.booleans,
    _dt.datetime: lambda: st.datetimes(timezones=st.just(_dt.UTC)),
    "datetime": lambda: st.datetimes(timezones=st.just(_dt.UTC)),
    _dt.date: st.dates,
    "date": st.dates,
    "iso_datetime": lambda: st.datetimes(timezones=st.just(_dt.UTC)).map(
        lambda d: d.isoformat().replace("+00:00", "Z")),
    "iso_date": lambda: st.dates().map(_dt.date.isoformat),
    type(None): st.none,
    "none": st.none,
}


def _looks_iso(text: str) -> str | None:
    if len(text) == 10:
        try:
            _dt.date.fromisoformat(text)
            return "iso_date"
        except ValueError:
            return None
    if len(text) >= 16 and text[4:5] == "-" and "T" in text:
        try:
            _dt.datetime.fromisoformat(text)
            return "iso_datetime"
        except ValueError:
            return None
    return None


def value_strategy(spec: Any) -> SearchStrategy[Any]:
    """A strategy for one field: a type (``int``, ``"datetime"``, ``"iso_datetime"``...), an
    example value (an ISO date string gives ISO date strings), a nested mapping (a record) or
    a strategy, used as it is.

    >>> from hypothesis import find
    >>> find(value_strategy("int"), lambda n: n > 9)
    10
    >>> find(value_strategy("2025-09-06T10:00:00Z"), lambda s: True)
    '2000-01-01T00:00:00Z'
    """
    if isinstance(spec, SearchStrategy):
        return spec
    if isinstance(spec, (type, str)) and spec in _SIMPLE and not (
            isinstance(spec, str) and _looks_iso(spec)):
        return _SIMPLE[spec]()
    if isinstance(spec, Mapping):
        return records(example=spec)
    if isinstance(spec, (list, tuple)):
        return st.lists(value_strategy(spec[0]) if spec else st.none(), max_size=5)
    if isinstance(spec, str):
        kind = _looks_iso(spec)
        return _SIMPLE[kind]() if kind else st.text()
    if isinstance(spec, type):
        raise ConfigError(f"no strategy for type {spec.__name__}: give a strategy instead")
    return value_strategy(type(spec))


def records(example: Mapping[str, Any] | None = None, *,
            types: Mapping[str, Any] | None = None, nullable: bool | Sequence[str] = False,
            optional: bool | Sequence[str] = False) -> SearchStrategy[dict[str, Any]]:
    """Records shaped like ``example`` (each field's value type, nested records and lists;
    ISO date strings stay ISO date strings) and/or ``types`` (``field -> type or strategy``,
    which wins). ``nullable`` lets values be None, ``optional`` lets fields be absent (True
    for all fields, or a list of names): the inputs real data brings.

    >>> from hypothesis import find
    >>> find(records(types={"n": int, "at": "iso_datetime"}), lambda r: r["n"] < 0)
    {'n': -1, 'at': '2000-01-01T00:00:00Z'}
    """
    fields: dict[str, Any] = dict(example or {})
    fields.update(types or {})
    if not fields:
        raise ConfigError("records() needs an example record or a types mapping")

    def chosen(flag: bool | Sequence[str], name: str) -> bool:
        return flag is True or (not isinstance(flag, bool) and name in flag)

    required: dict[str, SearchStrategy[Any]] = {}
    extra: dict[str, SearchStrategy[Any]] = {}
    for name, spec in fields.items():
        strategy = value_strategy(spec)
        if chosen(nullable, name):
            strategy = st.none() | strategy
        (extra if chosen(optional, name) else required)[name] = strategy
    return st.fixed_dictionaries(required, optional=extra)


@attrs.frozen
class TransformCheck:
    """What `check_transform` saw: records tried, and how many were returned, dropped
    (None) or raised a declared error."""

    records: int
    returned: int
    dropped: int
    raised: int


def _declared(fn: Any, errors: tuple[type[BaseException], ...] | None
              ) -> tuple[Callable[[Any], Any], tuple[type[BaseException], ...], Any]:
    """The record function to call, the errors it may raise, and a closer (for a
    `Transformer`, opened once)."""
    from sesa_fp.transforms.classes import Transformer, TransformerStage

    if isinstance(fn, TransformerStage):
        fn = fn.cls(**fn.options)
    if isinstance(fn, type) and issubclass(fn, Transformer):
        fn = fn()
    if isinstance(fn, Transformer):
        fn.open()
        # the seed's contract: any exception of map_record makes a dead letter
        return fn.map_record, errors or (Exception,), fn.close
    inner = getattr(fn, "fn", None)
    if callable(inner) and isinstance(getattr(fn, "errors", None), tuple):  # stage(fn, ...)
        return inner, errors or fn.errors, None
    if not callable(fn):
        raise TypeError(f"check_transform needs a record function, got {fn!r}")
    return fn, errors or (RecordError,), None


def _outcome(call: Callable[[Any], Any], record: Any,
             errors: tuple[type[BaseException], ...]) -> tuple[str, Any]:
    try:
        return "returned", call(record)
    except errors as exc:
        return "raised", (type(exc), str(exc))
    except Exception as exc:
        raise AssertionError(
            f"transform raised {type(exc).__name__}: {exc}, which is not among its declared "
            f"errors {tuple(e.__name__ for e in errors)}, for {record!r}") from exc


def _check_one(call: Callable[[Any], Any], record: Any,
               errors: tuple[type[BaseException], ...], mutates: bool,
               counts: dict[str, int]) -> None:
    original = copy.deepcopy(record)
    first_in = copy.deepcopy(record)
    kind, value = _outcome(call, first_in, errors)
    if not mutates and first_in != original:
        from sesa_fp.preview import changes

        diff = "; ".join(map(str, changes(original, first_in)))
        raise AssertionError(f"transform changed its input in place ({diff}) for {original!r}; "
                             "return a new record, or declare it: check_transform(..., "
                             "mutates=True)")
    if kind == "returned" and value is not None and not isinstance(value, Mapping):
        raise AssertionError(f"transform returned {type(value).__name__} {value!r}, not a "
                             f"record or None, for {original!r}")
    kind2, value2 = _outcome(call, copy.deepcopy(original), errors)
    if (kind, value) != (kind2, value2):
        raise AssertionError(f"transform is not deterministic for {original!r}: first "
                             f"{kind} {value!r}, then {kind2} {value2!r}")
    counts["records"] += 1
    counts["dropped" if kind == "returned" and value is None else kind] += 1


def check_transform(
    fn: Any,
    records: Iterable[Mapping[str, Any]] | SearchStrategy[Any],
    *,
    errors: Sequence[type[BaseException]] | None = None,
    mutates: bool = False,
    max_examples: int = 100,
) -> TransformCheck:
    """Assert the transform laws for ``fn`` on every record of ``records`` (a list, or a
    hypothesis strategy of records, tried ``max_examples`` times): it returns a record (a
    mapping) or None, or raises one of ``errors`` (default: a `stage`'s own ``errors``,
    ``Exception`` for a `Transformer` as the seed's contract says, else `RecordError`); it
    does not change its input unless ``mutates=True``; called twice on equal inputs it gives
    equal results. ``fn`` may be a function, a `stage(...)`, a `Transformer` class, instance
    or `python_class(...)` stage. Raises AssertionError naming the law and the record.

    >>> def bad(rec):
    ...     rec["seen"] = True
    ...     return rec
    >>> check_transform(bad, [{"a": 1}])
    Traceback (most recent call last):
    AssertionError: transform changed its input in place (seen: <missing> -> True) for ...
    >>> check_transform(bad, [{"a": 1}], mutates=True)
    TransformCheck(records=1, returned=1, dropped=0, raised=0)
    """
    call, declared, close = _declared(fn, tuple(errors) if errors is not None else None)
    counts = {"records": 0, "returned": 0, "dropped": 0, "raised": 0}
    try:
        if isinstance(records, SearchStrategy):
            @settings(max_examples=max_examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(records)
            def law(record: Any) -> None:
                _check_one(call, record, declared, mutates, counts)

            law()
        else:
            for record in records:
                _check_one(call, record, declared, mutates, counts)
    finally:
        if close is not None:
            close()
    return TransformCheck(**counts)


@attrs.frozen
class ChainResult:
    """What a job's transform chain made of some records: the records that would reach the
    loader, the dead letters, and how many were dropped on purpose."""

    records: list[Any]
    dead_letters: list[DeadLetter]
    dropped: int


def run_chain(job: str | Path | Any, records: Iterable[Mapping[str, Any]], *,
              sets: Mapping[str, str] | None = None,
              environ: Mapping[str, str] | None = None) -> ChainResult:
    """Run a YAML job's ``transform.chain`` (a path, or a loaded `JobSpec`) on ``records`` in
    memory: the extractor, staging, loader and DLQ are not built, so nothing is read,
    written or contacted. ``sets`` are the ``--set`` variables (``ds`` ...), ``environ`` what
    ``{{ env.NAME }}`` reads (default: the process environment).

    >>> import tempfile, pathlib
    >>> job = pathlib.Path(tempfile.mkdtemp()) / "job.yaml"
    >>> _ = job.write_text('''
    ... job_name: demo
    ... extractor: {type: jsonl, path: in.jsonl}
    ... transform: {chain: [{type: normalize}, {type: cast, fields: [n], to: int}]}
    ... loader: {type: files, dataset: out, connection: {root: out}}
    ... ''')
    >>> result = run_chain(job, [{"n": " 7 "}, {"n": "x"}])
    >>> result.records, [d.error_type for d in result.dead_letters], result.dropped
    ([{'n': 7}], ['CastError'], 0)
    """
    from sesa_fp.config.builder import build_transforms, load_job
    from sesa_fp.config.spec import JobSpec
    from sesa_fp.result import split_results
    from sesa_fp.stream import pipe

    spec = job if isinstance(job, JobSpec) else load_job(job, sets or {}, environ)
    stream = pipe(list(records), *build_transforms(spec))
    good, failures = split_results(stream)
    dropped = sum(s.dropped for s in stream.stats())
    return ChainResult(good, [f.failure() for f in failures], dropped)
