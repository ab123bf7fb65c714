"""The user guide in docs/: the API reference is what docs/gen_api.py generates from today's
docstrings, and every relative link in the guide points to a file that exists."""

import importlib.util
import os
import re

DOCS = os.path.normpath(os.path.join(os.path.dirname(__file__), os.pardir, "docs"))


def _gen_api():
    spec = importlib.util.spec_from_file_location("gen_api", os.path.join(DOCS, "gen_api.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_in_sync_with_the_docstrings():
    gen_api = _gen_api()
    with open(os.path.join(DOCS, "api.md")) as f:
        stored = f.read()
    assert stored == gen_api.generate(), (
        "docs/api.md is out of date: run `.venv/bin/python docs/gen_api.py`")
    for name in ("tfkd.Distiller", "tfkd.compress", "tfkd.data.load_mnist",
                 "tfkd.losses.LogitsDistillation", "tfkd.export.to_tflite"):
        assert f"### `{name}(" in stored, name


def test_guide_links_point_to_existing_files():
    pages = [p for p in os.listdir(DOCS) if p.endswith(".md")]
    assert {"README.md", "concepts.md", "howto.md", "cli.md", "troubleshooting.md",
            "api.md"} <= set(pages)
    for page in pages:
        with open(os.path.join(DOCS, page)) as f:
            text = f.read()
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert os.path.exists(os.path.normpath(os.path.join(DOCS, target))), (page, target)
