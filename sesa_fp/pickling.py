"""Pickling a stage or a whole pipeline for another process (a worker process, a Dask worker).

cloudpickle carries closures and notebook functions by value. Locks, events and conditions
a stage holds for its own threads travel as new, unlocked ones: they guard one process's
counters, never the state being shipped. Live connections are not in an unstarted pipeline
(clients are opened when a stream starts), so nothing live is ever pickled.
"""

from __future__ import annotations

import _thread
import collections
import io
import threading
from typing import Any, ClassVar

import cloudpickle

from sesa_fp.errors import ConfigError

__all__ = ["check_picklable", "dumps", "loads"]

_FRESH: dict[type, Any] = {
    type(threading.Lock()): lambda obj: (threading.Lock, ()),
    type(threading.RLock()): lambda obj: (threading.RLock, ()),
    _thread.LockType: lambda obj: (threading.Lock, ()),
    threading.Event: lambda obj: (threading.Event, ()),
    threading.Condition: lambda obj: (threading.Condition, ()),
}


class _Pickler(cloudpickle.CloudPickler):
    # read by the C pickler when it is made, so it is a class attribute
    dispatch_table: ClassVar[Any] = collections.ChainMap(
        _FRESH, cloudpickle.CloudPickler.dispatch_table)


def dumps(obj: Any) -> bytes:
    """``obj`` as bytes for another process (locks and events travel as new ones).

    >>> import threading
    >>> type(loads(dumps({"lock": threading.Lock()}))["lock"]).__name__
    'lock'
    """
    buf = io.BytesIO()
    _Pickler(buf).dump(obj)
    return buf.getvalue()


def loads(data: bytes) -> Any:
    """The object `dumps` pickled."""
    return cloudpickle.loads(data)


def check_picklable(obj: Any, what: str) -> bytes:
    """``obj`` pickled for a worker process, or a `ConfigError` saying why it cannot be and
    what to do.

    >>> import socket
    >>> with socket.socket() as s:
    ...     check_picklable(s, "map_concurrent(processes=True): fn")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: map_concurrent(processes=True): fn <socket.socket ...> cannot be sent to a worker process (TypeError: cannot pickle 'socket' object). ...
    """  # noqa: E501
    try:
        return dumps(obj)
    except Exception as exc:
        raise ConfigError(
            f"{what} {obj!r} cannot be sent to a worker process ({type(exc).__name__}: {exc}). "
            "Each worker process gets a pickled copy of it: keep live objects (clients, open "
            "files, sockets, generators) out of it, pass plain settings instead and open what "
            "it needs in setup= (once per process, passed as fn(item, resource)), or run it "
            "on threads (processes=False)") from exc
