"""attrs spec classes for a YAML job, and the one private cattrs converter that fills them."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, cast

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from sesa_fp.errors import ConfigError
from sesa_fp.secrets import Secret, is_secret_key, mask_value, masked_repr

__all__ = [
    "ConnectionSpec",
    "DlqSpec",
    "IdSpec",
    "JobSpec",
    "RuntimeSpec",
    "StorageOptions",
    "StorageSpec",
    "TransformSpec",
    "structure",
]

T = TypeVar("T")


@attrs.define
class RuntimeSpec:
    batch_size: int = 2000
    max_workers: int = 4
    max_in_flight: int | None = None
    # threads (default) or processes: how the transform chain runs; {type: dask, address}:
    # where the partitions run (sesa_fp.executors)
    executor: Any = None

    def __attrs_post_init__(self) -> None:
        for name in ("batch_size", "max_workers", "max_in_flight"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise _FieldError(name, f"must be >= 1, got {value}")
        ex = self.executor
        if not (ex in (None, "threads", "processes")
                or (isinstance(ex, str) and ex.startswith("dask://"))
                or (isinstance(ex, dict) and ex.get("type") == "dask")):
            raise _FieldError("executor", "expected threads, processes, {type: dask, "
                              "address: tcp://host:8786 | local} or dask://host:port, "
                              f"got {mask_value(ex)!r}")


@attrs.define
class StorageOptions:
    part_max_mb: float = 64
    gzip: bool = True
    compression: str | None = None  # gzip | zstd | none (overrides gzip)
    level: int | None = None  # compression level (gzip 6, zstd 3 when unset)
    storage_options: dict[str, Any] = attrs.field(factory=dict, repr=masked_repr)


@attrs.define
class StorageSpec:
    uri: str = attrs.field(repr=masked_repr)
    backend: str = "local"
    options: StorageOptions = attrs.Factory(StorageOptions)


@attrs.define
class DlqSpec:
    uri: str = attrs.field(repr=masked_repr)
    backend: str = "local"
    max_records: int | None = None
    max_ratio: float | None = None
    options: StorageOptions = attrs.Factory(StorageOptions)


@attrs.define
class TransformSpec:
    chain: list[dict[str, Any]] = attrs.Factory(list)


@attrs.define
class MetricsSpec:
    """Where a run's Prometheus metrics go (`sesa_fp.metrics`); the CLI's --metrics-file and
    --pushgateway take precedence."""

    file: str | None = None
    pushgateway: str | None = attrs.field(default=None, repr=masked_repr)


@attrs.define
class JobSpec:
    job_name: str
    extractor: dict[str, Any] = attrs.field(repr=masked_repr)
    loader: dict[str, Any] = attrs.field(repr=masked_repr)
    runtime: RuntimeSpec = attrs.Factory(RuntimeSpec)
    storage: StorageSpec | None = None
    transform: TransformSpec = attrs.Factory(TransformSpec)
    dlq: DlqSpec | None = None
    metrics: MetricsSpec | None = None


@attrs.define
class ConnectionSpec:
    hosts: list[str] = attrs.field(factory=lambda: ["http://127.0.0.1:9200"], repr=masked_repr)
    username: str | None = None
    password: Secret | None = None
    api_key: Secret | None = None
    verify_certs: bool = True
    ca_certs: str | None = None
    timeout: float = 30.0


@attrs.define
class IdSpec:
    type: str
    fields: list[str] = attrs.Factory(list)
    field: str | None = None
    namespace: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The spec as `sesa_fp.ids.id_strategy` takes it (unset keys left out)."""
        return {k: v for k, v in attrs.asdict(self).items() if v not in (None, [])}


class _Mismatch(ValueError):
    """A value of the wrong type; the message is written where the path is known, so a
    secret field's value is never echoed."""

    def __init__(self, expected: str, got: Any) -> None:
        super().__init__(f"expected {expected}, got {type(got).__name__}")
        self.expected, self.got = expected, got


class _FieldError(ValueError):
    """A check in a spec class failed for one of its fields."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def _strict(kind: type, label: str) -> Any:
    def hook(value: Any, _: Any) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise _Mismatch(label, value)
        return value
    return hook


def _secret(value: Any, _: Any) -> Secret:
    if isinstance(value, (str, Secret)):
        return Secret(value)
    raise _Mismatch("a string", value)


_converter = cattrs.Converter(forbid_extra_keys=True)
for _kind, _label in ((int, "int"), (float, "number"), (bool, "true/false"), (str, "string")):
    _converter.register_structure_hook(_kind, _strict(_kind, _label))
_converter.register_structure_hook(Secret, _secret)


def _mapping_first(cls: type) -> Any:
    inner: Any = make_dict_structure_fn(cls, _converter)

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise _Mismatch("a mapping", value)
        return inner(value, cls)
    return hook


_converter.register_structure_hook_factory(attrs.has, _mapping_first)

Path = list[str | int]


def _leaves(exc: BaseException, path: Path) -> Iterator[tuple[Path, BaseException]]:
    """Each innermost error with its path, from cattrs' notes (never from message text)."""
    others: Sequence[BaseException]
    if isinstance(exc, cattrs.ClassValidationError):
        by_attr, others = exc.group_exceptions()
        for sub, note in by_attr:
            yield from _leaves(sub, [*path, note.name])
    elif isinstance(exc, cattrs.IterableValidationError):
        by_item, others = exc.group_exceptions()
        for sub, inote in by_item:
            # IterableValidationNote is a str subclass, so mypy sees str.index here
            yield from _leaves(sub, [*path, cast(Any, inote).index])
    elif isinstance(exc, BaseExceptionGroup):
        others = exc.exceptions
    else:
        yield path, exc
        return
    for other in others:
        yield from _leaves(other, path)


def _path_text(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(path: Path, exc: BaseException) -> list[str]:
    """One message per problem: ``path: what`` (values of secret fields left out)."""
    where = _path_text(path)
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        known = [a.name for a in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        out = []
        for key in sorted(exc.extra_fields):
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else (
                f" (known: {', '.join(known)})" if known else "")
            out.append(f"{_path_text([*path, key])}: unknown key{suggestion}")
        return out
    if isinstance(exc, _FieldError):
        return [f"{_path_text([*path, exc.field])}: {exc.message}"]
    if isinstance(exc, _Mismatch):
        if any(is_secret_key(p) for p in path) or exc.expected == "a string" or \
                isinstance(exc.got, Secret):
            text = str(exc)  # the type only: this may be a password
        else:
            text = f"expected {exc.expected}, got {mask_value(exc.got)!r}"
    elif isinstance(exc, KeyError):
        text = "required field missing"
    elif isinstance(exc, ConfigError):
        text = str(exc)
    else:
        text = f"invalid value ({type(exc).__name__}: {exc})"
    return [f"{where}: {text}" if where else text]


def _messages(exc: BaseException, prefix: str) -> list[str]:
    base: Path = [prefix] if prefix else []
    return [m for path, leaf in _leaves(exc, base) for m in _describe(path, leaf)]


def structure(data: Any, cls: type[T], where: str = "") -> T:
    """Fill ``cls`` from a parsed dict; any problem is a `ConfigError` naming the path.

    >>> structure({"batch_size": "big"}, RuntimeSpec, "runtime")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: runtime.batch_size: expected int, got 'big'
    >>> structure({"max_wrkers": 2}, RuntimeSpec, "runtime")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: runtime.max_wrkers: unknown key (did you mean 'max_workers'?)
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'job'}: expected a mapping, got {type(data).__name__}")
    try:
        return _converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError("; ".join(_messages(exc, where))) from exc
