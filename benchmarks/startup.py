"""Start-up cost: how long ``import sesa_fp`` and ``sesa --help`` take, against the bare
interpreter measured in the same run, and which heavy third-party packages each loads.

Every variant runs ``--repeat`` times in a fresh process (order interleaved); the best wall
and CPU time of each is kept, since start-up has no warm-up and only gets slower when other
processes share the cores. The package is imported from this checkout (repository first on
PYTHONPATH); ``sesa --help`` is the console script's ``main`` with ``--help``.

    python benchmarks/startup.py --repeat 5

Keys: ``python_s`` (``python -c pass``), ``import_s``, ``help_s``, ``read_jsonl_s`` (import,
build ``pipe(read_jsonl(...), stage(...))`` without consuming it), their CPU twins
(``*_cpu_s``), ``import_extra_s`` / ``help_extra_s`` (minus the bare interpreter), and
``heavy_loaded`` per variant: the heavy packages found in ``sys.modules`` afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

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


def measure(repos: dict[str, str], repeat: int) -> dict[str, tuple[
        dict[str, tuple[float, float]], dict[str, list[str]]]]:
    """Per checkout: the best (wall, CPU) and the heavy modules loaded, per variant; the
    checkouts and variants alternate within each round."""
    envs = {}
    for key, repo in repos.items():
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
        env.pop("PYTHONPROFILEIMPORTTIME", None)
        envs[key] = env
    best: dict[str, dict[str, tuple[float, float]]] = {key: {} for key in repos}
    heavy: dict[str, dict[str, list[str]]] = {key: {} for key in repos}
    for _ in range(repeat):
        for name, code in VARIANTS.items():
            for key, env in envs.items():
                wall, cpu, loaded = once(code, env, repos[key])
                w, c = best[key].get(name, (wall, cpu))
                best[key][name] = (min(w, wall), min(c, cpu))
                heavy[key][name] = loaded
    for key, repo in repos.items():
        for name, (wall, cpu) in best[key].items():
            log(f"{repo}: {name:>10}: {wall:.3f}s wall, {cpu:.3f}s CPU; heavy: "
                f"{', '.join(heavy[key][name])}")
    return {key: (best[key], heavy[key]) for key in repos}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline-repo", help="another checkout (e.g. `git worktree add` of an "
                    "older commit) measured the same way, interleaved; adds `baseline` and "
                    "`*_ratio` keys (this checkout / baseline)")
    args = ap.parse_args()
    result: dict[str, object] = {"repeat": args.repeat}
    runs = {"": str(REPO)}
    if args.baseline_repo:
        runs["baseline_"] = os.path.abspath(args.baseline_repo)
    measured = measure(runs, args.repeat)
    for prefix, (best, heavy) in measured.items():
        out: dict[str, object] = {}
        for name, (wall, cpu) in best.items():
            out[f"{name}_s"] = round(wall, 3)
            out[f"{name}_cpu_s"] = round(cpu, 3)
        for name in ("import", "help", "read_jsonl"):
            out[f"{name}_extra_s"] = round(best[name][0] - best["python"][0], 3)
        out["heavy_loaded"] = heavy
        if prefix:
            result["baseline"] = out
        else:
            result.update(out)
    if args.baseline_repo:
        base = measured["baseline_"][0]
        for name in ("import", "help", "read_jsonl"):
            result[f"{name}_ratio"] = round(measured[""][0][name][0] / base[name][0], 3)
    result["loadavg"] = round(os.getloadavg()[0], 2)
    emit(result)


if __name__ == "__main__":
    main()
