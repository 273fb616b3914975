"""Per-record target names: ``rfi-enriched-{created_at:%Y.%m}`` rendered from record fields."""

from __future__ import annotations

import datetime as _dt
import string
from collections.abc import Mapping
from typing import Any, NamedTuple

from sesa_fp.errors import ConfigError, RecordError

__all__ = ["DatasetTemplate", "Target"]


class Target(NamedTuple):
    """Where a loader would put one record: the dataset (index, table, folder) it renders,
    the id it gives the record (None: the target assigns one) and the routing, if any.

    Loaders expose ``target(record) -> Target`` (the logic they load with), so a preview or
    a pre-flight check resolves names without loading anything.

    >>> Target("rfi-2025.09", "abc")
    Target(dataset='rfi-2025.09', id='abc', routing=None)
    """

    # a tuple: the loader makes one per record on its hot path

    dataset: str
    id: str | None = None
    routing: str | None = None


class DatasetTemplate:
    """A compiled dataset name template; an ISO string is parsed when the spec is a date format.

    >>> t = DatasetTemplate("rfi-enriched-{created_at:%Y.%m}")
    >>> t.render({"created_at": "2025-09-06T10:00:00Z"})
    'rfi-enriched-2025.09'
    >>> DatasetTemplate("plain").render({})
    'plain'
    >>> t.render({"title": "x"})
    Traceback (most recent call last):
    sesa_fp.errors.RecordError: dataset template '...' needs field 'created_at'
    """

    def __init__(self, template: str) -> None:
        if not isinstance(template, str) or not template:
            raise ConfigError(f"dataset must be a non-empty string, got {template!r}")
        self.template = template
        self._parts: list[tuple[str, tuple[str, ...] | None, str]] = []
        try:
            for literal, field, spec, conv in string.Formatter().parse(template):
                if conv:
                    raise ConfigError(f"dataset template {template!r}: conversions not supported")
                path = tuple(field.split(".")) if field else None
                if field == "" and spec is not None:
                    raise ConfigError(f"dataset template {template!r}: empty field name")
                self._parts.append((literal, path, spec or ""))
        except ValueError as exc:
            raise ConfigError(f"dataset template {template!r} is malformed: {exc}") from exc
        self.fields = tuple(".".join(p) for _, p, _ in self._parts if p)
        self.is_static = not self.fields
        if not self.is_static:
            from toolz import get_in  # here, not at the top: `import sesa_fp` stays light

            self._get_in = get_in

    def __repr__(self) -> str:
        return repr(self.template)

    def render(self, record: Mapping[str, Any]) -> str:
        """The dataset name for ``record``; `RecordError` if a field is missing or bad."""
        if self.is_static:
            return self.template
        out = []
        for literal, path, spec in self._parts:
            out.append(literal)
            if path is None:
                continue
            value = self._get_in(path, record)
            if value is None:
                raise RecordError(
                    f"dataset template {self.template!r} needs field {'.'.join(path)!r}"
                )
            if "%" in spec and isinstance(value, str):
                try:
                    value = _dt.datetime.fromisoformat(value)
                except ValueError as exc:
                    raise RecordError(
                        f"dataset template {self.template!r}: field {'.'.join(path)!r} "
                        f"is not a date: {value!r}"
                    ) from exc
            try:
                out.append(format(value, spec))
            except (ValueError, TypeError) as exc:
                raise RecordError(
                    f"dataset template {self.template!r}: cannot format "
                    f"{'.'.join(path)!r}={value!r} with {spec!r}"
                ) from exc
        return "".join(out)
