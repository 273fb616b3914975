"""`import sesa_fp` stays light: the clients, fsspec and the other heavy packages load where
they are first used. Each check runs a fresh interpreter and reads its ``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import sesa_fp
import sesa_fp.loaders
import sesa_fp.sources

#: service clients and engines: none is needed until a job talks to that service
CLIENTS = ("opensearchpy", "elasticsearch", "elastic_transport", "aiohttp", "sqlalchemy",
           "psycopg", "botocore", "aiobotocore", "s3fs", "adlfs", "gcsfs", "httpx", "dask",
           "distributed", "prometheus_client", "cloudpickle", "airflow")
#: libraries the package used to import with itself (fsspec brings asyncio, tenacity brings
#: tornado where it is installed), and the YAML side, which only jobs and the CLI need
LIBRARIES = ("fsspec", "tenacity", "tornado", "cattrs", "toolz", "jinja2", "yaml", "typer",
             "hypothesis")
HEAVY = CLIENTS + LIBRARIES

_PROBE = ("\nimport json, sys\n"
          "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n")


def loaded_after(code: str, cwd: Path | None = None) -> set[str]:
    """The top-level packages a fresh interpreter has imported after running ``code``."""
    proc = subprocess.run([sys.executable, "-c", code + _PROBE], capture_output=True,
                          text=True, timeout=120, cwd=cwd, check=False)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_import_sesa_fp_loads_no_heavy_package() -> None:
    assert loaded_after("import sesa_fp") & set(HEAVY) == set()


def test_building_a_jsonl_pipeline_loads_no_heavy_package() -> None:
    code = ("from sesa_fp import batched, partition, pipe, read_jsonl, stage, unbatched\n"
            "from sesa_fp.transforms import cast, normalize\n"
            "p = pipe(read_jsonl('in/*.jsonl'), stage(normalize()), stage(cast('n', to='int')),"
            " batched(10), unbatched(), partition(print))\n"
            "assert 'read_jsonl' in repr(p)")
    assert loaded_after(code) & set(HEAVY) == set()


def test_sesa_help_loads_no_heavy_package_but_typer() -> None:
    code = ("from sesa_fp.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as exc:\n    assert exc.code == 0\n")
    loaded = loaded_after(code)
    assert "typer" in loaded  # the probe sees what the code imported
    assert loaded & set(HEAVY) == {"typer"}


def test_a_local_files_job_loads_fsspec_and_no_client(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("".join(f'{{"n": " {i} "}}\n' for i in range(5)))
    code = ("from sesa_fp import load_files, pipe, read_jsonl, run, stage\n"
            "from sesa_fp.transforms import cast, normalize\n"
            "r = run(pipe(read_jsonl('in.jsonl'), stage(normalize()), stage(cast('n', "
            "to='int')), load_files('out', dataset='d')), progress=False)\n"
            "assert r.loaded == 5, r")
    loaded = loaded_after(code, cwd=tmp_path)
    assert "fsspec" in loaded  # imported where the files are opened
    assert loaded & set(CLIENTS) == set()
    written = [json.loads(line) for part in (tmp_path / "out" / "d").rglob("part-*.jsonl")
               for line in part.read_text().splitlines()]
    assert sorted(r["n"] for r in written) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("package", [sesa_fp, sesa_fp.sources, sesa_fp.loaders],
                         ids=lambda p: p.__name__)
def test_every_public_name_imports_and_is_listed(package: ModuleType) -> None:
    names = dir(package)
    # what completion offers is the package's API, not the helpers it is built with
    assert not {"lazy_attribute", "lazy_dir"} & set(names)
    for name in package.__all__:
        assert name in names
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError,
                       match=f"module '{package.__name__}' has no attribute 'nope'"):
        _ = package.nope


def test_lazy_names_are_the_same_objects_as_their_modules() -> None:
    from sesa_fp.loaders.search import SearchLoader, load_es
    from sesa_fp.sources.search import SearchSource, es_source
    from sesa_fp.sources.sql import SqlSource, sql_source

    assert sesa_fp.sources.es_source is es_source is sesa_fp.es_source
    assert sesa_fp.sources.SearchSource is SearchSource
    assert sesa_fp.sources.sql_source is sql_source is sesa_fp.sql_source
    assert sesa_fp.sources.SqlSource is SqlSource
    assert sesa_fp.loaders.load_es is load_es is sesa_fp.load_es
    assert sesa_fp.loaders.SearchLoader is SearchLoader


def test_submodules_import_sesa_fp_used_to_load_are_still_attributes() -> None:
    code = ("import sesa_fp\n"
            "assert {'search'} <= set(dir(sesa_fp)) and 'search' in dir(sesa_fp.loaders)\n"
            "assert {'search', 'sql', 'sql_values'} <= set(dir(sesa_fp.sources))\n"
            "sesa_fp.search.adaptive.AdaptiveLimit, sesa_fp.search.util.error_details\n"
            "sesa_fp.loaders.search.load_es, sesa_fp.sources.search.es_source\n"
            "sesa_fp.sources.sql.sql_source, sesa_fp.sources.sql_values\n")
    assert {"tenacity"} <= loaded_after(code)  # the probe sees what the code imported
