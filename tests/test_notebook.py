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
