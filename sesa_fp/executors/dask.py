"""`DaskExecutor`: each partition of a pipeline as one Dask task.

A task unpickles its own copy of the pipeline (settings only: clients are opened by the
stream on the worker, from the masked configuration the stages hold), keeps partition ``i``
of the source, moves its staging and dead-letter writers to the partition's sub-prefixes
(`sesa_fp.partitions`) and runs it with `run` there. The driver gathers one report per
partition, merges them (conservation checked over the whole run) and commits the staging
manifest that lists every partition's parts.

A worker lost mid-task (its process killed) is Dask's to handle: the scheduler runs the
task again elsewhere. Ids are deterministic and a partition rewrites only its own
sub-prefix, so the target ends up the same and only the finished attempt's report counts.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import attrs

from sesa_fp.errors import ConfigError, StageError
from sesa_fp.logs import log_event
from sesa_fp.partitions import partition_name, partition_pipeline, source_partitions
from sesa_fp.pickling import check_picklable, loads
from sesa_fp.report import RunReport, new_run_id, run
from sesa_fp.report_merge import check_conserved, merge_reports
from sesa_fp.secrets import mask_url
from sesa_fp.stats import walk
from sesa_fp.storage.partitions import write_merged_manifest
from sesa_fp.stream import Pipeline

__all__ = ["DaskExecutor", "local_outputs", "run_partition_task"]


def run_partition_task(payload: bytes, index: int, run_id: str, job: str | None,
                       dlq: Any, fresh: bool = False) -> dict[str, Any]:
    """What one Dask task runs: partition ``index`` of the pickled pipeline (resuming what
    its sub-prefix committed unless ``fresh``); its report as a dict. A failure is raised
    with its partial report attached (``exc.report``)."""
    pipeline = loads(payload)
    part = partition_pipeline(pipeline, index)
    if isinstance(dlq, str):
        from sesa_fp.storage.location import join_path

        dlq = join_path(dlq, partition_name(index))
    report = run(part, progress=False, run_id=run_id, job=job, dlq=dlq, fresh=fresh)
    return report.to_dict()


@attrs.define
class DaskExecutor:
    """Run a pipeline's partitions on a Dask cluster: ``address="tcp://host:8786"`` (a
    running scheduler) or ``"local"`` (a `distributed.LocalCluster` of ``workers`` processes
    on this machine, started and stopped by the run). ``retries`` re-runs a partition whose
    task raised (a lost worker is retried by Dask regardless).

    >>> DaskExecutor(address="local", workers=2)
    DaskExecutor(address='local', workers=2, retries=0)
    """

    address: str
    workers: int | None = None
    retries: int = 0

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.address, str) or not self.address:
            raise ConfigError(f"DaskExecutor: address must be 'tcp://host:port' or 'local', "
                              f"got {self.address!r}")
        if self.workers is not None and (not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise ConfigError(f"DaskExecutor: workers must be a positive int, got "
                              f"{self.workers!r}")

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A `distributed.Client` on the cluster (a LocalCluster for ``"local"``)."""
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ConfigError("the Dask executor needs distributed: pip install "
                              "'sesa_fp[dask]'") from exc
        if self.address == "local":
            with LocalCluster(n_workers=self.workers or 2, threads_per_worker=1,
                              processes=True, dashboard_address=None) as cluster, \
                    Client(cluster) as client:
                yield client
            return
        try:
            client = Client(self.address, timeout="10s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {mask_url(self.address)}: "
                              f"{exc}") from exc
        with client:
            yield client

    def run(self, pipeline: Pipeline, *, run_id: str | None = None, job: str | None = None,
            check: bool = True, dlq: Any = None, fresh: bool = False,
            **_: Any) -> RunReport:
        """Run every partition as a task and return the merged report (see the module). A
        partition resumes what its sub-prefix committed, as `run` does; ``fresh`` starts
        every partition over."""
        if not isinstance(pipeline, Pipeline):
            raise ConfigError("DaskExecutor runs a pipe(...) (its source's partitions are the "
                              f"tasks), got {type(pipeline).__name__}")
        if dlq is not None and not isinstance(dlq, str):
            raise ConfigError("DaskExecutor: dlq must be a URI (a writer object cannot be "
                              "shared by tasks on other machines)")
        run_id = run_id or new_run_id()
        n = len(source_partitions(pipeline.source))
        payload = check_picklable(pipeline, "DaskExecutor: the pipeline")
        staging = [w for w in walk(pipeline) if getattr(w, "kind", None) == "staging"
                   and hasattr(w, "storage_options") and not getattr(w, "per_run", True)]
        t0 = time.perf_counter()
        log_event("run_started", run_id=run_id, job=job, executor="dask",
                  address=mask_url(self.address), partitions=n)
        reports: list[dict[str, Any]] = []
        errors: list[BaseException] = []
        with self.client() as client:
            _warn_local_outputs(pipeline, dlq, _worker_hosts(client))
            futures = [client.submit(run_partition_task, payload, i, run_id, job, dlq, fresh,
                                     key=f"sesa-{run_id}-{partition_name(i)}", pure=False,
                                     retries=self.retries)
                       for i in range(n)]
            for fut in futures:  # in partition order
                try:
                    reports.append(fut.result())
                except Exception as exc:
                    errors.append(exc)
                    partial = getattr(exc, "report", None)
                    if isinstance(partial, RunReport):
                        reports.append(partial.to_dict())
        outputs = []
        if not errors:
            for w in staging:  # one manifest over every partition's parts, written last
                m = write_merged_manifest(w.uri, [partition_name(i) for i in range(n)],
                                          run_id=run_id, storage_options=w.storage_options)
                outputs.append({"kind": "staging", "uri": mask_url(w.uri),
                                "records": m.records, "bytes": m.bytes, "parts": len(m.parts),
                                "partitions": n})
        merged = merge_reports(reports or [_empty(run_id, job)], run_id=run_id, job=job,
                               elapsed_s=time.perf_counter() - t0, outputs=outputs)
        if errors:
            merged = attrs.evolve(merged, status="failed",
                                  error=f"{type(errors[0]).__name__}: {errors[0]}")
            log_event("run_failed", logging.ERROR, run_id=run_id, job=job,
                      error=merged.error, failed_partitions=len(errors))
            first = errors[0]
            error = first if isinstance(first, Exception) else StageError(str(first))
            with contextlib.suppress(AttributeError, TypeError):
                error.report = merged  # type: ignore[attr-defined]
            raise error
        log_event("run_finished", run_id=run_id, job=job, executor="dask", partitions=n,
                  read=merged.read, loaded=merged.loaded, emitted=merged.emitted,
                  dropped=merged.dropped, dead_letters=merged.dead_letters,
                  elapsed_s=round(merged.elapsed_s, 3), conserved=merged.conserved)
        return check_conserved(merged) if check else merged


_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def _worker_hosts(client: Any) -> list[str]:
    """The hosts of the cluster's workers (from the scheduler); empty when unknown."""
    try:
        addresses = list(client.scheduler_info().get("workers", {}))
    except Exception:  # an older or partial answer: no warning rather than a failure
        return []
    return sorted({urlsplit(a).hostname or a for a in addresses})


def local_outputs(pipeline: Pipeline, dlq: Any) -> list[str]:
    """The outputs of ``pipeline`` (staging, dead letters, `load_files`) on a local path,
    the default dead-letter queue included when no ``partition`` takes the failures.

    >>> from sesa_fp import pipe
    >>> from sesa_fp.storage import dlq_sink
    >>> from sesa_fp.stream import partition
    >>> local_outputs(pipe([], partition(dlq_sink("s3://b/dlq"))), None)
    []
    >>> from sesa_fp.report import default_dlq_uri
    >>> local_outputs(pipe([]), None) == [default_dlq_uri()]  # ./sesa-dlq unless $SESA_DLQ
    True
    """
    import fsspec.utils

    from sesa_fp.loaders.files import FilesLoader
    from sesa_fp.report import default_dlq_uri

    uris = [u for obj in walk(pipeline) if isinstance(u := (
        getattr(obj, "uri", None) if getattr(obj, "kind", None) in ("staging", "dlq")
        else getattr(obj, "root", None) if isinstance(obj, FilesLoader) else None), str)]
    if not any(getattr(st, "kind", None) == "partition" for st in pipeline.stages):
        uris.append(dlq if isinstance(dlq, str) else default_dlq_uri())
    return [mask_url(u) for u in dict.fromkeys(uris)
            if fsspec.utils.get_protocol(u) in ("file", "local")]


def _warn_local_outputs(pipeline: Pipeline, dlq: Any, hosts: list[str]) -> None:
    """A warning when workers on other machines would each write to their own disk."""
    remote = [h for h in hosts if h not in _LOOPBACK]
    paths = local_outputs(pipeline, dlq) if remote else []
    if paths:
        log_event("dask_local_outputs", logging.WARNING, hosts=remote, paths=paths,
                  hint="workers on other machines write these on their own disks: give "
                       "them on shared storage (s3://..., a shared mount) or set dlq")


def _empty(run_id: str, job: str | None) -> dict[str, Any]:
    return {"run_id": run_id, "job": job, "status": "failed", "started_at": "",
            "elapsed_s": 0.0, "read": None, "loaded": 0, "emitted": 0, "dropped": 0,
            "dead_letters": 0, "retries": 0, "bytes_staged": 0, "has_loader": False,
            "unaccounted": None, "conserved": None, "error": None, "stages": (),
            "outputs": ()}
