"""YAML job -> the same composition a notebook user writes by hand.

``pipe(source, tee(to_storage(...)), batched(n), map_concurrent(chain(*transforms), ...),
unbatched(), loader, partition(dlq_sink(...)))`` — ``runtime`` sets the batch size and the
transform workers; the loader keeps its own concurrency.
"""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import fsspec
import yaml

from sesa_fp.config.registry import Plugin, register, resolve
from sesa_fp.config.spec import (
    ConnectionSpec,
    DlqSpec,
    IdSpec,
    JobSpec,
    StorageSpec,
    structure,
)
from sesa_fp.config.templating import render_tree, template_vars
from sesa_fp.errors import ConfigError
from sesa_fp.imports import import_object
from sesa_fp.secrets import Secret, mask_value, masked_repr, reveal_tree
from sesa_fp.stream import (
    Pipeline,
    batched,
    chain,
    map_concurrent,
    merge,
    partition,
    pipe,
    tee,
    unbatched,
)

__all__ = ["BuiltJob", "build_job", "build_transforms", "load_job", "parse_sets", "read_yaml"]


# -- built-in plugin options -------------------------------------------------------------------
@attrs.define
class JsonlExtractor:
    path: str = attrs.field(repr=masked_repr)
    compression: str | None = "infer"
    storage_options: dict[str, Any] = attrs.field(factory=dict, repr=masked_repr)


@attrs.define
class SearchExtractor:
    index: str
    connection: ConnectionSpec = attrs.Factory(ConnectionSpec)
    query: dict[str, Any] | None = None
    fields: list[str] | None = None
    page_size: int = 1000
    slices: int = 1
    keep_alive: str = "5m"
    # a field (or a list) to read in, making the extraction resumable in another process;
    # checked by es_source (a str or a list of str: typed Any so a str is not split)
    sort: Any = None


@attrs.define
class ApiExtractor:
    url: str = attrs.field(repr=masked_repr)
    params: dict[str, Any] = attrs.field(factory=dict, repr=masked_repr)
    headers: dict[str, Any] = attrs.field(factory=dict, repr=masked_repr)
    records: str | None = "data.items"
    paginate: dict[str, Any] | None = None
    auth: dict[str, Any] | None = attrs.field(default=None, repr=masked_repr)
    rate_limit: str | None = None
    timeout: float = 30.0
    max_retries: int = 5
    retry_backoff: float = 0.5
    partitions: list[dict[str, Any]] | None = None


@attrs.define
class FilesConnection:
    root: str = attrs.field(default="out", repr=masked_repr)
    storage_options: dict[str, Any] = attrs.field(factory=dict, repr=masked_repr)


@attrs.define
class FilesOptions:
    id_strategy: IdSpec | None = None
    id_field: str = "_id"
    gzip: bool = False
    run_key: str | None = None


@attrs.define
class FilesLoader:
    dataset: str
    connection: FilesConnection = attrs.Factory(FilesConnection)
    options: FilesOptions = attrs.Factory(FilesOptions)


@attrs.define
class BulkSpec:
    actions_per_batch: int = 1000
    concurrency: int = 2
    max_concurrency: int | None = None  # above concurrency: adaptive (AIMD) in between
    max_bytes_mb: float = 10.0


@attrs.define
class SearchOptions:
    id_strategy: IdSpec | None = None
    bulk: BulkSpec = attrs.Factory(BulkSpec)
    op_type: str = "index"
    routing: str | None = None
    pipeline: str | None = None
    max_retries: int = 5
    mappings: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None


@attrs.define
class SearchLoader:
    dataset: str
    connection: ConnectionSpec = attrs.Factory(ConnectionSpec)
    options: SearchOptions = attrs.Factory(SearchOptions)


@attrs.define
class NormalizeSpec:
    fields: list[str] | None = None


@attrs.define
class CastSpec:
    fields: list[str]
    to: str = "datetime"
    unit: str = "s"


@attrs.define
class DeriveSpec:
    field: str
    fn: str


@attrs.define
class ValidateSpec:
    required: list[str] = attrs.Factory(list)
    types: dict[str, str] = attrs.Factory(dict)


@attrs.define
class PythonClassSpec:
    path: str
    options: dict[str, Any] = attrs.Factory(dict)


def _connection(c: ConnectionSpec) -> dict[str, Any]:
    out = {k: v for k, v in attrs.asdict(c).items() if v is not None}
    if out.get("verify_certs") is True:
        out.pop("verify_certs")
    if out.get("timeout") == 30.0:
        out.pop("timeout")
    return out


def _build_jsonl(s: JsonlExtractor, job: JobSpec) -> Any:
    from sesa_fp.sources.files import read_jsonl

    kw: dict[str, Any] = {}
    if s.compression != "infer":
        kw["compression"] = s.compression
    if s.storage_options:
        kw["storage_options"] = s.storage_options
    return read_jsonl(s.path, **kw)


def _search_source(engine: str) -> Any:
    def build(s: SearchExtractor, job: JobSpec) -> Any:
        from sesa_fp.sources.search import es_source

        source = es_source(index=s.index, query=reveal_tree(s.query), fields=s.fields,
                           page_size=s.page_size, slices=s.slices, keep_alive=s.keep_alive,
                           sort=s.sort, engine=engine, **_connection(s.connection))
        if s.slices > 1:  # the partitions read at once, a thread each
            return merge(*source.partitions())
        return source
    return build


def _build_api(s: ApiExtractor, job: JobSpec) -> Any:
    from sesa_fp.sources.http import auth_from_dict, http_source
    from sesa_fp.sources.pagination import paginator_from_dict

    kw: dict[str, Any] = {}
    if s.params:
        kw["params"] = s.params
    if s.headers:
        kw["headers"] = s.headers
    if s.records != "data.items":
        kw["records"] = s.records
    if s.paginate is not None:
        kw["paginate"] = paginator_from_dict(s.paginate, "extractor.paginate")
    if s.auth is not None:
        kw["auth"] = auth_from_dict(s.auth, "extractor.auth")
    for name, default in (("rate_limit", None), ("timeout", 30.0), ("max_retries", 5),
                          ("retry_backoff", 0.5)):
        if getattr(s, name) != default:
            kw[name] = getattr(s, name)
    if s.partitions:  # read at once, a thread each, under the one rate limit
        kw["partitions"] = s.partitions
    return http_source(s.url, **kw)


def _search_loader(engine: str) -> Any:
    def build(s: SearchLoader, job: JobSpec) -> Any:
        from sesa_fp.loaders.search import load_es

        o = s.options
        return load_es(dataset=s.dataset,
                       id_strategy=o.id_strategy.as_dict() if o.id_strategy else None,
                       actions_per_batch=o.bulk.actions_per_batch,
                       concurrency=o.bulk.concurrency, max_bytes_mb=o.bulk.max_bytes_mb,
                       max_concurrency=o.bulk.max_concurrency,
                       op_type=o.op_type, routing=o.routing, pipeline=o.pipeline,
                       max_retries=o.max_retries, mappings=reveal_tree(o.mappings),
                       settings=reveal_tree(o.settings),
                       engine=engine, **_connection(s.connection))
    return build


def _build_files(s: FilesLoader, job: JobSpec) -> Any:
    from sesa_fp.loaders.files import load_files

    o = s.options
    kw: dict[str, Any] = {}
    if o.id_strategy:
        kw["id_strategy"] = o.id_strategy.as_dict()
    if o.id_field != "_id":
        kw["id_field"] = o.id_field
    if o.gzip:
        kw["gzip"] = True
    if o.run_key:
        kw["run_key"] = o.run_key
    if s.connection.storage_options:
        kw["storage_options"] = reveal_tree(s.connection.storage_options)
    return load_files(s.connection.root, dataset=s.dataset, **kw)


def _build_normalize(s: NormalizeSpec, job: JobSpec) -> Any:
    from sesa_fp.result import stage
    from sesa_fp.transforms import normalize

    return stage(normalize(s.fields))


def _build_cast(s: CastSpec, job: JobSpec) -> Any:
    from sesa_fp.result import stage
    from sesa_fp.transforms import cast

    return stage(cast(s.fields, to=s.to, unit=s.unit))


def _build_derive(s: DeriveSpec, job: JobSpec) -> Any:
    from sesa_fp.result import stage
    from sesa_fp.transforms import derive

    fn = import_object(s.fn)
    if not callable(fn):
        raise ConfigError(f"derive.fn {s.fn!r} is not callable")
    return stage(derive(s.field, _Named(fn, f"import_object({s.fn!r})")))


class _Named:
    """A callable that prints as the Python expression that made it."""

    def __init__(self, fn: Any, label: str) -> None:
        self.fn, self.__stage_name__ = fn, label

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __repr__(self) -> str:
        return self.__stage_name__


def _build_validate(s: ValidateSpec, job: JobSpec) -> Any:
    from sesa_fp.result import stage
    from sesa_fp.transforms import validate

    return stage(validate(required=s.required, types=s.types))


def _build_python_class(s: PythonClassSpec, job: JobSpec) -> Any:
    from sesa_fp.transforms import python_class

    return python_class(s.path, **reveal_tree(s.options))


register("extractor", Plugin("jsonl", JsonlExtractor, _build_jsonl))
register("extractor", Plugin("elasticsearch", SearchExtractor, _search_source("auto"),
                             requires="elasticsearch", extra="es"))
register("extractor", Plugin("opensearch", SearchExtractor, _search_source("opensearch"),
                             requires="opensearchpy", extra="opensearch"))
register("extractor", Plugin("api", ApiExtractor, _build_api))


@attrs.define
class SqlConnection:
    url: str = attrs.field(repr=masked_repr)
    password: Secret | None = None
    connect_args: dict[str, Any] = attrs.field(factory=dict, repr=masked_repr)


@attrs.define
class SqlExtractor:
    connection: SqlConnection
    query: str
    params: dict[str, Any] = attrs.field(factory=dict, repr=masked_repr)
    chunk_size: int = 5000
    partition_on: str | None = None
    partitions: int = 1
    slices: int | None = None  # the search extractors' name for partitions
    max_retries: int = 5
    retry_backoff: float = 0.5
    connect_timeout: float = 10.0


def _build_sql(s: SqlExtractor, job: JobSpec) -> Any:
    from sesa_fp.sources.sql import sql_source

    n = s.partitions
    if s.slices is not None:
        if n != 1 and n != s.slices:
            raise ConfigError(f"extractor: partitions={n} and slices={s.slices} differ; "
                              "give one")
        n = s.slices
    c = s.connection
    source = sql_source(c.url, s.query, reveal_tree(s.params) or None,
                        chunk_size=s.chunk_size, partition_on=s.partition_on, partitions=n,
                        password=c.password, max_retries=s.max_retries,
                        retry_backoff=s.retry_backoff, connect_timeout=s.connect_timeout,
                        connect_args=reveal_tree(c.connect_args) or None)
    if n > 1:  # the key ranges read at once, a thread each
        return merge(*source.partitions())
    return source


for _sql_name in ("jdbc", "sql"):  # "jdbc" is the seed's name
    register("extractor", Plugin(_sql_name, SqlExtractor, _build_sql, requires="sqlalchemy",
                                 extra="sql"))

register("loader", Plugin("files", FilesLoader, _build_files))
register("loader", Plugin("elasticsearch", SearchLoader, _search_loader("auto"),
                          requires="elasticsearch", extra="es"))
register("loader", Plugin("opensearch", SearchLoader, _search_loader("opensearch"),
                          requires="opensearchpy", extra="opensearch"))
register("transform", Plugin("normalize", NormalizeSpec, _build_normalize))
register("transform", Plugin("cast", CastSpec, _build_cast))
register("transform", Plugin("derive", DeriveSpec, _build_derive))
register("transform", Plugin("validate", ValidateSpec, _build_validate))
register("transform", Plugin("python_class", PythonClassSpec, _build_python_class))
# SQL loaders (type: postgres, type: sql) register themselves beside their spec classes
import sesa_fp.config.sql_loader  # noqa: E402, F401


# -- reading and building ------------------------------------------------------------------------
def read_yaml(text: str, source: str = "job.yaml") -> dict[str, Any]:
    """``yaml.safe_load`` with the line and column of a syntax error.

    >>> read_yaml("a: [1, 2", "job.yaml")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: job.yaml:1:9: malformed YAML: expected ',' or ']', but got ...
    """
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(f"{where}: malformed YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: malformed YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a job is a mapping of sections, got {type(data).__name__}")
    return data


def parse_sets(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["k=v", ...]`` from ``--set`` into a dict; a pair without ``=`` is a usage error.

    >>> parse_sets(["ds=2025-09-06", "note=a=b"])
    {'ds': '2025-09-06', 'note': 'a=b'}
    >>> parse_sets(["ds"])
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: --set 'ds': expected NAME=VALUE
    """
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ConfigError(f"--set {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def load_job(path: str | Path, sets: Mapping[str, str] | None = None,
             environ: Mapping[str, str] | None = None) -> JobSpec:
    """Read, render and check a YAML job (no I/O beyond reading the file).

    ``{{ job_dir }}`` is the job file's folder, which is also importable for ``python_class``.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read job file {str(p)!r}: {exc.strerror or exc}") from exc
    raw = read_yaml(text, str(p))
    job_dir = str(p.resolve().parent)
    if job_dir not in sys.path:  # python_class paths may name modules beside the job file
        sys.path.append(job_dir)
    variables = {"job_dir": job_dir, **template_vars(sets or {}, environ)}
    rendered = render_tree(raw, variables)
    return structure(rendered, JobSpec)


@attrs.frozen
class BuiltJob:
    """A job's pipeline plus what the CLI needs around it."""

    spec: JobSpec
    pipeline: Pipeline


def _typed(kind: str, entry: Any, where: str, job: JobSpec) -> Any:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with type:, got {mask_value(entry)!r}")
    options = dict(entry)
    name = options.pop("type", None)
    plugin = resolve(kind, name, where)
    if isinstance(plugin, Plugin):
        spec = structure(options, plugin.spec, where) if plugin.spec else None
        return plugin.build(spec, job)
    from sesa_fp.config import plugins

    options = reveal_tree(options)  # third-party classes take plain values
    if kind == "extractor":
        return plugins.plugin_extractor(name, **options)
    if kind == "loader":
        return plugins.plugin_loader(name, batch_size=job.runtime.batch_size, **options)
    return plugins.plugin_transform(name, **options)


# YAML backend name -> the URI schemes it takes, and the extra that installs its filesystem
_OBJECT_STORES: dict[str, tuple[tuple[str, ...], str]] = {
    "s3": (("s3", "s3a"), "s3"),
    "azure": (("az", "abfs", "abfss"), "azure"),
    "gcs": (("gs", "gcs"), "gcs"),
}


def _fsspec_writer(spec: StorageSpec | DlqSpec, where: str, job: JobSpec, dlq: bool) -> Any:
    from sesa_fp.storage import dlq_sink, to_storage

    scheme = urllib.parse.urlsplit(spec.uri).scheme
    backend = spec.backend
    schemes, extra = _OBJECT_STORES.get(backend, ((backend,), ""))
    if backend in ("local", "file"):
        if scheme not in ("", "file"):
            raise ConfigError(f"{where}.uri: backend {backend!r} needs a local path, "
                              f"got {mask_value(spec.uri)!r}")
    elif scheme not in schemes:
        more = f" (or {', '.join(f'{s}://' for s in schemes[1:])})" if schemes[1:] else ""
        raise ConfigError(f"{where}.uri: backend {backend!r} needs a {schemes[0]}:// URI{more}, "
                          f"got {mask_value(spec.uri)!r}")
    else:
        try:
            fsspec.get_filesystem_class(scheme)
        except ImportError as exc:
            hint = f" (pip install 'sesa_fp[{extra}]')" if extra else ""
            raise ConfigError(f"{where}.backend: {exc}{hint}") from exc
    o = spec.options
    so = reveal_tree(o.storage_options) or None
    if dlq:
        return dlq_sink(spec.uri, gzip=o.gzip, part_max_mb=o.part_max_mb, storage_options=so,
                        compression=o.compression, level=o.level)
    return to_storage(spec.uri, gzip=o.gzip, part_max_mb=o.part_max_mb, job=job.job_name,
                      storage_options=so, compression=o.compression, level=o.level)


def _writer(spec: StorageSpec | DlqSpec, where: str, job: JobSpec, *, dlq: bool) -> Any:
    """A staging or DLQ writer: built-in fsspec backends, or a ``sesa.storage`` plugin
    called as ``factory(uri, gzip=..., part_max_mb=..., kind="staging"|"dlq")``."""
    if spec.backend in ("local", "file") or spec.backend in _OBJECT_STORES \
            or spec.backend in fsspec.available_protocols():
        return _fsspec_writer(spec, where, job, dlq)
    factory: Any = resolve("storage", spec.backend, where, key="backend")
    return factory(spec.uri, gzip=spec.options.gzip, part_max_mb=spec.options.part_max_mb,
                   kind="dlq" if dlq else "staging")


for _backend in ("local", "s3", "azure", "gcs", "memory"):  # known; any fsspec protocol works
    register("storage", Plugin(_backend, None, _fsspec_writer))


def build_transforms(spec: JobSpec) -> list[Any]:
    """The job's ``transform.chain`` as stages, in order (building them does no I/O)."""
    return [_typed("transform", t, f"transform.chain[{i}]", spec)
            for i, t in enumerate(spec.transform.chain)]


def build_job(spec: JobSpec, *, source: Any = None) -> BuiltJob:
    """Build the job's pipeline; ``source`` replaces the extractor (for ``sesa replay``)."""
    stages: list[Any] = []
    if source is None:
        source = _typed("extractor", spec.extractor, "extractor", spec)
        if spec.storage is not None:
            stages.append(tee(_writer(spec.storage, "storage", spec, dlq=False)))
    transforms = build_transforms(spec)
    if transforms:
        rt = spec.runtime
        stages += [batched(rt.batch_size),
                   map_concurrent(chain(*transforms), workers=rt.max_workers,
                                  window=rt.max_in_flight or rt.max_workers * 2,
                                  processes=rt.executor == "processes"),
                   unbatched()]
    stages.append(_typed("loader", spec.loader, "loader", spec))
    if spec.dlq is not None:
        stages.append(partition(_writer(spec.dlq, "dlq", spec, dlq=True)))
    pipeline = pipe(source, *stages)
    return BuiltJob(spec, pipeline)
