"""The seeds' notebook, done with trainspeed, runs top to bottom on a CPU-only machine on a small slice."""

import os
from pathlib import Path

import pytest

from conftest import SAMPLE_ARCHIVE, make_cifar_files, make_idx_files, write_cifar_folder

nbformat = pytest.importorskip("nbformat", reason="the notebook extra is not installed: pip install -e '.[notebook]'")
nbclient = pytest.importorskip("nbclient", reason="the notebook extra is not installed: pip install -e '.[notebook]'")
pytest.importorskip("ipykernel", reason="the notebook extra is not installed: pip install -e '.[notebook]'")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "gpu_vs_cpu.ipynb"
SRC = Path(__file__).resolve().parents[1] / "src"


def _outputs(notebook) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", "") or "".join(output.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom_on_a_small_slice(tmp_path, monkeypatch):
    if SAMPLE_ARCHIVE.exists():
        cifar = str(SAMPLE_ARCHIVE)
    else:  # generated files in the official format: the notebook's own data path still runs
        cifar = str(write_cifar_folder(tmp_path / "cifar", make_cifar_files(per_batch=120)).parent)
    fashion = tmp_path / "fashion"
    fashion.mkdir()
    for name, content in make_idx_files(train=600, test=100).items():
        (fashion / name).write_bytes(content)
    monkeypatch.setenv("TRAINSPEED_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("TRAINSPEED_NOTEBOOK_CIFAR", cifar)
    monkeypatch.setenv("TRAINSPEED_NOTEBOOK_FASHION", str(fashion))
    monkeypatch.setenv("TRAINSPEED_NOTEBOOK_OUT", str(tmp_path / "results"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = _outputs(notebook)
    assert "training and" in text and "test images of shape (3, 32, 32)" in text
    assert "steady s/epoch" in text and "one image in" in text and "hits:" in text
    assert "seconds per epoch by hidden layers" in text
    assert (tmp_path / "results" / "results.json").is_file() and (tmp_path / "results" / "report.md").is_file()
