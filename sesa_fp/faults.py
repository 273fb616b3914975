"""Crash points for the resume tests: ``SESA_KILL_AT=<point>:<n>`` kills the process with
SIGKILL the n-th time it reaches ``<point>``; unset (always, outside those tests), a point
costs one comparison. Points are passed at part and flush granularity, never per record:

``flush`` (a buffer written into an open part: during extraction), ``part_closed`` (a part
file closed, its commit record not yet written), ``part_committed`` (after the commit
record), ``marked`` (a part's load ledger entry written: during loading), ``manifest`` (the
last part committed, the manifest not yet written), ``manifest_tmp`` (local storage: the new
manifest written beside the old one, not yet renamed into place).

>>> fault_point("flush")  # no SESA_KILL_AT: nothing happens
"""

from __future__ import annotations

import os
import signal

__all__ = ["fault_point"]


def _parse(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    point, _, n = spec.partition(":")
    return point, int(n or 1)


_target = _parse(os.environ.get("SESA_KILL_AT"))
_seen = 0


def fault_point(name: str) -> None:
    """Die here (SIGKILL, no clean-up of any kind) if ``SESA_KILL_AT`` names this point and
    this is its n-th passage."""
    global _seen
    if _target is None or _target[0] != name:
        return
    _seen += 1
    if _seen >= _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
