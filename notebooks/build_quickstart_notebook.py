"""Writes notebooks/quickstart.ipynb (kept as code so its cells are reviewed like code).

    python notebooks/build_quickstart_notebook.py
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    new_markdown_cell(
        "# sesa_fp quickstart\n\n"
        "The quickstart job (`recipes/quickstart.yaml`) written by hand as a composition: read\n"
        "JSONL, stage it, transform in a worker pool, load into per-month files, and peel the\n"
        "dead letters off. Nothing runs until `run(...)` drains the pipeline."),
    new_code_cell(
        "import sys\n"
        "import tempfile\n"
        "from pathlib import Path\n\n"
        "from sesa_fp import (\n"
        + "".join(f"    {name},\n" for name in (
            "batched", "chain", "load_files", "map_concurrent", "partition", "pipe",
            "read_jsonl", "run", "stage", "tee", "to_storage", "unbatched"))
        + ")\n"
        "from sesa_fp.transforms import cast, normalize, python_class\n\n"
        "REPO = Path.cwd().parent if Path.cwd().name == 'notebooks' else Path.cwd()\n"
        "sys.path.insert(0, str(REPO / 'recipes'))  # for the seed-style transformer\n"
        "OUT = Path(tempfile.mkdtemp(prefix='sesa-notebook-'))"),
    new_code_cell(
        "dead = []  # a plain list is a fine dead-letter sink in a notebook\n"
        "pipeline = pipe(\n"
        "    read_jsonl(str(REPO / 'recipes/data/rfi-sample.jsonl')),\n"
        "    tee(to_storage(str(OUT / 'staging'), gzip=True)),\n"
        "    batched(500),\n"
        "    map_concurrent(chain(stage(normalize()),\n"
        "                         stage(cast(['created_at', 'responded_at'], to='datetime')),\n"
        "                         python_class('rfi_transforms:RfiValidateCast')),\n"
        "                   workers=2, window=4),\n"
        "    unbatched(),\n"
        "    load_files(str(OUT / 'warehouse'), dataset='rfi-enriched-{created_at:%Y.%m}',\n"
        "               id_strategy={'type': 'sha256_concat',\n"
        "                            'fields': ['project_id', 'rfi_number']}),\n"
        "    partition(dead.append),\n"
        ")\n"
        "pipeline"),
    new_code_cell(
        "report = run(pipeline)  # progress bar in Jupyter and on a terminal\n"
        "print(report)\n"
        "assert report.conserved  # read = loaded + dropped + dead letters, from what committed\n"
        "assert report.read == report.loaded + report.dropped + report.dead_letters"),
    new_markdown_cell("A few loaded rows, straight from the files the loader wrote:"),
    new_code_cell(
        "rows = list(read_jsonl(str(OUT / 'warehouse/rfi-enriched-2025.08/*/part-*.jsonl')))\n"
        "shown = ('_id', 'project_id', 'rfi_number', 'title', 'created_at')\n"
        "for row in rows[:3]:\n"
        "    print({k: row[k] for k in shown})"),
    new_markdown_cell("The dead letters carry the record, the stage and the error:"),
    new_code_cell(
        "for d in dead[:5]:\n"
        "    print(f'{d.stage:<45} {d.error_type:<16} {d.error_message[:60]}')\n"
        "print(len(dead), 'dead letters')"),
    new_markdown_cell("Transforms are plain functions, so unit tests need no pipeline:"),
    new_code_cell(
        "from rfi_transforms import RfiValidateCast\n\n"
        "assert normalize()({'title': '  Façade  ', 'q': ''}) == {'title': 'Façade', 'q': None}\n"
        "assert RfiValidateCast().map_record({'rfi_number': None}) is None\n"
        "assert RfiValidateCast().map_record({'rfi_number': 7}) == {'rfi_number': 7,\n"
        "                                                           'validated': True}\n"
        "print('transform tests passed')"),
]


def main() -> None:
    nb = new_notebook(cells=CELLS, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = Path(__file__).with_name("quickstart.ipynb")
    nbformat.write(nb, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
