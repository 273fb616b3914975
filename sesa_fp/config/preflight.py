"""Pre-flight checks for `sesa validate`.

`field_warnings` reads only the job (no I/O): a field that ``cast``, ``validate``, the
loader's dataset or routing template or its id strategy needs, but that the extractor's
``fields`` list leaves out, would make every record a dead letter at run time.

`check_target` does I/O: it samples records from the source through the transforms (as
`Pipeline.preview` does, nothing loaded or staged), resolves the target indices, and asks
the search engine which are missing and which existing mappings conflict with the sample.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from sesa_fp.dataset import DatasetTemplate
from sesa_fp.errors import ConfigError

__all__ = ["TargetReport", "check_target", "field_warnings", "mapping_conflicts"]

# hit metadata an extractor returns when named, beside the listed fields
_ALWAYS = ("_id", "_index", "_routing")


def _covered(field: str, listed: Iterable[str]) -> bool:
    """A field is read when it, a parent object or a matching wildcard is listed."""
    parts = field.split(".")
    prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return any(f == "*" or f in prefixes or fnmatch.fnmatchcase(field, f) for f in listed)


def _template_fields(text: Any) -> tuple[str, ...]:
    if not isinstance(text, str) or not text:
        return ()
    try:
        return DatasetTemplate(text).fields
    except ConfigError:
        return ()  # a malformed template is the builder's error to report


def _id_fields(spec: Any) -> tuple[str, ...]:
    if isinstance(spec, Mapping):
        fields = spec.get("fields") or ([spec["field"]] if spec.get("field") else [])
        return tuple(f for f in fields if isinstance(f, str))
    return ()


def _uses(loader: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(field, where) for each record field the loader needs."""
    raw = loader.get("options")
    opts: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    for key in ("dataset", "table"):
        for f in _template_fields(loader.get(key)):
            yield f, f"loader.{key} {loader[key]!r}"
    for f in _template_fields(opts.get("routing")):
        yield f, f"loader.options.routing {opts['routing']!r}"
    for f in _id_fields(opts.get("id_strategy")):
        yield f, f"loader.options.id_strategy ({opts['id_strategy'].get('type')})"
    for f in opts.get("key") or ():
        if isinstance(f, str):
            yield f, "loader.options.key"


def field_warnings(spec: Any) -> list[str]:
    """Warnings, one per field and step, for fields the job uses that its extractor's
    ``fields`` list leaves out (no I/O).

    >>> from sesa_fp.config.spec import JobSpec, structure
    >>> spec = structure({"job_name": "j", "extractor": {"type": "elasticsearch",
    ...     "index": "i", "fields": ["_id", "n"]}, "transform": {"chain": [
    ...     {"type": "cast", "fields": ["n", "at"]}]}, "loader": {"type": "files",
    ...     "dataset": "d-{at:%Y}"}}, JobSpec)
    >>> for w in field_warnings(spec): print(w)
    extractor.fields leaves out 'at', used by transform.chain[0] (cast): the cast never applies
    extractor.fields leaves out 'at', used by loader.dataset 'd-{at:%Y}': every record would become a dead letter
    """  # noqa: E501
    listed = spec.extractor.get("fields") if isinstance(spec.extractor, Mapping) else None
    if not isinstance(listed, list) or not all(isinstance(f, str) for f in listed):
        return []
    available = [*listed, *_ALWAYS]
    opaque: str | None = None  # a step that may add fields nobody can see from here
    out: list[str] = []

    def check(field: str, where: str, consequence: str) -> None:
        if _covered(field, available):
            return
        note = f" (unless {opaque} adds it)" if opaque else ""
        out.append(f"extractor.fields leaves out {field!r}, used by {where}{note}: "
                   f"{consequence}")

    for i, step in enumerate(spec.transform.chain):
        if not isinstance(step, Mapping):
            continue
        kind = step.get("type")
        where = f"transform.chain[{i}] ({kind})"
        if kind == "cast":
            fields = step.get("fields")
            for f in [fields] if isinstance(fields, str) else fields or ():
                check(f, where, "the cast never applies")
        elif kind == "validate":
            for f in step.get("required") or ():
                check(f, where, "every record would fail validation")
        elif kind == "derive":
            if isinstance(step.get("field"), str):
                available.append(step["field"])
        elif kind != "normalize":
            opaque = opaque or f"transform.chain[{i}] ({kind})"
    for field, where in _uses(spec.loader if isinstance(spec.loader, Mapping) else {}):
        check(field, where, "every record would become a dead letter")
    return out


# -- against the target (I/O) ----------------------------------------------------------------

_NUMERIC = {"long", "integer", "short", "byte", "unsigned_long"}
_FLOATS = {"double", "float", "half_float", "scaled_float"}


def _fits(es_type: str, value: Any) -> bool:
    """Whether the engine would accept ``value`` for a field mapped as ``es_type``."""
    if value is None or isinstance(value, list):
        return all(_fits(es_type, v) for v in value) if isinstance(value, list) else True
    if es_type in _NUMERIC | _FLOATS:
        if isinstance(value, bool):
            return False
        if isinstance(value, (int, float)):
            return es_type in _FLOATS or float(value).is_integer()
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                return False
            return es_type in _FLOATS or number.is_integer()
        return False
    if es_type == "boolean":
        return isinstance(value, bool) or value in ("true", "false", "")
    if es_type in ("date", "date_nanos"):
        if isinstance(value, (int, float, _dt.date)) and not isinstance(value, bool):
            return True
        if isinstance(value, str):
            try:
                _dt.datetime.fromisoformat(value)
            except ValueError:
                return False
            return True
        return False
    if es_type in ("object", "nested"):
        return isinstance(value, Mapping)
    if es_type in ("keyword", "text", "match_only_text", "wildcard", "constant_keyword"):
        return not isinstance(value, Mapping)
    return True  # geo, ip, ranges...: left to the engine


def mapping_conflicts(mapping: Mapping[str, Any], record: Mapping[str, Any],
                      prefix: str = "") -> list[tuple[str, str, Any]]:
    """``(field, mapped type, value)`` for each value of ``record`` the mapping would refuse.

    >>> mapping_conflicts({"properties": {"n": {"type": "long"}, "o": {"properties": {
    ...     "at": {"type": "date"}}}}}, {"n": "seven", "o": {"at": "2025-09-06"}, "x": 1})
    [('n', 'long', 'seven')]
    """
    props = mapping.get("properties") or {}
    out: list[tuple[str, str, Any]] = []
    for key, value in record.items():
        field = props.get(key)
        if not isinstance(field, Mapping) or key in _ALWAYS:
            continue
        name = prefix + key
        es_type = field.get("type", "object" if "properties" in field else "")
        if es_type in ("object", "nested") and isinstance(value, Mapping):
            out += mapping_conflicts(field, value, name + ".")
        elif es_type and not _fits(es_type, value):
            out.append((name, es_type, value))
    return out


@attrs.frozen
class TargetReport:
    """What `check_target` found: the targets resolved from the sample (dataset -> records),
    those missing on the engine, mapping conflicts, and the sample's dead letters."""

    sampled: int
    targets: dict[str, int]
    missing: list[str]
    conflicts: list[str]
    dead_letters: list[str]
    notes: list[str]

    @property
    def ok(self) -> bool:
        """No conflicts and no dead letters in the sample."""
        return not self.conflicts and not self.dead_letters

    def lines(self) -> list[str]:
        """The report as lines for the terminal."""
        out = [f"sampled {self.sampled} records"]
        out += [f"target {name}: {n} records" + (" (missing: it would be created)"
                                                 if name in self.missing else "")
                for name, n in self.targets.items()]
        out += [f"conflict: {c}" for c in self.conflicts]
        out += [f"dead letter: {d}" for d in self.dead_letters]
        out += [f"note: {n}" for n in self.notes]
        return out


def check_target(pipeline: Any, *, sample: int = 100) -> TargetReport:
    """Sample ``sample`` records through the transforms, resolve their targets and, for a
    search loader, report indices that do not exist and mapping conflicts (the index's
    mapping, or the loader's own ``mappings`` for a new index); for a SQL loader, tables
    that do not exist, fields a table lacks and (PostgreSQL) values it would refuse: wrong
    type, NULL, CHECK, too long. Writes nothing."""
    from sesa_fp.preview import preview

    rows = preview(pipeline, sample)
    loader = next((st for st in pipeline.stages if getattr(st, "kind", None) == "loader"), None)
    targets: dict[str, int] = {}
    examples: dict[str, list[Any]] = {}
    indices: dict[str, list[int]] = {}
    dead: list[str] = []
    for row in rows:
        if row.dead_letter is not None:
            d = row.dead_letter
            dead.append(f"record {row.index} at {d.stage}: {d.error_type}: {d.error_message}")
        elif row.target is not None:
            targets[row.target.dataset] = targets.get(row.target.dataset, 0) + 1
            examples.setdefault(row.target.dataset, []).append(row.output)
            indices.setdefault(row.target.dataset, []).append(row.index)
    missing: list[str] = []
    conflicts: list[str] = []
    notes: list[str] = []
    config = getattr(loader, "config", None)
    if loader is None:
        notes.append("no loader: nothing to check on a target")
    elif callable(getattr(loader, "table_columns", None)):
        _check_tables(loader, examples, indices, missing, conflicts)
    elif config is None or not hasattr(loader, "prepare_target"):
        notes.append(f"{loader!r}: targets resolved; existence and mappings are checked "
                     "for search and SQL loaders only")
    else:
        from sesa_fp.search import connect, resolve_config

        client = connect(resolve_config(config, max_retries=1, backoff=0.2))
        try:
            for index, records in examples.items():
                if client.index_exists(index):
                    mapping: Mapping[str, Any] = client.mapping(index)
                    source = f"index {index}"
                elif loader.mappings is not None:
                    missing.append(index)
                    mapping, source = loader.mappings, f"loader mappings for new index {index}"
                else:
                    missing.append(index)
                    continue
                seen: set[tuple[str, str]] = set()
                for rec in records:
                    for field, es_type, value in mapping_conflicts(mapping, rec):
                        if (field, es_type) not in seen:
                            seen.add((field, es_type))
                            conflicts.append(f"{source}: field {field!r} is mapped as "
                                             f"{es_type}, the sample has {value!r}")
        finally:
            client.close()
    return TargetReport(len(rows), targets, missing, conflicts, dead, notes)



_SHOWN = 5  # refused records listed one by one per table


def _check_tables(loader: Any, examples: Mapping[str, list[Any]],
                  indices: Mapping[str, list[int]], missing: list[str],
                  conflicts: list[str]) -> None:
    """SQL targets: a missing table (created with ``create=True``, else the run would fail),
    sample fields the table lacks, and (PostgreSQL) sample values the table would refuse
    (each such record would be a dead letter), found without touching the table."""
    for table, records in examples.items():
        columns = loader.table_columns(table)
        if columns is None:
            missing.append(table)
            if not loader.create:
                conflicts.append(f"table {table} does not exist and create is off: the run "
                                 "would fail")
            continue
        extra: list[str] = []
        if loader.columns is None:  # else only the listed columns are written
            extra = sorted({f for rec in records for f in rec} - set(columns))
            if extra:
                conflicts.append(f"table {table}: the sample has fields the table lacks: "
                                 f"{', '.join(extra)} (their records would be dead letters)")
        check = getattr(loader, "check_values", None)
        refused = check(table, records) if callable(check) else None
        if refused is None:
            continue
        found = [(n, dl) for n, dl in zip(indices[table], refused, strict=True)
                 if dl is not None and not (extra and dl.error_type == "RecordError")]
        for n, dl in found[:_SHOWN]:
            conflicts.append(f"table {table}: record {n} would be a dead letter: "
                             f"{dl.error_type}: {dl.error_message}")
        if len(found) > _SHOWN:
            conflicts.append(f"table {table}: {len(found) - _SHOWN} more records of the sample "
                             "would be dead letters")
