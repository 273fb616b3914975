"""One attempt of the resume tests' jobs, run in a subprocess (so SIGKILL kills only it).

``python tests/resume_job.py CONFIG_JSON``: ``mode`` "jsonl" (JSONL -> S3 staging ->
transforms -> search engine) or "es" (search engine index -> slices=2 -> S3 staging ->
transforms -> search engine). Every record a source yields is appended to ``reads`` with an
unbuffered write, so the records read by an attempt that is killed are still counted.
``SESA_KILL_AT`` (`sesa_fp.faults`) chooses where the attempt dies.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import orjson

from sesa_fp import merge, pipe, read_jsonl, run, stage, tee
from sesa_fp.loaders.search import load_es
from sesa_fp.sources.search import es_source
from sesa_fp.storage import dlq_sink, to_storage
from sesa_fp.stream import partition


class Counted:
    """A source that notes each record it yields in a file (one byte per record)."""

    def __init__(self, source: Any, log: str) -> None:
        self.source = source
        self.log = log

    @property
    def position(self) -> Any:
        return self.source.position

    def resume(self, start: Any) -> Counted:
        return Counted(self.source.resume(start), self.log)

    def __iter__(self) -> Iterator[Any]:
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            for item in self.source:
                os.write(fd, b".")
                yield item
        finally:
            os.close(fd)


def enrich(rec: dict[str, Any]) -> dict[str, Any] | None:
    """The jobs' transform: fails on every 37th record, drops every 50th, adds a field."""
    n = int(rec["n"])
    if n % 37 == 5:
        raise ValueError(f"record {n} is unlucky")
    if n % 50 == 3:
        return None
    return {**rec, "double": n * 2}


def build(cfg: dict[str, Any]) -> Any:
    so = cfg["storage_options"]
    if cfg["mode"] == "jsonl":
        source: Any = Counted(read_jsonl(cfg["input"]), cfg["reads"])
    else:
        src = es_source(hosts=[cfg["search_url"]], index=cfg["source_index"], sort="n",
                        slices=2, page_size=50, fields=["_id", "n", "text"])
        source = merge(*(Counted(p, cfg["reads"]) for p in src.partitions()), window=32)
    return pipe(
        source,
        tee(to_storage(cfg["staging"], gzip=True, part_max_mb=cfg["part_max_mb"],
                       storage_options=so)),
        stage(enrich, errors=(ValueError,)),
        load_es(hosts=[cfg["search_url"]], dataset=cfg["target_index"],
                id_strategy={"type": "sha256_concat", "fields": ["n"]}, actions_per_batch=250,
                concurrency=2),
        partition(dlq_sink(cfg["dlq"], storage_options=so)),
    )


def main() -> None:
    cfg = orjson.loads(sys.argv[1])
    report = run(build(cfg), progress=False, fresh=bool(cfg.get("fresh")))
    print(report.to_json())


if __name__ == "__main__":
    main()
