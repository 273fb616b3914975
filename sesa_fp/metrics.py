"""A run's counters in Prometheus' text format: a file for node-exporter's textfile collector
and, optionally, a push to a Pushgateway at the end of the run (the usual shape for batch jobs).

Everything comes from the `RunReport`: run totals (read, loaded, emitted, dropped, dead letters,
retries, bytes staged, duration, success, finish time), per-stage counters labelled with the
stage's name and kind (what a transform stage passed on is its ``out``: the records
transformed), and per search loader a histogram of bulk request latency. Gauges, not counters:
each run replaces the previous run's values, as the textfile collector and the Pushgateway
expect of a batch job.

The file is written beside its final name and renamed over it, so the collector never reads
half a file. `prometheus_client` is imported only when metrics are written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from sesa_fp.errors import ConfigError
from sesa_fp.logs import log_event
from sesa_fp.secrets import mask_url

__all__ = ["export_metrics", "metrics_text", "registry_for"]

_RUN = (  # (report field, metric suffix, help)
    ("read", "records_read", "records the sources yielded"),
    ("loaded", "records_loaded", "records the last loader's target acknowledged"),
    ("emitted", "records_emitted", "good records that reached the end of the stream"),
    ("dropped", "records_dropped", "records a transform dropped on purpose"),
    ("dead_letters", "dead_letters", "dead letters the dead-letter writers committed"),
    ("retries", "retries", "retried requests"),
    ("bytes_staged", "bytes_staged", "bytes written to staging parts"),
    ("elapsed_s", "duration_seconds", "wall time of the run"),
)
_STAGE = (  # (stage dict key, metric suffix, help)
    ("in", "records_in", "records a stage took in"),
    ("out", "records_out", "records a stage passed on (for a transform: transformed)"),
    ("dropped", "records_dropped", "records a stage dropped on purpose"),
    ("failed", "records_failed", "dead letters a stage made"),
    ("committed", "records_committed", "records a sink's target acknowledged or committed"),
    ("retries", "retries", "retried requests of a stage"),
    ("bytes", "bytes", "bytes a stage wrote"),
)


def _collector(report: Any, prefix: str, labels: Mapping[str, str]) -> Any:
    from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

    names, values = list(labels), list(labels.values())

    class ReportCollector:
        def collect(self) -> Iterator[Any]:
            for field, suffix, doc in _RUN:
                value = getattr(report, field)
                if value is None:
                    continue
                g = GaugeMetricFamily(f"{prefix}_run_{suffix}", f"Last run: {doc}.",
                                      labels=names)
                g.add_metric(values, float(value))
                yield g
            ok = GaugeMetricFamily(f"{prefix}_run_success",
                                   "Last run: 1 if it finished and its records balance.",
                                   labels=names)
            ok.add_metric(values, 1.0 if report.status == "ok" and report.conserved is not False
                          else 0.0)
            yield ok
            for key, suffix, doc in _STAGE:
                g = GaugeMetricFamily(f"{prefix}_stage_{suffix}", f"Last run: {doc}.",
                                      labels=[*names, "stage", "kind", "position"])
                for i, st in enumerate(report.stages):
                    g.add_metric([*values, str(st["name"]), str(st["kind"]), str(i)],
                                 float(st.get(key) or 0))
                yield g
            h = HistogramMetricFamily(f"{prefix}_bulk_latency_seconds",
                                      "Last run: bulk request latency per search loader.",
                                      labels=[*names, "target"])
            c = GaugeMetricFamily(f"{prefix}_bulk_concurrency",
                                  "Last run: a search loader's adaptive concurrency limit "
                                  "(final, lowest and highest it took).",
                                  labels=[*names, "target", "which"])
            for out in report.outputs:
                lat = out.get("bulk_latency") if isinstance(out, Mapping) else None
                target = mask_url(str(out.get("uri"))) if isinstance(out, Mapping) else ""
                if lat and lat.get("count"):
                    h.add_metric([*values, target],
                                 buckets=[(b, float(n)) for b, n in lat["buckets"].items()],
                                 sum_value=float(lat["sum"]))
                conc = out.get("concurrency") if isinstance(out, Mapping) else None
                if conc:
                    for which, key in (("final", "final"), ("min", "min_seen"),
                                       ("max", "max_seen")):
                        c.add_metric([*values, target, which], float(conc[key]))
            yield h
            yield c

    return ReportCollector()


def registry_for(report: Any, *, prefix: str = "sesa",
                 labels: Mapping[str, str] | None = None, job_label: bool = True) -> Any:
    """A `prometheus_client.CollectorRegistry` holding the report's metrics; ``labels`` are
    added to every sample, and ``job`` from the report when it names one (unless
    ``job_label=False``: a Pushgateway adds it from the grouping key)."""
    from prometheus_client import CollectorRegistry

    merged = {"job": report.job} if report.job and job_label else {}
    merged.update(labels or {})
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_collector(report, prefix, merged))
    return registry


def metrics_text(report: Any, **kw: Any) -> str:
    """The report's metrics in Prometheus' text exposition format.

    >>> from sesa_fp import pipe, run
    >>> text = metrics_text(run(pipe([{"a": 1}]), progress=False, job="demo"))
    >>> 'sesa_run_records_read{job="demo"} 1.0' in text, "sesa_run_success" in text
    (True, True)
    """
    from prometheus_client import generate_latest

    text: str = generate_latest(registry_for(report, **kw)).decode()
    return text


def export_metrics(report: Any, *, file: str | os.PathLike[str] | None = None,
                   pushgateway: str | None = None, grouping: Mapping[str, str] | None = None,
                   timeout: float = 10.0) -> None:
    """Write the report's metrics to ``file`` (written beside it, then renamed over it) and/or
    push them to the Pushgateway at ``pushgateway`` (grouped by ``job`` and ``grouping``;
    a push replaces the group's previous metrics). A failed write or push raises
    `ConfigError` for a bad path or URL, ``OSError`` otherwise; the run's own result stands.

    >>> import tempfile, pathlib
    >>> from sesa_fp import pipe, run
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "sesa.prom"
    >>> export_metrics(run(pipe([1, 2]), progress=False), file=path)
    >>> "sesa_run_records_emitted 2.0" in path.read_text()
    True
    """
    if file is None and not pushgateway:
        return
    if file is not None:
        from prometheus_client import write_to_textfile

        path = os.fspath(file)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise ConfigError(f"metrics file {path}: directory {parent} does not exist")
        # writes path.<pid>.<thread>.tmp, then renames it over path
        write_to_textfile(path, registry_for(report))
        log_event("metrics_written", file=path)
    if pushgateway:
        from prometheus_client import push_to_gateway

        if "://" not in pushgateway:
            raise ConfigError(f"pushgateway must be a URL like http://host:9091, "
                              f"got {mask_url(pushgateway)!r}")
        try:
            push_to_gateway(pushgateway, job=report.job or "sesa",
                            registry=registry_for(report, job_label=False),
                            grouping_key=dict(grouping or {}), timeout=timeout)
        except OSError:
            log_event("metrics_push_failed", logging.ERROR, url=mask_url(pushgateway))
            raise
        log_event("metrics_pushed", url=mask_url(pushgateway), job=report.job or "sesa")
