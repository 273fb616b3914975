"""Third-party plugins from entry points, including the seed's class contracts
(``Extractor.open/iter_records/close``, ``LoaderClient.connect/prepare_target/upsert_batch``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import more_itertools
from returns.result import Failure

from sesa_fp.dataset import DatasetTemplate
from sesa_fp.errors import ConfigError, RecordError
from sesa_fp.result import DeadLetter, as_record, is_failure, stage
from sesa_fp.secrets import mask_mapping
from sesa_fp.stats import Stage
from sesa_fp.transforms.classes import python_class

__all__ = ["plugin_extractor", "plugin_loader", "plugin_transform"]


def _load(kind: str, name: str) -> Any:
    from sesa_fp.config.registry import resolve

    obj = resolve(kind, name, kind)
    if hasattr(obj, "build") and hasattr(obj, "spec"):
        raise ConfigError(f"{name!r} is a built-in {kind}; use its own function")
    return obj


def _construct(obj: Any, name: str, options: dict[str, Any]) -> Any:
    try:
        return obj(**options)
    except TypeError as exc:
        raise ConfigError(f"plugin {name!r}: bad options {sorted(options)}: {exc}") from exc


class _SeedExtractor:
    def __init__(self, name: str, cls: Any, options: dict[str, Any]) -> None:
        self.name, self.cls, self.options = name, cls, options

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in mask_mapping(self.options).items())
        return f"plugin_extractor({self.name!r}{opts})"

    def __iter__(self) -> Iterator[Any]:
        extractor = _construct(self.cls, self.name, self.options)
        extractor.open()
        try:
            yield from extractor.iter_records()
        finally:
            extractor.close()


def plugin_extractor(name: str, **options: Any) -> Iterable[Any]:
    """A source from the ``sesa.extractors`` entry point ``name``: a seed-style ``Extractor``
    class (``open/iter_records/close``) or a function returning an iterable of records."""
    obj = _load("extractor", name)
    if isinstance(obj, type) and hasattr(obj, "iter_records"):
        return _SeedExtractor(name, obj, options)
    return _construct(obj, name, options)


class _SeedLoader(Stage):
    kind = "loader"
    sink = True

    def __init__(self, name: str, cls: Any, connection: dict[str, Any], dataset: str,
                 options: dict[str, Any], batch_size: int) -> None:
        super().__init__(f"plugin_loader({name!r})")
        self.plugin, self.cls, self.connection = name, cls, connection
        self.dataset = DatasetTemplate(dataset)
        self.options, self.batch_size = options, batch_size

    def __repr__(self) -> str:
        return (f"plugin_loader({self.plugin!r}, connection={mask_mapping(self.connection)!r}, "
                f"dataset={self.dataset.template!r}, options={mask_mapping(self.options)!r})")

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        with self.exclusive():
            yield from self._load(upstream)

    def _load(self, upstream: Iterable[Any]) -> Iterator[Any]:
        client = _construct(self.cls, self.plugin, self.connection)
        client.connect()
        prepared: set[str] = set()
        n_in = failed = 0
        try:
            for chunk in more_itertools.chunked(upstream, self.batch_size):
                n_in += len(chunk)
                # results replace their inputs in place: one per record, in input order
                out: list[Any] = list(chunk)
                groups: dict[str, list[int]] = {}
                for i, item in enumerate(chunk):
                    if is_failure(item):
                        continue
                    rec = out[i] = as_record(item)
                    try:
                        groups.setdefault(self.dataset.render(rec), []).append(i)
                    except RecordError as exc:
                        failed += 1
                        out[i] = Failure(DeadLetter.from_exception(rec, exc, stage=self.name))
                for target, idx in groups.items():
                    batch = [out[i] for i in idx]
                    try:
                        if target not in prepared:
                            client.prepare_target(target, self.options)
                            prepared.add(target)
                        client.upsert_batch(target, batch, self.options)
                    except Exception as exc:
                        failed += len(batch)
                        for i, rec in zip(idx, batch, strict=True):
                            out[i] = Failure(DeadLetter.from_exception(
                                rec, exc, stage=self.name, target=target))
                        continue
                    # upsert_batch returned: the seed's contract for "the target has them"
                    self.stats.add(committed=len(batch))
                yield from out
            client.finalize()
        finally:
            self.stats.add(n_in=n_in, n_out=n_in, failed=failed)


def plugin_loader(name: str, *, connection: dict[str, Any] | None = None, dataset: str,
                  options: dict[str, Any] | None = None, batch_size: int = 1000) -> Stage:
    """A loader stage from the ``sesa.loaders`` entry point ``name``: a seed-style
    ``LoaderClient`` class (records of a failed ``upsert_batch`` become dead letters) or a
    function returning a stage."""
    obj = _load("loader", name)
    if isinstance(obj, type) and hasattr(obj, "upsert_batch"):
        return _SeedLoader(name, obj, connection or {}, dataset, options or {}, batch_size)
    return _construct(obj, name, {"connection": connection or {}, "dataset": dataset,
                                  "options": options or {}})


def plugin_transform(name: str, **options: Any) -> Any:
    """A stage from the ``sesa.transforms`` entry point ``name``: a ``Transformer`` subclass,
    or a factory returning a record function."""
    obj = _load("transform", name)
    if isinstance(obj, type) and hasattr(obj, "map_record"):
        return python_class(obj, **options)
    fn = _construct(obj, name, options)
    return stage(fn, name=name)
