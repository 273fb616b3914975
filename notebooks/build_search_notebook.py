"""Writes notebooks/search_to_search.ipynb (kept as code so its cells are reviewed like code).

    python notebooks/build_search_notebook.py

The notebook talks to the search engine at ``$SEARCH_URL`` (the tests start one and set it).
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    new_markdown_cell(
        "# Search to search\n\n"
        "The design card's shape, on a real search engine: read an index with `es_source`,\n"
        "stage what was read, transform with plain functions, load into per-month indices\n"
        "with `load_es`, and peel the dead letters off into a dead-letter queue. The engine\n"
        "is the one at `$SEARCH_URL` (default `http://127.0.0.1:9200`)."),
    new_code_cell(
        "import json\n"
        "import os\n"
        "import sys\n"
        "import tempfile\n"
        "import urllib.request\n"
        "import uuid\n"
        "from pathlib import Path\n\n"
        "from sesa_fp import es_source, load_es, partition, pipe, read_jsonl, run, stage, tee\n"
        "from sesa_fp.storage import dlq_sink, from_storage, to_storage\n"
        "from sesa_fp.transforms import cast, normalize, python_class\n\n"
        "SEARCH_URL = os.environ.get('SEARCH_URL', 'http://127.0.0.1:9200').rstrip('/')\n"
        "REPO = Path.cwd().parent if Path.cwd().name == 'notebooks' else Path.cwd()\n"
        "sys.path.insert(0, str(REPO / 'recipes'))  # for the seed-style transformer\n"
        "OUT = Path(tempfile.mkdtemp(prefix='sesa-search-notebook-'))\n"
        "RUN = uuid.uuid4().hex[:8]  # index names of this run only\n"
        "SOURCE_INDEX = f'rfi-src-{RUN}'\n\n\n"
        "def engine(method, path, body=None):\n"
        "    \"\"\"A plain HTTP call to the engine, to set up and to check what was loaded.\"\"\"\n"
        "    data = None if body is None else json.dumps(body).encode()\n"
        "    req = urllib.request.Request(f'{SEARCH_URL}/{path}', data=data, method=method,\n"
        "                                 headers={'Content-Type': 'application/json'})\n"
        "    with urllib.request.urlopen(req) as resp:\n"
        "        return json.load(resp)"),
    new_markdown_cell(
        "First a source index to read from: the sample RFIs, loaded with the same toolkit\n"
        "(dates kept as the strings they are, so the bad ones arrive too; the malformed lines\n"
        "are dead letters of `read_jsonl`)."),
    new_code_cell(
        "bad_lines = []\n"
        "seeded = run(pipe(read_jsonl(str(REPO / 'recipes/data/rfi-sample.jsonl')),\n"
        "                  load_es(hosts=[SEARCH_URL], dataset=SOURCE_INDEX,\n"
        "                          mappings={'date_detection': False}),\n"
        "                  partition(bad_lines.append)), progress=False)\n"
        "engine('POST', f'{SOURCE_INDEX}/_refresh')\n"
        "print(seeded.balance())"),
    new_markdown_cell(
        "The pipeline: `pipe(es_source(...), stage(...), load_es(...))`, with staging (`tee`)\n"
        "and a dead-letter queue (`partition`). Nothing runs yet; in Jupyter it shows its\n"
        "stages as a table."),
    new_code_cell(
        "pipeline = pipe(\n"
        "    es_source(hosts=[SEARCH_URL], index=SOURCE_INDEX, query={'match_all': {}},\n"
        "              fields=['_id', 'project_id', 'rfi_number', 'title', 'question',\n"
        "                      'created_at', 'responded_at', 'status']),\n"
        "    tee(to_storage(str(OUT / 'staging'), gzip=True)),\n"
        "    stage(normalize()),\n"
        "    stage(cast(['created_at', 'responded_at'], to='datetime')),\n"
        "    python_class('rfi_transforms:RfiValidateCast'),\n"
        "    load_es(hosts=[SEARCH_URL], dataset=f'rfi-enriched-{RUN}-{{created_at:%Y.%m}}',\n"
        "            id_strategy={'type': 'sha256_concat',\n"
        "                         'fields': ['project_id', 'rfi_number']},\n"
        "            actions_per_batch=500, concurrency=2),\n"
        "    partition(dlq_sink(str(OUT / 'dlq'))),\n"
        ")\n"
        "pipeline"),
    new_markdown_cell(
        "A preview runs the first records through the transforms only — nothing is staged or\n"
        "loaded — and shows what changed, the index and id each would get, and why a record\n"
        "would become a dead letter:"),
    new_code_cell(
        "preview = pipeline.preview(5)\n"
        "print(preview)\n"
        "assert not list((OUT).glob('staging/*')), 'a preview stages nothing'\n"
        "preview"),
    new_code_cell(
        "report = run(pipeline)\n"
        "print(report)\n"
        "assert report.conserved  # read = loaded + dropped + dead letters, from what committed\n"
        "report"),
    new_markdown_cell(
        "What the engine holds now, counted by the engine itself. Ids are the sha256 of\n"
        "(project_id, rfi_number), so RFIs that share both are one document: each write the\n"
        "engine acknowledged is either a new document or a new version of one."),
    new_code_cell(
        "engine('POST', f'rfi-enriched-{RUN}-*/_refresh')\n"
        "hits = engine('POST', f'rfi-enriched-{RUN}-*/_search',\n"
        "              {'size': 10000, 'version': True, '_source': False})['hits']['hits']\n"
        "writes = sum(h['_version'] for h in hits)\n"
        "print(f'{len(hits)} documents in rfi-enriched-{RUN}-*, {writes} writes; report says '\n"
        "      f'loaded {report.loaded} (retries {report.retries})')\n"
        "assert writes == report.loaded"),
    new_markdown_cell("The dead letters, grouped, then read back from the DLQ:"),
    new_code_cell(
        "for kind in report.dead_letter_kinds:\n"
        "    print(f\"{kind['count']:>4} {kind['error_type']:<12} at {kind['stage']}\")\n"
        "dlq_uri = next(o['uri'] for o in report.outputs if o['kind'] == 'dlq')\n"
        "letters = list(from_storage(dlq_uri))\n"
        "print(len(letters), 'dead letters in', dlq_uri)\n"
        "print(letters[0]['error_message'])"),
    new_code_cell(
        "engine('DELETE', f'{SOURCE_INDEX},rfi-enriched-{RUN}-*')  # tidy up\n"
        "print('done')"),
]


def main() -> None:
    nb = new_notebook(cells=CELLS, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = Path(__file__).with_name("search_to_search.ipynb")
    nbformat.write(nb, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
