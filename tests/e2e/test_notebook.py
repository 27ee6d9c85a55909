"""The workshop notebook runs top to bottom, every cell without error, with the tiny test models
(the VS_* model variables point at them, the index goes to a temporary folder)."""

from __future__ import annotations

import os

import nbformat
from nbclient import NotebookClient

from conftest import REPO

NOTEBOOK = REPO / "notebooks" / "four_stages.ipynb"


def test_the_workshop_notebook_runs_every_cell(model_env, tmp_path, monkeypatch):
    for key, value in {**model_env, "VS_DATA_DIR": str(tmp_path / "data"), "VS_CLIP_PRETRAINED": "none"}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "commit it cleared"
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})  # runs where it lives
    client.execute()
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    nbformat.write(nb, REPO / "test-artifacts" / "four_stages.executed.ipynb")  # for people to look at
    text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
    assert "20 indexed, 0 duplicates, 0 rejected; 20 images in the index" in text, text[:600]
    assert "384 numbers" in text and "clamp((" in text and "alpha 0.5:" in text
    assert "raccoon.jpg" in text and "file name: [raccoon].jpg" in text  # the word channel says why
    html = [out for cell in nb.cells for out in cell.get("outputs", []) if "text/html" in out.get("data", {})]
    assert len(html) >= 4  # the thumbnails of stage 1, the index, stage 4 and the hybrid
    assert os.listdir(tmp_path / "data")  # the index went where VS_DATA_DIR said
