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
from sesa_fp.lazy import lazy_attribute as _lazy_attribute
from sesa_fp.lazy import lazy_dir as _lazy_dir
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


#: the connectors and replay load on first use, so `import sesa_fp` stays light (SQLAlchemy
#: and psycopg load with `load_sql`/`sql_source` only when they are called: the 'sql' extra)
_LAZY = {"es_source": "sesa_fp.sources.search", "http_source": "sesa_fp.sources.http",
         "load_es": "sesa_fp.loaders.search", "load_sql": "sesa_fp.loaders.sql",
         "sql_source": "sesa_fp.sources.sql",
         "read_dead_letters": "sesa_fp.sources.dead_letters",
         "replay_dead_letters": "sesa_fp.replay"}
#: a submodule `import sesa_fp` loaded before it was made lazy
_SUBMODULES = ("search",)


def __getattr__(name: str) -> object:
    return _lazy_attribute(__name__, name, _LAZY, _SUBMODULES)


def __dir__() -> list[str]:
    # Tab completion (IPython, Jupyter, dir()) lists the lazily loaded names too.
    return _lazy_dir(globals(), __all__, _SUBMODULES)
