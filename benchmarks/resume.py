"""Resume after a kill vs a clean run: ``read_jsonl -> to_storage -> load_es``.

The same N RFI-like documents (a JSONL file written first) are staged on local disk (gzip
parts of ``--part-mb``) and loaded into the search node, three times, each in a child
process: a clean run; a run killed with SIGKILL right after the commit of the part that
reaches ``--kill-at`` (70%) of the clean run's parts; and the rerun that resumes it. The
resumed index must hold exactly the clean index's documents. The last stdout line is JSON:
``clean_s``, ``resumed_s`` (the resumed attempt alone), ``reextracted_records`` (records the
resumed attempt read from the source: the source continues after the last committed part),
``replayed_records`` (committed parts not yet loaded, taken from staging), ``skipped_records``
(parts already loaded, not loaded again) and ``ratio`` = resumed_s / clean_s (target <= 0.40).

    python benchmarks/resume.py --records 1000000 [--url http://127.0.0.1:PORT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import HERE, REPO, emit, log, write_input
from es_load import count, create, drop, search_node


def child(args: argparse.Namespace) -> None:
    """One attempt (in its own process, so SIGKILL kills only it)."""
    from sesa_fp import pipe, read_jsonl, run, tee
    from sesa_fp.loaders.search import load_es
    from sesa_fp.storage import dlq_sink, to_storage
    from sesa_fp.stream import partition

    t0 = time.perf_counter()
    report = run(pipe(read_jsonl(args.input),
                      tee(to_storage(args.staging, gzip=True, part_max_mb=args.part_mb)),
                      load_es(hosts=[args.url], dataset=args.index, actions_per_batch=1000,
                              concurrency=2),
                      partition(dlq_sink(args.dlq))), progress=False)
    print(json.dumps({"elapsed_s": time.perf_counter() - t0, **report.to_dict()}), flush=True)


def attempt(args: argparse.Namespace, index: str, staging: Path, kill: str | None = None
            ) -> dict[str, Any] | None:
    env = dict(os.environ, SESA_KILL_AT=kill or "")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(HERE / "resume.py"), "--child", "--url", args.url, "--input",
         args.input, "--index", index, "--staging", str(staging), "--dlq",
         str(staging.parent / "dlq"), "--part-mb", str(args.part_mb)],
        stdout=subprocess.PIPE, text=True, env=env, check=False)
    if kill and proc.returncode == -9:
        return None
    if proc.returncode != 0:
        raise SystemExit(f"attempt {kill or 'clean'} failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--url", default=None)
    ap.add_argument("--part-mb", type=float, default=4.0)
    ap.add_argument("--kill-at", type=float, default=0.7)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--index", help=argparse.SUPPRESS)
    ap.add_argument("--staging", help=argparse.SUPPRESS)
    ap.add_argument("--dlq", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp, search_node(args.url) as url:
        args.url = url
        args.input = str(write_input(Path(tmp) / "docs.jsonl", args.records, compress=False))
        clean_index = f"bench-resume-clean-{time.monotonic_ns()}"
        index = f"bench-resume-{time.monotonic_ns()}"
        create(url, clean_index, 1)
        create(url, index, 1)
        try:
            log(f"clean run: {args.records:,} records")
            clean = attempt(args, clean_index, Path(tmp) / "clean" / "staging")
            assert clean is not None
            parts = len(list((Path(tmp) / "clean" / "staging").glob("part-*")))
            kill_part = max(1, round(parts * args.kill_at))
            log(f"clean: {clean['elapsed_s']:.1f}s, {parts} parts; killing a run after part "
                f"{kill_part}")
            staging = Path(tmp) / "resumed" / "staging"
            killed = attempt(args, index, staging, kill=f"part_committed:{kill_part}")
            if killed is not None:
                raise SystemExit("the run to kill finished: no kill point reached")
            log("killed; resuming")
            resumed = attempt(args, index, staging)
            assert resumed is not None
            n_clean, n = count(url, clean_index), count(url, index)
            if n != n_clean or n != args.records:
                raise SystemExit(f"resumed index holds {n} docs, clean {n_clean}, "
                                 f"expected {args.records}")
        finally:
            drop(url, clean_index, index)
    reextracted = resumed["read"] - resumed["resumed_records"]
    result = {"records": args.records, "parts": parts, "killed_after_part": kill_part,
              "target": "search engine (load_es), staging on local disk",
              "clean_s": round(clean["elapsed_s"], 3), "resumed_s": round(resumed["elapsed_s"], 3),
              "reextracted_records": reextracted,
              "replayed_records": resumed["resumed_records"],
              "skipped_records": resumed["skipped_records"],
              "ratio": round(resumed["elapsed_s"] / clean["elapsed_s"], 3)}
    log(f"clean {result['clean_s']}s, resumed {result['resumed_s']}s, ratio {result['ratio']}")
    emit(result)


if __name__ == "__main__":
    main()
