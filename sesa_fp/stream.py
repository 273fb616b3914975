"""The core combinators: pipe, batched, unbatched, chain, tee, partition.

No I/O here. Every stage is a function ``Iterable -> Iterator``; nothing runs until the
result is consumed. The threaded ones (`map_concurrent`, `merge`) live in
`sesa_fp.concurrency` and are re-exported here.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import more_itertools
from returns.result import Failure, Success

from sesa_fp.concurrency import (
    Merge,
    WorkerScope,
    map_concurrent,
    merge,
    worker_scope,
)
from sesa_fp.errors import ConfigError
from sesa_fp.logs import log_event
from sesa_fp.marks import PartMark
from sesa_fp.result import DeadLetter, each_record
from sesa_fp.secrets import mask_url
from sesa_fp.stats import Stage, StageStats, refuse_sinks, stats_of, walk

if TYPE_CHECKING:
    from sesa_fp.preview import Preview

__all__ = [
    "Pipeline",
    "WorkerScope",
    "Writer",
    "batched",
    "chain",
    "map_concurrent",
    "merge",
    "partition",
    "pipe",
    "tee",
    "unbatched",
    "worker_scope",
]


@runtime_checkable
class Writer(Protocol):
    """Where `tee` and `partition` send items: written one by one, then committed or aborted.

    ``commit`` returns how many items it committed (or None when it cannot tell); a writer may
    also have ``prepare()``, called before any record is read, to check its target.
    """

    def write(self, item: Any) -> None: ...

    def commit(self) -> int | None: ...

    def abort(self) -> None: ...


class _CallWriter:
    """Adapts a plain callable (``list.append``, ``print``) to the `Writer` protocol: every
    call that returned is committed."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn
        self.written = 0

    def write(self, item: Any) -> None:
        self.fn(item)
        self.written += 1

    def commit(self) -> int:
        n, self.written = self.written, 0
        return n

    def abort(self) -> None:
        self.written = 0

    def __repr__(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))


def _as_writer(target: Any) -> Writer:
    if isinstance(target, Writer):
        return target
    if callable(target):
        return _CallWriter(target)
    raise TypeError(f"expected a Writer (write/commit/abort) or a callable, got {target!r}")


class Pipeline:
    """A lazy composition made by `pipe`: iterate it to run it, print it to read it.

    >>> p = pipe([1, 2, 3], batched(2))
    >>> list(p)
    [[1, 2], [3]]
    >>> p
    pipe([1, 2, 3], batched(2))
    """

    def __init__(self, source: Iterable[Any], stages: tuple[Callable[..., Any], ...]) -> None:
        self.source = source
        self.stages = stages
        self.source_stats = StageStats(name=_short_repr(source), kind="source")
        _check_sinks(source, stages)

    def children(self) -> tuple[Any, ...]:
        """The source and the stages, in order."""
        return (self.source, *self.stages)

    @property
    def resumable(self) -> bool:
        """True when the source has a lasting position and every stage is record by record
        (`stage`), so the source's position is also this pipeline's."""
        from sesa_fp.position import resumable

        return resumable(self.source) and all(getattr(st, "kind", None) == "stage"
                                              for st in self.stages)

    @property
    def position(self) -> Any:
        """The source's position (see `sesa_fp.position`); None if not `resumable`."""
        return getattr(self.source, "position", None) if self.resumable else None

    def resume(self, start: Any) -> Pipeline:
        """The same pipeline over its source resumed from ``start``."""
        return Pipeline(self.source.resume(start), self.stages)  # type: ignore[attr-defined]

    def stats(self) -> list[StageStats]:
        """Counters of the source and of every stage, nested ones included, in order."""
        out = [self.source_stats, *stats_of(self.source)]
        for st in self.stages:
            out.extend(stats_of(st))
        return out

    def read_count(self) -> int:
        """Records the sources yielded in the last iteration; the partitions of a `merge` of
        pipelines count at their own sources, before their stages drop anything."""
        return _leaf_reads(self.source, self.source_stats.n_out)

    def __iter__(self) -> Iterator[Any]:
        for s in self.stats():
            s.reset()
        its: list[Iterable[Any]] = [self._counted(self.source)]
        for st in self.stages:
            its.append(st(its[-1]))
        return self._drive(its)

    @staticmethod
    def _drive(its: list[Iterable[Any]]) -> Iterator[Any]:
        # Closing the pipeline closes every stage now, not when the garbage collector
        # gets to them: an itertools object between two generators would not pass it on.
        try:
            yield from its[-1]
        finally:
            for it in reversed(its):
                close = getattr(it, "close", None)
                if close is not None:
                    close()

    def _counted(self, source: Iterable[Any]) -> Iterator[Any]:
        n = 0
        try:
            for item in source:
                n += 1
                yield item
        finally:
            self.source_stats.add(n_out=n)

    def to_python(self) -> str:
        """The whole composition as Python source, one stage per line."""
        inner = "".join(f"    {p},\n" for p in [repr(self.source), *map(repr, self.stages)])
        return f"pipe(\n{inner})"

    def _repr_html_(self) -> str:
        from sesa_fp.display import pipeline_html

        return pipeline_html(self)

    def preview(self, n: int = 20) -> Preview:
        """Run the first ``n`` source records through the transforms, loading and staging
        nothing, and show per record what changed, where it would go and any dead letter.

        >>> from sesa_fp import stage
        >>> p = pipe([{"n": "1"}, {"n": "x"}], stage(lambda r: {**r, "n": int(r["n"])},
        ...                                           name="to_int"))
        >>> print(p.preview())
        record 1: n: '1' -> 1
        record 2: dead letter at to_int: ValueError: invalid literal for int() with base 10: 'x'
        """
        from sesa_fp.preview import preview

        return preview(self, n)

    def __repr__(self) -> str:
        parts = [_short_repr(self.source), *map(repr, self.stages)]
        one_line = f"pipe({', '.join(parts)})"
        if len(one_line) <= 88:
            return one_line
        inner = "".join(f"    {p},\n" for p in parts)
        return f"pipe(\n{inner})"


def _leaf_reads(node: Any, n: int) -> int:
    """Records read at the leaves under ``node`` (which yielded ``n`` items itself)."""
    if isinstance(node, Pipeline):
        return node.read_count()
    if isinstance(node, Merge):
        return sum(_leaf_reads(c, k) for c, k in zip(node.sources, node.counts, strict=True))
    return n


def _short_repr(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_sinks(source: Iterable[Any], stages: tuple[Callable[..., Any], ...]) -> None:
    """What a composition must be for its report to be true, checked when it is built: sinks
    are top-level stages of one pipe; no stage, sink or writer object is used twice (they
    hold one stream's counters and commit); no two writers commit to the same place; nothing
    after the last loader can drop a record or make a dead letter of one already loaded."""
    for node in walk(source):
        if node is not source and getattr(node, "sink", False):
            raise ConfigError(f"{node!r} is a sink inside the source {_short_repr(source)}; "
                              "put it in the outer pipe(...), after the source")
    for st in stages:
        for node in walk(st):
            if node is not st and getattr(node, "sink", False):
                raise ConfigError(f"{node!r} is a sink nested inside {st!r}, where it would "
                                  "commit more than once; put it in pipe(...) itself")
    seen: set[int] = set()
    places: dict[str, Any] = {}
    for node in itertools.chain(walk(source), *map(walk, stages)):
        if isinstance(node, Stage) or (isinstance(node, Writer)
                                       and not isinstance(node, _CallWriter)):
            if id(node) in seen:
                raise ConfigError(f"{node!r} appears twice in one pipeline; a stage keeps one "
                                  "stream's counts and a sink or writer commits once per "
                                  "stream: make one for each place (call the factory again)")
            seen.add(id(node))
        location = getattr(node, "location", None)
        if callable(location) and not isinstance(node, Pipeline):
            where = location()
            if where in places:
                raise ConfigError(
                    f"{places[where]!r} and {node!r} both commit to {mask_url(where)}; the "
                    "second commit would replace the first: give each its own prefix")
            places[where] = node
    loaders = [i for i, st in enumerate(stages) if getattr(st, "kind", None) == "loader"]
    for st in stages[loaders[-1] + 1:] if loaders else ():
        if getattr(st, "kind", None) in ("stage", "concurrent"):
            raise ConfigError(f"{st!r} comes after the loader {stages[loaders[-1]]!r}: records "
                              "it drops or fails would already be loaded; put transforms "
                              "before the loader (after it: partition, tee)")


def pipe(source: Iterable[Any], *stages: Callable[[Iterable[Any]], Iterable[Any]]) -> Pipeline:
    """Compose a source with stages, data first, like ``toolz.pipe``; lazy until iterated.

    >>> list(pipe(range(5), batched(2), unbatched()))
    [0, 1, 2, 3, 4]
    """
    for st in stages:
        if not callable(st):
            raise TypeError(f"pipe() stages must be callables, got {st!r}")
    if isinstance(source, Pipeline):
        return Pipeline(source.source, source.stages + tuple(stages))
    return Pipeline(source, tuple(stages))


class _Batched(Stage):
    kind = "batch"

    def __init__(self, n: int) -> None:
        super().__init__(f"batched({n})")
        self.n = n

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        return more_itertools.chunked(upstream, self.n)


def batched(n: int) -> Stage:
    """Group items into lists of ``n`` (the last may be shorter).

    >>> list(batched(2)([1, 2, 3]))
    [[1, 2], [3]]
    >>> batched(0)
    Traceback (most recent call last):
    ValueError: batched(n): n must be a positive int, got 0
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"batched(n): n must be a positive int, got {n!r}")
    return _Batched(n)


class _Unbatched(Stage):
    kind = "batch"

    def __init__(self) -> None:
        super().__init__("unbatched()")

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        return itertools.chain.from_iterable(upstream)


def unbatched() -> Stage:
    """Flatten a stream of batches.

    >>> list(unbatched()([[1, 2], [], [3]]))
    [1, 2, 3]
    """
    return _Unbatched()


class Chain:
    """Stages applied, in order, to one batch: ``chain(a, b)(batch) -> list``."""

    def __init__(self, stages: tuple[Callable[..., Any], ...]) -> None:
        self.stages = stages

    def __call__(self, batch: Iterable[Any]) -> list[Any]:
        import toolz  # on first use: `import sesa_fp` stays light

        return list(toolz.pipe(batch, *self.stages))

    def children(self) -> tuple[Any, ...]:
        return self.stages

    def __repr__(self) -> str:
        return f"chain({', '.join(map(repr, self.stages))})"


def chain(*stages: Callable[[Iterable[Any]], Iterable[Any]]) -> Chain:
    """A function from a batch to the list the stages make of it, for `map_concurrent`.

    >>> list(pipe([1, 2, 3], batched(2), map_concurrent(chain(lambda xs: (x * 10 for x in xs)),
    ...                                                 workers=2, window=2), unbatched()))
    [10, 20, 30]
    >>> chain(tee(print))
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: tee(print) is a sink (it commits once per stream) and cannot run inside chain(), ...
    """  # noqa: E501
    for st in stages:
        if not callable(st):
            raise TypeError(f"chain() stages must be callables, got {st!r}")
    for st in stages:
        refuse_sinks(st, "inside chain()")
    return Chain(tuple(stages))


def _quietly(fn: Callable[[], Any], cause: BaseException, *, what: str) -> None:
    """Run a clean-up while ``cause`` is being raised; its own failure is logged, so it never
    hides the error that stopped the stream."""
    try:
        fn()
    except Exception as exc:
        log_event("cleanup_failed", what=what, error=f"{type(exc).__name__}: {exc}",
                  while_handling=f"{type(cause).__name__}: {cause}")


def _prepare(writer: Any) -> None:
    prepare = getattr(writer, "prepare", None)
    if callable(prepare):
        prepare()


class _Tee(Stage):
    kind = "tee"
    sink = True

    def __init__(self, writer: Writer) -> None:
        super().__init__(f"tee({writer!r})")
        self.writer = writer
        # set by a resumed run (sesa_fp.resume): committed parts to pass on before the
        # source, each as (commit, its items); and whether the source is already drained
        self.replay: list[tuple[Any, Iterable[Any]]] = []
        self.skip_upstream = False
        self.replayed = 0

    def children(self) -> tuple[Any, ...]:
        return (self.writer,)

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        if getattr(self.writer, "journal", False):
            return self._journal(upstream)
        return self._plain(upstream)

    def _journal(self, upstream: Iterable[Any]) -> Iterator[Any]:
        """A journal-mode writer: each part is committed as it closes, and a `PartMark`
        follows its last record down the stream; dead letters passing by are staged too."""
        with self.exclusive():
            writer: Any = self.writer
            _prepare(writer)
            n_in = n_out = failed = 0
            self.replayed = 0
            try:
                for commit, items in self.replay:
                    for item in items:
                        self.replayed += 1
                        yield item
                    yield Failure(_mark(commit))
                ended = writer.ended
                write, write_dead = writer.write, writer.write_dead_letter
                for item in () if self.skip_upstream else upstream:
                    n_in += 1
                    t = type(item)
                    if t is Failure:
                        write_dead(item.failure())
                    else:
                        if t is Success:
                            item = item.unwrap()
                        try:
                            write(item)
                        except (TypeError, ValueError) as exc:
                            item = Failure(DeadLetter.from_exception(item, exc, stage=self.name))
                            write_dead(item.failure())
                            failed += 1
                    n_out += 1
                    yield item
                    if ended:  # a part closed by this write ends with this very record
                        for commit in ended:
                            yield Failure(_mark(commit))
                        ended.clear()
            except BaseException as exc:
                self.stats.add(n_in=n_in + self.replayed, n_out=n_out + self.replayed,
                               failed=failed)
                _quietly(writer.abort, exc, what=f"aborting {writer!r}")
                raise
            self.stats.add(n_in=n_in + self.replayed, n_out=n_out + self.replayed,
                           failed=failed)
            n = writer.commit()
            self.stats.add(committed=n)
            for commit in writer.ended:
                yield Failure(_mark(commit))
            writer.ended.clear()

    def _plain(self, upstream: Iterable[Any]) -> Iterator[Any]:
        with self.exclusive():
            writer = self.writer
            _prepare(writer)  # before the first record is pulled: a missing bucket fails now
            written = self.stats.n_out
            try:
                # an unencodable record becomes a dead letter; everything else passes on
                yield from each_record(upstream, writer.write, stage=self.name,
                                       errors=(TypeError, ValueError), stats=self.stats,
                                       passthrough=True)
            except BaseException as exc:
                _quietly(writer.abort, exc, what=f"aborting {writer!r}")
                raise
            n = writer.commit()
            written = self.stats.n_out - written
            self.stats.add(committed=n if isinstance(n, int) else written)


def _mark(commit: Any) -> PartMark:
    return PartMark(path=commit.path, index=commit.index, records=commit.records,
                    sha256=commit.sha256)


def tee(writer: Writer | Callable[[Any], Any]) -> Stage:
    """Pass items on unchanged and write each record to ``writer`` (staging); the writer is
    committed when the stream ends and aborted if it fails or is abandoned.

    >>> seen = []
    >>> list(pipe([1, 2], tee(seen.append))), seen
    ([1, 2], [1, 2])
    """
    return _Tee(_as_writer(writer))


class _Partition(Stage):
    kind = "partition"
    sink = True

    def __init__(self, dlq: Writer) -> None:
        super().__init__(f"partition({dlq!r})")
        self.dlq = dlq
        # dead letters sent in the last stream, by (stage, error type), for the report
        self.kinds: Counter[tuple[str, str]] = Counter()
        # set by a resumable run on the last partition: called with each part's mark and
        # the good records and dead letters that came since the previous mark
        self.on_mark: Callable[[PartMark, int, int], None] | None = None

    def children(self) -> tuple[Any, ...]:
        return (self.dlq,)

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        with self.exclusive():
            dlq = self.dlq
            _prepare(dlq)
            write = dlq.write
            kinds = self.kinds = Counter()
            n_in = sent = 0
            at_mark = (0, 0)  # (records, dead letters) when the last mark passed
            try:
                for item in upstream:
                    n_in += 1
                    t = type(item)
                    if t is Failure:
                        letter = item.failure()
                        if type(letter) is PartMark:
                            n_in -= 1
                            self._mark(letter, n_in - at_mark[0], sent - at_mark[1])
                            at_mark = (n_in, sent)
                            if self.on_mark is None:
                                yield item  # a later partition finishes the part
                            continue
                        write(letter)
                        sent += 1
                        kinds[(getattr(letter, "stage", "?"),
                               getattr(letter, "error_type", type(letter).__name__))] += 1
                        continue
                    yield item.unwrap() if t is Success else item
            except BaseException as exc:
                # Dead letters are facts: they are committed when the stream fails or stops
                # early too, so a failed run never takes its dead letters with it; a failing
                # commit then is logged, and the error that stopped the stream is raised.
                self.stats.add(n_in=n_in, n_out=n_in - sent, failed=sent)
                _quietly(lambda: self._commit(sent), exc, what=f"committing {dlq!r}")
                raise
            self.stats.add(n_in=n_in, n_out=n_in - sent, failed=sent)
            self._commit(sent)

    def _mark(self, mark: PartMark, records: int, dead: int) -> None:
        """A part's records have all passed: make its dead letters durable, note how many
        parts the dead-letter writer holds, and (last partition) record the part."""
        checkpoint = getattr(self.dlq, "checkpoint", None)
        location = getattr(self.dlq, "location", None)
        key = location() if callable(location) else repr(self.dlq)
        mark.sinks[key] = checkpoint() if callable(checkpoint) else -1
        if self.on_mark is not None:
            self.on_mark(mark, records - dead, dead)

    def _commit(self, sent: int) -> None:
        n = self.dlq.commit()
        self.stats.add(committed=n if isinstance(n, int) else sent)


def partition(dlq: Writer | Callable[[Any], Any]) -> Stage:
    """Pass good records on unwrapped, in order; send each ``Failure``'s dead letter to ``dlq``.

    >>> dead = []
    >>> list(pipe([{"a": 1}, Failure("oops"), Success({"b": 2})], partition(dead.append))), dead
    ([{'a': 1}, {'b': 2}], ['oops'])
    """
    return _Partition(_as_writer(dlq))
