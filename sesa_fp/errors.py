"""Typed errors for a broken pipeline (as opposed to a bad record, which becomes a dead letter)."""

from __future__ import annotations

from typing import Any


class SesaError(Exception):
    """Base class of every error sesa_fp raises on purpose."""


class ConfigError(SesaError):
    """A job, stage or option is wrong; raised when the pipeline is built, before any I/O."""


class StageError(SesaError):
    """An exception a stage did not declare as a record error; carries the stage name."""


class StorageError(SesaError):
    """A staging prefix cannot be written or read."""


class ManifestError(StorageError):
    """A prefix has no manifest, or an unreadable one: it is not committed."""


class CorruptPartError(StorageError):
    """A part's bytes, sha256 or record count differ from what the manifest says."""


class ConservationError(SesaError):
    """Records read != loaded + dropped + dead letters: something was lost.

    ``report`` is the run's report (status ``failed``), as for any exception `run` raises.
    """

    report: Any = None


class RecordError(ValueError):
    """A record cannot be processed (a missing field, a value that does not cast)."""
