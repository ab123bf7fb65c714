"""The notebooks in examples/: each matches its `.py` twin, is stored without outputs, and runs top
to bottom headless (`QUICK=1`, the project's Python as the kernel) without a cell error.

Running them takes minutes: those tests are marked `examples` (and `slow`), so `make test` skips
them and `make test-examples` runs them.
"""

import glob
import json
import os
import sys
import time

import pytest

EXAMPLES = os.path.normpath(os.path.join(os.path.dirname(__file__), os.pardir, "examples"))
NOTEBOOKS = sorted(glob.glob(os.path.join(EXAMPLES, "*.ipynb")))
CELL_TIMEOUT = 900  # seconds; a QUICK cell takes seconds on an idle 2-core machine


def _ids(paths):
    return [os.path.splitext(os.path.basename(p))[0] for p in paths]


def test_every_numbered_notebook_is_here():
    names = _ids(NOTEBOOKS)
    for prefix in ("01_", "02_", "03_", "04_", "05_"):
        assert any(n.startswith(prefix) for n in names), (prefix, names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_matches_its_py_twin_and_has_no_outputs(path):
    jupytext = pytest.importorskip("jupytext")
    twin = os.path.splitext(path)[0] + ".py"
    with open(path) as f:
        stored = json.load(f)
    for cell in stored["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{path} holds outputs: regenerate it with `jupytext --to ipynb {twin}`")
    if not os.path.exists(twin):
        pytest.skip(f"{os.path.basename(path)} has no .py twin")
    generated = jupytext.read(twin)
    sources = [(c["cell_type"], "".join(c["source"])) for c in stored["cells"]]
    expected = [(c["cell_type"], c["source"]) for c in generated.cells]
    assert sources == expected, (
        f"{path} differs from {twin}: run `.venv/bin/jupytext --to ipynb {twin}`")


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """A kernelspec running this very Python (the project's venv), found before any other."""
    pytest.importorskip("ipykernel")
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / "tfkd-test"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "tfkd test", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    previous = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(root), previous]))
    yield "tfkd-test"
    if previous is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = previous


@pytest.mark.slow
@pytest.mark.examples
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_quick(path, kernel_name, tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    monkeypatch.setenv("QUICK", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name=kernel_name, timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell on any error
    print(f"{os.path.basename(path)}: {time.perf_counter() - start:.0f} s")
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    assert any(o.get("output_type") in ("stream", "execute_result", "display_data")
               for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
