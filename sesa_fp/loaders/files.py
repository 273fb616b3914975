"""`load_files`: the embedded default destination, JSONL files per dataset on any fsspec path."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sesa_fp.dataset import DatasetTemplate, Target
from sesa_fp.errors import ConfigError, RecordError, StorageError
from sesa_fp.ids import id_strategy as make_id_fn
from sesa_fp.result import current_run_id, each_record
from sesa_fp.secrets import mask_mapping, mask_url
from sesa_fp.stats import Stage
from sesa_fp.storage.location import check_location, join_path, normalized
from sesa_fp.storage.writer import PartsWriter

__all__ = ["FilesLoader", "load_files"]


class FilesLoader(Stage):
    """Writes each record to ``root/<dataset>/run=<run_key>/part-*.jsonl`` with a manifest per
    dataset; yields the record (loaded) or a dead letter. Loading the same input under the
    same ``run_key`` again replaces those files, so reruns are idempotent.

    At most ``max_open_datasets`` datasets hold an open part and a buffer at a time: when
    another one needs its own, the least recently used closes its part (a later record for it
    starts a new one). Every dataset still commits once, at the end of the stream.
    """

    kind = "loader"
    sink = True

    def __init__(self, root: str, dataset: str, id_spec: Mapping[str, Any] | str | None,
                 id_field: str, gzip: bool, run_key: str | None,
                 storage_options: dict[str, Any], max_open_datasets: int = 64) -> None:
        if isinstance(max_open_datasets, bool) or not isinstance(max_open_datasets, int) \
                or max_open_datasets < 1:
            raise ConfigError(f"max_open_datasets must be a positive integer, "
                              f"got {max_open_datasets!r}")
        super().__init__(f"load_files({mask_url(root)!r}, dataset={dataset!r})")
        self.root = root
        self.dataset = DatasetTemplate(dataset)
        self.id_spec = id_spec
        self.id_fn = make_id_fn(id_spec)
        self.id_field = id_field
        self.gzip = gzip
        self.run_key = run_key
        self.storage_options = storage_options
        self.max_open_datasets = max_open_datasets
        self.last_counts: dict[str, int] = {}
        self._writers: dict[str, PartsWriter] = {}

    def location(self) -> str:
        """Where this loader commits: its root, per run key."""
        key = self.run_key or "<run id>"
        return join_path(normalized(self.root, self.storage_options), f"*/run={key}")

    def __repr__(self) -> str:
        extra = "" if self.id_spec is None else f", id_strategy={self.id_spec!r}"
        extra += "" if self.run_key is None else f", run_key={self.run_key!r}"
        extra += ", gzip=True" if self.gzip else ""
        if self.storage_options:
            extra += f", storage_options={mask_mapping(self.storage_options)!r}"
        return f"load_files({mask_url(self.root)!r}, dataset={self.dataset.template!r}{extra})"

    def target(self, rec: Mapping[str, Any]) -> Target:
        """The dataset folder and id ``rec`` would be written with (no I/O).

        >>> load_files("out", dataset="d-{k}").target({"k": "a"})
        Target(dataset='d-a', id=None, routing=None)
        """
        return Target(self.dataset.render(rec), self.id_fn(rec))

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        import fsspec

        with self.exclusive():
            # before the first record is pulled: a missing bucket fails now, having read nothing
            try:
                fs, path = fsspec.core.url_to_fs(self.root, **self.storage_options)
                check_location(fs, path, f"files root {mask_url(fs.unstrip_protocol(path))}")
            except OSError as exc:
                raise StorageError(f"cannot reach files root {mask_url(self.root)}: "
                                   f"{exc}") from exc
            self.last_counts = {}
            writers: dict[str, PartsWriter] = {}
            self._writers = writers
            # datasets whose writer may hold an open part or a buffer, least recently used first
            active: OrderedDict[str, PartsWriter] = OrderedDict()
            max_open = self.max_open_datasets
            # the dataset of the previous record: a run of records skips the LRU bookkeeping
            recent: list[str | None] = [None]
            counts: dict[str, int] = {}
            run_key = self.run_key or current_run_id() or "adhoc"
            render, id_fn, id_field = self.dataset.render, self.id_fn, self.id_field

            def load(rec: Any) -> Any:
                name = render(rec)
                doc_id = id_fn(rec)
                out = rec if doc_id is None else {**rec, id_field: doc_id}
                writer = writers.get(name)
                if writer is None:
                    writer = self._writer(name, run_key)
                    writer.write(out)  # kept only once it holds a record: no empty datasets
                    writers[name] = writer
                else:
                    writer.write(out)
                if name != recent[0]:
                    recent[0] = name
                    if name in active:
                        active.move_to_end(name)
                    else:
                        active[name] = writer
                        if len(active) > max_open:
                            active.popitem(last=False)[1].close_part()
                counts[name] = counts.get(name, 0) + 1
                return rec

            try:
                yield from each_record(upstream, load, stage=self.name,
                                       errors=(RecordError, TypeError, ValueError),
                                       stats=self.stats, target=mask_url(self.root))
                active.clear()
                committed: dict[str, int] = {}
                for name, writer in writers.items():
                    n = writer.commit()
                    # counted as each commit succeeds: a later failure does not undo this one
                    self.stats.add(committed=n, bytes=writer.describe()["bytes"])
                    committed[name] = n
                self.last_counts = dict(sorted(committed.items()))
            except BaseException:
                for writer in writers.values():
                    writer.abort()
                raise
            finally:
                self._writers = {}

    def open_parts(self) -> int:
        """How many datasets hold an open part or buffered records right now (at most
        ``max_open_datasets``)."""
        return sum(1 for w in list(self._writers.values()) if w.holds_part)

    def _writer(self, dataset: str, run_key: str) -> PartsWriter:
        if "/" in dataset or dataset in (".", ".."):
            raise RecordError(f"dataset name {dataset!r} is not a valid directory name")
        uri = join_path(join_path(self.root, dataset), f"run={run_key}")
        # the manifest names the run key, not the run, and no time: a rerun is byte-identical
        return PartsWriter(uri, gzip=self.gzip, kind="files", storage_options=self.storage_options,
                           run_id=run_key, stamp_time=False)

    def describe(self) -> dict[str, Any]:
        """Where the records went, per dataset (for the run report)."""
        import fsspec

        fs, path = fsspec.core.url_to_fs(self.root, **self.storage_options)
        return {"kind": "files", "uri": fs.unstrip_protocol(path),
                "records": sum(self.last_counts.values()), "datasets": self.last_counts}


def load_files(
    root: str,
    *,
    dataset: str,
    id_strategy: Mapping[str, Any] | str | None = None,
    id_field: str = "_id",
    gzip: bool = False,
    run_key: str | None = None,
    storage_options: dict[str, Any] | None = None,
    max_open_datasets: int = 64,
) -> FilesLoader:
    """Load records into JSONL files per dataset under ``root`` (local or any fsspec URL).

    >>> from sesa_fp import pipe, run
    >>> loader = load_files("memory://doc/out", dataset="rfi-{d:%Y.%m}", run_key="r1",
    ...                     id_strategy={"type": "sha256_concat", "fields": ["n"]})
    >>> r = run(pipe([{"n": 1, "d": "2025-09-06"}, {"n": 2}], loader), progress=False)
    >>> r.loaded, r.dead_letters, loader.last_counts
    (1, 1, {'rfi-2025.09': 1})
    """
    return FilesLoader(root, dataset, id_strategy, id_field, gzip, run_key, storage_options or {},
                       max_open_datasets)
