"""Start-up cost: how long ``import sesa_fp`` and ``sesa --help`` take, against the bare
interpreter measured in the same run, and which heavy third-party packages each loads.

Every variant runs ``--repeat`` times in a fresh process (order interleaved); the best wall
and CPU time of each is kept, since start-up has no warm-up and only gets slower when other
processes share the cores. The package is imported from this checkout (repository first on
PYTHONPATH); ``sesa --help`` is the console script's ``main`` with ``--help``.

    python benchmarks/startup.py --repeat 5

Keys: ``python_s`` (``python -c pass``), ``import_s``, ``help_s``, ``read_jsonl_s`` (import,
build ``pipe(read_jsonl(...), stage(...))`` without consuming it), their medians
(``*_median_s``) and CPU twins (``*_cpu_s``), ``*_extra_s`` (minus the bare interpreter), and
``heavy_loaded`` per variant: the heavy packages found in ``sys.modules`` afterwards. With
``--baseline-repo``: the same keys under ``baseline``, and ``*_ratio`` / ``*_cpu_ratio``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from _common import REPO, emit, log

HEAVY = ("fsspec", "s3fs", "botocore", "aiobotocore", "aiohttp", "opensearchpy",
         "elasticsearch", "elastic_transport", "sqlalchemy", "psycopg", "dask", "distributed",
         "prometheus_client", "tenacity", "tornado", "jinja2", "yaml", "cattrs", "typer",
         "adlfs", "gcsfs", "tqdm", "cloudpickle", "httpx", "rich", "asyncio")

_REPORT = (f"import sys, json; print(json.dumps(sorted(m for m in {HEAVY!r} "
           "if m in sys.modules)))")

VARIANTS = {
    "python": "pass",
    "import": "import sesa_fp",
    "help": ("import sys; from sesa_fp.cli import main; sys.argv = ['sesa', '--help']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass"),
    "read_jsonl": ("from sesa_fp import pipe, read_jsonl, stage\n"
                   "p = pipe(read_jsonl('in/*.jsonl'), stage(lambda r: r))"),
}


def once(code: str, env: dict[str, str], cwd: str) -> tuple[float, float, list[str]]:
    """(wall, CPU, heavy modules loaded) of one fresh interpreter running ``code`` in ``cwd``
    (``python -c`` puts the working directory first on sys.path)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", f"{code}\n{_REPORT}"], env=env, cwd=cwd,
                          check=False,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{code!r} failed with exit code {proc.returncode}:\n"
                         f"{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(proc.stdout.strip().splitlines()[-1])


def measure(repos: dict[str, str], repeat: int) -> dict[str, dict[str, Any]]:
    """Per checkout and variant: every (wall, CPU) sample and the heavy modules loaded; the
    checkouts and variants alternate within each round."""
    envs = {}
    for key, repo in repos.items():
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
        env.pop("PYTHONPROFILEIMPORTTIME", None)
        envs[key] = env
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {key: {} for key in repos}
    heavy: dict[str, dict[str, list[str]]] = {key: {} for key in repos}
    for _ in range(repeat):
        for name, code in VARIANTS.items():
            for key, env in envs.items():
                wall, cpu, loaded = once(code, env, repos[key])
                samples[key].setdefault(name, []).append((wall, cpu))
                heavy[key][name] = loaded
    out: dict[str, dict[str, Any]] = {}
    for key, repo in repos.items():
        fields: dict[str, Any] = {}
        for name, runs in samples[key].items():
            walls, cpus = [w for w, _ in runs], [c for _, c in runs]
            fields[f"{name}_s"] = round(min(walls), 3)
            fields[f"{name}_median_s"] = round(statistics.median(walls), 3)
            fields[f"{name}_cpu_s"] = round(min(cpus), 3)
            log(f"{repo}: {name:>10}: best {min(walls):.3f}s wall (median "
                f"{statistics.median(walls):.3f}s), {min(cpus):.3f}s CPU; heavy: "
                f"{', '.join(heavy[key][name])}")
        for name in ("import", "help", "read_jsonl"):
            fields[f"{name}_extra_s"] = round(fields[f"{name}_s"] - fields["python_s"], 3)
        fields["heavy_loaded"] = heavy[key]
        out[key] = fields
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline-repo", help="another checkout (e.g. `git worktree add` of an "
                    "older commit) measured the same way, interleaved; adds `baseline` and "
                    "`*_ratio` keys (this checkout / baseline, best wall times)")
    args = ap.parse_args()
    result: dict[str, Any] = {"repeat": args.repeat}
    runs = {"this": str(REPO)}
    if args.baseline_repo:
        runs["baseline"] = os.path.abspath(args.baseline_repo)
    measured = measure(runs, args.repeat)
    result.update(measured["this"])
    if args.baseline_repo:
        base = result["baseline"] = measured["baseline"]
        for name in ("import", "help", "read_jsonl"):
            result[f"{name}_ratio"] = round(result[f"{name}_s"] / base[f"{name}_s"], 3)
            result[f"{name}_cpu_ratio"] = round(result[f"{name}_cpu_s"] /
                                                base[f"{name}_cpu_s"], 3)
    result["loadavg"] = round(os.getloadavg()[0], 2)
    emit(result)


if __name__ == "__main__":
    main()
