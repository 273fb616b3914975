"""sesa_fp: composable, lossless ETL streams.

>>> from sesa_fp import pipe, run, stage, partition
>>> dead = []
>>> report = run(pipe([{"x": "1"}, {"x": "a"}], stage(lambda r: {"x": int(r["x"])}),
...                   partition(dead.append)), progress=False)
>>> report.emitted, report.dead_letters, dead[0].error_type
(1, 1, 'ValueError')
"""

from sesa_fp.errors import (
    ConfigError,
    ConservationError,
    CorruptPartError,
    ManifestError,
    SesaError,
    StageError,
    StorageError,
)
from sesa_fp.loaders.files import load_files
from sesa_fp.report import RunReport, run
from sesa_fp.result import DeadLetter, Failure, Result, Success, stage
from sesa_fp.sources.files import read_jsonl
from sesa_fp.storage import dlq_sink, from_storage, to_storage
from sesa_fp.stream import (
    Pipeline,
    batched,
    chain,
    map_concurrent,
    merge,
    partition,
    pipe,
    tee,
    unbatched,
)
from sesa_fp.transforms.classes import Transformer

__all__ = [
    "ConfigError",
    "ConservationError",
    "CorruptPartError",
    "DeadLetter",
    "Failure",
    "ManifestError",
    "Pipeline",
    "Result",
    "RunReport",
    "SesaError",
    "StageError",
    "StorageError",
    "Success",
    "Transformer",
    "batched",
    "chain",
    "dlq_sink",
    "es_source",
    "from_storage",
    "http_source",
    "load_es",
    "load_files",
    "load_sql",
    "map_concurrent",
    "merge",
    "partition",
    "pipe",
    "read_dead_letters",
    "read_jsonl",
    "replay_dead_letters",
    "run",
    "sql_source",
    "stage",
    "tee",
    "to_storage",
    "unbatched",
]


def __getattr__(name: str) -> object:
    # The search connectors load on first use, so `import sesa_fp` stays light.
    if name == "es_source":
        from sesa_fp.sources.search import es_source

        return es_source
    if name == "http_source":
        from sesa_fp.sources.http import http_source

        return http_source
    if name == "load_es":
        from sesa_fp.loaders.search import load_es

        return load_es
    if name == "load_sql":  # SQLAlchemy and psycopg load with it (the 'sql' extra)
        from sesa_fp.loaders.sql import load_sql

        return load_sql
    if name == "sql_source":  # SQLAlchemy and the driver load when it is called
        from sesa_fp.sources.sql import sql_source

        return sql_source
    if name == "read_dead_letters":
        from sesa_fp.sources.dead_letters import read_dead_letters

        return read_dead_letters
    if name == "replay_dead_letters":
        from sesa_fp.replay import replay_dead_letters

        return replay_dead_letters
    if name == "search":  # a submodule `import sesa_fp` loaded before it was made lazy
        import importlib

        return importlib.import_module("sesa_fp.search")
    raise AttributeError(f"module 'sesa_fp' has no attribute {name!r}")


def __dir__() -> list[str]:
    # Tab completion (IPython, Jupyter, dir()) lists the lazily loaded names too.
    return sorted({*globals(), *__all__, "search"})
