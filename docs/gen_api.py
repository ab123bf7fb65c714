"""Writes docs/api.md, the API reference, from the docstrings of tfkd's public names.

    .venv/bin/python docs/gen_api.py           # rewrite docs/api.md
    .venv/bin/python docs/gen_api.py --check   # exit 1 if docs/api.md is out of date

Public means listed in `__all__` of `tfkd` and of its public subpackages (`tfkd.losses`,
`tfkd.export`, `tfkd.data`, `tfkd.models`). `tests/test_docs.py` runs `--check`.
"""

import argparse
import importlib
import inspect
import pathlib
import sys

API = pathlib.Path(__file__).resolve().parent / "api.md"
SUBPACKAGES = ("losses", "export", "data", "models")
SKIP = {"__version__", "keras"}
METHODS_OF_CLASSES = True


def _signature(obj):
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _doc(obj):
    doc = inspect.getdoc(obj) or "(no docstring)"
    # Docstring examples stay code; headings inside docstrings are demoted to bold text.
    lines = []
    in_example = False
    for line in doc.splitlines():
        if line.startswith(">>>") and not in_example:
            lines.append("```python")
            in_example = True
        elif in_example and not (line.startswith(">>>") or line.startswith("...")):
            lines.append("```")
            in_example = False
        lines.append(line)
    if in_example:
        lines.append("```")
    return "\n".join(lines)


def _public_methods(cls):
    for name, member in sorted(vars(cls).items()):
        if name.startswith("_") or not callable(member):
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if inspect.getdoc(member):
            yield name, member


def _entry(qualified, obj):
    lines = []
    if inspect.isclass(obj):
        lines.append(f"### `{qualified}{_signature(obj)}`")
        lines += ["", "*class*", "", _doc(obj), ""]
        if METHODS_OF_CLASSES:
            for name, method in _public_methods(obj):
                lines += [f"#### `{qualified}.{name}{_signature(method)}`", "", _doc(method), ""]
    elif callable(obj):
        lines += [f"### `{qualified}{_signature(obj)}`", "", _doc(obj), ""]
    else:
        lines += [f"### `{qualified}`", "", f"A constant: `{obj!r}`.", ""]
    return lines


def generate():
    """The text of docs/api.md."""
    import tfkd

    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by `docs/gen_api.py`; do not edit by hand "
        "(`tests/test_docs.py` checks that it is in sync).",
        "",
        "## `tfkd`",
        "",
    ]
    for name in tfkd.__all__:
        if name in SKIP or name in SUBPACKAGES:
            continue
        lines += _entry(f"tfkd.{name}", getattr(tfkd, name))
    for package in SUBPACKAGES:
        module = importlib.import_module(f"tfkd.{package}")
        lines += [f"## `tfkd.{package}`", "", (inspect.getdoc(module) or "").strip(), ""]
        for name in getattr(module, "__all__", []):
            lines += _entry(f"tfkd.{package}.{name}", getattr(module, name))
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = API.read_text() if API.exists() else ""
        if current != text:
            print(f"{API} is out of date: run `.venv/bin/python docs/gen_api.py`.")
            return 1
        return 0
    API.write_text(text)
    print(f"wrote {API} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
