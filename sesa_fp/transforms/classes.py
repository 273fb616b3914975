"""The seed's `Transformer` class contract, adapted into a stage opened once per worker."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import more_itertools
from returns.result import Failure

from sesa_fp.concurrency import worker_scope
from sesa_fp.errors import ConfigError
from sesa_fp.imports import import_object
from sesa_fp.result import DeadLetter, each_record, split_results
from sesa_fp.secrets import mask_mapping
from sesa_fp.stats import Stage

__all__ = ["Transformer", "TransformerStage", "python_class"]

Record = dict[str, Any]


class Transformer:
    """Subclass and override `map_record` (or `map_batch`); `open`/`close` run once per worker
    thread, so per-thread clients belong there. Returning None from `map_record` drops.

    >>> class Upper(Transformer):
    ...     def map_record(self, rec):
    ...         return {**rec, "t": rec["t"].upper()}
    >>> from sesa_fp import pipe
    >>> list(pipe([{"t": "a"}], python_class(Upper)))
    [{'t': 'A'}]
    """

    def open(self) -> None:
        """Acquire per-worker resources."""

    def close(self) -> None:
        """Release what `open` acquired."""

    def map_record(self, rec: Record) -> Record | None:
        """Transform one record; None drops it."""
        return rec

    def map_batch(self, batch: list[Record]) -> list[Record]:
        """Transform a batch; the default applies `map_record` and drops the Nones."""
        out = []
        for rec in batch:
            res = self.map_record(rec)
            if res is not None:
                out.append(res)
        return out


class TransformerStage(Stage):
    """A `Transformer` subclass as a stage: record errors become dead letters."""

    def __init__(self, cls: type, path: str, options: dict[str, Any], batch_size: int) -> None:
        super().__init__(path)
        self.cls = cls
        self.path = path
        self.options = options
        self.batch_size = batch_size
        self.batch_mode = (
            getattr(cls, "map_batch", None) is not Transformer.map_batch
            and getattr(cls, "map_record", None) is Transformer.map_record
        )

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in mask_mapping(self.options).items())
        return f"python_class({self.path!r}{opts})"

    def _open(self) -> Any:
        try:
            instance = self.cls(**self.options)
        except TypeError as exc:
            raise ConfigError(f"python_class {self.path!r}: cannot construct: {exc}") from exc
        instance.open()
        return instance

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        scope = worker_scope()
        if scope is not None:
            yield from self._apply(scope.get(self, self._open, lambda t: t.close()), upstream)
            return
        instance = self._open()
        try:
            yield from self._apply(instance, upstream)
        finally:
            instance.close()

    def _apply(self, instance: Any, upstream: Iterable[Any]) -> Iterator[Any]:
        if not self.batch_mode:
            # the seed's contract: any exception of map_record is a bad record
            yield from each_record(upstream, instance.map_record, stage=self.name,
                                   errors=(Exception,), stats=self.stats)
            return
        n_in = n_out = dropped = failed = 0
        try:
            for chunk in more_itertools.chunked(upstream, self.batch_size):
                n_in += len(chunk)
                good, failures = split_results(chunk)
                n_out += len(failures)
                yield from failures
                try:
                    out = instance.map_batch(good)
                except Exception as exc:
                    failed += len(good)
                    n_out += len(good)
                    for rec in good:
                        yield Failure(DeadLetter.from_exception(rec, exc, stage=self.name))
                    continue
                dropped += len(good) - len(out)
                n_out += len(out)
                yield from out
        finally:
            self.stats.add(n_in=n_in, n_out=n_out, dropped=dropped, failed=failed)


def python_class(
    path: str | type, *, batch_size: int = 1000, **options: Any
) -> TransformerStage:
    """Load a `Transformer` subclass from ``"pkg.mod:Class"`` and adapt it into a stage.
    ``options`` are passed to the class's constructor.

    >>> python_class("json:JSONDecoder")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: python_class 'json:JSONDecoder' is not a Transformer: ...
    """
    cls = import_object(path) if isinstance(path, str) else path
    label = path if isinstance(path, str) else f"{cls.__module__}:{cls.__qualname__}"
    if not isinstance(cls, type) or not callable(getattr(cls, "map_record", None)):
        raise ConfigError(f"python_class {label!r} is not a Transformer: it needs "
                          "map_record(rec) (and optionally open/close/map_batch)")
    return TransformerStage(cls, label, dict(options), batch_size)
