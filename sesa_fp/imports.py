"""Import ``"pkg.mod:Name"`` paths with an error that says what failed."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

from sesa_fp.errors import ConfigError

__all__ = ["import_object", "require"]


def import_object(path: str) -> Any:
    """The object at ``"package.module:Name"`` (``Name`` may be dotted).

    >>> import_object("json:dumps").__name__
    'dumps'
    >>> import_object("no_such_pkg.mod:X")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: cannot import 'no_such_pkg.mod:X': No module named 'no_such_pkg'
    >>> import_object("json:nope")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: cannot import 'json:nope': json has no 'nope'
    """
    module_name, sep, attr = path.partition(":") if isinstance(path, str) else ("", "", "")
    if not sep or not module_name or not attr:
        raise ConfigError(f"expected 'package.module:Name', got {path!r}")
    try:
        return pkgutil.resolve_name(path)
    except ImportError as exc:
        raise ConfigError(f"cannot import {path!r}: {exc}") from exc
    except AttributeError as exc:
        if module_name in sys.modules:  # imported fine; the name is not in it
            raise ConfigError(f"cannot import {path!r}: {module_name} has no {attr!r}") from exc
        raise ConfigError(f"cannot import {path!r}: AttributeError: {exc}") from exc
    except Exception as exc:  # the user's module raised while importing
        raise ConfigError(f"cannot import {path!r}: {type(exc).__name__}: {exc}") from exc


def require(module: str, extra: str) -> Any:
    """Import an optional module lazily; `ConfigError` naming the extra when it is missing.

    >>> require("json", "none").__name__
    'json'
    >>> require("no_such_client", "es")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: the 'no_such_client' package is not installed: pip install ...
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"the {module!r} package is not installed: pip install 'sesa_fp[{extra}]' ({exc})"
        ) from exc
