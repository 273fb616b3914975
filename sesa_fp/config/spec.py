"""attrs spec classes for a YAML job, and the one private cattrs converter that fills them."""

from __future__ import annotations

import difflib
import re
from typing import Any, TypeVar

import attrs
import cattrs

from sesa_fp.errors import ConfigError

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

    def __attrs_post_init__(self) -> None:
        for name in ("batch_size", "max_workers", "max_in_flight"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"runtime.{name}: must be >= 1, got {value}")


@attrs.define
class StorageOptions:
    part_max_mb: float = 64
    gzip: bool = True
    storage_options: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class StorageSpec:
    uri: str
    backend: str = "local"
    options: StorageOptions = attrs.Factory(StorageOptions)


@attrs.define
class DlqSpec:
    uri: str
    backend: str = "local"
    max_records: int | None = None
    max_ratio: float | None = None
    options: StorageOptions = attrs.Factory(StorageOptions)


@attrs.define
class TransformSpec:
    chain: list[dict[str, Any]] = attrs.Factory(list)


@attrs.define
class JobSpec:
    job_name: str
    extractor: dict[str, Any]
    loader: dict[str, Any]
    runtime: RuntimeSpec = attrs.Factory(RuntimeSpec)
    storage: StorageSpec | None = None
    transform: TransformSpec = attrs.Factory(TransformSpec)
    dlq: DlqSpec | None = None


@attrs.define
class ConnectionSpec:
    hosts: list[str] = attrs.Factory(lambda: ["http://127.0.0.1:9200"])
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
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


def _strict(kind: type, label: str) -> Any:
    def hook(value: Any, _: Any) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ValueError(f"expected {label}, got {value!r}")
        return value
    return hook


_converter = cattrs.Converter(forbid_extra_keys=True)
for _kind, _label in ((int, "int"), (float, "number"), (bool, "true/false"), (str, "string")):
    _converter.register_structure_hook(_kind, _strict(_kind, _label))


def _known_keys(cls: type) -> list[str]:
    return [a.name for a in attrs.fields(cls)]


def _resolve(cls: Any, path: list[str]) -> Any:
    """The attrs class found by walking ``path`` from ``cls`` (for suggestions)."""
    for part in path:
        if not attrs.has(cls):
            return None
        fields = {a.name: a.type for a in attrs.fields(cls)}
        t = fields.get(part)
        if t is None:
            return None
        args = [a for a in getattr(t, "__args__", ()) if a is not type(None)]
        cls = args[0] if args else t
    return cls if attrs.has(cls) else None


def _messages(exc: Exception, cls: type, prefix: str) -> list[str]:
    out = []
    for line in cattrs.transform_error(exc):
        text, _, where = line.rpartition(" @ $")
        parts = [p for p in re.split(r"\.|\[|\]", where) if p]
        path = ".".join([prefix, *parts] if prefix else parts) if where or prefix else ""
        extra = re.match(r"extra fields found \((.*)\)", text)
        if extra:
            target = _resolve(cls, [p for p in parts if not p.isdigit()])
            known = _known_keys(target) if target else []
            for key in extra.group(1).split(", "):
                hint = difflib.get_close_matches(key, known, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else (
                    f" (known: {', '.join(known)})" if known else "")
                out.append(f"{path + '.' if path else ''}{key}: unknown key{suggestion}")
            continue
        text = text.replace("invalid value for type, ", "")
        cause = _leaf_cause(exc, parts)
        if cause:
            text = cause
        out.append(f"{path}: {text}" if path else text)
    return out


def _leaf_cause(exc: BaseException, parts: list[str]) -> str | None:
    """The innermost plain exception message (cattrs wraps ours in groups)."""
    seen: BaseException | None = exc
    while isinstance(seen, BaseExceptionGroup) and seen.exceptions:
        seen = seen.exceptions[0]
    if isinstance(seen, (ValueError, ConfigError)) and not isinstance(seen, BaseExceptionGroup):
        return str(seen)
    return None


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
    except ConfigError:
        raise
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            msgs = _messages(exc, cls, where)
        else:
            msgs = [f"{where}: {exc}" if where else str(exc)]
        raise ConfigError("; ".join(msgs)) from exc
