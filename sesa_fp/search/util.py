"""Small helpers shared by the adapters."""

from __future__ import annotations

import importlib
from typing import Any

from sesa_fp.errors import ConfigError

__all__ = ["error_details", "require"]


def require(module: str, extra: str) -> Any:
    """Import a client module lazily; `ConfigError` naming the extra when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"the {module!r} client is not installed: pip install 'sesa_fp[{extra}]' ({exc})"
        ) from exc


def error_details(info: Any, default_type: str) -> tuple[str, str]:
    """``(error type, reason)`` from an engine error body.

    >>> error_details({"error": {"type": "x_exception", "reason": "bad"}, "status": 400}, "E")
    ('x_exception', 'bad')
    >>> error_details("plain text", "N/A")
    ('N/A', 'plain text')
    """
    if isinstance(info, dict):
        err = info.get("error", info)
        if isinstance(err, dict):
            etype = str(err.get("type") or default_type)
            reason = str(err.get("reason") or err)
            caused = err.get("caused_by")
            if isinstance(caused, dict) and caused.get("reason"):
                reason += f" (caused by {caused.get('type')}: {caused.get('reason')})"
            return etype, reason
        return default_type, str(err)
    return default_type, str(info)
