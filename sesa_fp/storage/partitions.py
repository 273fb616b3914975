"""One staging manifest over the per-partition sub-prefixes of a partitioned run.

Each partition commits its own prefix (``<uri>/partition=0003/``, its own manifest). When
every partition has committed, the driver writes the manifest of ``<uri>`` itself, listing
every partition's parts by their path below ``<uri>``: `from_storage(uri)` then reads the
whole run, and the prefix is complete only once that manifest exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sesa_fp.errors import StorageError
from sesa_fp.secrets import mask_url
from sesa_fp.storage.location import join_path
from sesa_fp.storage.manifest import MANIFEST_NAME, Manifest, PartInfo
from sesa_fp.storage.reader import read_manifest

__all__ = ["merge_manifests", "write_merged_manifest"]


def merge_manifests(subs: Sequence[tuple[str, Manifest]], *, run_id: str | None = None
                    ) -> Manifest:
    """One manifest listing the parts of each ``(sub_prefix, manifest)``, in order.

    >>> a = Manifest(compression="gzip", parts=(PartInfo("part-00000.jsonl.gz", 2, 9, "x"),))
    >>> m = merge_manifests([("partition=0000", a), ("partition=0001", a)])
    >>> [p.path for p in m.parts], m.records
    (['partition=0000/part-00000.jsonl.gz', 'partition=0001/part-00000.jsonl.gz'], 4)
    """
    if not subs:
        raise ValueError("merge_manifests: no partition manifests")
    compressions = {m.compression for _, m in subs}
    if len(compressions) > 1:
        raise StorageError(f"partitions were staged with different compressions "
                           f"{sorted(map(str, compressions))}; one manifest cannot list them")
    first = subs[0][1]
    parts = tuple(PartInfo(join_path(sub, p.path), p.records, p.bytes, p.sha256)
                  for sub, m in subs for p in m.parts)
    return Manifest(kind=first.kind, job=first.job, run_id=run_id or first.run_id,
                    created_at=max(m.created_at for _, m in subs),
                    compression=first.compression, parts=parts)


def write_merged_manifest(uri: str, subs: Sequence[str], *, run_id: str | None = None,
                          storage_options: dict[str, Any] | None = None) -> Manifest:
    """Read the manifests of ``uri/<sub>`` for each sub-prefix and commit their union at
    ``uri`` (the manifest written last, in one step)."""
    so = storage_options or {}
    merged = merge_manifests([(sub, read_manifest(join_path(uri, sub), so)) for sub in subs],
                             run_id=run_id)
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri, **so)
    try:
        fs.pipe_file(join_path(root, MANIFEST_NAME), merged.to_json())
    except OSError as exc:
        raise StorageError(f"committing the manifest of {mask_url(uri)}: {exc}") from exc
    return merged
