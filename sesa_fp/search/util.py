"""Small helpers shared by the adapters."""

from __future__ import annotations

from typing import Any

from sesa_fp.imports import require

__all__ = ["error_details", "require"]


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
