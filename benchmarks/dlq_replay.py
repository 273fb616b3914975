"""Replaying dead letters vs running the fixed job over the same records, in one invocation.

A job whose last transform fails on every record sends all ``--records`` to a local DLQ; then
the fixed job loads the same records from memory (the baseline: transforms + files loader),
and `replay_dead_letters` loads them from the DLQ (read and verify the parts, each letter from
its failing stage, the loader, the resolved marks). The last line is JSON with ``job_s``,
``replay_s`` and ``ratio`` = replay_s / job_s.

    python benchmarks/dlq_replay.py --records 200000
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

from _common import clock, emit, log, records

from sesa_fp import (
    batched,
    chain,
    dlq_sink,
    load_files,
    map_concurrent,
    partition,
    pipe,
    replay_dead_letters,
    run,
    stage,
    unbatched,
)
from sesa_fp.transforms import cast, normalize


def _strict(rec: dict[str, Any]) -> dict[str, Any]:
    raise ValueError("strict: no record passes")


def _fixed(rec: dict[str, Any]) -> dict[str, Any]:
    return {**rec, "checked": True}


def _transforms(fixed: bool) -> list[Any]:
    return [stage(normalize()), stage(cast(["created_at"], to="datetime")),
            stage(_fixed if fixed else _strict, name="check")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    n, w = args.records, args.workers
    with tempfile.TemporaryDirectory() as tmp:
        dlq = f"{tmp}/dlq"

        def job(fixed: bool, out: str) -> Any:
            return pipe(records(n), batched(2000),
                        map_concurrent(chain(*_transforms(fixed)), workers=w, window=2 * w),
                        unbatched(), load_files(out, dataset="d"), partition(dlq_sink(dlq)))

        first = run(job(False, f"{tmp}/never"), progress=False)
        log(f"first run: {first.dead_letters} dead letters")
        assert first.dead_letters == n

        def replay() -> Any:
            return run(replay_dead_letters(dlq, transforms=_transforms(True),
                                           loader=load_files(f"{tmp}/replay", dataset="d"),
                                           dlq=dlq_sink(dlq), workers=w), progress=False)

        t0 = clock()
        base = run(job(True, f"{tmp}/job"), progress=False)
        t1 = clock()
        rep = replay()
        t2 = clock()
        again = replay()
        t3 = clock()
        assert rep.loaded == base.loaded == n and rep.conserved and again.read == 0
        job_s, replay_s = t1[0] - t0[0], t2[0] - t1[0]
        log(f"fixed job {job_s:.1f}s, replay {replay_s:.1f}s, second replay "
            f"{t3[0] - t2[0]:.1f}s")
    emit({"records": n, "job_s": round(job_s, 3), "replay_s": round(replay_s, 3),
          "second_replay_s": round(t3[0] - t2[0], 3), "ratio": round(replay_s / job_s, 3),
          "cpu_ratio": round((t2[1] - t1[1]) / (t1[1] - t0[1]), 3)})


if __name__ == "__main__":
    main()
