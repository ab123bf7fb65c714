"""Type hints on every public function and class, `py.typed` shipped, mypy clean on tfkd/."""

import inspect
import subprocess
import sys
import types
from pathlib import Path

import pytest

import tfkd

ROOT = Path(__file__).resolve().parents[1]
NAMESPACES = ("", "export", "losses", "data", "models")


def _public_callables():
    """`(qualified name, function)` for every public function, and every public method (and
    `__init__`) of every public class, of tfkd's public namespaces."""
    seen = set()
    for namespace in NAMESPACES:
        module = getattr(tfkd, namespace) if namespace else tfkd
        prefix = f"tfkd.{namespace}." if namespace else "tfkd."
        for name in module.__all__:
            obj = getattr(module, name)
            if id(obj) in seen or isinstance(obj, types.ModuleType):
                continue
            seen.add(id(obj))
            if inspect.isclass(obj) and obj.__module__.startswith("tfkd"):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    function = member.fget if isinstance(member, property) else getattr(
                        member, "__func__", member)
                    if inspect.isfunction(function):
                        yield f"{prefix}{name}.{attr}", function
            elif inspect.isfunction(obj) and obj.__module__.startswith("tfkd"):
                yield f"{prefix}{name}", obj


def test_every_public_signature_has_type_hints():
    missing = []
    for name, function in _public_callables():
        signature = inspect.signature(function)
        bare = [p.name for p in signature.parameters.values()
                if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
        no_return = signature.return_annotation is inspect.Signature.empty
        if bare or no_return:
            missing.append(f"{name}: parameters {bare}{', return' if no_return else ''}")
    assert len(list(_public_callables())) > 150  # the walk finds the API
    assert not missing, "\n".join(missing)


def test_py_typed_is_shipped():
    assert (ROOT / "tfkd" / "py.typed").is_file()
    assert '"py.typed"' in (ROOT / "setup.py").read_text()


@pytest.mark.slow
def test_mypy_is_clean_on_tfkd():
    """What `make lint` runs (config in pyproject.toml); about a minute on 2 busy cores."""
    done = subprocess.run([sys.executable, "-m", "mypy", "tfkd"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
