"""Resume a killed run from its committed staging parts (`run` calls `plan_resume`).

A run whose pipeline stages through `tee(to_storage(...))` right after a source with a
lasting position (`sesa_fp.position`) runs in journal mode: each staged part is committed
as it closes, with the source position after its last record; a `PartMark` follows it down
the stream, and when the mark reaches the last `partition` the part's records have all been
acknowledged by the loader or dead-lettered: the dead-letter writers are made durable and
the part's load ledger entry is written (`sesa_fp.storage.ledger`).

Running the same pipeline again over the same staging prefix then resumes: the logical
run's id is reused (dead letters go to the same place), the parts the ledger names are
skipped, the other committed parts are replayed from staging (not extracted again) into the
transforms and the loader, and the source continues from the last committed position. Once
the manifest exists the source is not read at all. ``fresh=True`` forgets all of it.

Replaying a committed prefix (``from_storage`` as the source, `sesa replay`) skips the parts
the ledger names and records those it loads, the same way.
"""

from __future__ import annotations

from typing import Any

import attrs

from sesa_fp.errors import ManifestError
from sesa_fp.faults import fault_point
from sesa_fp.logs import log_event
from sesa_fp.marks import PartMark
from sesa_fp.position import resumable
from sesa_fp.report import new_run_id
from sesa_fp.storage.journal import read_commits
from sesa_fp.storage.ledger import LedgerEntry, LoadLedger
from sesa_fp.storage.location import join_path
from sesa_fp.storage.manifest import MANIFEST_NAME, parse_manifest
from sesa_fp.storage.reader import StorageSource, read_part
from sesa_fp.stream import Pipeline

__all__ = ["Resume", "plan_resume"]


@attrs.define
class Resume:
    """What a run resumes: the pipeline to run, the logical run's id, and the counts the
    report shows."""

    pipeline: Pipeline
    run_id: str
    ledger: LoadLedger
    state: str  # the ledger's run-state file: "_run" (a job) or "_replay" (a replay)
    resumed_parts: int = 0
    skipped_parts: int = 0
    skipped_records: int = 0
    tee: Any = None
    source: Any = None  # a replayed StorageSource

    @property
    def resumed_records(self) -> int:
        """Records this attempt took from staging instead of the source."""
        return int(getattr(self.tee, "replayed", 0) or 0)

    @property
    def marks_read(self) -> int:
        """Marks a replayed source sent (counted as read by the pipeline, but not records)."""
        return int(getattr(self.source, "marks_sent", 0) or 0)

    def finished(self) -> None:
        """The run ended well: the logical run is complete."""
        self.ledger.set_run_state(self.run_id, complete=True, name=self.state)


def _ledger_ok(pipeline: Pipeline) -> bool:
    """Can a part's mark at the last partition be trusted as "loaded"? Every loader must
    yield only what its target acknowledged, and every dead-letter writer be able to make
    its dead letters durable mid-stream."""
    for st in pipeline.stages:
        kind = getattr(st, "kind", None)
        if kind == "loader" and not getattr(st, "resume_safe", False):
            return False
        if kind == "partition" and not callable(getattr(getattr(st, "dlq", None),
                                                         "enable_journal", None)):
            return False
    return True


def _setup_sinks(pipeline: Pipeline, ledger: LoadLedger, run_id: str, ok: bool,
                 sinks: dict[str, int] | None) -> None:
    """Journal mode for the dead-letter writers (keeping what the ledger vouches for), and
    the last partition records each part in the ledger."""
    for st in pipeline.stages:
        if getattr(st, "kind", None) != "partition":
            continue
        dlq: Any = getattr(st, "dlq", None)
        enable = getattr(dlq, "enable_journal", None)
        if callable(enable):
            location = getattr(dlq, "location", None)
            key = location() if callable(location) else repr(dlq)
            enable(adopt=None if sinks is None or not ok else max(sinks.get(key, 0), 0))

    def on_mark(mark: PartMark, good: int, dead: int) -> None:
        if not ok:
            return
        ledger.mark(LedgerEntry(index=mark.index, part=mark.path, sha256=mark.sha256,
                                records=mark.records, loaded=good, dead_letters=dead,
                                sinks=dict(mark.sinks), run_id=run_id))
        fault_point("marked")

    pipeline.stages[-1].on_mark = on_mark  # type: ignore[attr-defined]


def _staging_tee(pipeline: Pipeline) -> Any:
    """The first `tee` whose writer can keep a journal, if only record-by-record stages
    stand between it and the source (so the source's position is the tee's)."""
    for st in pipeline.stages:
        kind = getattr(st, "kind", None)
        if kind == "tee":
            writer = getattr(st, "writer", None)
            if callable(getattr(writer, "enable_journal", None)) and \
                    getattr(writer, "kind", None) == "staging" and \
                    not getattr(writer, "per_run", False):
                return st
            return None
        if kind != "stage":
            return None
    return None


def _tell_loaders(pipeline: Pipeline, resumed: bool) -> None:
    """Loaders that can recognise the records an earlier attempt committed (`load_sql` in
    ``insert`` mode: a duplicate stored as it is) learn whether this run continues one."""
    for st in pipeline.stages:
        if getattr(st, "kind", None) == "loader" and hasattr(st, "resumed"):
            st.resumed = resumed


def plan_resume(pipeline: Pipeline, *, fresh: bool = False,
                run_id: str | None = None) -> Resume | None:
    """Set ``pipeline`` up to resume (or to be resumable later); None when it cannot be:
    no staging right after a source with a lasting position, and no replayed prefix. The
    pipeline must end with a `partition` (`run` makes sure)."""
    _tell_loaders(pipeline, False)
    if not pipeline.stages or getattr(pipeline.stages[-1], "kind", None) != "partition":
        return None
    if isinstance(pipeline.source, StorageSource):
        return _plan_replay(pipeline, fresh=fresh, run_id=run_id)
    tee = _staging_tee(pipeline)
    if tee is None:
        return None
    source = pipeline.source
    if not resumable(source):
        log_event("resume_unavailable", run_id=run_id,
                  reason=f"the source {type(source).__name__} has no lasting position "
                         "(an es_source needs sort=); the staging is rewritten from the top")
        return None
    writer = tee.writer
    ledger = LoadLedger(writer.uri, writer.storage_options)
    import fsspec

    fs, root = fsspec.core.url_to_fs(writer.uri, **writer.storage_options)
    commits = [] if fresh else read_commits(fs, root)
    state = None if fresh else ledger.run_state()
    if commits and any(c.position is None for c in commits):
        commits = []  # an earlier attempt without positions: nothing to continue from
    if fresh or not commits:
        ledger.clear()
    ok = _ledger_ok(pipeline)
    # the same logical run as long as there is something of it to continue from
    rid = str(state["run_id"]) if state is not None and commits else (run_id or new_run_id())
    entries = ledger.entries() if commits else {}
    by_index = {c.index: c for c in commits}
    loaded = {i for i, e in entries.items()
              if i in by_index and by_index[i].path == e.part and by_index[i].sha256 == e.sha256}
    if commits:
        # complete only if the manifest is this run's: one from before a --fresh start
        # stays in place (readable) until the new commit replaces it
        try:
            manifest = parse_manifest(fs.cat_file(join_path(root, MANIFEST_NAME)), writer.uri)
            complete = [p.path for p in manifest.parts] == [c.path for c in commits]
        except (OSError, ManifestError):
            complete = False
        if not complete:
            new_source = source.resume(commits[-1].position)  # type: ignore[attr-defined]
            pipeline = Pipeline(new_source, pipeline.stages)
            source = new_source
        tee.skip_upstream = complete
        compression = "gzip" if writer.gzip else None
        tee.replay = [(c, read_part(fs, root, c.info(), compression, writer.uri))
                      for c in commits if c.index not in loaded]
        log_event("run_resumed", run_id=rid, committed_parts=len(commits),
                  loaded_parts=len(loaded), replayed_parts=len(tee.replay),
                  extraction_complete=complete)
    else:
        tee.replay, tee.skip_upstream = [], False
    src: Any = pipeline.source
    writer.enable_journal(position=lambda: src.position, adopt=len(commits) if commits else None)
    _setup_sinks(pipeline, ledger, rid, ok, ledger.sinks() if commits else None)
    ledger.set_run_state(rid, complete=False)
    # the attempt before stopped (with or without a committed part): its loader may have
    # committed records this run reads again
    _tell_loaders(pipeline, state is not None and not state.get("complete"))
    return Resume(pipeline=pipeline, run_id=rid, ledger=ledger, state="_run",
                  resumed_parts=len(tee.replay), skipped_parts=len(loaded),
                  skipped_records=sum(by_index[i].records for i in loaded), tee=tee)


def _plan_replay(pipeline: Pipeline, *, fresh: bool, run_id: str | None) -> Resume | None:
    source: StorageSource = pipeline.source  # type: ignore[assignment]
    ok = _ledger_ok(pipeline)
    ledger = LoadLedger(source.uri, source.storage_options)
    if fresh:
        ledger.clear()
    manifest = source.manifest()
    done = {p.path for p in manifest.parts if ledger.is_loaded(p.path, p.sha256)}
    state = ledger.run_state(name="_replay")
    rid = str(state["run_id"]) if state is not None and not state.get("complete") \
        and done else (run_id or new_run_id())
    source.skip = done
    source.marks = True
    _setup_sinks(pipeline, ledger, rid, ok, ledger.sinks() if done else None)
    ledger.set_run_state(rid, complete=False, name="_replay")
    # an attempt that stopped may have loaded records of a part it had not finished
    _tell_loaders(pipeline, state is not None and not state.get("complete") and not fresh)
    skipped = sum(p.records - p.dead_letters for p in manifest.parts if p.path in done)
    if done:
        log_event("replay_resumed", run_id=rid, loaded_parts=len(done),
                  parts=len(manifest.parts))
    return Resume(pipeline=pipeline, run_id=rid, ledger=ledger, state="_replay",
                  skipped_parts=len(done), skipped_records=skipped, source=source)
