"""Part compression: gzip at any level and zstd write parts the reader verifies and reads back."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
import zstandard

from sesa_fp import ConfigError, pipe, run, tee
from sesa_fp.config.builder import build_job, load_job
from sesa_fp.storage import from_storage, read_manifest, to_storage

# hex digests compress only about 2:1, so a small part_max_mb makes several parts
RECORDS = [{"i": i, "text": hashlib.sha256(str(i).encode()).hexdigest() * 4, "n": None}
           for i in range(3000)]


@pytest.mark.parametrize(("compression", "level", "suffix", "opener"), [
    (None, 1, ".jsonl.gz", gzip.open),
    (None, 9, ".jsonl.gz", gzip.open),
    ("zstd", None, ".jsonl.zst", lambda p: zstandard.open(p, "rb")),
    ("zstd", 19, ".jsonl.zst", lambda p: zstandard.open(p, "rb")),
    ("none", None, ".jsonl", lambda p: Path(p).open("rb")),  # noqa: SIM115
])
def test_parts_round_trip_with_each_codec(tmp_path: Path, compression: str | None,
                                          level: int | None, suffix: str, opener: object) -> None:
    uri = str(tmp_path / "staged")
    w = to_storage(uri, compression=compression, level=level, part_max_mb=0.05)
    report = run(pipe(RECORDS, tee(w)), progress=False)
    assert report.emitted == len(RECORDS)
    manifest = read_manifest(uri)
    assert manifest.compression == {None: "gzip", "zstd": "zstd", "none": None}[compression]
    assert len(manifest.parts) > 1
    assert all(p.path.endswith(suffix) for p in manifest.parts)
    assert list(from_storage(uri)) == RECORDS
    # the files are what their names say, readable by the format's own tools
    lines = 0
    for p in manifest.parts:
        with opener(tmp_path / "staged" / p.path) as f:  # type: ignore[operator]
            lines += f.read().count(b"\n")
    assert lines == len(RECORDS)


def test_lower_gzip_level_is_recorded_in_the_repr() -> None:
    assert "level=1" in repr(to_storage("memory://x/", level=1))
    assert "compression='zstd'" in repr(to_storage("memory://x/", compression="zstd"))
    assert "level" not in repr(to_storage("memory://x/"))


@pytest.mark.parametrize(("kw", "message"), [
    ({"compression": "lz4"}, "compression must be one of gzip, zstd, none"),
    ({"level": 10}, "gzip compression level must be an int in 0..9"),
    ({"compression": "zstd", "level": 0}, "zstd compression level must be an int in 1..22"),
    ({"level": "fast"}, "got 'fast'"),
])
def test_bad_codec_options_are_config_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        to_storage("memory://x/", **kw)  # type: ignore[arg-type]


def test_yaml_storage_options_choose_the_codec(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("".join(f'{{"i": {i}}}\n' for i in range(10)))
    job = tmp_path / "job.yaml"
    job.write_text(
        "job_name: codec\n"
        f"extractor: {{type: jsonl, path: '{tmp_path}/in.jsonl'}}\n"
        f"storage: {{uri: '{tmp_path}/st', options: {{compression: zstd, level: 5}}}}\n"
        f"loader: {{type: files, dataset: d, connection: {{root: '{tmp_path}/out'}}}}\n")
    built = build_job(load_job(job, {}))
    assert "compression='zstd', level=5" in repr(built.pipeline)
    report = run(built.pipeline, progress=False)
    assert report.loaded == 10
    assert read_manifest(str(tmp_path / "st")).parts[0].path.endswith(".zst")
