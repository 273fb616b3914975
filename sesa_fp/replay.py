"""`replay_dead_letters`: feed committed dead letters back through a (fixed) job.

Where each letter starts: **at the stage where it failed**, not from the top. A dead letter
holds the *input of the stage that failed* (what `each_record` was given), not the record the
source read. Fed from the top, it would go through the stages before the failing one a second
time: an already cast date cast again, a derived field derived from itself, a
``python_class`` that appends or counts applied twice; none of that is safe to assume
idempotent. Started at the failing stage, the letter gets exactly what the fixed job would
have given it when the fix is in that stage or after it (the usual case: the transform that
raised, or the loader's target, mapping or id, is what was fixed). When the fix is in an
*earlier* stage (its output made a later one fail), the letter's record is that stage's old
output and no replay of the letter can apply the fix: replay the staging prefix instead
(``sesa replay --from``), which runs every source record from the top.

So: a letter of a transform starts at that transform (matched by stage name); a letter of the
loader (its stage is the loader's name, or it names a ``target``) goes straight to the
loader; a letter of the staging ``tee`` (a record staging could not encode) holds the source
record and starts at the first transform. A letter of the source itself (a malformed JSON
line: its record is the file and line, not a record), of a stage this job does not have, or
of a stage name the job uses twice, cannot be replayed: it fails again at once, saying why.

What became of each letter is marked beside it (`sesa_fp.storage.resolved`), only once it is
settled: ``loaded`` when the loader's target acknowledged every record it became, ``dropped``
when the fixed job dropped it on purpose (both written when the loader's stream ends), and
``failed_again`` when it failed again and the replay run's DLQ committed the new dead letter
(``replay_of`` names the old one). A marked letter is skipped by the next replay, so what was
loaded is not loaded again and a letter still failing is pending exactly once: in the
replay run's DLQ. A replay that fails, or is killed before its marks are written, marks
nothing as loaded: the next replay loads those records again, which a deterministic
``id_strategy`` makes harmless (the target ends up the same). One killed after its DLQ
committed but before its ``failed_again`` marks leaves no duplicate either: the new letters'
``replay_of`` names the old ones, and `read_dead_letters` skips a letter a committed one
replays.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import attrs
from returns.result import Failure

from sesa_fp.errors import ConfigError, StageError
from sesa_fp.logs import log_event
from sesa_fp.report import default_dlq_uri
from sesa_fp.result import DeadLetter
from sesa_fp.secrets import mask_url
from sesa_fp.sources.dead_letters import DeadLetterSource, StoredLetter, read_dead_letters
from sesa_fp.stats import Stage
from sesa_fp.storage.location import normalized
from sesa_fp.storage.resolved import write_marks
from sesa_fp.storage.writer import dlq_sink
from sesa_fp.stream import Pipeline, Writer, batched, map_concurrent, partition, pipe

__all__ = ["job_parts", "replay_dead_letters", "start_stage"]


def start_stage(letter: StoredLetter | dict[str, Any], transforms: Sequence[Any],
                loader: Any) -> tuple[int | None, str]:
    """Where a dead letter re-enters the job: the index of the transform it failed in
    (``len(transforms)``: the loader), or None and the reason it cannot be replayed.

    >>> from sesa_fp import stage
    >>> ts = [stage(str.strip, name="strip"), stage(str.upper, name="upper")]
    >>> start_stage({"stage": "upper"}, ts, None), start_stage({"stage": "tee(x)"}, ts, None)
    ((1, ''), (0, ''))
    >>> "is not a transform or the loader" in start_stage({"stage": "read_jsonl(...)"}, ts, None)[1]
    True
    """
    letter = letter.letter if isinstance(letter, StoredLetter) else letter
    name = str(letter.get("stage") or "")
    names = [_name(st) for st in transforms]
    hits = [i for i, n in enumerate(names) if n == name]
    if len(hits) == 1:
        return hits[0], ""
    if hits:
        return None, (f"stage {name!r} appears {len(hits)} times in the job's transforms and "
                      "the dead letter does not say which one failed")
    if (loader is not None and name == _name(loader)) or letter.get("target") is not None \
            or name.startswith(("load_", "plugin_loader(")):
        return len(transforms), ""
    if name.startswith("tee("):  # staging could not encode it: the record is the source's
        return 0, ""
    return None, (f"stage {name!r} is not a transform or the loader of this job "
                  f"(transforms: {names or 'none'}; loader: "
                  f"{_name(loader) if loader is not None else 'none'})")


def _name(st: Any) -> str:
    return str(getattr(st, "name", None) or repr(st))


class _Ledger:
    """Which stored letter each record on its way to the loader came from (in order: a loader
    yields one result per input record, in input order), and what became of each letter."""

    def __init__(self, fs: Callable[[], Any]) -> None:
        self._fs = fs
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.fifo: collections.deque[StoredLetter] = collections.deque()
        self.open: dict[str, list[Any]] = {}  # id -> [letter, records in flight, failed]
        self.settled: dict[str, tuple[str, str]] = {}  # id -> (folder, loaded|dropped)
        self.failed: dict[str, str] = {}  # id -> folder, until the DLQ commits
        self.counts = {"loaded": 0, "dropped": 0, "failed_again": 0}
        self.marks_written = 0

    def sent(self, letter: StoredLetter) -> None:
        with self._lock:
            self.fifo.append(letter)
            entry = self.open.setdefault(letter.id, [letter, 0, False])
            entry[1] += 1

    def dropped(self, letter: StoredLetter) -> None:
        with self._lock:
            self.settled[letter.id] = (letter.folder, "dropped")
            self.counts["dropped"] += 1

    def result(self, ok: bool) -> StoredLetter:
        with self._lock:
            if not self.fifo:
                raise StageError("replay_dead_letters: the loader yielded more results than "
                                 "it was given records; which dead letter each belongs to "
                                 "cannot be told (a loader must yield one result per record, "
                                 "in order)")
            letter = self.fifo.popleft()
            entry = self.open[letter.id]
            entry[1] -= 1
            entry[2] = entry[2] or not ok
            if entry[1] == 0:
                del self.open[letter.id]
                if entry[2]:
                    self.failed[letter.id] = letter.folder
                    self.counts["failed_again"] += 1
                else:
                    self.settled[letter.id] = (letter.folder, "loaded")
                    self.counts["loaded"] += 1
            return letter

    def check_drained(self) -> None:
        if self.fifo:
            raise StageError(f"replay_dead_letters: the loader yielded no result for "
                             f"{len(self.fifo)} records it was given; which dead letters "
                             "were loaded cannot be told, so none is marked resolved")

    def _write(self, marks: dict[str, tuple[str, str]], run_id: str | None) -> None:
        by_folder: dict[str, dict[str, str]] = {}
        for lid, (folder, outcome) in marks.items():
            by_folder.setdefault(folder, {})[lid] = outcome
        for folder, group in by_folder.items():
            write_marks(self._fs(), folder, group, run_id=run_id)
            self.marks_written += len(group)

    def forget_loaded(self) -> None:
        """Unmark what the loader passed on, when its commit is not certain."""
        with self._lock:
            self.settled = {k: v for k, v in self.settled.items() if v[1] != "loaded"}

    def write_settled(self, run_id: str | None) -> None:
        """Mark what the loader acknowledged and what the job dropped."""
        with self._lock:
            marks, self.settled = self.settled, {}
        self._write(marks, run_id)

    def write_failed(self, run_id: str | None) -> None:
        """Mark the letters whose new dead letters the replay's DLQ has just committed."""
        with self._lock:
            failed, self.failed = self.failed, {}
        self._write({lid: (folder, "failed_again") for lid, folder in failed.items()}, run_id)


class _FromFailedStage:
    """``letters -> [(letter, results)]``: each letter's record through the job's transforms
    from the one it failed in (a batch per `map_concurrent` task, like the job's own chain;
    one record at a time, so a drop or a failure stays with its letter)."""

    def __init__(self, transforms: Sequence[Any], loader: Any) -> None:
        self.transforms = tuple(transforms)
        self.loader = loader

    def __repr__(self) -> str:
        return f"from_failed_stage({', '.join(map(repr, self.transforms))})"

    def children(self) -> tuple[Any, ...]:
        return self.transforms

    def __call__(self, letters: list[StoredLetter]) -> list[tuple[StoredLetter, list[Any]]]:
        return [self._one(letter) for letter in letters]

    def _one(self, letter: StoredLetter) -> tuple[StoredLetter, list[Any]]:
        k, why = start_stage(letter, self.transforms, self.loader)
        if k is None:
            return letter, [Failure(_not_replayed(letter, why))]
        items: Iterable[Any] = [letter.record]
        for st in self.transforms[k:]:
            items = st(items)
        return letter, list(items)


def _not_replayed(letter: StoredLetter, why: str) -> DeadLetter:
    d = letter.letter
    return DeadLetter(record=letter.record, error_type=str(d.get("error_type") or "?"),
                      error_message=f"not replayed: {why}; it first failed with: "
                                    f"{d.get('error_message', '')}",
                      stage=letter.stage, traceback=str(d.get("traceback") or ""),
                      target=d.get("target"), id=d.get("id"), status=d.get("status"),
                      replay_of=letter.id)


class _Fanout(Stage):
    """Flattens ``(letter, results)`` and notes which letter each result came from."""

    kind = "batch"

    def __init__(self, ledger: _Ledger) -> None:
        super().__init__("letters_to_records()")
        self.ledger = ledger

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        ledger = self.ledger
        ledger.reset()
        for letter, items in itertools.chain.from_iterable(upstream):
            if not items:  # the fixed job dropped it on purpose (counted by its stage)
                ledger.dropped(letter)
                continue
            for item in items:
                ledger.sent(letter)
                yield item


class _Resolve(Stage):
    """After the loader: pairs each result with its letter; a failure names the letter it
    replays (``replay_of``). Loaded letters are marked when the loader's stream has ended
    (a loader may commit only then, as `load_files` does) and its committed count matches;
    a stream that fails marks only what the job dropped."""

    kind = "ledger"

    def __init__(self, ledger: _Ledger, loader: Any) -> None:
        super().__init__("resolve_dead_letters()")
        self.ledger = ledger
        self.loader = loader

    def describe(self) -> dict[str, Any]:
        """What became of the letters replayed (for the run report)."""
        return {"kind": "dead_letters_replayed", **self.ledger.counts,
                "marks_written": self.ledger.marks_written}

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        from sesa_fp.result import current_run_id

        ledger = self.ledger
        n = ok = 0
        try:
            for item in upstream:
                n += 1
                if type(item) is Failure:
                    letter = ledger.result(False)
                    dl = item.failure()
                    if isinstance(dl, DeadLetter) and dl.replay_of is None:
                        item = Failure(attrs.evolve(dl, replay_of=letter.id))
                else:
                    ok += 1
                    ledger.result(True)
                yield item
            ledger.check_drained()
        except BaseException as exc:
            self.stats.add(n_in=n, n_out=n)
            ledger.forget_loaded()  # maybe not committed: the next replay loads them again
            try:
                ledger.write_settled(current_run_id())
            except Exception as mark_exc:
                log_event("resolved_marks_failed", logging.WARNING,
                          error=f"{type(mark_exc).__name__}: {mark_exc}",
                          while_handling=f"{type(exc).__name__}: {exc}")
            raise
        self.stats.add(n_in=n, n_out=n)
        committed = getattr(getattr(self.loader, "stats", None), "committed", None)
        if committed != ok:
            log_event("resolved_marks_skipped", logging.WARNING, loaded_results=ok,
                      committed=committed, reason="the loader's committed count differs from "
                      "the records it passed on; no letter is marked loaded")
            ledger.forget_loaded()
        ledger.write_settled(current_run_id())


class _ReplayDlq:
    """The replay run's dead-letter writer: once it has committed, the letters that failed
    again are marked ``failed_again`` beside the originals (which the next replay skips)."""

    def __init__(self, inner: Writer, ledger: _Ledger) -> None:
        self.inner = inner
        self.ledger = ledger

    def __repr__(self) -> str:
        return repr(self.inner)

    def children(self) -> tuple[Any, ...]:
        return (self.inner,)

    def prepare(self) -> None:
        prepare = getattr(self.inner, "prepare", None)
        if callable(prepare):
            prepare()

    def write(self, item: Any) -> None:
        self.inner.write(item)

    def commit(self) -> int | None:
        from sesa_fp.result import current_run_id

        n = self.inner.commit()
        self.ledger.write_failed(current_run_id())
        return n

    def abort(self) -> None:
        self.inner.abort()


def replay_dead_letters(
    uri: str | DeadLetterSource,
    *,
    transforms: Sequence[Any] = (),
    loader: Any,
    dlq: Writer | str | None = None,
    workers: int = 1,
    window: int | None = None,
    batch_size: int = 500,
    storage_options: dict[str, Any] | None = None,
) -> Pipeline:
    """The pipeline that replays the dead letters under ``uri`` through ``transforms`` (the
    job's chain, fixed) and ``loader``, each letter from the stage where it failed (see the
    module docstring for why), skipping those already resolved. ``dlq`` takes the letters
    that fail again (default: `default_dlq_uri`); give it ``run`` like any pipeline.

    >>> from sesa_fp import pipe, run, stage, partition, dlq_sink, load_files
    >>> def to_int(r): return {"n": int(r["n"])}
    >>> _ = run(pipe([{"n": "1"}, {"n": "2x"}], stage(to_int, name="to_int"),
    ...              load_files("memory://doc/rp/out", dataset="d"),
    ...              partition(dlq_sink("memory://doc/rp/dlq/"))), progress=False)
    >>> def to_int(r): return {"n": int(r["n"].rstrip("x"))}   # the fix
    >>> p = replay_dead_letters("memory://doc/rp/dlq/", transforms=[stage(to_int, name="to_int")],
    ...                         loader=load_files("memory://doc/rp/out", dataset="d"),
    ...                         dlq=dlq_sink("memory://doc/rp/dlq/"))
    >>> r = run(p, progress=False)
    >>> r.read, r.loaded, r.dead_letters, [o for o in r.outputs if o["kind"] == "dead_letters_read"]
    (1, 1, 0, [{'kind': 'dead_letters_read', 'uri': 'memory://doc/rp/dlq/', 'runs': 1, 'letters': 1, 'skipped_resolved': 0, 'yielded': 1}])
    >>> run(p, progress=False).read   # resolved: not loaded again
    0
    """  # noqa: E501
    source = uri if isinstance(uri, DeadLetterSource) else read_dead_letters(
        uri, storage_options=storage_options, letters=True)
    if not source.letters:
        raise ValueError("replay_dead_letters: the source must yield letters "
                         "(read_dead_letters(..., letters=True))")
    if getattr(loader, "kind", None) != "loader":
        raise TypeError(f"replay_dead_letters: loader must be a loader stage, got {loader!r}")
    ledger = _Ledger(lambda: source.fs)
    writer: Writer = dlq_sink(default_dlq_uri()) if dlq is None else \
        dlq_sink(dlq) if isinstance(dlq, str) else dlq
    _check_dlq_place(writer, source)
    return pipe(source,
                batched(batch_size),
                map_concurrent(_FromFailedStage(transforms, loader), workers=workers,
                               window=window),
                _Fanout(ledger),
                loader,
                _Resolve(ledger, loader),
                partition(_ReplayDlq(writer, ledger)))


def _check_dlq_place(writer: Any, source: DeadLetterSource) -> None:
    """Refuse a DLQ writer that commits one folder over the letters being read: its commit
    would replace them (a failed replay would take the letters not yet replayed with it).
    A per-run writer (``dlq_sink``'s default) adds a folder of its own, which is fine."""
    location = getattr(writer, "location", None)
    if not callable(location):
        return
    where = str(location())
    if where.endswith("/run_id=*"):
        return
    src = normalized(source.uri, source.storage_options)
    if where == src or where.startswith(src + "/") or src.startswith(where + "/"):
        raise ConfigError(
            f"replay_dead_letters: the DLQ {writer!r} commits over the dead letters being "
            f"replayed ({mask_url(source.uri)}), and would replace them; use a per-run DLQ "
            "(dlq_sink(uri), per_run=True) or another prefix")


def job_parts(pipeline: Pipeline) -> tuple[tuple[Any, ...], Any, Writer | None]:
    """The transforms, the loader and the dead-letter writer of a job's pipeline (as
    `sesa_fp.config.build_job` makes it), to replay dead letters through.

    >>> from sesa_fp import pipe, batched, map_concurrent, chain, unbatched, load_files, stage
    >>> t = stage(str.upper, name="upper")
    >>> job_parts(pipe([], batched(2), map_concurrent(chain(t), workers=1), unbatched(),
    ...                load_files("memory://doc/jp", dataset="d")))[0] == (t,)
    True
    """
    from sesa_fp.stream import Chain

    transforms: tuple[Any, ...] = ()
    loader: Any = None
    dlq: Writer | None = None
    for st in pipeline.stages:
        fn = getattr(st, "fn", None)
        if getattr(st, "kind", None) == "concurrent" and isinstance(fn, Chain):
            transforms += fn.stages
        elif getattr(st, "kind", None) == "loader":
            loader = st
        elif getattr(st, "kind", None) == "partition" and loader is not None:
            dlq = getattr(st, "dlq", None)
        elif getattr(st, "kind", None) == "stage" and loader is None:
            transforms += (st,)
    if loader is None:
        raise TypeError("job_parts: the pipeline has no loader to replay dead letters into")
    return transforms, loader, dlq
