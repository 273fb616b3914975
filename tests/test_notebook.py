"""The quickstart notebook runs top to bottom and shows the report and dead letters."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes() -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "\n".join(
        out.get("text", "") + "".join(str(v) for v in out.get("data", {}).values())
        for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", []))
    assert "read 3000 = loaded 2959 + dropped 25 + dead letters 16" in text
    assert "16 dead letters" in text and "CastError" in text
    assert "transform tests passed" in text
    widgets = [out for cell in nb.cells if cell.cell_type == "code"
               for out in cell.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]
    assert widgets, "run() showed no progress bar widget in Jupyter"
    assert text.count("'project_id': 'P1") >= 3  # three loaded rows shown


SEARCH_NOTEBOOK = NOTEBOOK.with_name("search_to_search.ipynb")


@pytest.mark.integration
def test_search_to_search_notebook_executes(search_url: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("SEARCH_URL", search_url)  # the kernel inherits it
    nb = nbformat.read(SEARCH_NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code"
               for out in cell.get("outputs", [])]
    text = "\n".join(out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
                     for out in outputs)
    pages = [out["data"]["text/html"] for out in outputs if "text/html" in out.get("data", {})]
    # the seeding run, then the design card's pipeline: 4 malformed lines never reach the
    # index, so the copy reads 2996: 25 dropped, 12 bad dates become dead letters
    assert "read 3000 = loaded 2996 + dropped 0 + dead letters 4" in text
    assert "read 2996 = loaded 2959 + dropped 25 + dead letters 12" in text
    assert " documents in rfi-enriched-" in text and "2959 writes; report says loaded 2959" in text
    assert "12 dead letters in" in text and "CastError" in text
    assert "record 1 -> rfi-enriched-" in text  # the preview names index and id
    assert "INFO  run_finished run_id=" in text and '{"ts"' not in text  # readable logs
    # HTML views: the pipeline, the preview and the report (stages, chart, dead letters)
    assert len(pages) == 3, [p[:80] for p in pages]
    assert "es_source" in pages[0] and "load_es" in pages[0]
    assert "fields changed" in pages[1]
    assert 'title="failed 12"' in pages[2] and "CastError" in pages[2]
    assert not any(out.get("output_type") == "error" for out in outputs)
