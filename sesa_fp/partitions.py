"""A job's partitions: the independent pieces its source splits into, and one of them run on
its own (a Dask task, an Airflow mapped task).

A partition is one slice of ``es_source(slices=N)``, one key range of
``sql_source(partitions=N)``, one file of a ``read_jsonl`` glob, one ``partitions=`` entry of
``http_source``; any other source is one partition. Partition ``i`` of a pipeline is the same
pipeline over that piece, with its own staging sub-prefix (``<uri>/partition=0003/``) and its
own dead-letter folder (``<dlq>/partition=0003/run_id=<run>/``), and `load_files` its own
root (``<root>/partition=0003/<dataset>/run=...``), so partitions never write over each
other and a retried partition rewrites only its own parts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sesa_fp.concurrency import Merge
from sesa_fp.errors import ConfigError
from sesa_fp.secrets import mask_url, reveal_tree
from sesa_fp.stats import walk
from sesa_fp.storage.location import join_path
from sesa_fp.stream import Pipeline

__all__ = ["job_partitions", "list_partitions", "partition_name", "partition_pipeline",
           "source_partitions"]


def partition_name(index: int) -> str:
    """The sub-prefix of partition ``index``.

    >>> partition_name(3)
    'partition=0003'
    """
    return f"partition={index:04d}"


def source_partitions(source: Iterable[Any]) -> list[Iterable[Any]]:
    """The independent pieces of ``source``, in a fixed order.

    >>> from sesa_fp import merge
    >>> source_partitions(merge([1], [2, 3]))
    [[1], [2, 3]]
    >>> source_partitions(range(3))
    [range(0, 3)]
    """
    from sesa_fp.sources.files import JsonlSource

    if isinstance(source, Merge):
        return list(source.sources)
    if isinstance(source, JsonlSource):
        return _files(source)
    parts = getattr(source, "partitions", None)
    if callable(parts):
        return list(parts())
    return [source]


def _files(source: Any) -> list[Iterable[Any]]:
    """One source per file of a glob (or a list), sorted: a file is the unit of work."""
    from sesa_fp.sources.files import JsonlSource

    try:
        import fsspec

        files = fsspec.open_files(source.urlpath, mode="rb",
                                  **reveal_tree(source.storage_options))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot list {source!r}: {type(exc).__name__}: {exc}") from exc
    urls = sorted(of.fs.unstrip_protocol(of.path) for of in files)
    if len(urls) <= 1:
        return [source]
    return [JsonlSource(url, source.compression, source.storage_options) for url in urls]


def list_partitions(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The partitions of a pipeline as JSON-ready dicts (secrets masked): what
    ``sesa partitions`` prints and what Airflow's ``expand(partition=...)`` maps over.

    >>> from sesa_fp import merge, pipe
    >>> list_partitions(pipe(merge([1], [2])))
    [{'partition': 0, 'of': 2, 'source': '[1]'}, {'partition': 1, 'of': 2, 'source': '[2]'}]
    """
    parts = source_partitions(pipeline.source)
    return [{"partition": i, "of": len(parts), "source": mask_url(repr(p))}
            for i, p in enumerate(parts)]


def job_partitions(config: str | Path, sets: Mapping[str, str] | None = None
                   ) -> list[dict[str, Any]]:
    """The partitions of a YAML job (``sesa partitions --config job.yaml --set ...``)."""
    from sesa_fp.config import build_job, load_job

    return list_partitions(build_job(load_job(config, sets)).pipeline)


def partition_pipeline(pipeline: Pipeline, index: int) -> Pipeline:
    """Partition ``index`` of ``pipeline``: the same stages over that piece of the source,
    its staging and dead-letter writers moved to the partition's own sub-prefixes.

    The stages are the pipeline's own objects, changed in place: call it on a copy made for
    this partition (a worker unpickles its own; `run_partition` makes one).
    """
    parts = source_partitions(pipeline.source)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(parts):
        raise ConfigError(f"partition {index!r} out of range: the job has {len(parts)} "
                          f"partition(s), 0..{len(parts) - 1}")
    from sesa_fp.loaders.files import FilesLoader
    from sesa_fp.storage.writer import PartsWriter

    for node in walk(pipeline):
        if isinstance(node, PartsWriter):  # a dead-letter writer adds run_id=... below it
            node.uri = join_path(node.uri, partition_name(index))
        elif isinstance(node, FilesLoader):  # its commits are per run: one root a partition
            node.root = join_path(node.root, partition_name(index))
    return Pipeline(parts[index], pipeline.stages)
