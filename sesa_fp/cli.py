"""The ``sesa`` command line: run, validate, explain, replay and dlq.

Exit codes: 0 success; 2 configuration or usage error; 1 run failure; 3 dead letters over
``dlq.max_records`` / ``dlq.max_ratio``; 143 stopped by SIGTERM, 130 by Ctrl-C (committed
output kept, the partial report printed). Log lines go to stderr and the final report to
stdout: JSON lines and the JSON report when they are not a terminal (a scheduler, CI);
readable lines and the summary on a terminal. ``--log-format json|text`` overrides.
"""

from __future__ import annotations

import enum
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer

from sesa_fp.errors import ConfigError, SesaError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="sesa_fp: run YAML ETL jobs built from composable streams.")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="the YAML job")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="template variable NAME=VALUE")]
ProgressOpt = Annotated[bool | None, typer.Option("--progress/--no-progress",
                                                  help="progress bar (default: on a terminal)")]
MetricsFileOpt = Annotated[Path | None, typer.Option(
    "--metrics-file", envvar="SESA_METRICS_FILE",
    help="write the run's Prometheus metrics here (textfile collector; default: metrics.file)")]
PushgatewayOpt = Annotated[str | None, typer.Option(
    "--pushgateway", envvar="SESA_PUSHGATEWAY_URL",
    help="push the run's metrics to this Pushgateway URL at the end (default: "
         "metrics.pushgateway)")]


class LogFormat(enum.StrEnum):
    """``--log-format``: ``auto`` is text on a terminal, JSON lines anywhere else."""

    auto = "auto"
    json = "json"
    text = "text"


LogFormatOpt = Annotated[LogFormat, typer.Option(
    "--log-format", help="auto (text on a terminal, else JSON), json or text")]
FreshOpt = Annotated[bool, typer.Option("--fresh", help="start over: forget the committed "
                                        "staging parts and the load ledger of this run")]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_DLQ = 0, 1, 2, 3


def _fail(code: int, message: str) -> typer.Exit:
    typer.echo(f"sesa: error: {message}", err=True)
    return typer.Exit(code)


def _build(config: Path, sets: list[str] | None, *, replay: bool = False,
           replay_from: str | None = None) -> Any:
    """Parse, render and build a job (with a staging prefix as its source when replaying);
    a configuration error exits with code 2."""
    from sesa_fp.config import build_job, load_job, parse_sets
    from sesa_fp.secrets import reveal_tree
    from sesa_fp.storage import from_storage

    try:
        spec = load_job(config, parse_sets(sets or []))
        source = None
        if replay:
            uri = replay_from or (spec.storage.uri if spec.storage else None)
            if not uri:
                raise ConfigError("nothing to replay: pass --from URI or give the job a "
                                  "storage.uri")
            opts = spec.storage.options.storage_options if spec.storage else {}
            source = from_storage(uri, storage_options=reveal_tree(opts) or None)
        return build_job(spec, source=source)
    except ConfigError as exc:
        raise _fail(EXIT_CONFIG, str(exc)) from exc


def _raise_run_failure(exc: BaseException) -> NoReturn:
    """Exit 2 for a configuration error, 1 for any other failure, naming it in one line."""
    if isinstance(exc, ConfigError):
        raise _fail(EXIT_CONFIG, str(exc)) from exc
    if isinstance(exc, SesaError):
        raise _fail(EXIT_FAILED, f"{type(exc).__name__}: {exc}") from exc
    if isinstance(exc, Exception):
        raise _fail(EXIT_FAILED, f"run failed: {type(exc).__name__}: {exc}") from exc
    raise exc


def _echo_report(report: Any, fmt: str) -> None:
    """JSON report on stdout for machines (unless stdout is a terminal and logs are text);
    the readable summary on stderr when logs are text."""
    if fmt == "json" or not sys.stdout.isatty():
        typer.echo(report.to_json())
    if fmt == "text":
        typer.echo(str(report), err=True)


def _export_metrics(report: Any, built: Any, file: Path | None, push: str | None) -> None:
    """The run's metrics to a file and/or a Pushgateway (flags first, then the job's
    ``metrics:``); a failure is one error line on stderr, the run's exit code stands."""
    spec = built.spec.metrics
    file_s = str(file) if file is not None else (spec.file if spec else None)
    push = push or (spec.pushgateway if spec else None)
    if not file_s and not push:
        return
    from sesa_fp.metrics import export_metrics

    try:
        export_metrics(report, file=file_s, pushgateway=push)
    except (ConfigError, OSError) as exc:
        typer.echo(f"sesa: error: metrics not exported: {exc}", err=True)


def _run_built(built: Any, progress: bool | None, executor: str | None = None,
               partition: int | None = None, run_id: str | None = None,
               log_format: LogFormat = LogFormat.auto, metrics_file: Path | None = None,
               pushgateway: str | None = None, fresh: bool = False) -> None:
    from sesa_fp.executors import executor_from_spec
    from sesa_fp.interrupt import exit_code, stop_on_signals
    from sesa_fp.logs import configure_logging
    from sesa_fp.partitions import partition_pipeline
    from sesa_fp.report import run

    fmt = configure_logging(stream=sys.stderr, fmt=log_format.value)
    try:
        if executor is not None and not executor.startswith("dask://"):
            raise ConfigError(f"--executor: expected dask://host:port or dask://local, got "
                              f"{executor!r} (threads or processes: the job's runtime.executor)")
        runner = executor_from_spec(executor or built.spec.runtime.executor)
        if runner is not None and partition is not None:
            raise ConfigError("--partition runs one partition in this process; it cannot be "
                              "combined with a Dask executor (which runs them all)")
        pipeline = (built.pipeline if partition is None
                    else partition_pipeline(built.pipeline, partition))
    except ConfigError as exc:
        raise _fail(EXIT_CONFIG, str(exc)) from exc
    try:
        with stop_on_signals():
            report = run(pipeline, job=built.spec.job_name, run_id=run_id, executor=runner,
                         progress="auto" if progress is None else progress, fresh=fresh)
    except BaseException as exc:
        partial = getattr(exc, "report", None)
        if partial is not None:  # what was committed before the failure, for the scheduler
            _echo_report(partial, fmt)
            _export_metrics(partial, built, metrics_file, pushgateway)
        if isinstance(exc, KeyboardInterrupt):  # SIGTERM or Ctrl-C: stopped, not broken;
            raise typer.Exit(exit_code(exc)) from None  # run() logged run_interrupted
        _raise_run_failure(exc)
    _echo_report(report, fmt)
    _export_metrics(report, built, metrics_file, pushgateway)
    dlq = built.spec.dlq
    if dlq is not None:
        if dlq.max_records is not None and report.dead_letters > dlq.max_records:
            raise _fail(EXIT_DLQ, f"{report.dead_letters} dead letters > dlq.max_records "
                                  f"{dlq.max_records}")
        ratio = report.dead_letters / max(report.read or 0, 1)
        if dlq.max_ratio is not None and ratio > dlq.max_ratio:
            raise _fail(EXIT_DLQ, f"dead-letter ratio {ratio:.4f} > dlq.max_ratio "
                                  f"{dlq.max_ratio}")


ExecutorOpt = Annotated[str | None, typer.Option(
    "--executor", help="where partitions run: dask://host:8786, dask://local (default: the "
    "job's runtime.executor, else this process)")]
PartitionOpt = Annotated[int | None, typer.Option(
    "--partition", help="run only this partition (see `sesa partitions`)")]
RunIdOpt = Annotated[str | None, typer.Option(
    "--run-id", help="the run id (partitions of one run share it)")]


@app.command()
def run(config: ConfigOpt, set_: SetOpt = None, progress: ProgressOpt = None,
        executor: ExecutorOpt = None, partition: PartitionOpt = None,
        run_id: RunIdOpt = None, log_format: LogFormatOpt = LogFormat.auto,
        metrics_file: MetricsFileOpt = None, pushgateway: PushgatewayOpt = None,
        fresh: FreshOpt = False) -> None:
    """Run a job: extract, stage, transform, load; dead letters to the DLQ. A rerun of the
    same run (same staging prefix) resumes from its committed parts; --fresh starts over."""
    _run_built(_build(config, set_), progress, executor, partition, run_id, log_format,
               metrics_file, pushgateway, fresh)


@app.command()
def partitions(config: ConfigOpt, set_: SetOpt = None) -> None:
    """List the job's partitions as JSON (one per slice, key range, file or HTTP partition),
    to fan out: run each with `sesa run --partition N` or one Airflow mapped task each."""
    from sesa_fp.partitions import list_partitions

    built = _build(config, set_)
    try:
        parts = list_partitions(built.pipeline)
    except ConfigError as exc:
        raise _fail(EXIT_CONFIG, str(exc)) from exc
    typer.echo(orjson.dumps(parts).decode())



@app.command()
def validate(
    config: ConfigOpt,
    set_: SetOpt = None,
    check_target: Annotated[bool, typer.Option(
        "--check-target", help="also read a sample from the source through the transforms "
        "and check the target (missing indices, mapping conflicts); does I/O, writes "
        "nothing")] = False,
    sample: Annotated[int, typer.Option(help="records to sample with --check-target")] = 100,
) -> None:
    """Check a job's configuration (parse, render, build) without any I/O; warn about fields
    the job uses that the extractor leaves out."""
    from sesa_fp.config.preflight import check_target as check
    from sesa_fp.config.preflight import field_warnings

    built = _build(config, set_)
    warnings = field_warnings(built.spec)
    for w in warnings:
        typer.echo(f"sesa: warning: {w}", err=True)
    if check_target:
        try:
            found = check(built.pipeline, sample=sample)
        except BaseException as exc:
            _raise_run_failure(exc)
        for line in found.lines():
            typer.echo(f"  {line}")
        if not found.ok:
            raise _fail(EXIT_FAILED, f"{built.spec.job_name}: the target check found "
                                     f"{len(found.conflicts)} mapping conflicts and "
                                     f"{len(found.dead_letters)} dead letters in the sample")
    more = f" ({len(warnings)} warnings)" if warnings else ""
    typer.echo(f"ok: {built.spec.job_name}: {len(built.pipeline.stages)} stages{more}")


_IMPORTS = (
    ("sesa_fp", ("pipe", "run", "stage", "batched", "unbatched", "map_concurrent", "chain",
                 "tee", "partition", "merge", "read_jsonl", "load_files", "to_storage",
                 "dlq_sink", "from_storage")),
    ("sesa_fp.transforms", ("normalize", "cast", "derive", "validate", "python_class")),
    ("sesa_fp.imports", ("import_object",)),
    ("sesa_fp.sources.search", ("es_source",)),
    ("sesa_fp.sources.http", ("http_source", "bearer", "basic", "api_key")),
    ("sesa_fp.sources.pagination", ("page_number", "offset_limit", "cursor", "next_url",
                                    "link_header")),
    ("sesa_fp.loaders.search", ("load_es",)),
    ("sesa_fp.loaders.sql", ("load_sql",)),
    ("sesa_fp.config.plugins", ("plugin_extractor", "plugin_loader", "plugin_transform")),
)


def explain_source(built: Any) -> str:
    """Python source that builds and runs the same pipeline as the job.

    Secrets are masked by the stages' own reprs (they hold them as `sesa_fp.secrets.Secret`,
    URLs and storage options masked), so nothing is filtered here after the fact."""
    body = built.pipeline.to_python()
    lines = []
    for module, names in _IMPORTS:
        used = [n for n in names if re.search(rf"(?<![.\w]){n}\(", body) or n in ("pipe", "run")]
        if used:
            lines.append(f"from {module} import {', '.join(used)}")
    return "\n".join([
        f"# job: {built.spec.job_name}",
        *lines,
        "",
        f"pipeline = {body}",
        f"report = run(pipeline, job={built.spec.job_name!r})",
        "print(report)",
        "",
    ])


@app.command()
def explain(config: ConfigOpt, set_: SetOpt = None) -> None:
    """Print the Python program equivalent to the job (secrets masked)."""
    built = _build(config, set_)
    typer.echo(explain_source(built), nl=False)


def _build_dead_letter_replay(config: Path, sets: list[str] | None, uri: str) -> Any:
    """The job's transforms, loader and DLQ around the dead letters under ``uri``; a
    configuration error or a prefix that is not a DLQ exits with code 2."""
    from sesa_fp.config import BuiltJob, build_job, load_job, parse_sets
    from sesa_fp.replay import job_parts, replay_dead_letters
    from sesa_fp.secrets import reveal_tree
    from sesa_fp.sources.dead_letters import read_dead_letters

    try:
        spec = load_job(config, parse_sets(sets or []))
        transforms, loader, dlq = job_parts(build_job(spec, source=()).pipeline)
        where = spec.dlq or spec.storage  # the DLQ usually lives with the job's dlq.uri
        opts = reveal_tree(where.options.storage_options) if where else None
        source = read_dead_letters(uri, storage_options=opts or None, letters=True)
        source.folders()  # a missing or non-DLQ prefix fails now, before anything is loaded
        return BuiltJob(spec, replay_dead_letters(source, transforms=transforms, loader=loader,
                                                  dlq=dlq, workers=spec.runtime.max_workers,
                                                  batch_size=spec.runtime.batch_size))
    except ConfigError as exc:
        raise _fail(EXIT_CONFIG, str(exc)) from exc
    except SesaError as exc:
        raise _fail(EXIT_FAILED, f"{type(exc).__name__}: {exc}") from exc


@app.command()
def replay(
    config: ConfigOpt,
    from_: Annotated[str | None, typer.Option("--from", help="staging prefix to replay "
                                              "(default: the job's storage.uri)")] = None,
    dead_letters: Annotated[str | None, typer.Option(
        "--dead-letters", help="a DLQ prefix: replay its dead letters, each from the stage "
        "where it failed, skipping those already resolved")] = None,
    set_: SetOpt = None,
    progress: ProgressOpt = None,
    log_format: LogFormatOpt = LogFormat.auto,
    metrics_file: MetricsFileOpt = None,
    pushgateway: PushgatewayOpt = None,
    fresh: FreshOpt = False,
) -> None:
    """Load a committed staging prefix (or, with --dead-letters, the dead letters of a DLQ)
    through the job's transforms and loader; parts the load ledger names as loaded are
    skipped (--fresh loads them all again)."""
    if dead_letters is not None:
        if from_ is not None:
            raise _fail(EXIT_CONFIG, "give --from (a staging prefix) or --dead-letters (a DLQ "
                                     "prefix), not both")
        _run_built(_build_dead_letter_replay(config, set_, dead_letters), progress,
                   log_format=log_format, metrics_file=metrics_file, pushgateway=pushgateway)
        return
    _run_built(_build(config, set_, replay=True, replay_from=from_), progress,
               log_format=log_format, metrics_file=metrics_file, pushgateway=pushgateway,
               fresh=fresh)


@app.command()
def dlq(
    uri: Annotated[str, typer.Argument(help="a DLQ prefix (all runs under it) or one run")],
    samples: Annotated[int, typer.Option(help="sample dead letters to show")] = 3,
) -> None:
    """Summarise dead letters: counts by stage and error type, and a few samples."""
    import fsspec

    from sesa_fp.storage import MANIFEST_NAME, from_storage

    fs, root = fsspec.core.url_to_fs(uri)
    manifests = sorted(fs.glob(f"{root.rstrip('/')}/**/{MANIFEST_NAME}"))
    if fs.exists(f"{root.rstrip('/')}/{MANIFEST_NAME}"):
        manifests = [f"{root.rstrip('/')}/{MANIFEST_NAME}"]
    if not manifests:
        raise _fail(EXIT_CONFIG, f"no committed dead letters under {uri}")
    from sesa_fp.storage.resolved import letter_id, read_marks

    by_kind: Counter[tuple[str, str]] = Counter()
    shown: list[Any] = []
    total = resolved = 0
    try:
        for manifest in manifests:
            prefix = fs.unstrip_protocol(manifest.rsplit("/", 1)[0])
            source = from_storage(prefix)
            marks = read_marks(fs, manifest.rsplit("/", 1)[0])  # what replays dealt with
            ids = [letter_id(p.sha256, i) for p in source.manifest().parts
                   for i in range(p.records)]
            for letter, lid in zip(source, ids, strict=True):
                total += 1
                resolved += lid in marks
                by_kind[(letter.get("stage", "?"), letter.get("error_type", "?"))] += 1
                if len(shown) < samples:
                    shown.append(letter)
    except SesaError as exc:
        raise _fail(EXIT_FAILED, str(exc)) from exc
    summary = {
        "uri": uri,
        "runs": len(manifests),
        "dead_letters": total,
        "resolved": resolved,  # by `sesa replay --dead-letters`; the rest are pending
        "by_stage_and_error": [{"stage": s, "error_type": e, "count": n}
                               for (s, e), n in by_kind.most_common()],
        "samples": shown,
    }
    typer.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``sesa``)."""
    app(args=argv, prog_name="sesa")


def module_main(argv: list[str]) -> None:
    """``python -m sesa_fp job.yaml --set ...`` is ``sesa run --config job.yaml --set ...``."""
    if argv and not argv[0].startswith("-") and argv[0] not in {
            "run", "validate", "explain", "replay", "dlq", "partitions"}:
        argv = ["run", "--config", *argv]
    app(args=argv, prog_name="python -m sesa_fp")
