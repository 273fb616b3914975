"""Where a prefix lives: joining paths, and checking a bucket exists without creating it."""

from __future__ import annotations

from typing import Any

from sesa_fp.errors import StorageError

__all__ = ["bucket_of", "check_location", "join_path", "normalized", "url_of"]


def join_path(root: str, name: str) -> str:
    """``root/name`` with exactly one slash between them (fsspec paths and URLs alike).

    >>> join_path("s3://bucket/staging/", "part-00000.jsonl")
    's3://bucket/staging/part-00000.jsonl'
    """
    return f"{root.rstrip('/')}/{name}"


def url_of(fs: Any, path: str, like: str) -> str:
    """The URL of ``path`` on ``fs``, in the scheme the user wrote in ``like`` when ``fs``
    serves it: adlfs serves ``az://`` but names every path ``abfs://``, and a report should
    name the prefix as it was given.

    >>> import fsspec
    >>> fs = fsspec.filesystem("memory")
    >>> url_of(fs, "/doc/x", "memory://doc/x/")
    'memory:///doc/x'
    """
    url = str(fs.unstrip_protocol(path))
    scheme, sep, _ = like.partition("://")
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    if sep and scheme in protocols and "://" in url:
        return f"{scheme}://{url.split('://', 1)[1]}"
    return url


def bucket_of(fs: Any, path: str) -> str | None:
    """The bucket or container ``path`` lives in when ``fs`` is an object store (s3fs, gcsfs
    and adlfs all have ``split_path``); None for local, memory and other filesystems.

    >>> import fsspec
    >>> bucket_of(fsspec.filesystem("memory"), "/x/y") is None
    True
    """
    split = getattr(fs, "split_path", None)
    if not callable(split):
        return None
    bucket = split(path)[0]
    return str(bucket) if bucket else None


def check_location(fs: Any, path: str, what: str) -> None:
    """Raise `StorageError` if ``path`` lives in a bucket or container that does not exist.

    sesa_fp never creates buckets: a typo in a name must fail before any record is read,
    not quietly make a bucket with default settings.

    >>> import fsspec
    >>> check_location(fsspec.filesystem("memory"), "/anything/at/all", "staging")
    """
    bucket = bucket_of(fs, path)
    if bucket is None:
        return
    if ":" in bucket or "@" in bucket:  # credentials written into the URL, read as a name
        raise StorageError(f"{what}: the bucket part of the URL holds credentials; pass them "
                           "in storage_options (key/secret, account_key...) instead")
    try:
        found = fs.exists(bucket)
    except OSError as exc:
        raise StorageError(f"cannot check bucket {bucket!r} for {what}: {exc}") from exc
    if not found:
        raise StorageError(
            f"bucket {bucket!r} does not exist ({what}); sesa_fp never creates buckets or "
            "containers: create it, or fix the name"
        )


def normalized(uri: str, storage_options: dict[str, Any] | None = None) -> str:
    """``uri`` as one canonical URL (protocol made explicit, relative paths absolute, no
    trailing slash), to tell whether two writers would commit to the same place. No I/O, no
    filesystem object (``storage_options`` is accepted for symmetry and not needed).

    >>> normalized("memory://x/staging/") == normalized("memory:///x/staging")
    True
    """
    import fsspec

    # the filesystem class, not an instance: building a pipeline must not connect anywhere
    protocol = fsspec.core.split_protocol(uri)[0] or "file"
    path = str(fsspec.get_filesystem_class(protocol)._strip_protocol(uri))
    return f"{protocol}://{path.rstrip('/') or '/'}"
