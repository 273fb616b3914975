"""How a composition runs, never what it does: `DaskExecutor` runs a pipeline's partitions as
Dask tasks (``pip install 'sesa_fp[dask]'``). The core and the connectors import no executor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sesa_fp.lazy import lazy_attribute as _lazy_attribute

if TYPE_CHECKING:
    from sesa_fp.executors.dask import DaskExecutor

__all__ = ["DaskExecutor", "executor_from_spec"]


def __getattr__(name: str) -> Any:
    # distributed is imported only when it is used
    return _lazy_attribute(__name__, name, {"DaskExecutor": "sesa_fp.executors.dask"})


def executor_from_spec(spec: Any) -> Any:
    """The executor a job's ``runtime.executor`` or ``sesa run --executor`` names: None for
    this process (``threads``, ``processes``: they choose how transforms run, not where
    partitions run), a `DaskExecutor` for ``{type: dask, address: ...}`` or ``dask://host:port``
    (``dask://local`` or ``address: local``: a LocalCluster on this machine).

    >>> executor_from_spec("threads") is None
    True
    >>> executor_from_spec("dask://10.0.0.5:8786").address
    'tcp://10.0.0.5:8786'
    """
    from sesa_fp.errors import ConfigError

    if spec is None or spec in ("threads", "processes"):
        return None
    if isinstance(spec, str) and spec.startswith("dask://"):
        rest = spec[len("dask://"):]
        spec = {"type": "dask", "address": rest if rest == "local" else f"tcp://{rest}"}
    if isinstance(spec, dict) and spec.get("type") == "dask":
        from sesa_fp.executors.dask import DaskExecutor

        extra = set(spec) - {"type", "address", "workers", "retries"}
        if extra:
            raise ConfigError(f"runtime.executor: unknown key(s) {sorted(extra)} (known: type, "
                              "address, workers, retries)")
        address = spec.get("address")
        if not isinstance(address, str) or not address:
            raise ConfigError("runtime.executor.address: expected 'tcp://host:8786' or "
                              f"'local', got {address!r}")
        return DaskExecutor(address=address, workers=spec.get("workers"),
                            retries=spec.get("retries", 0))
    raise ConfigError(f"runtime.executor: expected threads, processes, {{type: dask, address: "
                      f"...}} or dask://host:port, got {spec!r}")
