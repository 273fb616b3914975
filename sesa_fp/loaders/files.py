"""`load_files`: the embedded default destination, JSONL files per dataset on any fsspec path."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import fsspec
from returns.result import Failure, Success

from sesa_fp.dataset import DatasetTemplate
from sesa_fp.errors import RecordError
from sesa_fp.ids import id_strategy as make_id_fn
from sesa_fp.result import DeadLetter, current_run_id
from sesa_fp.stats import Stage
from sesa_fp.storage.writer import PartsWriter, _join

__all__ = ["FilesLoader", "load_files"]


class FilesLoader(Stage):
    """Writes each record to ``root/<dataset>/run=<run_key>/part-*.jsonl`` with a manifest per
    dataset; yields the record (loaded) or a dead letter. Loading the same input under the
    same ``run_key`` again replaces those files, so reruns are idempotent."""

    kind = "loader"

    def __init__(self, root: str, dataset: str, id_spec: Mapping[str, Any] | str | None,
                 id_field: str, gzip: bool, run_key: str | None,
                 storage_options: dict[str, Any]) -> None:
        super().__init__(f"load_files({root!r}, dataset={dataset!r})")
        self.root = root
        self.dataset = DatasetTemplate(dataset)
        self.id_spec = id_spec
        self.id_fn = make_id_fn(id_spec)
        self.id_field = id_field
        self.gzip = gzip
        self.run_key = run_key
        self.storage_options = storage_options
        self.last_counts: dict[str, int] = {}

    def __repr__(self) -> str:
        extra = "" if self.id_spec is None else f", id_strategy={self.id_spec!r}"
        extra += "" if self.run_key is None else f", run_key={self.run_key!r}"
        extra += ", gzip=True" if self.gzip else ""
        return f"load_files({self.root!r}, dataset={self.dataset.template!r}{extra})"

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        writers: dict[str, PartsWriter] = {}
        counts: dict[str, int] = {}
        run_key = self.run_key or current_run_id() or "adhoc"
        render, id_fn, id_field = self.dataset.render, self.id_fn, self.id_field
        n_in = failed = 0
        try:
            for item in upstream:
                n_in += 1
                t = type(item)
                if t is Failure:
                    yield item
                    continue
                rec = item._inner_value if t is Success else item
                try:
                    name = render(rec)
                    doc_id = id_fn(rec)
                    out = rec if doc_id is None else {**rec, id_field: doc_id}
                    writer = writers.get(name)
                    if writer is None:
                        writer = writers[name] = self._writer(name, run_key)
                    writer.write(out)
                except (RecordError, TypeError, ValueError) as exc:
                    failed += 1
                    yield Failure(DeadLetter.from_exception(rec, exc, stage=self.name,
                                                            target=self.root))
                    continue
                counts[name] = counts.get(name, 0) + 1
                yield rec
            for writer in writers.values():
                writer.commit()
                self.stats.add(bytes=writer.describe()["bytes"])
            self.last_counts = dict(sorted(counts.items()))
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        finally:
            self.stats.add(n_in=n_in, n_out=n_in, failed=failed)

    def _writer(self, dataset: str, run_key: str) -> PartsWriter:
        if "/" in dataset or dataset in (".", ".."):
            raise RecordError(f"dataset name {dataset!r} is not a valid directory name")
        uri = _join(_join(self.root, dataset), f"run={run_key}")
        # the manifest names the run key, not the run, and no time: a rerun is byte-identical
        return PartsWriter(uri, gzip=self.gzip, kind="files", storage_options=self.storage_options,
                           run_id=run_key, stamp_time=False)

    def describe(self) -> dict[str, Any]:
        """Where the records went, per dataset (for the run report)."""
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
) -> FilesLoader:
    """Load records into JSONL files per dataset under ``root`` (local or any fsspec URL).

    >>> from sesa_fp import pipe, run
    >>> loader = load_files("memory://doc/out", dataset="rfi-{d:%Y.%m}", run_key="r1",
    ...                     id_strategy={"type": "sha256_concat", "fields": ["n"]})
    >>> r = run(pipe([{"n": 1, "d": "2025-09-06"}, {"n": 2}], loader), progress=False)
    >>> r.loaded, r.dead_letters, loader.last_counts
    (1, 1, {'rfi-2025.09': 1})
    """
    return FilesLoader(root, dataset, id_strategy, id_field, gzip, run_key, storage_options or {})
