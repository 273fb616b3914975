"""Import ``"pkg.mod:Name"`` paths with an error that says what failed."""

from __future__ import annotations

import importlib
from typing import Any

from sesa_fp.errors import ConfigError

__all__ = ["import_object"]


def import_object(path: str) -> Any:
    """The object at ``"package.module:Name"`` (``Name`` may be dotted).

    >>> import_object("json:dumps").__name__
    'dumps'
    >>> import_object("no_such_pkg.mod:X")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: cannot import 'no_such_pkg.mod:X': No module named 'no_such_pkg'
    """
    if not isinstance(path, str) or ":" not in path:
        raise ConfigError(f"expected 'package.module:Name', got {path!r}")
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {path!r}: {exc}") from exc
    except Exception as exc:  # the user's module raised while importing
        raise ConfigError(f"cannot import {path!r}: {type(exc).__name__}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ConfigError(f"cannot import {path!r}: {module_name} has no {attr!r}") from exc
    return obj
