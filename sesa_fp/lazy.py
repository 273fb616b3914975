"""Names a package exports without importing them: each is loaded on first use (PEP 562).

A package keeps ``import sesa_fp`` light by listing the names that live in heavier modules
and answering for them in its module ``__getattr__``; tab completion lists them all.

>>> lazy_attribute("pkg", "dumps", {"dumps": "json"}).__name__
'dumps'
>>> lazy_attribute("pkg", "nothing", {})
Traceback (most recent call last):
AttributeError: module 'pkg' has no attribute 'nothing'
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["lazy_attribute", "lazy_dir"]


def lazy_attribute(package: str, name: str, names: Mapping[str, str],
                   submodules: Iterable[str] = ()) -> Any:
    """``package.name`` when the package does not define it yet: the attribute ``name`` of
    the module ``names[name]`` (imported now), or the submodule ``package.name`` when
    ``name`` is among ``submodules``; else `AttributeError`."""
    module = names.get(name)
    if module is not None:
        return getattr(importlib.import_module(module), name)
    if name in submodules:
        return importlib.import_module(f"{package}.{name}")
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


def lazy_dir(namespace: Iterable[str], exported: Iterable[str],
             submodules: Iterable[str] = ()) -> list[str]:
    """A package's ``dir()``: what it defines, exports lazily and the submodules it answers
    for, sorted (for ``dir()``, IPython and Jupyter completion)."""
    return sorted({*namespace, *exported, *submodules})
