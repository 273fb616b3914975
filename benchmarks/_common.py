"""Shared benchmark helpers: synthetic RFI input, child processes, peak RSS, output checks."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

_WORDS = (
    "rebar", "spacing", "slab", "level", "beam", "column", "footing", "grid", "drawing",
    "detail", "revision", "submittal", "clarify", "confirm", "dimension", "elevation", "anchor",
    "bolt", "embed", "curtain", "wall", "façade", "mortier", "béton", "armé", "Baustelle",
    "Größe", "Übergang", "niño", "acción", "設計", "図面", "確認", "плита", "арматура",
    "cafe\u0301", "naïve", "coördinate",  # "cafe\u0301" is decomposed: NFC changes it
)
_STATUSES = ("open", "closed", "answered", "void")
_EPOCH = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)


def log(msg: str) -> None:
    """Progress goes to stderr; stdout is kept for the final JSON line."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _texts(rng: random.Random, n: int, lo: int, hi: int) -> list[str]:
    return [" ".join(rng.choices(_WORDS, k=rng.randint(lo, hi))) for _ in range(n)]


def records(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``n`` deterministic RFI-like records (padded, empty and non-ASCII strings, nulls)."""
    rng = random.Random(seed)
    titles = _texts(rng, 4096, 3, 9)
    questions = _texts(rng, 4096, 12, 40)
    for i in range(n):
        created = _EPOCH + dt.timedelta(seconds=i * 37, milliseconds=i % 1000)
        responded = None if i % 3 == 0 else created + dt.timedelta(hours=rng.randint(1, 500))
        yield {
            "_id": f"rfi-{i:09d}",
            "@timestamp": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "project_id": f"P{100 + i % 250}",
            "rfi_number": i,
            "title": f"  {titles[rng.randrange(4096)]} ",
            "question": "" if i % 17 == 0 else questions[rng.randrange(4096)],
            "created_at": created.isoformat(timespec="seconds"),
            "responded_at": responded.isoformat(timespec="seconds") if responded else None,
            "status": _STATUSES[i % 4],
        }


def write_input(path: Path, n: int, *, compress: bool) -> Path:
    """Write ``n`` records as JSONL (gzip level 1 if ``compress``); log progress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    z = zlib.compressobj(1, zlib.DEFLATED, 31) if compress else None
    buf: list[bytes] = []
    t0 = time.perf_counter()
    with path.open("wb") as f:
        for i, rec in enumerate(records(n), 1):
            buf.append(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
            if len(buf) == 20_000 or i == n:
                data = b"".join(buf)
                f.write(z.compress(data) if z else data)
                buf.clear()
            if i % 500_000 == 0:
                log(f"  generated {i:,}/{n:,} records")
        if z:
            f.write(z.flush())
    log(f"input {path.name}: {n:,} records, {path.stat().st_size / 2**20:.1f} MiB "
        f"in {time.perf_counter() - t0:.1f}s")
    return path


def peak_rss_mb() -> float:
    """Peak RSS of this process image (VmHWM; unlike ru_maxrss it excludes the parent's pages
    a vfork/exec child inherits)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def clock() -> tuple[float, float]:
    """(wall, CPU) now; pass to `child_result` as ``start``. CPU time counts all threads and is
    less disturbed than wall time when other processes share the cores."""
    return time.perf_counter(), time.process_time()


def child_result(start: tuple[float, float], end: tuple[float, float] | None = None,
                 **fields: Any) -> None:
    """Print a child's result (job wall and CPU time from ``start`` to ``end`` or now, peak
    RSS) as the last stdout line."""
    end = end or clock()
    fields["elapsed_s"] = round(end[0] - start[0], 3)
    fields["cpu_s"] = round(end[1] - start[1], 3)
    fields["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(json.dumps(fields), flush=True)


def run_child(script: str, *args: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> dict[str, Any]:
    """Run ``benchmarks/<script> args`` in a fresh interpreter; its last stdout line is JSON."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(HERE / script), *args], stdout=subprocess.PIPE,
                          text=True, env=env, cwd=cwd, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{script} {' '.join(args)} failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(wall, 3)
    return result


def run_measured(cmd: list[str], *, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> dict[str, Any]:
    """Run ``cmd`` to completion: whole-process wall time (``proc_s``) and CPU time (user +
    system of the process and what it waited for, ``cpu_s``, from the kernel's accounting:
    interpreter start, imports and all threads included), and the JSON of its last stdout
    line when there is one (``child``). ``benchmarks/<x>.py`` commands run on this
    interpreter with the repository on PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    if cmd and cmd[0].endswith(".py"):
        cmd = [sys.executable, str(HERE / cmd[0]), *cmd[1:]]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=cwd,
                          check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n"
                         f"{proc.stdout[-2000:]}")
    child: dict[str, Any] = {}
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    with contextlib.suppress(ValueError):
        child = json.loads(last[0])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"proc_s": round(wall, 3), "cpu_s": round(cpu, 3), "child": child}


def emit(result: dict[str, Any]) -> None:
    """The benchmark's one JSON object, last line of stdout."""
    print(json.dumps(result), flush=True)


def gz_digest(paths: list[Path]) -> tuple[int, str]:
    """(lines, sha256) of the concatenated decompressed content of gzip files, in order."""
    h, lines = hashlib.sha256(), 0
    for p in paths:
        with gzip.open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                lines += chunk.count(b"\n")
    return lines, h.hexdigest()


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """``url``, ``$POSTGRES_URL``, or a PostgreSQL started by the services script for the
    block (and stopped after it, unless it was already running)."""
    url = url or os.environ.get("POSTGRES_URL")
    if url:
        yield url
        return
    services = str(REPO / "scripts" / "services.sh")
    status = subprocess.run([services, "status", "postgres"], capture_output=True, text=True,
                            check=False)
    was_running = "POSTGRES_URL=" in status.stdout
    proc = subprocess.run([services, "start", "postgres"], capture_output=True, text=True,
                          check=False)
    found = [ln.split("=", 1)[1] for ln in proc.stdout.splitlines()
             if ln.startswith("POSTGRES_URL=")]
    if proc.returncode != 0 or not found:
        raise SystemExit(f"cannot start PostgreSQL:\n{proc.stderr[-2000:]}")
    try:
        yield found[0]
    finally:
        if not was_running:
            subprocess.run([services, "stop", "postgres"], capture_output=True, check=False)
